"""Tells etcher about the dbmstore backend (the module the ``etcher`` entry point names).

It registers a ``"module:Class"`` string only, so listing etcher's backends
never imports :mod:`dbm` or the backend module.
"""

from __future__ import annotations

import etcher
from etcher.hookspecs import BackendRegistrar


@etcher.hookimpl
def etcher_register_backends(register: BackendRegistrar) -> None:
    """Register ``dbmstore`` for ``dbmstore://`` URLs and ``DB(path, backend="dbmstore")``."""
    register(
        "dbmstore",
        schemes=["dbmstore"],
        target="etcher_dbmstore.backend:DbmStoreBackend",
        description="dbm.dumb files with a lock file (example third-party backend)",
    )
