"""Security properties stated in SECURITY.md, each with a test.

* No pickle, marshal, eval, exec or other code-running decoder anywhere in the
  shipped sources, and no dynamic import or attribute lookup on the read path
  (checked by scanning the source tree's syntax).
* Stored data is data: a value that holds Python source or a pickle is never
  run, whoever wrote it.
* A malicious writer cannot make a reader leave its namespace or touch
  another one.
* New SQLite files (and their -wal/-shm) are never group- or world-writable,
  even under ``umask 0``.
* Redis: ACL users confined to their namespace's keys work, and are refused
  elsewhere; ``rediss://`` verifies certificates and host names by default;
  credentials never appear in error messages.
"""

from __future__ import annotations

import ast
import contextlib
import os
import pickle
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from etcher import DB
from etcher.errors import BackendUnavailable, ResponseError, StoreCorrupt

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [
    ROOT / "etcher_core" / "src",
    ROOT / "etcher_sqlite" / "src",
    ROOT / "etcher_redis" / "src",
    ROOT / "etcher_redislite" / "src",
    ROOT / "etcher_contrib" / "src",
]

FORBIDDEN_MODULES = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "cloudpickle",
                     "jsonpickle", "yaml", "copyreg"}  # fmt: skip
FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__", "breakpoint", "input"}

# Modules every read goes through: decoding, materializing, walking, checking, printing.
READ_PATH = {"_codec.py", "_containers.py", "_materialize.py", "_graph.py", "_unit.py", "_check.py",
             "_summary.py", "_equality.py", "_layout.py", "_db.py", "_transactions.py",
             "_writer.py", "_session.py", "_namespace.py"}  # fmt: skip
# Dynamic attribute lookups on the read path, each reviewed: the name never comes from stored data.
REVIEWED_GETATTR = {
    # name: a write command the unit built itself (_scope_writes), never from stored data
    ("_unit.py", "getattr(pipe, name)"),
    # command: one of the unit's own read command names (hget, hgetall, lrange ...), recorded
    # by the unit itself to re-read them when it checks its reads; never from stored data.
    ("_unit.py", "getattr(self.backend, command)"),
    ("_unit.py", "getattr(pipe, command)"),
    ("_writer.py", "getattr(cls, '_etcher_uid', None)"),  # a constant name, on the class
    # the same check in the scan of a replacement's value for handles (_containers._set_in)
    ("_containers.py", "getattr(cls, '_etcher_uid', None)"),
    ("_db.py", "getattr(cls, 'from_client', None)"),
    ("_namespace.py", "getattr(session.backend, 'maintenance', None)"),
    # constant names: an optional backend attribute, and the session of RD(db, ...)'s db
    ("_db.py", "getattr(opened, 'store_identity', None)"),
    ("_containers.py", "getattr(db, '_session', None)"),
    # optional backend capabilities, looked up by constant name on the unit/reader
    ("_graph.py", "getattr(self.reader, 'preload_subtree', None)"),
    ("_materialize.py", "getattr(graph.reader, 'read_subtree', None)"),
    # an optional attribute of the held write scope (spec.ScopeCommits.takes_created)
    ("_unit.py", "getattr(held, 'takes_created', False)"),
    # and the same for spec.ScopeCommits.takes_fresh (a fixed name, a bool compared to True)
    ("_unit.py", "getattr(held, 'takes_fresh', False)"),
    ("_writer.py", "getattr(held, 'takes_fresh', False)"),
    # optional methods by constant name: spec.ScopeCommits' read_item()/commit_fresh(),
    # spec.UnitScopes' read_batch()
    ("_writer.py", "getattr(held, 'read_item', None)"),
    ("_writer.py", "getattr(held, 'commit_fresh', None)"),
    ("_unit.py", "getattr(self.backend, 'read_batch', None)"),
}


def _python_files() -> Iterator[Path]:
    for base in SOURCES:
        yield from sorted(base.rglob("*.py"))


def test_the_scan_sees_the_sources() -> None:
    files = list(_python_files())
    names = {p.name for p in files}
    assert len(files) > 30 and READ_PATH <= names, "the source scan lost track of the tree"


