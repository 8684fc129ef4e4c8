"""etcher-dbmstore: an example etcher backend on the standard library's ``dbm.dumb``.

The backend is imported on first use, never here: etcher imports
``etcher_dbmstore._plugin`` whenever it lists backends, and that runs this file.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from etcher_dbmstore.backend import DbmStoreBackend, DbmStorePipeline

__version__ = "0.1.0"

__all__ = ["DbmStoreBackend", "DbmStorePipeline", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("DbmStoreBackend", "DbmStorePipeline"):
        return getattr(importlib.import_module("etcher_dbmstore.backend"), name)
    raise AttributeError(f"module 'etcher_dbmstore' has no attribute {name!r}")
