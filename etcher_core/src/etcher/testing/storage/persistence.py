"""Storage conformance, persistence and opening by path
(:class:`PersistenceConformance`, :class:`PathOpeningConformance`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from etcher.errors import EtcherError
from etcher.spec import StorageBackend
from etcher.testing.fixtures import BackendFactory, KeyMaker
from etcher.testing.storage._common import (
    ALL_BYTES,
    _raises,
)
from etcher.testing.wording import expect, expect_equal

# --------------------------------------------------------------------------- persistence


class PersistenceConformance:
    """Data outlives the connection that wrote it."""

    @pytest.mark.etcher_requires("persistent")
    def test_data_survives_reopening(
        self, backend: StorageBackend, make_backend: BackendFactory | None, key: KeyMaker
    ) -> None:
        if make_backend is None:
            pytest.skip(
                "reopening needs a `make_backend` factory (override it to test persistence)"
            )
        s, h, lst = key("s"), key("h"), key("l")
        first = make_backend()
        first.set(s, ALL_BYTES)
        first.hset(h, mapping={b"f": b"v", b"": b""})
        first.rpush(lst, b"a", b"b")
        pipe = first.pipeline()
        pipe.incr(key("n"), 3)
        pipe.execute()
        first.close()
        second = make_backend()
        try:
            assert second.get(s) == ALL_BYTES
            assert second.hgetall(h) == {b"f": b"v", b"": b""}
            assert second.lrange(lst, 0, -1) == [b"a", b"b"]
            assert second.get(key("n")) == b"3"
        finally:
            second.close()


# --------------------------------------------------------------------------- opening by path


def _open_file_store(from_path: Callable[..., StorageBackend], path: Path) -> StorageBackend:
    """``from_path(path)``; a ``ValueError`` means the backend opens no files: skip."""
    try:
        return from_path(path)
    except ValueError as exc:
        pytest.skip(f"from_path() refuses a plain file path, so it opens no files: {exc}")


class PathOpeningConformance:
    """``from_path`` of file-based backends: ``str`` and ``pathlib.Path``, and a missing folder.

    Uses the ``from_path`` classmethod of the backend under test's class; backends
    without one (servers, in-memory stores) skip these tests with that reason.
    """

    @pytest.fixture
    def from_path(self, backend: StorageBackend) -> Callable[..., StorageBackend]:
        opener = getattr(type(backend), "from_path", None)
        if not callable(opener):
            pytest.skip(f"{type(backend).__name__} has no from_path (it does not open files)")
        return opener  # type: ignore[no-any-return]

    def test_from_path_takes_str_and_path_alike(
        self, from_path: Callable[..., StorageBackend], tmp_path: Path
    ) -> None:
        target = tmp_path / "kit-store"
        first = _open_file_store(from_path, target)
        try:
            first.set("k", b"v")
            second = from_path(str(target))
            try:
                expect_equal(
                    second.get("k"),
                    b"v",
                    "from_path() accepts a pathlib.Path and a str naming the same file "
                    "(the registry passes str, authors and the kit pass Path)",
                )
            finally:
                second.close()
        finally:
            first.close()

    def test_missing_folder_is_a_clear_error(
        self, from_path: Callable[..., StorageBackend], tmp_path: Path
    ) -> None:
        _open_file_store(from_path, tmp_path / "kit-store").close()
        folder = tmp_path / "no-such-folder"
        with _raises(
            (EtcherError, OSError),
            "from_path() in a folder that does not exist raises an error naming it "
            "(BackendUnavailable in the built-in backends)",
            prefix="",
        ):
            opened = from_path(str(folder / "store"))
            opened.close()
        expect(not folder.exists(), "opening never creates a missing folder behind the user's back")
