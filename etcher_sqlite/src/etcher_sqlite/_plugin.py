"""Registers the SQLite backend with etcher (entry point group ``etcher``).

Kept tiny on purpose: etcher imports every plugin module when it first looks a
backend up, so this names its backend by ``"module:Class"`` and imports
nothing else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from etcher import hookimpl

if TYPE_CHECKING:
    from etcher.hookspecs import BackendRegistrar


@hookimpl
def etcher_register_backends(register: BackendRegistrar) -> None:
    """Offer ``sqlite`` (scheme ``sqlite://``), the default backend for plain paths."""
    register(
        "sqlite",
        schemes=["sqlite"],
        target="etcher_sqlite.backend:SQLiteBackend",
        description="SQLite file (the default, embedded)",
    )


@hookimpl
def etcher_local_path(url: str) -> str | None:
    """The file a ``sqlite:///rel.db`` / ``sqlite:////abs.db`` URL names (none for ``:memory:``)."""
    from etcher_sqlite.options import parse_url  # stdlib only, and only when asked

    try:
        path, _query = parse_url(url)
    except ValueError:
        return None  # opening the URL explains what is wrong with it
    return None if path == ":memory:" else path
