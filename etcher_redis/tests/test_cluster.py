"""etcher on a real 6-node Redis Cluster (3 masters + 3 replicas, loopback ports).

The conformance kit (storage Protocol, RD/RL/DB semantics, concurrency) runs
once on the session's cluster; the fault tests (a master killed, a slot
migrated, both during writes) each get a private cluster.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest
import redis.cluster
import redis.exceptions

from etcher import DB, available_backends
from etcher.errors import BackendUnavailable, ConflictTimeout
from etcher.testing import HOSTILE_CHARS, BackendFactory, BackendFixtures, StorageConformance
from etcher.testing._harness.instrument import CountingBackend
from etcher.testing.concurrency import ConcurrencyConformance
from etcher.testing.containers import ContainerConformance
from etcher.testing.subtree import SubtreeConformance
from etcher_redis.client import ReplicationNotConfirmed
from etcher_redis.cluster import CrossSlotError, RedisClusterBackend
from etcher_redis.testing.cluster import LocalRedisCluster, migrate_slot

pytestmark = pytest.mark.redis


class ClusterFixtures(BackendFixtures):
    @pytest.fixture
    def make_backend(self, redis_cluster: LocalRedisCluster) -> BackendFactory:
        return functools.partial(RedisClusterBackend.from_url, redis_cluster.url)

    @pytest.fixture
    def prefix(self) -> str:
        # One test's keys under one hash tag, as a namespace's are: a transaction on a
        # cluster stays in one slot. The glob-hostile characters still follow.
        return "{t" + uuid.uuid4().hex + "}" + HOSTILE_CHARS


class TestClusterStorage(StorageConformance, ClusterFixtures):
    pass


class TestClusterContainers(ContainerConformance, ClusterFixtures):
    """RD/RL/DB semantics, each namespace in its own slot of the cluster."""


class TestClusterSubtree(SubtreeConformance, ClusterFixtures):
    """The server-side walk (one script per chunk) on the owner of the namespace's slot."""


class TestClusterConcurrency(ConcurrencyConformance):
    """Threads and spawned processes, each opening the cluster by URL."""

    @pytest.fixture
    def store_url(self, redis_cluster: LocalRedisCluster) -> str:
        return redis_cluster.url


# --------------------------------------------------------------------------- opening


@pytest.fixture
def cluster_db(redis_cluster: LocalRedisCluster) -> Iterator[DB]:
    db = DB(redis_cluster.url, new_prefix=True)
    yield db
    db.delete_prefix_immediately(db.prefix)
    db.close()


def test_scheme_is_listed() -> None:
    assert "redis-cluster" in available_backends()


def test_db_on_a_user_redis_cluster_client(redis_cluster: LocalRedisCluster) -> None:
    client = redis.cluster.RedisCluster(host="127.0.0.1", port=redis_cluster.ports[0])
    try:
        with DB(redis=client, new_prefix=True) as db:
            assert isinstance(db.backend, RedisClusterBackend)
            db["doc"] = {"a": [1, {"b": 2}]}
            assert db["doc"]() == {"a": [1, {"b": 2}]}
            assert db.check().ok
            db.delete_prefix_immediately(db.prefix)
        assert client.ping()  # the user's client stays open
    finally:
        client.close()


def test_url_with_every_node_and_one_node(redis_cluster: LocalRedisCluster) -> None:
    one = f"redis+cluster://127.0.0.1:{redis_cluster.ports[-1]}/"
    with DB(redis_cluster.url, prefix="url-all") as a, DB(one, prefix="url-all") as b:
        a["x"] = 1
        assert b["x"] == 1
        a.delete_prefix_immediately("url-all")


@pytest.mark.parametrize(
    "url",
    [
        "redis+cluster://127.0.0.1:1/3",
        "redis+cluster://127.0.0.1:notaport/",
        "redis+cluster://127.0.0.1:1/?wait_replicas=-1",
        "redis+cluster://127.0.0.1:1/?wait_replicas=many",
    ],
)
def test_bad_urls_are_refused_clearly(url: str) -> None:
    with pytest.raises(ValueError):
        RedisClusterBackend.from_url(url)


def test_unreachable_cluster_is_backend_unavailable() -> None:
    from etcher_redis.testing.cluster import free_ports

    port = free_ports(1)[0]
    with pytest.raises(BackendUnavailable, match="cannot reach the Redis Cluster"):
        RedisClusterBackend.from_url(f"redis+cluster://127.0.0.1:{port}/")


