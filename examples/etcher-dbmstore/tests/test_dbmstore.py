"""What the conformance kit does not cover: URLs, files, read-only opening, registration."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import etcher
from etcher.errors import BackendUnavailable, ReadOnlyStore
from etcher_dbmstore import DbmStoreBackend


def test_url_path_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    relative = DbmStoreBackend.from_url("dbmstore:///sub/store")
    absolute = DbmStoreBackend.from_url(f"dbmstore:///{tmp_path}/sub/store")
    assert relative.path == Path("sub/store")
    assert absolute.path == tmp_path / "sub" / "store"
    relative.set("k", b"1")
    assert absolute.get("k") == b"1"  # the same files
    relative.close()
    absolute.close()


@pytest.mark.parametrize(
    "url", ["redis://x", "dbmstore://host/store", "dbmstore:///", "dbmstore:///s?x=1"]
)
def test_bad_urls(url: str) -> None:
    with pytest.raises(ValueError, match="dbmstore"):
        DbmStoreBackend.from_url(url)


def test_unknown_option_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="readonly"):
        DbmStoreBackend.from_path(tmp_path / "s", timeout=1)


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailable, match="does not exist"):
        DbmStoreBackend.from_path(tmp_path / "nowhere" / "store")
    assert not (tmp_path / "nowhere").exists()


def test_readonly_reads_and_refuses_writes(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailable, match="no store there"):
        DbmStoreBackend.from_path(tmp_path / "s", readonly=True)
    writer = DbmStoreBackend.from_path(tmp_path / "s")
    writer.rpush("l", b"a")
    reader = DbmStoreBackend.from_url(f"dbmstore:///{tmp_path}/s", readonly=True)
    assert reader.lrange("l", 0, -1) == [b"a"]
    with pytest.raises(ReadOnlyStore):
        reader.rpush("l", b"b")
    pipe = reader.pipeline()
    pipe.set("x", b"1")
    with pytest.raises(ReadOnlyStore):
        pipe.execute()
    assert writer.lrange("l", 0, -1) == [b"a"] and writer.exists("x") == 0
    writer.close()
    reader.close()


def test_closed_backend_refuses_work(tmp_path: Path) -> None:
    backend = DbmStoreBackend.from_path(tmp_path / "s")
    backend.close()
    with pytest.raises(BackendUnavailable, match="closed"):
        backend.get("k")


def test_registered_through_the_entry_point(tmp_path: Path) -> None:
    assert "dbmstore" in etcher.available_backends()
    backend = etcher.open_backend(tmp_path / "s", backend="dbmstore")
    assert type(backend) is DbmStoreBackend
    backend.close()


def test_plugin_module_imports_no_backend() -> None:
    code = "import sys, etcher_dbmstore._plugin; print('etcher_dbmstore.backend' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_db_on_top(tmp_path: Path) -> None:
    with etcher.DB(f"dbmstore:///{tmp_path}/s") as db:
        db["doc"] = {"a": [1, 2, {"b": None}], "c": "text"}
        assert db["doc"]() == {"a": [1, 2, {"b": None}], "c": "text"}
