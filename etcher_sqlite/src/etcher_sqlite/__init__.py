"""etcher-sqlite: the default etcher store, one SQLite file.

>>> from etcher_sqlite import SQLiteBackend
>>> store = SQLiteBackend.from_url("sqlite:///:memory:")
>>> store.rpush("{demo}:list", "a", "b")
2
>>> store.lrange("{demo}:list", 0, -1)
[b'a', b'b']
>>> with store.pipeline() as pipe:
...     _ = pipe.hset("{demo}:node", mapping={"x": 1}).hgetall("{demo}:node")
...     pipe.execute()
[1, {b'x': b'1'}]

Files: ``SQLiteBackend("state.db")`` or ``SQLiteBackend.from_url("sqlite:///state.db?timeout=5")``.
``etcher.DB("state.db")`` finds this backend through the ``etcher`` entry point;
nothing here is imported until a store is opened.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.3.0"

_LAZY = {
    "SQLiteBackend": "etcher_sqlite.backend",
    "SQLiteMemoryBackend": "etcher_sqlite.backend",
    "SQLitePipeline": "etcher_sqlite.pipeline",
}

if TYPE_CHECKING:
    from etcher_sqlite.backend import SQLiteBackend, SQLiteMemoryBackend
    from etcher_sqlite.pipeline import SQLitePipeline


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'etcher_sqlite' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["SQLiteBackend", "SQLiteMemoryBackend", "SQLitePipeline", "__version__"]
