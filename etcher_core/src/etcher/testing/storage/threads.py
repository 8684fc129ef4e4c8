"""Storage conformance, one backend shared by threads (:class:`ThreadSafetyConformance`)."""

from __future__ import annotations

import threading

from etcher.errors import WatchError
from etcher.spec import StorageBackend
from etcher.testing.fixtures import KeyMaker, RawAccess
from etcher.testing.storage._common import (
    _run_in_threads,
)


class ThreadSafetyConformance:
    """One backend shared by several threads, each with its own pipelines."""

    THREADS = 4
    ROUNDS = 40

    def test_plain_commands_from_threads_lose_nothing(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        counter, h, lst = key("counter"), key("h"), key("l")

        def work(i: int) -> None:
            for j in range(self.ROUNDS):
                backend.incr(counter)
                backend.hincrby(h, b"total", 2)
                backend.hset(h, f"t{i}".encode(), str(j))
                backend.rpush(lst, f"{i}:{j}")

        _run_in_threads(work, self.THREADS)
        total = self.THREADS * self.ROUNDS
        assert raw.get(counter) == str(total).encode()
        fields = raw.hgetall(h)
        assert fields[b"total"] == str(2 * total).encode()
        assert {fields[f"t{i}".encode()] for i in range(self.THREADS)} == {
            str(self.ROUNDS - 1).encode()
        }
        items = raw.lrange(lst, 0, -1)
        assert len(items) == total
        for i in range(self.THREADS):  # each thread's pushes keep their own order
            mine = [item for item in items if item.startswith(f"{i}:".encode())]
            assert mine == [f"{i}:{j}".encode() for j in range(self.ROUNDS)]

    def test_watch_retry_loops_from_threads_lose_no_update(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        k, log = key("n"), key("log")

        def work(i: int) -> None:
            pipe = backend.pipeline()
            for _ in range(self.ROUNDS // 2):
                # Bounded, so a backend that reports conflicts forever fails instead of hanging.
                for _attempt in range(10_000):
                    pipe.watch(k)
                    current = int(pipe.get(k) or b"0")
                    pipe.multi()
                    pipe.set(k, current + 1)
                    pipe.rpush(log, current + 1)
                    try:
                        pipe.execute()
                        break
                    except WatchError:
                        continue
                else:
                    raise AssertionError(f"thread {i}: every attempt raised WatchError")

        _run_in_threads(work, self.THREADS)
        total = self.THREADS * (self.ROUNDS // 2)
        assert raw.get(k) == str(total).encode()
        # Every committed read-modify-write saw the previous one: 1..total, in order.
        assert raw.lrange(log, 0, -1) == [str(n).encode() for n in range(1, total + 1)]

    def test_readers_see_transactions_whole(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        a, b = key("a"), key("b")
        backend.set(a, 0)
        backend.set(b, 0)
        torn: list[tuple[object, object]] = []
        done = threading.Event()

        def writer() -> None:
            try:
                pipe = backend.pipeline()
                for n in range(1, 101):
                    pipe.set(a, n)
                    pipe.set(b, n)
                    pipe.execute()
            finally:
                done.set()

        def reader() -> None:
            pipe = backend.pipeline()
            reads = 0
            while not done.is_set() or reads < 5:
                pipe.get(a)
                pipe.get(b)
                first, second = pipe.execute()
                if first != second:
                    torn.append((first, second))
                reads += 1

        def work(i: int) -> None:
            if i == 0:
                writer()
            else:
                reader()

        _run_in_threads(work, 3)
        assert torn == []
        assert raw.get(a) == raw.get(b) == b"100"