def test_decode_responses_refused(redis_cluster: LocalRedisCluster) -> None:
    client = redis.cluster.RedisCluster(
        host="127.0.0.1", port=redis_cluster.ports[0], decode_responses=True
    )
    try:
        with pytest.raises(ValueError, match="decode_responses"):
            RedisClusterBackend.from_client(client)
    finally:
        client.close()


# --------------------------------------------------------------------------- slots


def test_sixty_namespaces_spread_over_every_master(redis_cluster: LocalRedisCluster) -> None:
    backend = RedisClusterBackend.from_url(redis_cluster.url)
    names = [f"spread-{i}" for i in range(60)]
    try:
        for name in names:
            with DB(backend=backend, prefix=name) as db:
                db["doc"] = {"n": name}
        holders: dict[int, int] = {}
        for port in redis_cluster.master_ports():
            with redis_cluster.client(port) as node:
                # Keys a node really holds (a node answers MOVED for others' keys).
                holders[port] = sum(
                    1
                    for name in names
                    if node.execute_command("CLUSTER", "COUNTKEYSINSLOT", backend.keyslot(name))
                )
        assert sorted(holders) == sorted(redis_cluster.master_ports())
        assert all(count > 0 for count in holders.values()), holders
        assert sum(holders.values()) == 60
        with DB(backend=backend, prefix=names[0]) as db:
            assert set(names) <= set(db.namespaces())
            for name in names:
                db.delete_prefix_immediately(name)
    finally:
        backend.close()


def test_a_transaction_never_leaves_its_slot(redis_cluster: LocalRedisCluster) -> None:
    backend = RedisClusterBackend.from_url(redis_cluster.url)
    try:
        pipe = backend.pipeline()
        pipe.watch("{a}:x")
        pipe.multi()
        with pytest.raises(CrossSlotError, match="one slot"):
            pipe.set("{b}:x", b"1")
        pipe.reset()
        assert backend.get("{b}:x") is None
    finally:
        backend.close()


def _command_calls(cluster: LocalRedisCluster, command: str) -> dict[int, int]:
    calls = {}
    for port in cluster.master_ports():
        with cluster.client(port) as node:
            stats = node.info("commandstats").get(f"cmdstat_{command}", {})
            calls[port] = int(stats.get("calls", 0))
    return calls


@pytest.mark.parametrize("how", ["immediately", "batch"])
def test_delete_prefix_touches_one_master(redis_cluster: LocalRedisCluster, how: str) -> None:
    with DB(redis_cluster.url, new_prefix=True) as db:
        db["doc"] = {"list": list(range(5)), "d": {"x": {}}}
        owner = redis_cluster.slot_owner(db.backend.keyslot("{" + db.prefix + "}:m"))
        before = {c: _command_calls(redis_cluster, c) for c in ("del", "scan")}
        if how == "immediately":
            assert db.delete_prefix_immediately(db.prefix) > 0
        else:
            assert db.delete_prefix_batch(db.prefix, count=2) > 0
        for command, calls in before.items():
            after = _command_calls(redis_cluster, command)
            changed = {port for port in after if after[port] != calls.get(port, 0)}
            assert changed == {owner}, command
        assert db.check().ok
        db.delete_prefix_immediately(db.prefix)


# --------------------------------------------------------------------------- durability


def test_wait_replicas_commits_reach_a_replica(redis_cluster: LocalRedisCluster) -> None:
    with DB(redis_cluster.url + "?wait_replicas=1&wait_timeout=5000", new_prefix=True) as db:
        db["doc"] = {"a": [1, 2]}
        db["doc"]["a"].append(3)
        assert db["doc"]() == {"a": [1, 2, 3]}
        db.delete_prefix_immediately(db.prefix)


def test_wait_for_more_replicas_than_exist_says_what_happened(
    redis_cluster: LocalRedisCluster,
) -> None:
    with DB(redis_cluster.url, new_prefix=True) as plain:
        waiting = DB(redis_cluster.url, prefix=plain.prefix, wait_replicas=2, wait_timeout=50)
        with waiting as db, pytest.raises(ReplicationNotConfirmed, match="applied on the master"):
            db["doc"] = "kept"
        # Applied, not rolled back: WAIT only reports.
        assert plain["doc"] == "kept"
        plain.delete_prefix_immediately(plain.prefix)


