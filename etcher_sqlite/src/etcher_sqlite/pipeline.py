"""redis-py style pipelines and optimistic transactions on SQLite."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from etcher.errors import ResponseError, TransactionError
from etcher_sqlite import ops
from etcher_sqlite.commands import CommandsMixin, to_key
from etcher_sqlite.ops import Call, Command

if TYPE_CHECKING:
    from etcher.spec import KeyT


class _Runner(Protocol):
    """What a pipeline needs from its backend."""

    def _call(self, command: Command, call: Call) -> Any: ...

    def _execute(
        self, queue: list[tuple[Command, Call]], watched: dict[str, int | None]
    ) -> list[Any]: ...

    def _versions(self, names: list[str]) -> dict[str, int | None]: ...


class SQLitePipeline(CommandsMixin):
    """A batch of commands applied as one SQLite transaction, with redis-py's modes.

    * **buffered** (default): each command is queued and returns the pipeline;
      :meth:`execute` returns the results in order.
    * **immediate**: after :meth:`watch` and until :meth:`multi`, commands run
      at once and return their results.

    :meth:`execute` takes the write lock once (``BEGIN IMMEDIATE``; a plain
    ``BEGIN`` when nothing is written), checks that no watched key got a new
    version since :meth:`watch` (else :class:`~etcher.errors.WatchError` and
    nothing is applied), applies the queue and commits. Any failing command
    rolls the whole batch back, so ``transaction=False`` pipelines get the same
    atomicity and snapshot reads. A pipeline belongs to one thread.
    """

    __slots__ = (
        "_backend",
        "_explicit",
        "_queue",
        "_transaction",
        "_watched",
        "_watching",
        "etcher_after_watch_check",
    )

    def __init__(self, backend: _Runner, transaction: bool = True) -> None:
        self._backend = backend
        self._transaction = transaction
        self._queue: list[tuple[Command, Call]] = []
        self._watched: dict[str, int | None] = {}
        self._watching = False
        self._explicit = False
        # The conformance kit's optional probe (etcher.testing.storage.INTERLEAVE_HOOK).
        self.etcher_after_watch_check: Callable[[], None] | None = None

    def _call(self, command: Command, call: Call) -> Any:
        if self._watching and not self._explicit:
            return self._backend._call(command, call)
        self._queue.append((command, call))
        return self

    def watch(self, *names: KeyT) -> Any:
        """Remember the current version of ``names`` and switch to immediate mode.

        Watching a key twice keeps the first version seen, as Redis does.
        """
        if self._explicit:
            raise TransactionError("watch() must come before multi()")
        if not names:
            raise ResponseError("wrong number of arguments for 'watch'")
        keys = [to_key(name) for name in names]
        for name, version in self._backend._versions(keys).items():
            self._watched.setdefault(name, version)
        self._watching = True
        return True

    def unwatch(self) -> Any:
        """Forget every watched key (and leave immediate mode)."""
        self._watched = {}
        self._watching = False
        return True

    def multi(self) -> None:
        """End immediate mode: commands from now on are queued for :meth:`execute`."""
        if self._explicit:
            raise TransactionError("multi() was already called on this pipeline")
        if self._queue:
            raise TransactionError("commands were queued before multi(); call multi() first")
        self._explicit = True

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        """Apply the queue atomically and return one result per command, then reset.

        ``raise_on_error`` is accepted for redis-py compatibility only: a failed
        batch is rolled back entirely, so its error is always raised.
        """
        queue, watched = self._queue, self._watched
        try:
            if not queue and not watched:
                return []
            if self.etcher_after_watch_check is None:
                return self._backend._execute(queue, watched)
            ops.AFTER_WATCH_CHECK.hook = self.etcher_after_watch_check
            try:
                return self._backend._execute(queue, watched)
            finally:
                ops.AFTER_WATCH_CHECK.hook = None
        finally:
            self.reset()

    def reset(self) -> None:
        """Drop the queue and the watches; back to buffered mode."""
        self._queue = []
        self._watched = {}
        self._watching = False
        self._explicit = False

    def __len__(self) -> int:
        return len(self._queue)

    def __bool__(self) -> bool:
        # An empty pipeline is still a pipeline (redis-py does the same).
        return True

    def __enter__(self) -> SQLitePipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.reset()

    def __repr__(self) -> str:
        mode = "immediate" if self._watching and not self._explicit else "buffered"
        return f"<SQLitePipeline {mode}, {len(self._queue)} queued, {len(self._watched)} watched>"
