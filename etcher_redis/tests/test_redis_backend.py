"""RedisBackend against a real redis-server: construction, error translation, WatchError."""

from __future__ import annotations

import subprocess
import sys

import pytest
import redis

from etcher import errors
from etcher.registry import Registry
from etcher.spec import Capabilities, Pipeline, StorageBackend
from etcher_redis import _plugin
from etcher_redis.backend import RedisBackend
from etcher_redis.client import EtcherPipeline, EtcherRedis
from etcher_redis.cluster import RedisClusterBackend

pytestmark = pytest.mark.redis


# --- construction --------------------------------------------------------------------


def test_satisfies_the_storage_protocol(backend: RedisBackend) -> None:
    assert isinstance(backend, StorageBackend)
    assert isinstance(backend.pipeline(), Pipeline)
    assert RedisBackend.capabilities == Capabilities(
        persistent=True,
        multiprocess=True,
        atomic_batches=False,
        maintenance=False,
        subtree_reads=True,
        checked_commits=True,
        item_writes=True,
        unlink_reads=True,
        unlink_commits=True,
    )


def test_round_trips_bytes(backend: RedisBackend) -> None:
    backend.set("k", "välue")
    backend.hset("h", mapping={"f": 1})
    backend.rpush("l", b"a", "b", 3)
    assert backend.get("k") == "välue".encode()
    assert backend.hgetall("h") == {b"f": b"1"}
    assert backend.lrange("l", 0, -1) == [b"a", b"b", b"3"]
    assert backend.type("l") == b"list"
    assert backend.maintenance() is None


def test_scan_treats_escaped_glob_characters_literally(backend: RedisBackend) -> None:
    for key in ("a*b:1", "a*b:2", "axb:3", "a*c"):
        backend.set(key, 1)
    assert sorted(backend.scan_iter(match=r"a\*b*")) == [b"a*b:1", b"a*b:2"]


def test_from_url_rejects_other_schemes() -> None:
    with pytest.raises(ValueError, match="not a Redis URL"):
        RedisBackend.from_url("sqlite:///x.db")


def test_from_url_refuses_decoded_responses(redis_server_url: str) -> None:
    with pytest.raises(ValueError, match="decode_responses"):
        RedisBackend.from_url(redis_server_url, decode_responses=True)
    with pytest.raises(ValueError, match="decode_responses"):
        RedisBackend.from_url(redis_server_url + "?decode_responses=True")


def test_from_url_passes_options_to_the_pool(redis_server_url: str) -> None:
    opened = RedisBackend.from_url(redis_server_url + "?db=3", socket_timeout=7)
    try:
        assert opened.connection_pool.connection_kwargs["db"] == 3
        assert opened.connection_pool.connection_kwargs["socket_timeout"] == 7
        opened.set("only-in-3", 1)
        assert opened.dbsize() == 1
    finally:
        opened.flushdb()
        opened.close()


def test_from_client_shares_the_clients_pool_and_leaves_it_open(
    redis_server_url: str, backend: RedisBackend
) -> None:
    client = redis.Redis.from_url(redis_server_url, socket_timeout=9, client_name="mine")
    shared = RedisBackend.from_client(client)
    assert shared.connection_pool is client.connection_pool
    shared.set("from-backend", 1)
    assert client.get("from-backend") == b"1"
    assert shared.client_getname() == "mine"  # the client's options hold
    shared.close()
    assert client.get("from-backend") == b"1"  # the user's client still works
    with pytest.raises(errors.BackendUnavailable, match="closed"):
        shared.get("from-backend")
    client.close()


def test_from_client_keeps_the_client_alive(redis_server_url: str) -> None:
    client = redis.Redis.from_url(redis_server_url)
    shared = RedisBackend.from_client(client)
    assert shared._owner is client


def test_from_client_refuses_decoding_clients(redis_server_url: str) -> None:
    client = redis.Redis.from_url(redis_server_url, decode_responses=True)
    with pytest.raises(ValueError, match="decode_responses"):
        RedisBackend.from_client(client)
    client.close()


@pytest.mark.parametrize("thing", [object(), "redis://localhost", None])
def test_from_client_refuses_non_clients(thing: object) -> None:
    with pytest.raises(TypeError, match=r"redis\.Redis"):
        RedisBackend.from_client(thing)  # type: ignore[arg-type]


