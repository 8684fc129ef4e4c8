"""Registers etcher-contrib's backends with etcher (imports neither fakeredis nor the backend)."""

from __future__ import annotations

import sys

from etcher.hookspecs import BackendRegistrar, hookimpl


@hookimpl
def etcher_register_backends(register: BackendRegistrar) -> None:
    """Announce the in-memory ``memory`` backend for ``memory://`` URLs."""
    register(
        "memory",
        schemes=["memory"],
        target="etcher_contrib.memory:MemoryBackend",
        description="in-process memory (fakeredis); gone when the process exits",
    )


@hookimpl
def etcher_claim_client(client: object) -> str | None:
    """Claim ``fakeredis.FakeRedis`` clients (``DB(redis=fakeredis.FakeRedis())``)."""
    fakeredis = sys.modules.get("fakeredis")
    if fakeredis is not None and isinstance(client, fakeredis.FakeRedis):
        return "memory"
    return None
