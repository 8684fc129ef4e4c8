"""What the conformance kit does not cover: URLs, stores, registration."""

from __future__ import annotations

import pytest

import etcher
from etcher.errors import BackendUnavailable
from etcher_dictstore import DictStoreBackend


def test_private_and_named_stores() -> None:
    a, b = DictStoreBackend.from_url("dictstore://"), DictStoreBackend.from_url("dictstore://")
    a.set("k", "1")
    assert b.get("k") is None
    n1, n2 = (
        DictStoreBackend.from_url("dictstore://t1"),
        DictStoreBackend.from_url("dictstore://t1"),
    )
    n1.set("k", "1")
    assert n2.get("k") == b"1"


@pytest.mark.parametrize("url", ["redis://x", "dictstore:///p", "dictstore://n?x=1"])
def test_bad_urls(url: str) -> None:
    with pytest.raises(ValueError, match="dictstore"):
        DictStoreBackend.from_url(url)


def test_options_are_refused() -> None:
    with pytest.raises(TypeError):
        DictStoreBackend.from_url("dictstore://", timeout=1)


def test_closed_backend_refuses_work() -> None:
    backend = DictStoreBackend.from_url("dictstore://")
    backend.close()
    with pytest.raises(BackendUnavailable):
        backend.get("k")


def test_registered_through_the_entry_point() -> None:
    assert "dictstore" in etcher.available_backends()
    assert type(etcher.open_backend("dictstore://")) is DictStoreBackend


def test_plugin_module_imports_no_backend() -> None:
    # What docs/writing-a-backend.md's checklist asks: listing backends stays cheap.
    import subprocess
    import sys

    code = "import sys, etcher_dictstore._plugin; print('etcher_dictstore.backend' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
