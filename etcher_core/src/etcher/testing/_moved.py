"""Old kit names whose code moved to a backend's distribution (etcher-redis).

etcher-core cannot import a backend at import time (it is tested and installed
alone), so the old names resolve lazily and fail with an install hint when
the distribution that now holds them is missing.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import Any

REDIS_TESTING = "etcher_redis.testing"

MOVED_NAMES: dict[str, str] = dict.fromkeys(
    (
        "LocalRedisCluster",
        "RedisServer",
        "RedisServerError",
        "make_redis_cluster",
        "make_redis_server",
        "redis_cluster",
        "redis_server_executable",
        "redis_url",
    ),
    REDIS_TESTING,
)
"""``etcher.testing`` attribute -> the module that holds it now."""


def _import(target: str, wanted: str) -> ModuleType:
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        if exc.name is None or not target.startswith(exc.name):
            raise
        distribution = target.split(".", 1)[0].replace("_", "-")
        raise ImportError(
            f"{wanted} moved to {target}, shipped by {distribution}: pip install {distribution}"
        ) from exc


def moved_attribute(module: str, name: str) -> Any:
    """Resolve ``module.name`` for a name in :data:`MOVED_NAMES` (``AttributeError`` otherwise)."""
    target = MOVED_NAMES.get(name)
    if target is None:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    return getattr(_import(target, f"{module}.{name}"), name)


def alias_module(old: str, new: str) -> None:
    """Make the module being imported as ``old`` be module ``new`` (same object)."""
    sys.modules[old] = _import(new, old)
