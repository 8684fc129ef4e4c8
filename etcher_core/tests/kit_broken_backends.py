"""Deliberately broken variants of the reference backend, one plausible bug each.

The meta-test runs the conformance kit against each and checks that the kit
notices: every class here names the kit tests that must fail (``MUST_FAIL``).
Each bug is one a real backend author could make.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterator
from typing import Any, ClassVar

from etcher.errors import StoreValueError, WatchError
from etcher.spec import Capabilities
from etcher.testing.reference import (
    ReferenceBackend,
    ReferencePipeline,
    checked_add,
    encode_key,
    encode_value,
    parse_int,
)


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


# --------------------------------------------------------------------------- subtle bugs
# Each of these passed the whole kit before it gained ErrorsChangeNothing, WatchRules,
# KeyText and the Redis counter cases (found by running an outside author's backend and
# broken copies of it through the kit).


class RacyCommitPipeline(ReferencePipeline):
    def execute(self, raise_on_error: bool = True) -> list[Any]:
        store = self._backend._store
        queue = list(self._queue)
        try:
            with store.lock:  # the check in one snapshot ...
                if self._conflict():
                    raise WatchError("a watched key changed")
            if self._watched and self.etcher_after_watch_check is not None:
                self.etcher_after_watch_check()
            return self._run(queue, raise_on_error)  # ... the apply in another
        finally:
            self.reset()


class RacyCommitBackend(ReferenceBackend):
    """Checks the watched versions, lets go of the lock, then applies the batch."""

    MUST_FAIL: ClassVar[set[str]] = {
        "test_write_landing_while_a_batch_commits_is_never_lost",
        "test_write_between_watch_check_and_apply_is_never_lost",
    }
    pipeline_class: ClassVar[type[ReferencePipeline]] = RacyCommitPipeline


class VersionRestartBackend(ReferenceBackend):
    """Keeps a key's version in its record, so a deleted and recreated key starts again at 1."""

    MUST_FAIL: ClassVar[set[str]] = {
        "test_key_deleted_and_recreated_is_a_conflict",
        "test_key_recreated_by_another_client_is_a_conflict",
    }

    def _write(self, key: bytes, entry: Any) -> None:
        store = self._store
        if entry is None or (not isinstance(entry, bytes) and len(entry) == 0):
            store.data.pop(key, None)
            store.versions.pop(key, None)
        else:
            store.data[key] = entry
            store.versions[key] = store.versions.get(key, 0) + 1


class WritesBeforeRaisingPipeline(ReferencePipeline):
    def _run(self, queue: Any, raise_on_error: bool) -> list[Any]:
        if self._transaction:
            return super()._run(queue, raise_on_error)
        results: list[Any] = []
        for command, args, kwargs in queue:
            try:
                if command in ("incr", "decr"):
                    results.append(self._incr_writing_first(command, *args, **kwargs))
                else:
                    results.append(getattr(self._backend, command)(*args, **kwargs))
            except Exception as error:
                if raise_on_error:
                    raise
                results.append(error)
        return results

    def _incr_writing_first(self, command: str, name: Any, amount: int = 1) -> int:
        backend = self._backend
        amount = amount if command == "incr" else -amount
        current = backend._entry(name, bytes)
        base = 0 if current is None else parse_int(current)
        wrapped = (base + amount + 2**63) % 2**64 - 2**63  # C-style wrap-around ...
        backend._write(encode_key(name), str(wrapped).encode())
        return checked_add(base, amount)  # ... and the overflow check only afterwards


class WritesBeforeRaisingBackend(ReferenceBackend):
    """In ``pipeline(transaction=False)``, an overflowing ``incr`` writes before it raises."""

    MUST_FAIL: ClassVar[set[str]] = {"test_plain_pipeline"}
    pipeline_class: ClassVar[type[ReferencePipeline]] = WritesBeforeRaisingPipeline


_LENIENT = re.compile(rb"[+-]?[0-9]+")


def _lenient_int(raw: bytes) -> int:
    if not _LENIENT.fullmatch(raw):
        raise StoreValueError("value is not an integer or out of range")
    return parse_int(str(int(raw)).encode())