# --------------------------------------------------------------------------- faults


def test_a_master_killed_during_writes_loses_no_acknowledged_write(
    make_redis_cluster: Callable[..., LocalRedisCluster],
) -> None:
    cluster = make_redis_cluster()
    prefix = "failover"
    acknowledged: list[int] = []
    unknown: list[int] = []
    with DB(cluster.url, prefix=prefix, wait_replicas=1, wait_timeout=1000) as db:
        db["log"] = {}
        victim = cluster.slot_owner(db.backend.keyslot("{" + prefix + "}:m"))
        for i in range(60):
            if i == 20:
                cluster.kill(victim)  # SIGKILL by pid, mid-stream
            try:
                db["log"][str(i)] = i
            except ReplicationNotConfirmed:
                # Applied by the promoted replica, which has no replica of its own until
                # the killed node comes back (as its replica).
                unknown.append(i)
                cluster.restart(victim)
            except (BackendUnavailable, ConflictTimeout):
                unknown.append(i)  # not acknowledged: may or may not be there
            else:
                acknowledged.append(i)
        assert any(i > 20 for i in acknowledged), "writes never resumed after the failover"
        assert cluster.slot_owner(db.backend.keyslot("{" + prefix + "}:m")) != victim
        stored = db["log"]()
        missing = [i for i in acknowledged if stored.get(str(i)) != i]
        assert missing == []
        assert set(stored.values()) <= set(acknowledged) | set(unknown)
        assert db.check().ok


def test_a_slot_migrated_during_writes(redis_cluster: LocalRedisCluster) -> None:
    prefix = "reshard-" + uuid.uuid4().hex[:8]
    with DB(redis_cluster.url, prefix=prefix) as db:
        db["doc"] = {"items": []}
        slot = db.backend.keyslot("{" + prefix + "}:m")
        source = redis_cluster.slot_owner(slot)
        target = next(p for p in redis_cluster.master_ports() if p != source)
        started, moved = threading.Event(), []
        errors: list[BaseException] = []

        def migrate() -> None:
            try:
                started.wait(timeout=30)
                moved.append(migrate_slot(redis_cluster, slot, target, batch=2))
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        mover = threading.Thread(target=migrate)
        mover.start()
        try:
            for i in range(60):
                db["doc"]["items"].append(i)
                db[f"k{i}"] = {"i": i}
                if i == 5:
                    started.set()
        finally:
            started.set()
            mover.join(timeout=60)
        assert not errors, errors
        assert redis_cluster.slot_owner(slot) == target and moved and moved[0] > 0
        assert db["doc"]["items"]() == list(range(60))
        assert all(db[f"k{i}"]["i"] == i for i in range(60))
        assert db.check().ok
        db.delete_prefix_immediately(prefix)


# --------------------------------------------------------------------------- command line


def test_cli_namespaces_and_stats_see_every_master(
    redis_cluster: LocalRedisCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    etcher_cli = pytest.importorskip("etcher_contrib.cli")
    backend = RedisClusterBackend.from_url(redis_cluster.url)
    names = [f"cli-{i}" for i in range(12)]
    try:
        for name in names:
            with DB(backend=backend, prefix=name) as db:
                db["doc"] = {"items": [1, 2]}
        owners = {redis_cluster.slot_owner(backend.keyslot(n)) for n in names}
        assert len(owners) == 3  # the listing below really spans every master
        assert etcher_cli.main(["namespaces", redis_cluster.url, "--json"]) == 0
        listed = json.loads(capsys.readouterr().out)["namespaces"]
        assert set(names) <= set(listed)
        one_per_master = {redis_cluster.slot_owner(backend.keyslot(n)): n for n in names}
        for name in one_per_master.values():
            assert etcher_cli.main(["stats", redis_cluster.url, "-n", name, "--json"]) == 0
            (stats,) = json.loads(capsys.readouterr().out)
            assert stats["nodes"] == 3 and stats["lists"] == 1, stats
    finally:
        with DB(backend=backend, prefix=names[0]) as db:
            for name in names:
                db.delete_prefix_immediately(name)
        backend.close()


def test_tls_acl_url_reaches_redis_py_as_one_url_and_startup_nodes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, object] = {}

    def fake_from_url(url: str, **kwargs: object) -> None:
        seen["url"], seen["kwargs"] = url, kwargs
        raise redis.exceptions.RedisClusterException("stop here")

    monkeypatch.setattr(redis.cluster.RedisCluster, "from_url", staticmethod(fake_from_url))
    with pytest.raises(BackendUnavailable) as caught:
        RedisClusterBackend.from_url(
            "rediss+cluster://app:s3cret@10.0.0.1:7000,10.0.0.2:7001/"
            "?ssl_cert_reqs=none&wait_replicas=1&wait_timeout=200"
        )
    assert "s3cret" not in str(caught.value)
    assert seen["url"] == "rediss://app:s3cret@10.0.0.1:7000?ssl_cert_reqs=none"
    startup = seen["kwargs"]["startup_nodes"]  # type: ignore[index]
    assert [(n.host, n.port) for n in startup] == [("10.0.0.2", 7001)]


