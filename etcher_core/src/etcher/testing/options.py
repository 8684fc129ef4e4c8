"""Command-line options of the conformance kit and how a URL becomes a backend.

Kept apart from the plugin module so fixtures can read the options without
importing the plugin's hooks (and so nothing here imports a backend).
"""

from __future__ import annotations

import ast
import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest

    from etcher.spec import StorageBackend

URL_OPTION = "--etcher-url"
BASICS_STOP_OPTION = "--etcher-no-basics-stop"
OPTION_OPTION = "--etcher-option"


def add_options(parser: pytest.Parser) -> None:
    """Register ``--etcher-url`` and ``--etcher-option`` (put them in ``addopts`` for defaults)."""
    group = parser.getgroup("etcher", "etcher conformance kit")
    group.addoption(
        URL_OPTION,
        dest="etcher_url",
        default=None,
        metavar="URL",
        help="run the kit against this store URL (opened with etcher.registry.open_backend)",
    )
    group.addoption(
        OPTION_OPTION,
        dest="etcher_options",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="keyword option for open_backend (repeatable; VALUE: a Python literal, else text)",
    )
    group.addoption(
        BASICS_STOP_OPTION,
        dest="etcher_no_basics_stop",
        action="store_true",
        default=False,
        help="run every kit test even when the backend breaks a basic rule (bytes out, "
        "inclusive lrange, empty containers deleted); by default the run stops with one message",
    )


def get_url(config: pytest.Config) -> str | None:
    """The store URL given with ``--etcher-url`` (also via ``addopts``), or ``None``."""
    # getoption(..., None) keeps this usable when the plugin itself was not loaded.
    url = config.getoption("etcher_url", None)
    return str(url) if url else None


def parse_option(text: str) -> tuple[str, Any]:
    """Split one ``KEY=VALUE`` option; VALUE becomes a Python literal when it is one.

    ``timeout=5`` gives ``("timeout", 5)``, ``readonly=True`` gives a bool, and
    anything that is not a literal (``mode=wal``) stays text, so users need no quoting.
    """
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier():
        raise ValueError(
            f"{OPTION_OPTION} expects KEY=VALUE with KEY a Python identifier, got {text!r}"
        )
    try:
        value: Any = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return name, value


def get_options(config: pytest.Config) -> dict[str, Any]:
    """Every ``--etcher-option`` as keyword arguments for ``open_backend``."""
    pairs = config.getoption("etcher_options", None) or []
    return dict(parse_option(text) for text in pairs)


def open_url(url: str, options: dict[str, Any]) -> StorageBackend:
    """Open ``url`` through the plugin registry.

    The registry is looked up at call time (not imported at module level) so
    the kit stays importable before any backend exists and so tests can
    substitute the registry's ``open_backend``.
    """
    registry = importlib.import_module("etcher.registry")
    backend: StorageBackend = registry.open_backend(url, **options)
    return backend
