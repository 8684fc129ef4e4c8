"""etcher: Python dicts and lists that persist.

>>> from etcher import DB
>>> db = DB("state.db")                                  # doctest: +SKIP
>>> db["person"] = {"name": "Alice", "tags": ["a"]}      # doctest: +SKIP
>>> db["person"]["tags"][0]                              # doctest: +SKIP
'a'

Public names are imported lazily so that ``import etcher`` stays cheap and a
backend plugin can import :mod:`etcher.hookspecs` without pulling in the rest.
"""

from __future__ import annotations

import typing as _typing

from etcher.errors import (
    BackendConflict,
    BackendNotFound,
    BackendUnavailable,
    ClosedError,
    ConflictTimeout,
    EtcherError,
    EtcherIndexError,
    EtcherKeyError,
    EtcherTypeError,
    EtcherValueError,
    ForeignNodeError,
    JSONFormatError,
    StaleHandleError,
    StoreCorrupt,
    StoreLocked,
    TransactionError,
    WatchError,
    WrongTypeError,
)

__version__ = "0.3.0"

_LAZY = {
    "DB": "etcher._db",
    "RD": "etcher._containers",
    "RL": "etcher._containers",
    "hookimpl": "etcher.hookspecs",
    "available_backends": "etcher.registry",
    "open_backend": "etcher.registry",
    "Capabilities": "etcher.spec",
    "RetryPolicy": "etcher._unit",
    "StorageBackend": "etcher.spec",
    "Store": "etcher._store",
}

if _typing.TYPE_CHECKING:
    from etcher._containers import RD, RL
    from etcher._db import DB
    from etcher._store import Store
    from etcher._unit import RetryPolicy
    from etcher.hookspecs import hookimpl
    from etcher.registry import available_backends, open_backend
    from etcher.spec import Capabilities, StorageBackend


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'etcher' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    # Exactly the public names: importing a submodule makes it an attribute of this package
    # (``etcher._db``), and helpers imported here are not API either, so neither is listed.
    return sorted({*__all__, *(n for n in globals() if n.startswith("__") and n.endswith("__"))})


__all__ = [
    "DB",
    "RD",
    "RL",
    "BackendConflict",
    "BackendNotFound",
    "BackendUnavailable",
    "Capabilities",
    "ClosedError",
    "ConflictTimeout",
    "EtcherError",
    "EtcherIndexError",
    "EtcherKeyError",
    "EtcherTypeError",
    "EtcherValueError",
    "ForeignNodeError",
    "JSONFormatError",
    "RetryPolicy",
    "StaleHandleError",
    "StorageBackend",
    "Store",
    "StoreCorrupt",
    "StoreLocked",
    "TransactionError",
    "WatchError",
    "WrongTypeError",
    "available_backends",
    "hookimpl",
    "open_backend",
]

# Not API: what this module needed while it was being built.
del annotations, _typing
