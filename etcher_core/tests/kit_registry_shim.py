"""pytest plugin for the kit's meta-tests: registers the reference backend as ``ref://``.

Loaded with ``-p kit_registry_shim``. It adds an in-process etcher plugin to
the default registry (through :meth:`etcher.registry.Registry.add_plugin`, the
public way to register a backend at runtime) so ``--etcher-url ref://name``
reaches :class:`etcher.testing.reference.ReferenceBackend` through exactly the
code path a real URL takes. The registry is reset on the way in and out so no
other test sees the extra backend.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest

from etcher.testing.reference import BACKEND_NAME, ReferencePlugin


def _registry() -> ModuleType:
    # The module the kit itself will use: looked up through sys.modules, never
    # as an attribute of the ``etcher`` package, which can point at a stale
    # copy after pytester restores sys.modules between nested sessions.
    return importlib.import_module("etcher.registry")


def pytest_configure(config: pytest.Config) -> None:
    registry = _registry()
    registry.reset_registry()
    registry.get_registry().add_plugin(ReferencePlugin(), name=BACKEND_NAME)


def pytest_unconfigure(config: pytest.Config) -> None:
    _registry().reset_registry()
