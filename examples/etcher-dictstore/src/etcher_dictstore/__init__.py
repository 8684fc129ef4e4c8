"""etcher-dictstore: an example third-party etcher backend on plain Python dicts.

>>> from etcher import DB
>>> db = DB("dictstore://")          # doctest: +SKIP

The backend classes are imported on first use (module ``__getattr__``), not
here: etcher imports ``etcher_dictstore._plugin`` whenever it lists backends,
and importing a submodule runs this file first, so anything imported here
would slow down every etcher user's first ``DB()``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from etcher_dictstore.backend import DictStoreBackend, DictStorePipeline

__version__ = "0.1.0"

__all__ = ["DictStoreBackend", "DictStorePipeline", "__version__"]

_LAZY = {"DictStoreBackend", "DictStorePipeline"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module("etcher_dictstore.backend"), name)
    raise AttributeError(f"module 'etcher_dictstore' has no attribute {name!r}")
