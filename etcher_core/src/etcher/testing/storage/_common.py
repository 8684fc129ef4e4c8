"""Values and helpers shared by the storage-Protocol families (not public API)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from etcher.errors import WatchError
from etcher.spec import StorageBackend
from etcher.testing.fixtures import RawAccess, glob_escape
from etcher.testing.wording import expect_equal, shorten

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
ALL_BYTES = bytes(range(256))
"""Every byte value once: not UTF-8, contains NUL, CR/LF and 0xff."""

FIVE = [b"a", b"b", b"c", b"d", b"e"]

_COUNTER_RULE = "a counter is canonical signed 64-bit decimal text: an optional '-', then digits"
NOT_COUNTER_CASES: list[tuple[str, bytes, str]] = [
    ("letters", b"abc", _COUNTER_RULE),
    ("float", b"1.5", _COUNTER_RULE),
    ("empty", b"", "empty text is not a number"),
    ("leading-space", b" 1", "no spaces around the digits"),
    ("trailing-space", b"1 ", "no spaces around the digits"),
    ("newline", b"1\n", "no whitespace around the digits"),
    ("suffix", b"12abc", _COUNTER_RULE),
    ("underscore", b"1_000", "no '_' separators (Python's int() accepts them, Redis does not)"),
    ("non-ascii-digit", "\u0663".encode(), "ASCII digits only"),
    ("exponent", b"1e3", _COUNTER_RULE),
    ("hex", b"0x10", _COUNTER_RULE),
    ("plus-sign", b"+1", "no '+' sign (Redis INCR refuses '+1')"),
    ("plus-zero", b"+0", "no '+' sign"),
    ("leading-zeros", b"007", "no leading zeros (Redis INCR refuses '007')"),
    ("double-zero", b"00", "no leading zeros"),
    ("negative-leading-zero", b"-07", "no leading zeros"),
    ("minus-zero", b"-0", "zero is written '0', never '-0'"),
    ("lone-minus", b"-", _COUNTER_RULE),
]
"""Stored text that Redis ``INCR``/``HINCRBY`` refuse ("value is not an integer")."""
NOT_COUNTERS = [(stored, why) for _, stored, why in NOT_COUNTER_CASES]
NOT_COUNTER_IDS = [name for name, _, _ in NOT_COUNTER_CASES]


@contextmanager
def _raises(
    error: type[BaseException] | tuple[type[BaseException], ...], rule: str, *, prefix: str
) -> Iterator[None]:
    """Like ``pytest.raises``, but a missing or wrong error fails with ``rule`` in words."""
    wanted = error if isinstance(error, tuple) else (error,)
    names = " or ".join(e.__name__ for e in wanted)
    try:
        yield
    except wanted:
        return
    except Exception as exc:
        raise AssertionError(
            f"The Protocol requires: {rule}\n  expected {names}\n"
            f"  got      {type(exc).__name__}: {shorten(str(exc), prefix)}"
        ) from exc
    raise AssertionError(f"The Protocol requires: {rule}\n  expected {names}\n  got      no error")


def _expect_conflict(pipe: Any, raw: RawAccess, target: str, rule: str, *, prefix: str) -> None:
    """``execute()`` raises ``WatchError`` (``rule`` says why) and applies nothing to ``target``."""
    with _raises(WatchError, rule, prefix=prefix):
        pipe.execute()
    expect_equal(
        raw.exists(target),
        0,
        "a transaction that raised WatchError applies nothing",
        key=target,
        prefix=prefix,
    )


def _fill(backend: StorageBackend, name: str) -> None:
    """Make ``name`` the list ``a b c d e``."""
    assert backend.rpush(name, *FIVE) == len(FIVE)


def _snapshot(raw: RawAccess, name: str) -> tuple[Any, Any]:
    """Type and full content of a key, read out of band (to prove "nothing changed")."""
    kind = raw.type(name)
    if kind == b"string":
        return kind, raw.get(name)
    if kind == b"hash":
        return kind, raw.hgetall(name)
    if kind == b"list":
        return kind, raw.lrange(name, 0, -1)
    return kind, None


def _scan(backend: StorageBackend, prefix: str, count: int | None = None) -> list[bytes]:
    """Every key the backend reports under the literal ``prefix`` (duplicates kept)."""
    return list(backend.scan_iter(match=glob_escape(prefix) + "*", count=count))


_MAKERS: dict[str, Callable[[StorageBackend, str], object]] = {
    "string": lambda b, k: b.set(k, b"7"),
    "hash": lambda b, k: b.hset(k, mapping={b"f": b"7", b"g": b"8"}),
    "list": lambda b, k: b.rpush(k, b"7", b"8"),
}


def _run_in_threads(fn: Callable[[int], None], threads: int = 4) -> None:
    """Run ``fn(i)`` for each thread index at once; re-raise the first failure."""
    start = threading.Barrier(threads)

    def worker(i: int) -> None:
        start.wait()
        fn(i)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for future in [pool.submit(worker, i) for i in range(threads)]:
            future.result()
