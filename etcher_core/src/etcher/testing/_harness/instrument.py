"""An instrumented backend wrapper that counts what etcher asks of a store.

Tests use it to prove costs without timing anything: how many commits one
public operation makes, how many round trips a graph walk takes, how many
commands a collection queues.

>>> counting = CountingBackend(backend)            # doctest: +SKIP
>>> db = DB(backend=counting)
>>> counting.reset(); db["x"] = big_doc
>>> counting.commits
1
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from typing import Any

from etcher.spec import Capabilities, StorageBackend

_WRITE_COMMANDS = frozenset(
    {
        "set",
        "incr",
        "decr",
        "hset",
        "hdel",
        "hincrby",
        "rpush",
        "lpush",
        "lpop",
        "rpop",
        "lset",
        "ltrim",
        "delete",
    }
)


def _size(value: Any) -> int:
    """Bytes of stored data in a reply (keys and values of hashes, items of lists)."""
    if isinstance(value, (bytes, str)):
        return len(value)
    if isinstance(value, dict):
        return sum(_size(k) + _size(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return sum(_size(v) for v in value)
    return 0


_MULTI_KEY_COMMANDS = frozenset({"delete", "exists", "watch"})


def _keys_of(name: str, args: tuple[Any, ...]) -> int:
    """How many keys one command names (the multi-key ones name all their arguments)."""
    if name == "read_batch":  # (hashes, singles, lists): a unit's whole read batch
        return sum(len(keys) for keys in args[:3])
    return len(args) if name in _MULTI_KEY_COMMANDS else 1


class CountingPipeline:
    """Wraps a pipeline; counts queued commands, round trips and commits.

    It also tracks the largest batch (keys named by one ``execute()`` or one
    direct command) and the most keys one pipeline watched before it was
    executed or reset, so tests can bound what one unit touches.
    """

    def __init__(self, owner: CountingBackend, inner: Any, transaction: bool) -> None:
        self._owner = owner
        self._inner = inner
        self._transaction = transaction
        self._watching = False
        self._queued: list[str] = []
        self._keys = 0
        self._watched = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr
        owner = self._owner

        def call(*args: Any, **kwargs: Any) -> Any:
            result = attr(*args, **kwargs)
            if self._watching:
                owner.round_trips += 1
                owner.commands[name] += 1
                owner.bytes_read += _size(result)
                owner._saw_batch(_keys_of(name, args))
                return result
            self._queued.append(name)
            self._keys += _keys_of(name, args)
            return self

        return call

    def watch(self, *names: Any) -> Any:
        self._owner.round_trips += 1
        self._owner.watched_keys += len(names)
        self._watched += len(names)
        self._owner.largest_watch = max(self._owner.largest_watch, self._watched)
        self._watching = True
        return self._inner.watch(*names)

    def multi(self) -> None:
        self._watching = False
        self._inner.multi()

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        owner = self._owner
        queued, self._queued = self._queued, []
        owner._saw_batch(self._keys)
        self._keys = 0
        self._watched = 0
        self._watching = False
        owner.round_trips += 1
        owner.commands.update(queued)
        if self._transaction and any(name in _WRITE_COMMANDS for name in queued):
            owner.commits += 1
        if owner.fail_on_commit and self._transaction and queued:
            self._inner.reset()
            raise owner.fail_on_commit
        results: list[Any] = self._inner.execute(raise_on_error)
        owner.bytes_read += _size(results)
        return results

    def reset(self) -> None:
        self._queued = []
        self._keys = 0
        self._watched = 0
        self._watching = False
        self._inner.reset()

    def __len__(self) -> int:
        return len(self._queued)

    def __enter__(self) -> CountingPipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.reset()


class CountingBackend:
    """Delegates to ``inner`` and counts round trips, commands and commits.

    ``fail_on_commit`` (an exception instance) makes every transactional
    ``execute()`` that has commands raise it *instead of* applying them, to
    simulate a crash at commit time.
    """

    def __init__(self, inner: StorageBackend) -> None:
        self.inner = inner
        self.capabilities: Capabilities = inner.capabilities
        self.fail_on_commit: BaseException | None = None
        self.reset()

    def reset(self) -> None:
        """Zero every counter."""
        self.round_trips = 0
        self.commits = 0
        self.refused = 0
        self.missing = 0
        self.watched_keys = 0
        self.bytes_read = 0
        self.largest_batch = 0
        self.largest_watch = 0
        self.commands: Counter[str] = Counter()

    def _saw_batch(self, keys: int) -> None:
        self.largest_batch = max(self.largest_batch, keys)

    @property
    def total_commands(self) -> int:
        """Every command sent, direct or pipelined."""
        return sum(self.commands.values())

    def pipeline(self, transaction: bool = True) -> CountingPipeline:
        return CountingPipeline(self, self.inner.pipeline(transaction), transaction)

    def checked_commit(self, checks: Any, writes: Any) -> bool:
        """One round trip (one commit if it writes and applies); ``fail_on_commit`` applies
        here too. A call whose checks fail applied nothing: ``refused`` counts it.
        """
        self.round_trips += 1
        self.commands["checked_commit"] += 1
        self._saw_batch(len({c[1][0] for c in checks} | {w[1][0] for w in writes}))
        if writes and self.fail_on_commit:
            self.commits += 1
            raise self.fail_on_commit
        applied: bool = self.inner.checked_commit(checks, writes)  # type: ignore[attr-defined]
        if writes:
            if applied:
                self.commits += 1
            else:
                self.refused += 1
        return applied

    def unlinking_commit(self, checks: Any, writes: Any, plan: Any) -> Any:
        """As :meth:`checked_commit` (``capabilities.unlink_commits``): one round trip, a
        commit if it applies; a conflict or a refusal to collect counts in ``refused``, an
        answer that the item to delete is missing (nothing written) in ``missing``."""
        self.round_trips += 1
        self.commands["unlinking_commit"] += 1
        self._saw_batch(len({c[1][0] for c in checks} | {w[1][0] for w in writes}))
        if writes and self.fail_on_commit:
            self.commits += 1
            raise self.fail_on_commit
        outcome = self.inner.unlinking_commit(checks, writes, plan)  # type: ignore[attr-defined]
        if outcome[0] == "applied":
            self.commits += 1
        elif outcome[0] == "missing":
            self.missing += 1
        else:
            self.refused += 1
        return outcome

    def unit_scope(self, write: bool) -> CountingScope:
        """The inner backend's scope (core asks only where ``locking_units`` is declared)."""
        return CountingScope(self, self.inner.unit_scope(write))  # type: ignore[attr-defined]

    def scan_iter(self, match: str | None = None, count: int | None = None) -> Any:
        self.round_trips += 1
        self.commands["scan_iter"] += 1
        return self.inner.scan_iter(match=match, count=count)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr) or name.startswith("_"):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self.round_trips += 1
            self.commands[name] += 1
            self._saw_batch(_keys_of(name, args))
            if name in _WRITE_COMMANDS:
                self.commits += 1
            result = attr(*args, **kwargs)
            self.bytes_read += _size(result)
            return result

        return call