def test_acl_user_and_password(redis_cluster: LocalRedisCluster) -> None:
    for port in redis_cluster.ports:
        with redis_cluster.client(port) as node:
            node.execute_command("ACL", "SETUSER", "etch", "on", ">pw-1", "~*", "+@all")
    first = redis_cluster.ports[0]
    with DB(f"redis+cluster://etch:pw-1@127.0.0.1:{first}/", new_prefix=True) as db:
        db["doc"] = {"a": 1}
        assert db["doc"]["a"] == 1
        db.delete_prefix_immediately(db.prefix)
    with pytest.raises(BackendUnavailable) as caught:
        DB(f"redis+cluster://etch:wrong-pw@127.0.0.1:{first}/", new_prefix=True)
    assert "wrong-pw" not in str(caught.value)


def test_whole_db_api_never_sends_a_cross_slot_command(redis_cluster: LocalRedisCluster) -> None:
    def crossslot_errors() -> int:
        total = 0
        for port in redis_cluster.ports:
            with redis_cluster.client(port) as node:
                stats = node.info("errorstats")
                total += int(stats.get("errorstat_CROSSSLOT", {}).get("count", 0))
        return total

    before = crossslot_errors()
    with DB(redis_cluster.url) as default_db, DB(redis_cluster.url, new_prefix=True) as db:
        assert default_db.prefix == "default"
        db["a"] = {"list": [1, {"x": 2}], "d": {}}
        db["b"] = db["a"]  # shared node
        db["a"]["list"].extend([3, 4])
        del db["a"]
        with db.transaction() as t:
            t["c"] = t["b"]["list"][0] + 1
        db.incr("n")
        assert db.check().ok
        db.gc()
        db.maintenance()
        assert db.prefix in db.namespaces()
        db.delete_prefix_batch(db.prefix, count=1)
        db.delete_prefix_immediately(db.prefix)
    assert crossslot_errors() == before


class DroppingTCPConnection(redis.Connection):
    """Loses the reply of the next write transaction ("after-exec") or single command
    ("after-reply") once: applied on the server, unknown to the client."""

    EXEC = b"*1\r\n$4\r\nEXEC\r\n"
    armed: ClassVar[str | None] = None
    fired: ClassVar[int] = 0
    _drop_on_reply = False
    _want_list = False

    @classmethod
    def arm(cls, mode: str | None) -> None:
        cls.armed, cls.fired = mode, 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        chunks = [command] if isinstance(command, bytes | str) else list(command)
        payload = b"".join(c.encode() if isinstance(c, str) else bytes(c) for c in chunks)
        transaction = payload.endswith(self.EXEC)
        # A checked commit (one EVALSHA of etcher's script) is a transaction too.
        script = b"\r\nEVALSHA\r\n" in payload[:40] or b"\r\nEVAL\r\n" in payload[:40]
        writes = script or (transaction and b"WATCH" not in payload[:20] and len(payload) > 40)
        cls = type(self)
        if (cls.armed == "after-exec" and writes) or (
            cls.armed == "after-reply" and not transaction and b"INCRBY" in payload
        ):
            self._want_list = cls.armed == "after-exec" and not script
            self._drop_on_reply = True
            cls.arm(None)
            cls.fired = 1
        super().send_packed_command(command, check_health)

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        response = super().read_response(*args, **kwargs)
        if self._drop_on_reply and (isinstance(response, list) or not self._want_list):
            self._drop_on_reply = False
            self.disconnect()
            raise redis.ConnectionError("injected: connection dropped before the reply")
        return response