def test_closed_backend_refuses_commands_and_pipelines(redis_server_url: str) -> None:
    opened = RedisBackend.from_url(redis_server_url)
    opened.close()
    with pytest.raises(errors.BackendUnavailable, match="closed"):
        opened.get("x")
    with pytest.raises(errors.BackendUnavailable, match="closed"):
        opened.pipeline()


# --- error translation ----------------------------------------------------------------


def test_wrong_type(backend: RedisBackend) -> None:
    backend.rpush("l", 1)
    with pytest.raises(errors.WrongTypeError) as excinfo:
        backend.hget("l", "f")
    assert isinstance(excinfo.value, TypeError)
    assert not isinstance(excinfo.value, redis.RedisError)
    assert backend.lrange("l", 0, -1) == [b"1"]


def test_lset_out_of_range_and_missing_key(backend: RedisBackend) -> None:
    backend.rpush("l", 1)
    with pytest.raises(errors.StoreIndexError) as excinfo:
        backend.lset("l", 5, "x")
    assert isinstance(excinfo.value, IndexError)
    with pytest.raises(errors.StoreIndexError):
        backend.lset("missing", 0, "x")
    assert backend.exists("missing") == 0


def test_counter_errors(backend: RedisBackend) -> None:
    backend.set("s", "abc")
    backend.set("max", 2**63 - 1)
    backend.hset("h", "f", "x")
    with pytest.raises(errors.StoreValueError) as excinfo:
        backend.incr("s")
    assert isinstance(excinfo.value, ValueError)
    with pytest.raises(errors.StoreValueError):
        backend.incr("max")
    with pytest.raises(errors.StoreValueError):
        backend.hincrby("h", "f")
    assert backend.get("max") == str(2**63 - 1).encode()


def test_other_server_errors_are_response_errors(backend: RedisBackend) -> None:
    with pytest.raises(errors.ResponseError) as excinfo:
        backend.execute_command("NO-SUCH-COMMAND")
    assert type(excinfo.value) is errors.ResponseError


def test_client_side_argument_errors(backend: RedisBackend) -> None:
    with pytest.raises(ValueError):
        backend.hset("h")
    with pytest.raises(ValueError):
        backend.pipeline().hset("h")
    with pytest.raises(TypeError):
        backend.set("k", None)  # type: ignore[arg-type]
    assert backend.exists("h", "k") == 0


def test_unreachable_server_names_it(tmp_path: object) -> None:
    missing = f"unix://{tmp_path}/no-such.sock"
    opened = RedisBackend.from_url(missing)
    with pytest.raises(errors.BackendUnavailable) as excinfo:
        opened.get("k")
    assert f"{tmp_path}/no-such.sock" in str(excinfo.value)
    assert isinstance(excinfo.value, ConnectionError)
    with pytest.raises(errors.BackendUnavailable, match=r"no-such\.sock"):
        opened.pipeline().get("k").execute()


# --- pipelines and WatchError -----------------------------------------------------------


def test_pipeline_is_an_etcher_pipeline(backend: RedisBackend) -> None:
    with backend.pipeline() as pipe:
        assert isinstance(pipe, EtcherPipeline)
        pipe.set("a", 1).rpush("l", 2)
        assert pipe.execute() == [True, 1]


def test_watch_conflict_raises_etcher_watch_error(
    backend: RedisBackend, other: RedisBackend
) -> None:
    backend.set("n", 1)
    pipe = backend.pipeline()
    pipe.watch("n")
    assert pipe.get("n") == b"1"  # immediate mode
    other.set("n", 2)
    pipe.multi()
    pipe.set("n", 3)
    with pytest.raises(errors.WatchError):
        pipe.execute()
    assert not isinstance(errors.WatchError(), redis.RedisError)
    assert backend.get("n") == b"2"
    # the pipeline is reset and usable again
    assert len(pipe) == 0
    pipe.watch("n")
    pipe.multi()
    pipe.set("n", 4)
    assert pipe.execute() == [True]
    assert backend.get("n") == b"4"


def test_empty_transaction_still_validates_watches(
    backend: RedisBackend, other: RedisBackend
) -> None:
    pipe = backend.pipeline()
    pipe.watch("w")
    other.set("w", 1)
    with pytest.raises(errors.WatchError):
        pipe.execute()


def test_errors_inside_a_transaction_are_translated(backend: RedisBackend) -> None:
    backend.rpush("l", 1)
    pipe = backend.pipeline()
    pipe.set("a", 1).hget("l", "f").lset("l", 9, "x")
    with pytest.raises(errors.WrongTypeError):
        pipe.execute()
    assert backend.get("a") == b"1"  # Redis applies the rest: atomic_batches is False


