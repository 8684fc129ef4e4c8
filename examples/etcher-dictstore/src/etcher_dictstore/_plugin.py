"""Tells etcher about the dictstore backend (the module the entry point names).

It only registers a ``"module:Class"`` string, so listing etcher's backends
never imports the backend itself.
"""

from __future__ import annotations

import etcher
from etcher.hookspecs import BackendRegistrar


@etcher.hookimpl
def etcher_register_backends(register: BackendRegistrar) -> None:
    """Register ``dictstore`` for ``dictstore://`` URLs."""
    register(
        "dictstore",
        schemes=["dictstore"],
        target="etcher_dictstore.backend:DictStoreBackend",
        description="plain Python dicts in this process (example third-party backend)",
    )
