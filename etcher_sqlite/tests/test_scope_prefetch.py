"""A write scope's prefetch hint changes no answer, only how many statements bring it.

``UnitScope.prefetch(keys)`` reads the rows of a node's header and content in one
statement; the scope's reads then answer packed keys from those rows. Every read
must give what it gives without the hint: packed, spilled, empty and missing keys,
wrong types (the same error), and rows a batch of the same scope changed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from etcher.errors import WrongTypeError
from etcher_sqlite import SQLiteBackend, SQLiteMemoryBackend, packed

KEYS = ["h", "big", "l", "long", "s", "missing"]


def _fill(backend: Any) -> None:
    backend.hset("h", mapping={b"a": b"1", b"b": b"2"})
    backend.hset("big", mapping={b"f%d" % i: b"%d" % i for i in range(packed.MAX_ENTRIES + 3)})
    backend.rpush("l", b"x", b"y")
    backend.rpush("long", *[b"%d" % i for i in range(packed.MAX_ENTRIES + 3)])
    backend.set("s", b"text")


READS: list[tuple[str, Callable[[Any, str], Any]]] = [
    ("hgetall", lambda b, k: b.hgetall(k)),
    ("hget", lambda b, k: b.hget(k, b"a")),
    ("hget-missing-field", lambda b, k: b.hget(k, b"nope")),
    ("hget-spilled-field", lambda b, k: b.hget(k, b"f7")),
    ("llen", lambda b, k: b.llen(k)),
    ("lindex", lambda b, k: b.lindex(k, 1)),
    ("lindex-last", lambda b, k: b.lindex(k, -1)),
]


def _answer(read: Callable[[Any, str], Any], backend: Any, key: str) -> Any:
    try:
        return read(backend, key)
    except WrongTypeError as exc:
        return type(exc)


def _write(backend: Any) -> None:
    backend.hset("h", mapping={b"a": b"changed", b"c": b"3"})
    backend.hset("big", b"f7", b"seven")
    backend.rpush("l", b"z")
    backend.lpop("long")


def _answers(backend: Any) -> dict[Any, Any]:
    return {(name, key): _answer(read, backend, key) for name, read in READS for key in KEYS}


def _scoped_answers(backend: Any, prefetch: bool, write_first: bool) -> dict[Any, Any]:
    held = backend.unit_scope(True)
    with held:
        if prefetch:
            for i in range(0, len(KEYS), 2):
                held.prefetch((KEYS[i], KEYS[i + 1]))
        if write_first:
            _write(backend)  # through the scope's own transaction: cached rows follow
        # The first read of a key not prefetched caches its row: later reads use it too.
        return _answers(backend)


@pytest.mark.parametrize("write_first", [False, True])
@pytest.mark.parametrize("kind", ["file", "memory"])
def test_reads_after_a_prefetch_answer_as_without_it(
    tmp_path: Path, kind: str, write_first: bool
) -> None:
    backend = SQLiteBackend(tmp_path / "s.db") if kind == "file" else SQLiteMemoryBackend()
    try:
        _fill(backend)
        expected = _answers(backend)  # outside any scope: straight from the tables
        if write_first:
            with backend.unit_scope(True):
                _write(backend)
            expected = _answers(backend)
            # Back to the filled state, to do the same writes inside the measured scope.
            backend.delete(*KEYS)
            _fill(backend)
        for prefetch in (False, True):
            got = _scoped_answers(backend, prefetch, write_first)
            assert got == expected, prefetch
            if write_first:  # the scope committed its writes: start again from _fill()
                backend.delete(*KEYS)
                _fill(backend)
    finally:
        backend.close()
    assert expected[("hgetall", "s")] is WrongTypeError  # the wrong-type cases are covered
    assert expected[("hget-spilled-field", "big")] in (b"7", b"seven")


def test_a_prefetch_outside_a_write_scope_does_nothing(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path / "s.db")
    try:
        _fill(backend)
        with backend.unit_scope(False) as held_read:
            assert held_read is True
        held = backend.unit_scope(True)
        held.prefetch(("h", "l"))  # not entered yet: a hint with nothing to do
        with held:
            held.prefetch(("h", "l"))
            assert backend.hgetall("h") == {b"a": b"1", b"b": b"2"}
        held.prefetch(("h", "l"))  # left already
    finally:
        backend.close()
