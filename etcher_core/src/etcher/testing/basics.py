"""The "basics first" stage: a few fundamental rules checked before any kit test runs.

Nearly every kit test relies on values coming back as ``bytes``, on ``lrange``
being inclusive and on empty hashes and lists disappearing. A backend that
breaks one of them would fail a hundred and fifty unrelated tests, burying the
one message that matters. So the first kit test to get a backend runs
:func:`basics_problem` on it (once per backend class per session); when a rule
is broken the plugin stops the run with that single message.
``--etcher-no-basics-stop`` runs everything anyway.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from typing import Any

from etcher.testing.options import BASICS_STOP_OPTION

__all__ = ["BASICS_STOP_OPTION", "basics_problem", "stop_message"]


def _rules(backend: Any, prefix: str) -> list[tuple[str, Callable[[], object], object]]:
    s, h, lst, gone_h, gone_l = (prefix + n for n in ("s", "h", "l", "gh", "gl"))

    def string_round_trip() -> object:
        backend.set(s, b"v")
        value = backend.get(s)
        return (type(value).__name__, value)

    def hash_values() -> object:
        backend.hset(h, b"f", b"v")
        value = backend.hget(h, b"f")
        return (type(value).__name__, value, backend.hgetall(h))

    def list_items() -> object:
        backend.rpush(lst, b"a", b"b", b"c")
        return [(type(v).__name__, v) for v in backend.lrange(lst, 0, -1)]

    def lrange_inclusive() -> object:
        return (backend.lrange(lst, 0, 1), backend.lrange(lst, 1, 1), backend.lrange(lst, -2, -1))

    def empty_hash_gone() -> object:
        backend.hset(gone_h, b"f", b"v")
        backend.hdel(gone_h, b"f")
        return (backend.exists(gone_h), backend.type(gone_h))

    def empty_list_gone() -> object:
        backend.rpush(gone_l, b"x")
        backend.lpop(gone_l)
        return (backend.exists(gone_l), backend.type(gone_l))

    return [
        (
            "get() returns exactly the bytes set() stored (bytes out, always)",
            string_round_trip,
            ("bytes", b"v"),
        ),
        (
            "hget()/hgetall() return bytes fields and values",
            hash_values,
            ("bytes", b"v", {b"f": b"v"}),
        ),
        (
            "lrange() returns list items as bytes",
            list_items,
            [("bytes", b"a"), ("bytes", b"b"), ("bytes", b"c")],
        ),
        (
            "lrange(name, start, end) includes the item at `end` (lrange(k, 0, 1) is two items)",
            lrange_inclusive,
            ([b"a", b"b"], [b"b"], [b"b", b"c"]),
        ),
        (
            "removing the last field of a hash deletes the key (exists 0, type b'none')",
            empty_hash_gone,
            (0, b"none"),
        ),
        (
            "popping the last item of a list deletes the key (exists 0, type b'none')",
            empty_list_gone,
            (0, b"none"),
        ),
    ]


def basics_problem(backend: Any) -> str | None:
    """The first fundamental rule ``backend`` breaks, in words, or ``None`` if all hold.

    Works under a private random prefix and deletes what it wrote.
    """
    prefix = f"t{uuid.uuid4().hex}basics:"
    names = [prefix + n for n in ("s", "h", "l", "gh", "gl")]
    try:
        for rule, probe, expected in _rules(backend, prefix):
            try:
                got = probe()
            except Exception as exc:
                return f"{rule}\n  raised   {type(exc).__name__}: {exc}"
            if got != expected:
                shown_expected = repr(expected).replace(prefix, "<prefix>")
                shown_got = repr(got).replace(prefix, "<prefix>")
                return f"{rule}\n  expected {shown_expected}\n  got      {shown_got}"
        return None
    finally:
        with contextlib.suppress(Exception):
            backend.delete(*names)


def stop_message(backend_name: str, problem: str) -> str:
    """The one message the run stops with when a basic rule is broken."""
    return (
        f"etcher conformance kit: {backend_name} breaks a basic rule of the storage Protocol, "
        "so the run stops here (almost every other test depends on it).\n"
        f"The Protocol requires: {problem}\n"
        "See the conventions at the top of etcher/spec.py. Fix this first, or pass "
        f"{BASICS_STOP_OPTION} to run every test anyway."
    )
