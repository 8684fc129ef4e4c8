"""etcher-dictstore: an example third-party etcher backend on plain Python dicts.

>>> from etcher import DB
>>> db = DB("dictstore://")          # doctest: +SKIP
"""

from __future__ import annotations

from etcher_dictstore.backend import DictStoreBackend, DictStorePipeline

__version__ = "0.1.0"

__all__ = ["DictStoreBackend", "DictStorePipeline", "__version__"]
