"""Moved to :mod:`etcher_redis.testing.server` (shipped by etcher-redis); this name stays.

Importing it needs etcher-redis installed; the module object *is*
``etcher_redis.testing.server``, so patching an attribute here patches it there.
"""

from __future__ import annotations

from etcher.testing._moved import alias_module

alias_module(__name__, "etcher_redis.testing.server")
