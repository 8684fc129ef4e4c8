"""Storage conformance, WATCH rules at the commit point (:class:`WatchConformance`)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from etcher.errors import EtcherError, WatchError, WrongTypeError
from etcher.spec import StorageBackend
from etcher.testing.fixtures import KeyMaker, RawAccess
from etcher.testing.storage._common import (
    _MAKERS,
    _expect_conflict,
    _raises,
)
from etcher.testing.wording import expect, expect_equal

# --------------------------------------------------------------------------- watch rules

INTERLEAVE_HOOK = "etcher_after_watch_check"
"""Optional pipeline attribute a backend may offer so the kit can test its commit path.

When the kit sets it to a zero-argument callable, ``execute()`` calls it once, *after* it
has checked the watched keys and *before* it applies anything, still inside whatever makes
the check and the apply one atomic step (a lock, a write transaction). Absent: the test
that uses it is skipped, saying so.
"""

_WAIT_FOR_OTHER_WRITER = 1.0
"""How long the interfering write is given to finish (seconds) before the batch goes on.

Not a timing assertion: a correct backend gives the right result whether the write
finished (it must then be a conflict) or was still blocked (it then applies after).
"""


class _OtherWriter:
    """Makes another client increment ``name``, once, from a thread, and waits for it a while."""

    def __init__(self, other: StorageBackend, name: str) -> None:
        self.other, self.name = other, name
        self.fired = False
        self.thread: threading.Thread | None = None
        self.done = threading.Event()
        self.errors: list[BaseException] = []

    def _write(self) -> None:
        try:
            self.other.incr(self.name)
        except BaseException as exc:
            self.errors.append(exc)
        finally:
            self.done.set()

    def __call__(self) -> None:
        if self.fired:
            return
        self.fired = True
        self.thread = threading.Thread(target=self._write, daemon=True)
        self.thread.start()
        # Either the write lands now (then execute() must report a conflict) or the
        # backend holds it off until the batch is committed (then it applies after).
        self.done.wait(_WAIT_FOR_OTHER_WRITER)

    def finish(self) -> None:
        if self.thread is not None:
            self.thread.join(60)
            expect(not self.thread.is_alive(), "a write blocked by a commit proceeds after it")
        if self.errors:
            raise AssertionError(f"the other client's incr() failed: {self.errors[0]!r}")


class _Tripwire(str):
    """Text whose ``encode()`` first calls ``hook``: a backend encoding it runs the hook."""

    hook: Callable[[], None] = staticmethod(lambda: None)

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        type(self).hook()
        return str(self).encode(encoding, errors)


class WatchConformance:
    """Watch/commit rules that simple tests miss: recreated keys and the check-then-apply race."""

    @pytest.mark.parametrize("kind", sorted(_MAKERS))
    def test_key_deleted_and_recreated_is_a_conflict(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker, kind: str
    ) -> None:
        # A version counter stored *in* the key's record restarts when the key is
        # recreated, so "same version as when watched" would wrongly mean "unchanged".
        watched, target = key("watched"), key("target")
        _MAKERS[kind](backend, watched)  # one write: the lowest version a key can have
        pipe = backend.pipeline()
        pipe.watch(watched)
        pipe.multi()
        pipe.set(target, b"written by the transaction")
        backend.delete(watched)
        _MAKERS[kind](backend, watched)  # recreated, with the very same content
        with _raises(
            WatchError,
            "a watched key that was deleted and created again is a conflict, even with the "
            "same content (versions must never restart when a key is recreated)",
            prefix=key.prefix,
        ):
            pipe.execute()
        expect_equal(
            raw.exists(target),
            0,
            "a transaction that raised WatchError applies nothing",
            key=target,
            prefix=key.prefix,
        )

    def test_key_recreated_by_another_client_is_a_conflict(
        self,
        backend: StorageBackend,
        second_backend: StorageBackend,
        raw: RawAccess,
        key: KeyMaker,
    ) -> None:
        watched, target = key("watched"), key("target")
        backend.set(watched, b"1")
        pipe = backend.pipeline()
        pipe.watch(watched)
        assert_value = pipe.get(watched)
        expect_equal(
            assert_value,
            b"1",
            "reads after watch() run at once and return values",
            key=watched,
            prefix=key.prefix,
        )
        pipe.multi()
        pipe.set(target, b"x")
        second_backend.delete(watched)
        second_backend.set(watched, b"1")
        _expect_conflict(
            pipe,
            raw,
            target,
            "a watched key deleted and recreated by another client is a conflict",
            prefix=key.prefix,
        )

    def test_missing_key_created_by_another_client_then_deleted_and_recreated(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        watched, target = key("watched"), key("target")
        pipe = backend.pipeline()
        pipe.watch(watched)
        pipe.multi()
        pipe.set(target, b"x")
        backend.set(watched, b"1")
        backend.delete(watched)
        backend.set(watched, b"1")
        _expect_conflict(
            pipe,
            raw,
            target,
            "a watched key that was missing and now exists is a conflict",
            prefix=key.prefix,
        )

    def _race(
        self,
        backend: StorageBackend,
        raw: RawAccess,
        key: KeyMaker,
        arm: Callable[[Any, _OtherWriter], Any],
    ) -> None:
        """Read-modify-write of a counter while another client increments it mid-commit."""
        counter, target = key("counter"), key("target")
        backend.set(counter, b"5")
        pipe = backend.pipeline()
        pipe.watch(counter)
        seen = int(pipe.get(counter))
        pipe.multi()
        value = arm(pipe, self.writer)
        pipe.set(counter, value if value is not None else str(seen + 1))
        pipe.set(target, b"committed")
        try:
            pipe.execute()
            committed = True
        except WatchError:
            committed = False
        self.writer.finish()
        expect(self.writer.fired, "(kit) the interfering write was never triggered")
        final = raw.get(counter)
        if committed:
            expect_equal(
                final,
                b"7",
                "watched keys are checked and the batch applied as ONE atomic step: another "
                "client's write that lands after the check must either make execute() raise "
                "WatchError or wait until the batch is committed. Here execute() committed "
                "and the other client's increment was lost (5 -> its 6 -> overwritten by our 6)",
                key=counter,
                prefix=key.prefix,
            )
        else:
            expect_equal(
                final,
                b"6",
                "after WatchError only the other client's write is there",
                key=counter,
                prefix=key.prefix,
            )
            expect_equal(
                raw.exists(target),
                0,
                "a transaction that raised WatchError applies nothing",
                key=target,
                prefix=key.prefix,
            )

    def test_write_landing_while_a_batch_commits_is_never_lost(
        self,
        backend: StorageBackend,
        second_backend: StorageBackend,
        raw: RawAccess,
        key: KeyMaker,
    ) -> None:
        # No backend cooperation: the queued value is text whose encode() makes another
        # client write the watched key. A backend that encodes while committing gets that
        # write in the middle of its commit; one that encodes earlier gets it before.
        self.writer = _OtherWriter(second_backend, key("counter"))

        def arm(pipe: Any, writer: _OtherWriter) -> str:
            hook = {"hook": staticmethod(writer)}
            tripwire: type[_Tripwire] = type("Tripwire", (_Tripwire,), hook)
            return tripwire("6")

        self._race(backend, raw, key, arm)

    def test_write_between_watch_check_and_apply_is_never_lost(
        self,
        backend: StorageBackend,
        second_backend: StorageBackend,
        raw: RawAccess,
        key: KeyMaker,
    ) -> None:
        probe = backend.pipeline()
        if not hasattr(probe, INTERLEAVE_HOOK):
            pytest.skip(
                f"{type(probe).__name__} has no `{INTERLEAVE_HOOK}` attribute: the kit cannot "
                "interleave a write between its watch check and its apply (optional; see "
                "docs/conformance-kit.md)"
            )
        self.writer = _OtherWriter(second_backend, key("counter"))

        def arm(pipe: Any, writer: _OtherWriter) -> None:
            setattr(pipe, INTERLEAVE_HOOK, writer)

        self._race(backend, raw, key, arm)

    def test_raise_on_error_false_returns_the_error_in_its_slot(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        s, a, b = key("s"), key("a"), key("b")
        backend.set(s, b"text")
        pipe = backend.pipeline(transaction=False)
        pipe.set(a, b"1")
        pipe.hset(s, b"f", b"v")
        pipe.set(b, b"2")
        try:
            results = pipe.execute(raise_on_error=False)
        except WrongTypeError:
            # All-or-nothing batches may raise regardless; then nothing may be applied.
            expect_equal(
                raw.exists(a, b), 0, "a batch that raised applied nothing", prefix=key.prefix
            )
        else:
            expect(
                len(results) == 3
                and results[0] is True
                and isinstance(results[1], WrongTypeError)
                and results[2] is True,
                "execute(raise_on_error=False) returns one result per command, the failed "
                "command's slot holding its error object (WrongTypeError here), as redis-py does",
                prefix=key.prefix,
                details=[("got", results)],
            )
            expect_equal(
                (raw.get(a), raw.get(b)),
                (b"1", b"2"),
                "the commands around the failed one ran",
                prefix=key.prefix,
            )
        expect_equal(
            raw.get(s), b"text", "the failed command changed nothing", key=s, prefix=key.prefix
        )
        pipe.set(a, b"again")
        expect_equal(
            pipe.execute(), [True], "the pipeline is usable after execute()", prefix=key.prefix
        )

    def test_watch_after_multi_is_refused(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        a, target = key("a"), key("target")
        pipe = backend.pipeline()
        pipe.multi()
        pipe.set(target, b"1")
        with _raises(
            EtcherError,
            "watch() after multi() raises an etcher error (redis-py: "
            "'Cannot issue a WATCH after a MULTI')",
            prefix=key.prefix,
        ):
            pipe.watch(a)
        pipe.reset()
        expect_equal(
            raw.exists(target), 0, "a reset pipeline applies nothing", key=target, prefix=key.prefix
        )

    def test_multi_twice_is_refused(self, backend: StorageBackend, key: KeyMaker) -> None:
        pipe = backend.pipeline()
        pipe.multi()
        with _raises(
            EtcherError,
            "a second multi() raises an etcher error (redis-py: "
            "'Cannot issue nested calls to MULTI')",
            prefix=key.prefix,
        ):
            pipe.multi()
        pipe.reset()

    def test_multi_after_queued_commands_is_refused(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        target = key("target")
        pipe = backend.pipeline()
        pipe.set(target, b"1")
        with _raises(
            EtcherError,
            "multi() after commands were queued raises an etcher error "
            "(redis-py: 'Commands without an initial WATCH have already been issued')",
            prefix=key.prefix,
        ):
            pipe.multi()
        pipe.reset()
        expect_equal(
            raw.exists(target), 0, "a reset pipeline applies nothing", key=target, prefix=key.prefix
        )