def test_a_lost_reply_on_a_cluster_is_reported_and_applied_once(
    redis_cluster: LocalRedisCluster,
) -> None:
    client = redis.cluster.RedisCluster(
        host="127.0.0.1", port=redis_cluster.ports[0], connection_class=DroppingTCPConnection
    )
    try:
        with DB(redis=client, new_prefix=True) as db:
            db["log"] = [1, 2]
            DroppingTCPConnection.arm("after-exec")
            with pytest.raises(BackendUnavailable, match="applied is unknown"):
                db["log"].append(3)  # a blind retry of the unit would append 3 twice
            assert DroppingTCPConnection.fired == 1
            assert db["log"]() == [1, 2, 3]
            DroppingTCPConnection.arm("after-reply")
            with pytest.raises(BackendUnavailable, match="applied is unknown"):
                db.incr("hits")
            assert DroppingTCPConnection.fired == 1
            assert db.count("hits") == 1
            assert db.check().ok
            db.delete_prefix_immediately(db.prefix)
    finally:
        DroppingTCPConnection.arm(None)
        client.close()


def test_a_document_on_a_cluster_is_read_by_one_walk(cluster_db: DB) -> None:
    """The cluster declares subtree_reads: materializing costs one script, not a level each."""
    assert RedisClusterBackend.capabilities.subtree_reads
    counting = CountingBackend(cluster_db.backend)
    db = DB(backend=counting, prefix=cluster_db.prefix)
    doc = {"a": [1, {"b": [2, {"c": 3}]}], "d": {"e": {"f": [4]}}}
    db["doc"] = doc
    handle = db["doc"]
    counting.reset()
    assert handle() == doc
    assert counting.commands["read_subtree"] == 1
    assert counting.round_trips - counting.commands["unit_scope"] == 1, dict(counting.commands)


def test_an_assignment_on_a_cluster_is_one_checked_commit(cluster_db: DB) -> None:
    """The cluster declares item_writes: the guess's check and write name keys of the
    namespace's one slot (its hash tag), so ``db[k] = v`` is one script call there too.
    """
    assert RedisClusterBackend.capabilities.item_writes
    counting = CountingBackend(cluster_db.backend)
    db = DB(backend=counting, prefix=cluster_db.prefix)
    db["doc"] = 1
    for key, value in [("new", 2), ("new", {"x": [1]}), ("doc", 3)]:
        counting.reset()
        db[key] = value
        assert (counting.round_trips, counting.commits) == (1, 1), dict(counting.commands)
    assert db() == {"doc": 3, "new": {"x": [1]}}
    assert list(db) == ["doc", "new"]
    assert db.check().ok


def test_deleting_a_document_on_a_cluster_is_one_read_and_the_commit(cluster_db: DB) -> None:
    """The cluster declares unlink_reads: the unlinking read names the item's hash and
    walks keys of the same slot (the namespace's hash tag), so ``del db[k]`` of a small
    document is that script and the checked commit; a scalar's is the commit alone.
    """
    assert RedisClusterBackend.capabilities.unlink_reads
    counting = CountingBackend(cluster_db.backend)
    # The read-first path: the commit that collects alone is hidden (tested below).
    counting.capabilities = dataclasses.replace(counting.capabilities, unlink_commits=False)
    db = DB(backend=counting, prefix=cluster_db.prefix, grace=0)
    db["doc"] = {"a": [1, {"b": 2}], "c": {"d": [3]}}
    db["n"] = 1
    counting.reset()
    del db["n"]
    assert (counting.round_trips, counting.commits) == (1, 1), dict(counting.commands)
    counting.reset()
    del db["doc"]
    assert counting.commands["read_unlinked"] == 1, dict(counting.commands)
    # Less a first try that guessed "a scalar", refused by its check.
    trips = counting.round_trips - counting.refused
    assert (trips, counting.commits) == (2, 1), dict(counting.commands)
    assert db() == {}
    assert db.check().ok


