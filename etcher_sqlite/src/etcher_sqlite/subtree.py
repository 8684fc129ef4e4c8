"""Server-side subtree reads on SQLite (``capabilities.subtree_reads``).

SQLite runs in-process, so the win is not network round trips but core's
per-level work: a unit of work's bookkeeping, a statement batch and a
``require`` per level. Here the whole walk runs inside one read transaction
(the caller's unit scope when it holds one, else a snapshot taken for the
call), through nothing but this backend's own batched ``hgetall``/``lrange``/
``exists``: it depends on the commands, not on how the tables store them.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from etcher._subtree import walk
from etcher.spec import SubtreeChunk


class _Backend(Protocol):
    def unit_scope(self, write: bool) -> AbstractContextManager[bool]: ...

    def pipeline(self, transaction: bool = True) -> Any: ...


class SubtreeMixin:
    """``read_subtree`` for a backend with unit scopes and batched pipelines."""

    def read_subtree(
        self: _Backend, content_prefix: str, refs_prefix: str, roots: Sequence[str], limit: int
    ) -> SubtreeChunk:
        """See :meth:`etcher.spec.SubtreeReads.read_subtree`."""
        # Already inside a scope on this thread: entering returns False and the walk
        # reads the scope's state; otherwise this snapshot holds for the whole walk.
        with self.unit_scope(False):
            return walk(
                lambda: self.pipeline(transaction=False), content_prefix, refs_prefix, roots, limit
            )
