"""All six distributions share one version, and every sibling pin names exactly that version.

Drift here is dangerous: a pin like ``etcher-core==0.3.0`` that no longer matches the local
folder makes pip fetch a different release of the sibling from the package index.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DISTS = {
    "etcher": ROOT,
    "etcher-core": ROOT / "etcher_core",
    "etcher-sqlite": ROOT / "etcher_sqlite",
    "etcher-redis": ROOT / "etcher_redis",
    "etcher-redislite": ROOT / "etcher_redislite",
    "etcher-contrib": ROOT / "etcher_contrib",
}
SIBLINGS = set(DISTS)
_REQ = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(.*)$")


def project(dist: str) -> dict[str, Any]:
    with open(DISTS[dist] / "pyproject.toml", "rb") as f:
        data: dict[str, Any] = tomllib.load(f)
    return data


def requirements(dist: str) -> list[str]:
    meta = project(dist)["project"]
    found = list(meta.get("dependencies", []))
    for extra in meta.get("optional-dependencies", {}).values():
        found += extra
    return found


VERSION = project("etcher")["project"]["version"]


@pytest.mark.parametrize("dist", sorted(DISTS))
def test_every_distribution_has_the_shared_version(dist: str) -> None:
    meta = project(dist)["project"]
    assert meta["name"] == dist
    assert meta["version"] == VERSION


@pytest.mark.parametrize("dist", sorted(DISTS))
def test_every_sibling_requirement_pins_the_shared_version(dist: str) -> None:
    for requirement in requirements(dist):
        match = _REQ.match(requirement)
        assert match, requirement
        name, spec = match.group(1).lower().replace("_", "-"), match.group(2).strip()
        if name in SIBLINGS:
            assert spec == f"=={VERSION}", f"{dist}: {requirement!r} must pin =={VERSION}"


def test_umbrella_extras_cover_every_backend() -> None:
    meta = project("etcher")["project"]
    assert meta["dependencies"] == [f"etcher-core=={VERSION}", f"etcher-sqlite=={VERSION}"]
    extras = meta["optional-dependencies"]
    assert extras["sqlite"] == [f"etcher-sqlite=={VERSION}"]
    assert extras["redis"] == [f"etcher-redis=={VERSION}"]
    assert extras["redislite"] == [f"etcher-redislite=={VERSION}"]
    assert extras["contrib"] == [f"etcher-contrib=={VERSION}"]
    assert sorted(extras["all"]) == sorted(
        f"{d}=={VERSION}" for d in SIBLINGS - {"etcher", "etcher-core"}
    )


def test_dependency_groups_never_name_a_sibling() -> None:
    # Siblings come from their folders (tox: `-e {toxinidir}/...`); a bare name would hit the index.
    groups = project("etcher")["dependency-groups"]
    for group, entries in groups.items():
        for entry in entries:
            if isinstance(entry, str):
                match = _REQ.match(entry)
                assert match
                assert not match.group(1).lower().startswith("etcher"), (group, entry)


@pytest.mark.parametrize(
    ("dist", "entry_point", "module"),
    [
        ("etcher-sqlite", "sqlite", "etcher_sqlite._plugin"),
        ("etcher-redis", "redis", "etcher_redis._plugin"),
        ("etcher-redislite", "redislite", "etcher_redislite._plugin"),
        ("etcher-contrib", "memory", "etcher_contrib._plugin"),
    ],
)
def test_backend_entry_points(dist: str, entry_point: str, module: str) -> None:
    assert project(dist)["project"]["entry-points"]["etcher"] == {entry_point: module}


@pytest.mark.parametrize("dist", sorted(SIBLINGS - {"etcher"}))
def test_installed_metadata_matches_the_checkout(dist: str) -> None:
    assert importlib.metadata.version(dist) == VERSION


@pytest.mark.parametrize(
    "package", ["etcher", "etcher_redis", "etcher_redislite", "etcher_contrib"]
)
def test_package_version_attribute(package: str) -> None:
    module = importlib.import_module(package)
    assert module.__version__ == VERSION