@pytest.mark.parametrize("path", list(_python_files()), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_code_running_decoders(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            problems += [a.name for a in node.names if a.name.split(".")[0] in FORBIDDEN_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] in FORBIDDEN_MODULES:
                problems.append(node.module)
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in FORBIDDEN_CALLS:
                problems.append(f"{func.id}() at line {node.lineno}")
            if isinstance(func, ast.Attribute) and func.attr in {"loads", "load"}:
                owner = ast.unparse(func.value)
                if owner.split(".")[0] in FORBIDDEN_MODULES:
                    problems.append(f"{owner}.{func.attr}() at line {node.lineno}")
    assert not problems, f"{path.name}: {problems}"


@pytest.mark.parametrize("name", sorted(READ_PATH))
def test_read_path_has_no_dynamic_lookups(name: str) -> None:
    path = ROOT / "etcher_core" / "src" / "etcher" / name
    tree = ast.parse(path.read_text(), filename=str(path))
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
            )
            problems += [m for m in modules if m.split(".")[0] in {"importlib", "pydoc", "runpy"}]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            call = ast.unparse(node)
            dynamic = node.func.id in {"getattr", "setattr", "delattr"}
            if dynamic and (name, call) not in REVIEWED_GETATTR:
                problems.append(f"{call} at line {node.lineno}")
            if node.func.id in {"globals", "locals", "vars"}:
                problems.append(f"{node.func.id}() at line {node.lineno}")
    assert not problems, f"{name}: review these dynamic lookups: {problems}"


# --------------------------------------------------------------------------- stored data is data


class _Bomb:
    """Unpickling this would create a file: proof that nothing ever unpickles stored bytes."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.marker, "w"))


def test_stored_code_and_pickles_are_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    db = DB(tmp_path / "data.db", prefix="p")
    source = f"__import__('os').system('touch {marker}')"
    db["code"] = {"src": source, "list": [source, "{{7*7}}", "${jndi:x}"]}
    assert db["code"]() == {"src": source, "list": [source, "{{7*7}}", "${jndi:x}"]}
    # A foreign writer plants a pickle where a value belongs, with and without a type tag.
    payload = pickle.dumps(_Bomb(str(marker)))
    content = db._layout.content(db["code"].uid)
    for raw in (b"0|" + payload, b"1|s" + payload, payload):
        db.backend.hset(content, b"sbomb", raw)
        for reader in (db, lambda: db["code"]["bomb"], lambda: repr(db["code"]), db.check):
            # Which error a reader gives is test_faults' business; here only one thing
            # matters: nothing was executed.
            with contextlib.suppress(Exception):
                reader()
    assert not marker.exists(), "stored bytes were executed"


def test_a_malicious_writer_cannot_leave_its_namespace(tmp_path: Path) -> None:
    """Links are uids inside the namespace: a crafted uid cannot name another namespace's key."""
    path = tmp_path / "tenants.db"
    victim = DB(path, prefix="victim")
    victim["secret"] = {"card": "4111"}
    secret_uid = victim["secret"].uid
    attacker = DB(path, prefix="evil")
    attacker["bait"] = {}
    content = attacker._layout.content(attacker["bait"].uid)
    for uid in (secret_uid, f"D}}:c:{secret_uid}", f"D{{victim}}:c:{secret_uid}", "D*", "Droot"):
        attacker.backend.hset(content, b"s" + uid.encode(), b"0|@" + uid.encode())
    seen = []
    for reader in (lambda: attacker["bait"](), attacker, lambda: repr(attacker["bait"])):
        with contextlib.suppress(StoreCorrupt):  # links to nodes it cannot see: corrupt
            seen.append(repr(reader()))
    assert "4111" not in " ".join(seen)
    attacker.gc()  # repairing the attacker's namespace never touches the victim's
    assert victim["secret"]() == {"card": "4111"}
    assert victim.check().ok


# --------------------------------------------------------------------------- file permissions


def test_new_sqlite_files_are_not_writable_by_others(tmp_path: Path) -> None:
    old = os.umask(0)  # the most permissive umask a process can have
    try:
        path = tmp_path / "perm.db"
        db = DB(path, prefix="p")
        db["x"] = {"a": 1}  # WAL mode: the -wal and -shm files exist now
        files = [p for p in tmp_path.iterdir() if p.name.startswith("perm.db")]
        assert {p.name for p in files} >= {"perm.db", "perm.db-wal", "perm.db-shm"}
        for p in files:
            mode = stat.S_IMODE(p.stat().st_mode)
            assert not mode & (stat.S_IWGRP | stat.S_IWOTH), f"{p.name} has mode {mode:o}"
        db.close()
    finally:
        os.umask(old)


def test_existing_file_modes_are_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "private.db"
    DB(path).close()
    path.chmod(0o600)
    with DB(path) as db:
        db["x"] = 1
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# --------------------------------------------------------------------------- Redis


@pytest.mark.redis
def test_redis_acl_confines_a_user_to_its_namespace(make_redis_server: object) -> None:
    import redis

    server = make_redis_server()  # type: ignore[operator]
    path = str(server.socket_path)
    admin = redis.Redis(unix_socket_path=path)
    # alice may touch namespace "app" and the two shared registry keys, nothing else.
    admin.execute_command(
        "ACL", "SETUSER", "alice", "on", ">pw-1", "~{app}:*", "~etcher:*", "+@all"
    )
    admin.execute_command("ACL", "SETUSER", "default", "off")
    admin.close()
    db = DB(f"unix://alice:pw-1@{path}", prefix="app")
    db["x"] = {"a": [1, 2]}
    assert db() == {"x": {"a": [1, 2]}}
    assert db.check().ok
    with pytest.raises(ResponseError, match="permission"):
        DB(f"unix://alice:pw-1@{path}", prefix="elsewhere")
    with pytest.raises(BackendUnavailable, match="credentials") as caught:
        DB(f"unix://alice:wrong-pw@{path}", prefix="app")
    assert "wrong-pw" not in str(caught.value)
    with pytest.raises(BackendUnavailable):
        DB(f"unix://{path}", prefix="app")  # the default user is disabled
    db.close()


def test_rediss_verifies_certificates_by_default() -> None:
    import ssl

    from etcher_redis.backend import RedisBackend

    backend = RedisBackend.from_url("rediss://127.0.0.1:1/0")  # nothing is sent yet
    try:
        connection = backend.connection_pool.make_connection()
        assert type(connection).__name__ == "SSLConnection"
        assert connection.cert_reqs == ssl.CERT_REQUIRED
        assert connection.check_hostname is True
    finally:
        backend.close()
