"""Storage conformance: documented errors change nothing (:class:`ErrorIsolationConformance`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from etcher.errors import StoreIndexError, StoreValueError, WrongTypeError
from etcher.spec import StorageBackend
from etcher.testing.fixtures import KeyMaker, RawAccess
from etcher.testing.storage._common import (
    INT64_MAX,
    INT64_MIN,
    _raises,
    _snapshot,
)
from etcher.testing.wording import expect, expect_equal

# --------------------------------------------------------------------------- failures

_INT64_MAX_TEXT = str(INT64_MAX).encode()


def _error_cases() -> list[Any]:
    """Every documented error: (setup, failing call, error class, what the Protocol says)."""
    cases: list[tuple[str, Callable[[Any, str], object], Callable[[Any, str], object], type, str]]
    cases = [
        (
            "incr-overflow",
            lambda b, k: b.set(k, INT64_MAX),
            lambda b, k: b.incr(k),
            StoreValueError,
            "incr() past the signed 64-bit range raises StoreValueError",
        ),
        (
            "decr-underflow",
            lambda b, k: b.set(k, INT64_MIN),
            lambda b, k: b.decr(k),
            StoreValueError,
            "decr() past the signed 64-bit range raises StoreValueError",
        ),
        (
            "incr-plus-sign",
            lambda b, k: b.set(k, b"+1"),
            lambda b, k: b.incr(k),
            StoreValueError,
            "incr() on '+1' raises StoreValueError (not canonical decimal)",
        ),
        (
            "incr-leading-zeros",
            lambda b, k: b.set(k, b"007"),
            lambda b, k: b.incr(k, 5),
            StoreValueError,
            "incr() on '007' raises StoreValueError (not canonical decimal)",
        ),
        (
            "hincrby-overflow",
            lambda b, k: b.hset(k, b"f", _INT64_MAX_TEXT),
            lambda b, k: b.hincrby(k, b"f", 1),
            StoreValueError,
            "hincrby() past the signed 64-bit range raises StoreValueError",
        ),
        (
            "hincrby-not-integer",
            lambda b, k: b.hset(k, b"f", b"1.5"),
            lambda b, k: b.hincrby(k, b"f", 1),
            StoreValueError,
            "hincrby() on a non-integer field raises StoreValueError",
        ),
        (
            "lset-out-of-range",
            lambda b, k: b.rpush(k, b"a", b"b"),
            lambda b, k: b.lset(k, 2, b"x"),
            StoreIndexError,
            "lset() beyond the end raises StoreIndexError",
        ),
        (
            "lset-missing-key",
            lambda b, k: None,
            lambda b, k: b.lset(k, 0, b"x"),
            StoreIndexError,
            "lset() on a missing key raises StoreIndexError and creates nothing",
        ),
        (
            "hset-on-string",
            lambda b, k: b.set(k, b"text"),
            lambda b, k: b.hset(k, b"f", b"v"),
            WrongTypeError,
            "hset() on a string key raises WrongTypeError",
        ),
        (
            "rpush-on-hash",
            lambda b, k: b.hset(k, b"f", b"v"),
            lambda b, k: b.rpush(k, b"x"),
            WrongTypeError,
            "rpush() on a hash key raises WrongTypeError",
        ),
        (
            "incr-on-list",
            lambda b, k: b.rpush(k, b"1"),
            lambda b, k: b.incr(k),
            WrongTypeError,
            "incr() on a list key raises WrongTypeError",
        ),
        (
            "lpop-on-string",
            lambda b, k: b.set(k, b"text"),
            lambda b, k: b.lpop(k),
            WrongTypeError,
            "lpop() on a string key raises WrongTypeError",
        ),
    ]
    return [pytest.param(*rest, id=name) for name, *rest in cases]


_ERROR_CASES = _error_cases()


class ErrorIsolationConformance:
    """A command that fails changes nothing, however it was sent.

    Direct calls, non-transactional pipelines (with ``raise_on_error`` true and
    false), transactional batches and unit scopes: in each, the key the failing
    command names must be exactly as it was. (Whether the *other* commands of a
    batch apply is :attr:`Capabilities.atomic_batches`; see ``PipelineConformance``.)
    """

    def _check_unchanged(
        self, raw: RawAccess, k: str, before: object, rule: str, how: str, prefix: str
    ) -> None:
        expect_equal(
            _snapshot(raw, k),
            before,
            f"a failing command changes nothing ({how}): {rule}; the key's (type, content) "
            "must be what it was before the call",
            key=k,
            prefix=prefix,
        )

    @pytest.mark.parametrize(("setup", "fail", "error", "rule"), _ERROR_CASES)
    def test_direct_call(
        self,
        backend: StorageBackend,
        raw: RawAccess,
        key: KeyMaker,
        setup: Any,
        fail: Any,
        error: type[Exception],
        rule: str,
    ) -> None:
        k = key("k")
        setup(backend, k)
        before = _snapshot(raw, k)
        with _raises(error, rule, prefix=key.prefix):
            fail(backend, k)
        self._check_unchanged(raw, k, before, rule, "direct call", key.prefix)

    @pytest.mark.parametrize("raise_on_error", [True, False], ids=["raise", "no-raise"])
    @pytest.mark.parametrize(("setup", "fail", "error", "rule"), _ERROR_CASES)
    def test_plain_pipeline(
        self,
        backend: StorageBackend,
        raw: RawAccess,
        key: KeyMaker,
        setup: Any,
        fail: Any,
        error: type[Exception],
        rule: str,
        raise_on_error: bool,
    ) -> None:
        k, other = key("k"), key("other")
        setup(backend, k)
        before = _snapshot(raw, k)
        pipe = backend.pipeline(transaction=False)
        pipe.set(other, b"1")
        fail(pipe, k)
        how = f"pipeline(transaction=False).execute(raise_on_error={raise_on_error})"
        if raise_on_error:
            with _raises(
                error, f"{how} raises the failed command's error: {rule}", prefix=key.prefix
            ):
                pipe.execute()
        else:
            try:
                results = pipe.execute(raise_on_error=False)
            except error:
                pass  # a backend whose batches are all-or-nothing may raise anyway
            else:
                expect(
                    len(results) == 2 and isinstance(results[1], error),
                    f"{how} returns the failed command's error object in its slot: {rule}",
                    prefix=key.prefix,
                    details=[("got", results)],
                )
        self._check_unchanged(raw, k, before, rule, how, key.prefix)

    @pytest.mark.parametrize(("setup", "fail", "error", "rule"), _ERROR_CASES)
    def test_transactional_batch(
        self,
        backend: StorageBackend,
        raw: RawAccess,
        key: KeyMaker,
        setup: Any,
        fail: Any,
        error: type[Exception],
        rule: str,
    ) -> None:
        k, other = key("k"), key("other")
        setup(backend, k)
        before = _snapshot(raw, k)
        pipe = backend.pipeline()
        pipe.watch(other)
        pipe.multi()
        pipe.set(other, b"1")
        fail(pipe, k)
        with _raises(
            error,
            f"a transactional execute() raises the failed command's error: {rule}",
            prefix=key.prefix,
        ):
            pipe.execute()
        self._check_unchanged(raw, k, before, rule, "transactional batch", key.prefix)

    @pytest.mark.etcher_requires("locking_units")
    @pytest.mark.parametrize(("setup", "fail", "error", "rule"), _ERROR_CASES)
    def test_inside_a_unit_scope(
        self,
        backend: StorageBackend,
        raw: RawAccess,
        key: KeyMaker,
        setup: Any,
        fail: Any,
        error: type[Exception],
        rule: str,
    ) -> None:
        k, other = key("k"), key("other")
        setup(backend, k)
        before = _snapshot(raw, k)
        with backend.unit_scope(True) as held:  # type: ignore[attr-defined]
            expect(held, "unit_scope(True) is held when no other scope is open on the thread")
            backend.set(other, b"1")
            with _raises(
                error, f"inside a unit scope, a direct call still raises: {rule}", prefix=key.prefix
            ):
                fail(backend, k)
        self._check_unchanged(raw, k, before, rule, "inside a unit scope", key.prefix)
        expect_equal(
            raw.get(other),
            b"1",
            "a command that failed inside a unit scope does not undo the scope's other writes "
            "(the scope still commits when it is left without an exception)",
            key=other,
            prefix=key.prefix,
        )
