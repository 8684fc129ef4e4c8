"""MemoryBackend: fakeredis under etcher's Redis client, private and named stores."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid

import pytest

from etcher import errors
from etcher.registry import Registry
from etcher.spec import Capabilities, Pipeline, StorageBackend
from etcher_contrib import _plugin
from etcher_contrib.memory import MemoryBackend
from etcher_redis.client import EtcherPipeline


def unique_name() -> str:
    return f"test-{uuid.uuid4().hex}"


def test_satisfies_the_protocol_and_declares_capabilities() -> None:
    backend = MemoryBackend.from_url("memory://")
    assert isinstance(backend, StorageBackend)
    assert isinstance(backend.pipeline(), Pipeline)
    assert isinstance(backend.pipeline(), EtcherPipeline)
    assert MemoryBackend.capabilities == Capabilities(
        persistent=False, multiprocess=False, atomic_batches=False, maintenance=False
    )
    assert backend.maintenance() is None


def test_private_stores_are_separate() -> None:
    a = MemoryBackend.from_url("memory://")
    b = MemoryBackend.from_url("memory://")
    a.set("k", "a")
    assert b.get("k") is None
    assert a.get("k") == b"a"
    assert a.store_name is None
    assert repr(a) == "<MemoryBackend memory://>"


def test_named_store_is_shared_within_the_process() -> None:
    name = unique_name()
    a = MemoryBackend.from_url(f"memory://{name}")
    b = MemoryBackend.from_url(f"memory://{name}")
    other = MemoryBackend.from_url(f"memory://{unique_name()}")
    a.rpush("l", 1, 2)
    assert b.lrange("l", 0, -1) == [b"1", b"2"]
    assert other.exists("l") == 0
    assert repr(b) == f"<MemoryBackend memory://{name}>"
    a.close()
    assert b.llen("l") == 2  # closing one handle keeps the store
    assert MemoryBackend.drop_store(name) is True
    assert MemoryBackend.drop_store(name) is False
    assert MemoryBackend.from_url(f"memory://{name}").exists("l") == 0


def test_named_store_is_created_once_under_concurrency() -> None:
    name = unique_name()
    barrier = threading.Barrier(6)
    opened: list[MemoryBackend] = []

    def open_and_write(i: int) -> None:
        barrier.wait()
        backend = MemoryBackend.from_url(f"memory://{name}")
        backend.rpush("l", i)
        opened.append(backend)

    threads = [threading.Thread(target=open_and_write, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert opened[0].llen("l") == 6
    MemoryBackend.drop_store(name)


@pytest.mark.parametrize(
    "url", ["redis://x", "memory:///path", "memory://name/sub", "memory://n?x=1", "memory://#f"]
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="memory://"):
        MemoryBackend.from_url(url)


def test_options_are_refused() -> None:
    with pytest.raises(TypeError, match="no options"):
        MemoryBackend.from_url("memory://", decode_responses=True)


def test_errors_are_etchers() -> None:
    backend = MemoryBackend.from_url("memory://")
    backend.rpush("l", 1)
    backend.set("s", "x")
    with pytest.raises(errors.WrongTypeError):
        backend.hget("l", "f")
    with pytest.raises(errors.StoreIndexError):
        backend.lset("l", 3, "x")
    with pytest.raises(errors.StoreIndexError):
        backend.lset("missing", 0, "x")
    with pytest.raises(errors.StoreValueError):
        backend.incr("s")
    backend.close()
    with pytest.raises(errors.BackendUnavailable, match=r"memory://"):
        backend.get("s")


def test_watch_error_is_translated_on_fakeredis_pipelines() -> None:
    name = unique_name()
    mine = MemoryBackend.from_url(f"memory://{name}")
    theirs = MemoryBackend.from_url(f"memory://{name}")
    mine.set("n", 1)
    pipe = mine.pipeline()
    pipe.watch("n")
    assert pipe.get("n") == b"1"
    theirs.set("n", 2)
    pipe.multi()
    pipe.set("n", 3)
    with pytest.raises(errors.WatchError):
        pipe.execute()
    assert mine.get("n") == b"2"
    pipe.watch("n")
    pipe.multi()
    pipe.incr("n")
    assert pipe.execute() == [3]
    MemoryBackend.drop_store(name)


def test_transaction_errors_are_translated() -> None:
    backend = MemoryBackend.from_url("memory://")
    backend.rpush("l", 1)
    pipe = backend.pipeline()
    pipe.hget("l", "f").llen("l")
    assert [type(r) for r in pipe.execute(raise_on_error=False)] == [errors.WrongTypeError, int]
    pipe.hget("l", "f")
    with pytest.raises(errors.WrongTypeError):
        pipe.execute()


def test_plugin_registers_memory() -> None:
    registry = Registry(load_entrypoints=False, environ={})
    registry.add_plugin(_plugin, name="memory", distribution="etcher-contrib")
    assert registry.backend_info("memory").schemes == ("memory",)
    assert type(registry.open_backend("memory://")) is MemoryBackend


def test_installed_entry_point() -> None:
    registry = Registry(environ={"ETCHER_LOAD_PLUGINS": "etcher-contrib"})
    assert registry.available_backends() == ["memory"]
    assert registry.backend_info("memory").distribution == "etcher-contrib"
    assert registry.backend_class("memory") is MemoryBackend


def test_plugin_module_imports_nothing_heavy() -> None:
    code = (
        "import sys, etcher_contrib._plugin; "
        "print(sorted(m for m in ('fakeredis', 'redis', 'etcher_contrib.memory') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
