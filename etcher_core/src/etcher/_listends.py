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
collect) — leaves the scope rolled back and untouched and answers
:data:`NOT_DONE`: the caller then runs the operation the general way, which
reads again and raises the proper error or does the graph's work.
"""

from __future__ import annotations

from typing import Any

from etcher._codec import safe_decode
from etcher.errors import WatchError
from etcher.spec import StorageBackend

NOT_DONE: Any = object()
""":func:`end_write`'s answer when the operation must run the general way."""

APPEND, PREPEND, POP_FIRST, POP_LAST = "rpush", "lpush", "lpop", "rpop"
"""The operations :func:`end_write` runs: ``append(x)``, ``insert(0, x)``, ``pop(0)``, ``pop()``."""


def end_write(
    backend: StorageBackend, header: str, dead: bytes, key: str, op: str, item: bytes | None
) -> Any:
    """Run ``op`` on list ``key`` whose node has header hash ``header``, in one held scope.

    ``item`` is the tagged item a push adds (``None`` for a pop). The node must
    exist and its header lack ``dead`` (a pending node is never written). A
    push returns ``None``; a pop the decoded scalar it removed. Returns
    :data:`NOT_DONE`, with nothing written, when the backend cannot hold such a
    scope here or the operation needs the general path (see the module).
    """
    held: Any = backend.unit_scope(True)  # type: ignore[attr-defined]  # locking_units
    try:
        commit = held.commit_writes
    except AttributeError:
        return NOT_DONE  # never entered: nothing to leave
    if not held.__enter__():
        return NOT_DONE  # this thread holds a scope already: the general path joins it
    try:
        stored = backend.hgetall(header)
        if not stored or dead in stored:
            held.__exit__(WatchError, None, None)  # roll back: the general path raises
            return NOT_DONE
        if item is not None:
            commit([(op, (key, item))])
            return None
        if not backend.llen(key):
            held.__exit__(WatchError, None, None)
            return NOT_DONE
        raw = backend.lindex(key, 0 if op == POP_FIRST else -1)
        if raw is None or raw[:1] == b"@":  # gone meanwhile, or a link: graph work
            held.__exit__(WatchError, None, None)
            return NOT_DONE
        value = safe_decode(raw)
        commit([(op, (key,))])
        return value
    except BaseException as exc:
        held.__exit__(type(exc), exc, exc.__traceback__)
        raise