def test_errors_returned_instead_of_raised_are_translated(backend: RedisBackend) -> None:
    backend.rpush("l", 1)
    pipe = backend.pipeline()
    pipe.hget("l", "f").lset("l", 9, "x").llen("l")
    results = pipe.execute(raise_on_error=False)
    assert [type(r) for r in results] == [errors.WrongTypeError, errors.StoreIndexError, int]


def test_errors_in_immediate_mode_are_translated(backend: RedisBackend) -> None:
    backend.rpush("l", 1)
    pipe = backend.pipeline()
    pipe.watch("l")
    with pytest.raises(errors.WrongTypeError):
        pipe.hget("l", "f")
    pipe.reset()


def test_nested_multi_is_a_transaction_error(backend: RedisBackend) -> None:
    pipe = backend.pipeline()
    pipe.multi()
    with pytest.raises(errors.TransactionError):
        pipe.multi()
    pipe.reset()


def test_non_transactional_pipeline(backend: RedisBackend) -> None:
    pipe = backend.pipeline(transaction=False)
    pipe.rpush("l", 1, 2).lrange("l", 0, -1)
    assert pipe.execute() == [2, [b"1", b"2"]]


# --- plugin ---------------------------------------------------------------------------


def test_plugin_registers_the_backend_lazily(redis_server_url: str) -> None:
    registry = Registry(load_entrypoints=False, environ={})
    registry.add_plugin(_plugin, name="redis", distribution="etcher-redis")
    info = registry.backend_info("redis")
    assert info.schemes == ("redis", "rediss", "unix")
    assert info.target == "etcher_redis.backend:RedisBackend"
    opened = registry.open_backend(redis_server_url)
    assert type(opened) is RedisBackend
    opened.close()


def test_installed_entry_point_resolves_every_scheme() -> None:
    registry = Registry(environ={"ETCHER_LOAD_PLUGINS": "etcher-redis"})
    assert registry.available_backends() == ["redis", "redis-cluster"]
    for scheme in ("redis", "rediss", "unix"):
        assert registry.backend_class(scheme) is RedisBackend
    for scheme in ("redis+cluster", "rediss+cluster"):
        assert registry.backend_class(scheme) is RedisClusterBackend
    assert registry.backend_info("redis").distribution == "etcher-redis"
    assert registry.backend_info("redis-cluster").distribution == "etcher-redis"


def test_plugin_module_imports_nothing_heavy() -> None:
    code = (
        "import sys, etcher_redis._plugin; "
        "print(sorted(m for m in ('redis', 'etcher_redis.backend') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("url", "label"),
    [
        ("redis://user:secret@example.invalid:6380/2", "redis://example.invalid:6380/2"),
        ("rediss://:secret@example.invalid/1", "rediss://example.invalid:6379/1"),
        ("unix://:secret@/run/redis.sock?db=4", "unix:///run/redis.sock?db=4"),
    ],
)
def test_server_label_never_shows_credentials(url: str, label: str) -> None:
    backend = RedisBackend.from_url(url)  # nothing is sent until the first command
    assert backend.server_label() == label
    assert "secret" not in repr(backend)
    assert "secret" not in backend.pipeline().server_label


def test_scan_iter_yields_a_key_scan_repeats_only_once(
    backend: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SCAN returns a key twice when Redis resizes its table mid-scan; make it happen on cue.
    pages = {0: (7, [b"{t}:a", b"{t}:b"]), 7: (9, [b"{t}:b", b"{t}:c"]), 9: (0, [b"{t}:a"])}

    def scan(cursor: int = 0, **kwargs: object) -> tuple[int, list[bytes]]:
        return pages[int(cursor)]

    monkeypatch.setattr(backend, "scan", scan)
    assert list(backend.scan_iter(match="{t}:*")) == [b"{t}:a", b"{t}:b", b"{t}:c"]


def test_every_private_redis_py_hook_the_client_overrides_exists() -> None:
    # etcher_redis._compat names them; a redis-py that renamed one would leave the client
    # silently unsafe (a lost reply re-sent, no WAIT after a commit) instead of failing.
    from etcher_redis import _compat

    assert _compat.missing_hooks() == []
    for name in _compat.PIPELINE_METHODS:
        assert name in vars(EtcherPipeline), name
    for name in _compat.CLIENT_METHODS:
        assert name in vars(EtcherRedis), name