@pytest.mark.parametrize("grace", [0, 60])
def test_deleting_a_small_document_on_a_cluster_is_the_commit_alone(
    cluster_db: DB, grace: int
) -> None:
    """The cluster declares unlink_commits: the unlinking commit declares the item's hash
    (which routes it) and collects keys of the same slot, so ``del db[k]`` and
    ``db[k] = other`` over a small unshared document are one round trip, and so (round
    7) are ``db[k] = 0`` over one, a list's ``pop`` and ``del l[i]``, and deleting one
    that shares a node with a live document, and (round 8) popping one, or one the
    root links twice, or one reaching a node by two paths, and (round 9) one holding a
    cycle, a missing key or an empty list's pop; one linking the root is refused and
    collected by the read-first path.
    """
    assert RedisClusterBackend.capabilities.unlink_commits
    counting = CountingBackend(cluster_db.backend)
    db = DB(backend=counting, prefix=cluster_db.prefix, grace=grace)
    db["doc"] = {"a": [1, {"b": 2}], "c": {"d": [3]}}
    counting.reset()
    db["doc"] = {"e": [4]}
    assert (counting.round_trips, counting.commits, counting.refused) == (1, 1, 0)
    counting.reset()
    del db["doc"]
    assert (counting.round_trips, counting.commits, counting.refused) == (1, 1, 0)
    # Round 7: a scalar over a document once links were met, and a list's items.
    db["doc"] = {"x": [1]}
    counting.reset()
    db["doc"] = 0
    assert (counting.round_trips, counting.commits, counting.refused) == (1, 1, 0)
    db["l"] = [{"a": [1]}, 2, {"b": {"c": [3]}}, [4], 5]
    lst = db["l"]
    for op, want in [
        (lambda: lst.pop(), 5),
        (lambda: lst.pop(0), {"a": [1]}),
        (lambda: lst.pop(1), {"b": {"c": [3]}}),
        (lambda: lst.__delitem__(0), None),
    ]:
        counting.reset()
        assert op() == want
        assert (counting.round_trips, counting.commits, counting.refused) == (1, 1, 0), dict(
            counting.commands
        )
    assert db() == {"doc": 0, "l": [[4]]}
    del db["l"]
    db["keep"] = {"s": [1]}
    db["doc"] = {"s": db["keep"]["s"], "t": [2]}
    counting.reset()
    del db["doc"]  # the shared node is kept (round 7): proven alive through "keep"
    assert (counting.round_trips, counting.commits, counting.refused) == (1, 1, 0)
    db["doc"] = {"s": db["keep"]["s"], "t": [2]}
    db["alias"] = db["doc"]
    counting.reset()
    assert db.pop("doc") == {"s": [1], "t": [2]}  # round 8: kept (an alias), its tree read
    assert (counting.round_trips, counting.commits, counting.refused) == (1, 1, 0)
    counting.reset()
    assert db.pop("alias") == {"s": [1], "t": [2]}  # round 8: "s" kept, its tree read
    assert (counting.round_trips, counting.commits, counting.refused) == (1, 1, 0)
    db["doc"] = {"s": db["keep"]["s"], "t": [db["keep"]["s"]]}
    counting.reset()
    del db["doc"]  # reached twice from what dies (round 8): kept all the same
    assert (counting.round_trips, counting.commits, counting.refused) == (1, 1, 0)
    # Round 9: a missing key's delete, an empty list's pop: the commit answers it
    # missing (UnlinkPlan.present), nothing written.
    db["e"] = []
    empty = db["e"]
    for op, error in [(lambda: db.__delitem__("gone"), KeyError), (empty.pop, IndexError)]:
        counting.reset()
        with pytest.raises(error):
            op()
        assert (counting.round_trips, counting.commits, counting.missing) == (1, 0, 1)
    del db["e"]
    db["doc"] = {"s": db["keep"]["s"], "t": [2]}
    cycle = db["doc"]["t"]
    cycle.append(cycle)
    counting.reset()
    del db["doc"]  # a cycle (round 9): collected by the commit's exact search
    assert (counting.round_trips, counting.commits, counting.refused) == (1, 1, 0)
    db["doc"] = {"s": db["keep"]["s"], "t": [2, {"r": db._root}]}
    counting.reset()
    del db["doc"]  # a node linking the root: refused, read first
    assert (counting.refused, counting.commits) == (1, 1), dict(counting.commands)
    assert db() == {"keep": {"s": [1]}}
    assert db.check().ok
    db.maintenance(reclaim_all=True)
    assert db.check().ok
