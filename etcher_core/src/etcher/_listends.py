"""List writes at an end through a handle, as one held write scope without a unit of work.

An append, ``insert(0, x)``, ``pop(0)`` and ``pop()`` through a handle read the
node's header (is it still live?), maybe the list's length and its end item,
and write one list command. On a backend whose unit scopes hold the store's
write lock and commit writes themselves (``capabilities.locking_units`` and
:class:`etcher.spec.ScopeCommits`: SQLite) that is exactly one held scope:
nothing read can change before the commit, so a unit of work's overlay,
watches, retries and graph have nothing to do, and their Python was about a
third of an append's CPU. :func:`end_write` runs the scope itself, with the
same reads and the same writes as the unit would make.

Whatever it does not handle — a node that is gone or unlinked, an empty list,
a popped item that links a node (its removal updates back-references and may
collect) — goes the general way: a pop hands the scope, still held and with
nothing written, to the caller's ``general`` (which finishes the operation as
a unit of work on it, :meth:`etcher._unit.Unit.in_held_scope`: popping a
nested container costs no second transaction); otherwise the scope is rolled
back untouched and the answer is :data:`NOT_DONE`, and the caller runs the
operation through a unit of its own, which raises the proper error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from etcher._codec import safe_decode
from etcher.errors import WatchError
from etcher.spec import StorageBackend

NOT_DONE: Any = object()
""":func:`end_write`'s answer when the operation must run the general way."""

APPEND, PREPEND, POP_FIRST, POP_LAST = "rpush", "lpush", "lpop", "rpop"
"""The operations :func:`end_write` runs: ``append(x)``, ``insert(0, x)``, ``pop(0)``, ``pop()``."""


def end_write(
    backend: StorageBackend,
    header: str,
    dead: bytes,
    key: str,
    op: str,
    item: bytes | None,
    general: Callable[[Any], Any] | None = None,
) -> Any:
    """Run ``op`` on list ``key`` whose node has header hash ``header``, in one held scope.

    ``item`` is the tagged item a push adds (``None`` for a pop). The node must
    exist and its header lack ``dead`` (a pending node is never written). A
    push returns ``None``; a pop the decoded scalar it removed. When the
    operation needs the general path, ``general(held)`` (pops) gets the entered
    scope with nothing written and returns the operation's result, having
    committed or left the scope; without ``general`` (or when the backend
    cannot hold such a scope here) the answer is :data:`NOT_DONE`, with nothing
    written.
    """
    held: Any = backend.unit_scope(True)  # type: ignore[attr-defined]  # locking_units
    try:
        commit = held.commit_writes
    except AttributeError:
        return NOT_DONE  # never entered: nothing to leave
    try:
        # The header with the list's row at once, where the scope offers it (spec.ScopeCommits).
        read_header = held.read_header
    except AttributeError:
        read_header = None
    if not held.__enter__():
        return NOT_DONE  # this thread holds a scope already: the general path joins it
    try:
        stored = backend.hgetall(header) if read_header is None else read_header(header, key)
        if stored and dead not in stored:
            if item is not None:
                commit([(op, (key, item))])
                return None
            if backend.llen(key):
                raw = backend.lindex(key, 0 if op == POP_FIRST else -1)
                if raw is not None and raw[:1] != b"@":  # a scalar (a link needs the graph)
                    value = safe_decode(raw)
                    commit([(op, (key,))])
                    return value
        if general is not None:
            return general(held)
        held.__exit__(WatchError, None, None)  # roll back: the general path raises
        return NOT_DONE
    except BaseException as exc:
        held.__exit__(type(exc), exc, exc.__traceback__)
        raise