class LenientCounterBackend(ReferenceBackend):
    """Accepts ``+1``, ``007`` and ``-0`` as counters (a ``[+-]?[0-9]+`` check)."""

    MUST_FAIL: ClassVar[set[str]] = {
        "test_incr_on_non_integer_raises_and_changes_nothing",
        "test_hincrby_on_non_integer_raises_and_changes_nothing",
        "test_direct_call",
    }

    def incr(self, name: Any, amount: int = 1) -> Any:
        with self._store.lock:
            current = self._entry(name, bytes)
            result = checked_add(0 if current is None else _lenient_int(current), amount)
            self._write(encode_key(name), str(result).encode())
            return result

    def hincrby(self, name: Any, key: Any, amount: int = 1) -> Any:
        field = encode_value(key)
        with self._store.lock:
            entry = dict(self._entry(name, dict) or {})
            current = entry.get(field)
            result = checked_add(0 if current is None else _lenient_int(current), amount)
            entry[field] = str(result).encode()
            self._write(encode_key(name), entry)
            return result


class ShortKeysBackend(ReferenceBackend):
    """Refuses keys and hash fields longer than 511 bytes (LMDB's default key limit)."""

    MUST_FAIL: ClassVar[set[str]] = {"test_long_keys_of_every_type", "test_long_fields_and_values"}
    LIMIT = 511

    def _key(self, name: Any) -> bytes:
        key = encode_key(name)
        if len(key) > self.LIMIT:
            raise StoreValueError(f"key longer than {self.LIMIT} bytes")
        return key

    def hset(self, name: Any, key: Any = None, value: Any = None, mapping: Any = None) -> Any:
        fields = [key, *(mapping or {})]
        if any(f is not None and len(str(f).encode()) > self.LIMIT for f in fields):
            raise StoreValueError(f"hash field longer than {self.LIMIT} bytes")
        return super().hset(name, key, value, mapping)


class NulTruncatingBackend(ReferenceBackend):
    """Cuts keys at the first NUL character, as a C-string based store would."""

    MUST_FAIL: ClassVar[set[str]] = {"test_binary_looking_key_text"}

    def _key(self, name: Any) -> bytes:
        return encode_key(name).split(b"\x00", 1)[0]


class ErrorSlotPipeline(ReferencePipeline):
    def execute(self, raise_on_error: bool = True) -> list[Any]:
        results = super().execute(raise_on_error)
        return [None if isinstance(r, Exception) else r for r in results]


class ErrorSlotBackend(ReferenceBackend):
    """``execute(raise_on_error=False)`` puts ``None`` where a failed command's error belongs."""

    MUST_FAIL: ClassVar[set[str]] = {
        "test_raise_on_error_false_returns_the_error_in_its_slot",
        "test_plain_pipeline",
    }
    pipeline_class: ClassVar[type[ReferencePipeline]] = ErrorSlotPipeline


class LaxMultiPipeline(ReferencePipeline):
    def watch(self, *names: Any) -> Any:
        store = self._backend._store
        with store.lock:  # after multi() too, and without leaving buffered mode
            for name in names:
                self._watched.setdefault(encode_key(name), store.versions.get(encode_key(name)))
        return True

    def multi(self) -> None:
        self._immediate = False
        self._explicit = True


class LaxMultiBackend(ReferenceBackend):
    """Accepts ``watch()`` after ``multi()``, nested ``multi()`` and ``multi()`` after queuing."""

    MUST_FAIL: ClassVar[set[str]] = {
        "test_watch_after_multi_is_refused",
        "test_multi_twice_is_refused",
        "test_multi_after_queued_commands_is_refused",
    }
    pipeline_class: ClassVar[type[ReferencePipeline]] = LaxMultiPipeline


class CreatesFoldersBackend(ReferenceBackend):
    """Opens ``str`` paths only, and creates a missing folder instead of refusing."""

    MUST_FAIL: ClassVar[set[str]] = {
        "test_from_path_takes_str_and_path_alike",
        "test_missing_folder_is_a_clear_error",
    }

    @classmethod
    def from_path(cls, path: Any, **options: Any) -> ReferenceBackend:
        if not isinstance(path, str):
            raise TypeError("path must be a str")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return super().from_path(path, **options)


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
    RacyCommitBackend,
    VersionRestartBackend,
    WritesBeforeRaisingBackend,
    LenientCounterBackend,
    ShortKeysBackend,
    NulTruncatingBackend,
    ErrorSlotBackend,
    LaxMultiBackend,
    CreatesFoldersBackend,
]
"""Every broken variant the meta-test runs the kit against."""

BREAKS_BASICS = {
    ExclusiveLrangeBackend: "includes the item at `end`",
    StrValuesBackend: "get() returns exactly the bytes",
    KeepsEmptyContainersBackend: "removing the last field of a hash deletes the key",
}
"""Variants the basics-first stage stops, with a phrase its one message must contain."""
