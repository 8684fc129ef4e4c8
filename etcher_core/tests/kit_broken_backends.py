"""Deliberately broken variants of the reference backend, one plausible bug each.

The meta-test runs the conformance kit against each and checks that the kit
notices: every class here names the kit tests that must fail (``MUST_FAIL``).
Each bug is one a real backend author could make.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from typing import Any, ClassVar

from kit_reference_backend import (
    ReferenceBackend,
    ReferencePipeline,
    encode_key,
)

from etcher.spec import Capabilities


class ExclusiveLrangeBackend(ReferenceBackend):
    """Treats ``lrange``'s end as exclusive, the way a Python slice would."""

    MUST_FAIL: ClassVar[set[str]] = {
        "test_lrange_is_inclusive_and_clipped",
        "test_long_list_pushed_at_both_ends_keeps_order",
    }

    def lrange(self, name: Any, start: int, end: int) -> Any:
        with self._store.lock:
            items = list(self._list(name) or ())
        return items[start:end] if end != -1 else items[start:]


class WatchlessPipeline(ReferencePipeline):
    def _conflict(self) -> bool:
        return False


class WatchlessBackend(ReferenceBackend):
    """Accepts ``watch()`` but never detects a conflict."""

    MUST_FAIL: ClassVar[set[str]] = {
        "test_watch_conflict_from_another_connection",
        "test_watch_conflict_from_another_transaction",
        "test_deleting_a_watched_key_is_a_conflict",
        "test_every_kind_of_write_is_a_conflict",
        "test_empty_execute_with_watch_validates",
    }
    pipeline_class: ClassVar[type[ReferencePipeline]] = WatchlessPipeline


class GlobScanBackend(ReferenceBackend):
    """Drops the pattern's backslashes and globs, so ``*`` and ``[`` in keys act as wildcards."""

    MUST_FAIL: ClassVar[set[str]] = {"test_literal_prefix_finds_exactly_its_keys"}

    def scan_iter(self, match: str | None = None, count: int | None = None) -> Iterator[bytes]:
        pattern = (match or "*").replace("\\", "")
        with self._store.lock:
            keys = list(self._store.data)
        for key in keys:
            if fnmatch.fnmatchcase(key.decode(), pattern):
                yield key


class CaseInsensitiveScanBackend(ReferenceBackend):
    """Matches prefixes case-insensitively (SQL ``LIKE`` without care)."""

    MUST_FAIL: ClassVar[set[str]] = {"test_prefix_is_case_sensitive"}

    def scan_iter(self, match: str | None = None, count: int | None = None) -> Iterator[bytes]:
        prefix = (match or "*")[:-1].replace("\\", "").lower().encode()
        with self._store.lock:
            keys = list(self._store.data)
        for key in keys:
            if key.lower().startswith(prefix):
                yield key


class StrValuesBackend(ReferenceBackend):
    """Decodes string values before returning them (``decode_responses=True`` by mistake)."""

    MUST_FAIL: ClassVar[set[str]] = {
        "test_set_returns_true_and_reaches_the_medium",
        "test_strings_come_back_as_bytes",
        "test_every_return_is_exactly_bytes",
    }

    def get(self, name: Any) -> Any:
        value = super().get(name)
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


class KeepsEmptyContainersBackend(ReferenceBackend):
    """Leaves an empty hash or list behind instead of deleting the key."""

    MUST_FAIL: ClassVar[set[str]] = {
        "test_hdel_last_field_deletes_the_key",
        "test_popping_the_last_item_deletes_the_key",
        "test_ltrim_to_empty_deletes_the_key",
    }

    def _write(self, key: bytes, entry: Any) -> None:
        if entry is None:
            super()._write(key, None)
            return
        self._store.data[key] = entry
        self._store.touch(key)


class NonAtomicPipeline(ReferencePipeline):
    def _rollback(self, undo: Any) -> None:
        return None


class NonAtomicBackend(ReferenceBackend):
    """Claims ``atomic_batches`` but keeps the commands that ran before a failing one."""

    MUST_FAIL: ClassVar[set[str]] = {"test_failing_command_applies_nothing"}
    pipeline_class: ClassVar[type[ReferencePipeline]] = NonAtomicPipeline


class PlainIntIncrBackend(ReferenceBackend):
    """Parses counters with Python's ``int()`` (accepts spaces, ``_``, other scripts' digits)."""

    MUST_FAIL: ClassVar[set[str]] = {"test_incr_on_non_integer_raises_and_changes_nothing"}

    def incr(self, name: Any, amount: int = 1) -> Any:
        with self._store.lock:
            current = self._entry(name, bytes)
            try:
                result = (0 if current is None else int(current)) + amount
            except ValueError:
                return super().incr(name, amount)
            self._write(encode_key(name), str(result).encode())
            return result


class VolatileBackend(ReferenceBackend):
    """Correct, but declares it is neither persistent nor atomic (capability skips)."""

    capabilities: ClassVar[Capabilities] = Capabilities(
        persistent=False, multiprocess=False, atomic_batches=False
    )


BROKEN = [
    ExclusiveLrangeBackend,
    WatchlessBackend,
    GlobScanBackend,
    CaseInsensitiveScanBackend,
    StrValuesBackend,
    KeepsEmptyContainersBackend,
    NonAtomicBackend,
    PlainIntIncrBackend,
]
