"""How the command line opens stores: through the registry and :class:`etcher._store.Store`.

Run in-process (``cli.main([...])``) so a backend registered for the test with
``Registry.add_plugin`` is visible, as an installed third-party backend would be.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from etcher import DB, Store, hookimpl
from etcher.registry import get_registry, reset_registry
from etcher_contrib.cli import main

sqlite_backend = pytest.importorskip("etcher_sqlite.backend", reason="uses the SQLite backend")


class FileKV(sqlite_backend.SQLiteBackend):  # type: ignore[misc,name-defined]
    """A third-party file backend: ``filekv:///path`` is a SQLite file under another name."""

    @classmethod
    def from_url(cls, url: str, **options: Any) -> FileKV:
        return cls.from_path(urlsplit(url).path[1:], **options)  # type: ignore[no-any-return]


class FileKVPlugin:
    @hookimpl
    def etcher_register_backends(self, register: Any) -> None:
        register("filekv", ["filekv"], FileKV, "a test file backend")

    @hookimpl
    def etcher_local_path(self, url: str) -> str | None:
        return urlsplit(url).path[1:] or None


@pytest.fixture
def filekv() -> Iterator[None]:
    reset_registry()
    get_registry().add_plugin(FileKVPlugin(), name="etcher-filekv")
    try:
        yield
    finally:
        reset_registry()


def run(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_third_party_file_url_is_a_file_to_the_cli(
    filekv: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.kv"
    url = f"filekv:///{missing}"
    for command in ("ls", "namespaces", "stats"):
        code, _out, err = run(command, url, capsys=capsys)
        assert code == 2 and "no such file" in err
        assert not missing.exists()  # looking at a typo does not create a store
    # A failed import into a store that did not exist leaves no file behind.
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    code, _out, err = run("import", url, "/", str(bad), capsys=capsys)
    assert code == 2 and not missing.exists()
    good = tmp_path / "good.json"
    good.write_text('{"a": [1, 2]}')
    assert run("import", url, "/", str(good), capsys=capsys)[0] == 0
    assert missing.exists()
    assert json.loads(run("export", url, capsys=capsys)[1]) == {"a": [1, 2]}


def test_namespaces_and_delete_work_through_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = str(tmp_path / "ns.db")
    with DB(url, prefix="only") as db:
        db["x"] = {"y": [1]}
    code, out, _err = run("namespaces", url, "--json", capsys=capsys)
    # No default chosen yet: listing must not choose one (a DB would write it).
    assert code == 0 and json.loads(out) == {"default": None, "namespaces": ["only"]}
    with Store(url) as store:
        assert store.default_namespace is None
    code, out, _err = run("namespaces", url, "--delete", "only", "-y", capsys=capsys)
    assert code == 0 and out.startswith("deleted namespace 'only'")
    with Store(url) as store:
        # Deleted at store level: the last namespace is gone, not re-created empty.
        assert store.namespaces() == [] and store.key_count("only") == 0
    code, _out, err = run("namespaces", url, capsys=capsys)
    assert code == 2 and "holds no etcher namespace" in err


def test_stats_reads_through_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = str(tmp_path / "s.db")
    with DB(url) as db:
        db["doc"] = {"tags": ["a"]}
    code, out, _err = run("stats", url, "--json", capsys=capsys)
    (stats,) = json.loads(out)
    with Store(url) as store:
        expected = store.stats("default")
    assert code == 0 and stats["nodes"] == expected.nodes == 3 and stats["keys"] == expected.keys
    code, _out, err = run("stats", url, "-n", "nope", capsys=capsys)
    assert code == 2 and "no namespace 'nope'" in err
    with Store(url) as store:
        assert store.namespaces() == ["default"]  # asking did not create it
