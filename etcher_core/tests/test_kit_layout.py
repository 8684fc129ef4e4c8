"""The kit's public names after the split into one module per family.

Every 0.2 name keeps working (``from etcher.testing import StringCommands``), every
family is a ``*Conformance`` class in a module of its own, and the Redis helpers that
moved to etcher-redis say where they went when etcher-redis is missing.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path

import pytest

import etcher.testing
import etcher.testing.containers
import etcher.testing.storage

OLD_STORAGE_NAMES = {
    "StringCommands": "StringConformance",
    "HashCommands": "HashConformance",
    "ListCommands": "ListCommandConformance",
    "KeyCommands": "KeyConformance",
    "WrongTypeErrors": "WrongTypeConformance",
    "ValueEncoding": "EncodingConformance",
    "ScanCommands": "ScanConformance",
    "PipelineCommands": "PipelineConformance",
    "Persistence": "PersistenceConformance",
    "ThreadSafety": "ThreadSafetyConformance",
    "UnitScopes": "ScopeConformance",
    "ErrorsChangeNothing": "ErrorIsolationConformance",
    "WatchRules": "WatchConformance",
    "KeyText": "KeyTextConformance",
    "PathOpening": "PathOpeningConformance",
}
CONTAINER_FAMILIES = [
    "CodecConformance",
    "ContainerConformance",
    "DBConformance",
    "DictConformance",
    "EdgeConformance",
    "HandleLifetimeConformance",
    "ListConformance",
    "NamespaceConformance",
    "PrintingConformance",
    "ShapeAndGCConformance",
    "StateMachineConformance",
    "TransactionSafetyConformance",
    "UserCodeConformance",
    "UserGuideConformance",
]
KIT = Path(etcher.testing.__file__).parent


@pytest.mark.parametrize(("old", "new"), sorted(OLD_STORAGE_NAMES.items()))
def test_old_storage_names_are_aliases(old: str, new: str) -> None:
    family = getattr(etcher.testing.storage, new)
    assert getattr(etcher.testing.storage, old) is family
    assert getattr(etcher.testing, old) is family
    assert getattr(etcher.testing, new) is family
    assert issubclass(etcher.testing.storage.StorageConformance, family)


@pytest.mark.parametrize("name", CONTAINER_FAMILIES)
def test_container_families_keep_their_names(name: str) -> None:
    assert getattr(etcher.testing.containers, name) is getattr(etcher.testing, name)


@pytest.mark.parametrize("package", [etcher.testing.storage, etcher.testing.containers])
def test_one_family_module_each_none_too_long(package: object) -> None:
    folder = Path(inspect.getfile(package)).parent  # type: ignore[arg-type]
    for path in folder.glob("*.py"):
        lines = len(path.read_text().splitlines())
        assert lines <= 850, f"{path.name} has {lines} lines"
        module = importlib.import_module(f"{package.__name__}.{path.stem}")  # type: ignore[attr-defined]
        for name, value in vars(module).items():
            if inspect.isclass(value) and value.__module__ == module.__name__:
                if name.startswith("_") or not any(n.startswith("test_") for n in vars(value)):
                    continue
                assert name.endswith("Conformance"), f"{module.__name__}.{name}"


def test_the_harness_is_private_and_says_so() -> None:
    harness = importlib.import_module("etcher.testing._harness")
    assert "no stability promise" in (harness.__doc__ or "")
    for old in ("crash", "faults", "differential", "instrument"):
        assert not (KIT / f"{old}.py").exists()


def test_moved_redis_names_name_the_distribution_when_it_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [n for n in sys.modules if n == "etcher_redis" or n.startswith("etcher_redis.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.delitem(sys.modules, "etcher.testing.redis_server", raising=False)
    monkeypatch.setitem(sys.modules, "etcher_redis", None)  # type: ignore[arg-type]
    with pytest.raises(ImportError, match="pip install etcher-redis"):
        etcher.testing.RedisServer  # noqa: B018
    with pytest.raises(ImportError, match="pip install etcher-redis"):
        importlib.import_module("etcher.testing.redis_server")
    with pytest.raises(AttributeError):
        etcher.testing.NoSuchName  # type: ignore[attr-defined]  # noqa: B018


def test_moved_redis_names_resolve_when_etcher_redis_is_installed() -> None:
    testing = pytest.importorskip("etcher_redis.testing", reason="etcher-redis is not installed")
    assert etcher.testing.RedisServer is testing.RedisServer
    assert importlib.import_module("etcher.testing.redis_cluster") is importlib.import_module(
        "etcher_redis.testing.cluster"
    )