class CountingScope:
    """Wraps a unit scope: a commit through its ``commit_writes()`` counts as a pipeline's would.

    ``fail_on_commit`` applies there too (the writes are refused and the scope is
    left held, for the unit to roll back).
    """

    def __init__(self, owner: CountingBackend, inner: Any) -> None:
        self._owner = owner
        self._inner = inner

    def __enter__(self) -> bool:
        return bool(self._inner.__enter__())

    def __exit__(self, *exc: Any) -> None:
        self._inner.__exit__(*exc)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)  # no commit_writes there: none here either
        if name == "read_item":

            def read_item(refs: str, content: str, field: bytes) -> Any:
                # As the two reads it stands for: hgetall(refs), hget(content, field).
                owner = self._owner
                owner.round_trips += 2
                owner.commands.update(("hgetall", "hget"))
                owner._saw_batch(1)
                result = attr(refs, content, field)
                owner.bytes_read += _size(result[0]) + _size(result[1])
                return result

            return read_item
        if name == "read_header":

            def read_header(refs: str, key: str) -> Any:
                # As the read it stands for: hgetall(refs) (key's row is only read ahead).
                owner = self._owner
                owner.round_trips += 1
                owner.commands["hgetall"] += 1
                owner._saw_batch(1)
                result = attr(refs, key)
                owner.bytes_read += _size(result)
                return result

            return read_header
        if name == "commit_fresh":

            def commit_fresh(writes: list[tuple[str, tuple[Any, ...]]], fresh: Any) -> None:
                self._count(writes, fresh)
                attr(writes, fresh)

            return commit_fresh
        if name != "commit_writes":
            return attr

        def commit_writes(writes: list[tuple[str, tuple[Any, ...]]], *created: Any) -> None:
            self._count(writes, created[1] if len(created) > 1 else None)
            attr(writes, *created)

        return commit_writes

    def _count(self, writes: list[tuple[str, tuple[Any, ...]]], fresh: Any) -> None:
        """Count one commit through the scope (``fail_on_commit`` refuses it here)."""
        owner = self._owner
        # Fresh contents (takes_fresh) count as the hset/rpush each stands for.
        seen = [
            *(("hset" if isinstance(c, dict) else "rpush", (k,)) for k, c in (fresh or {}).items())
        ]
        seen += writes
        owner.round_trips += 1
        owner.commands.update(command for command, _ in seen)
        owner._saw_batch(sum(_keys_of(command, args) for command, args in seen))
        if seen:
            owner.commits += 1
            if owner.fail_on_commit:
                raise owner.fail_on_commit


def python_calls(fn: Callable[[], object]) -> int:
    """How many Python functions ``fn()`` calls (``sys.setprofile`` "call" events, ``fn``
    itself not counted): a cost that, unlike time, is the same on every machine and run.

    >>> python_calls(lambda: len([]))  # a C function is no Python call
    0
    """
    count = 0

    def tracer(frame: Any, event: str, arg: Any) -> None:
        nonlocal count
        if event == "call":
            count += 1

    sys.setprofile(tracer)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return count - 1
