"""etcher-core's tests run on the reference backend (:mod:`etcher.testing.reference`).

Core's tox environment installs etcher-core alone, so ``ref://name`` (registered
here, before every test: nested pytester sessions reset the registry) is the store
these tests open by URL. Where etcher-sqlite or etcher-contrib happens to be
installed too, the tests that take ``store_url`` also run on them.
"""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from etcher.testing import reference

STORE_KINDS = ["reference"] + [
    kind
    for kind, package in (("sqlite", "etcher_sqlite"), ("memory", "etcher_contrib"))
    if importlib.util.find_spec(package) is not None
]


@pytest.fixture(autouse=True)
def _reference_registered() -> None:
    reference.register()


@pytest.fixture(params=STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    """The backend a parametrized test runs on (``reference`` always)."""
    return str(request.param)


@pytest.fixture
def store_url(store_kind: str, tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """A factory: ``store_url(tag)`` -> the URL of a fresh store of ``store_kind``."""
    names: list[str] = []

    def make(tag: str) -> str:
        name = f"{tag}-{uuid.uuid4().hex}"
        if store_kind == "sqlite":
            return str(tmp_path / f"{name}.db")
        names.append(name)
        return f"{'ref' if store_kind == 'reference' else 'memory'}://{name}"

    yield make
    for name in names:
        reference.drop_store(name)
