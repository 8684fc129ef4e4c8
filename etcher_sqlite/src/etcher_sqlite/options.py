"""Options and ``sqlite://`` URLs of the SQLite backend."""

from __future__ import annotations

import math
from collections.abc import Mapping
from urllib.parse import parse_qsl, unquote, urlsplit

OPTIONS = ("timeout", "durability")
"""Every option the backend takes (as keywords or in a URL query string)."""

DEFAULT_TIMEOUT = 30.0
"""Seconds a writer waits for another one to commit before ``StoreLocked``."""

SYNCHRONOUS = {"normal": "NORMAL", "full": "FULL"}
"""``durability=`` → ``PRAGMA synchronous``.

``normal`` (the default) never corrupts the file; in WAL mode it may lose the
last commits on power loss. ``full`` syncs every commit to disk.
"""

MEMORY = ":memory:"


def check_names(options: Mapping[str, object]) -> None:
    """Refuse option names the backend does not know, naming all of them."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise TypeError(
            f"unknown option(s) for the sqlite backend: {', '.join(unknown)} "
            f"(known: {', '.join(OPTIONS)})"
        )


def timeout(value: object) -> float:
    """A lock timeout in seconds: a finite number >= 0 (text from a URL is parsed)."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"timeout must be a number of seconds, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"timeout must be a number of seconds, not {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"timeout must be a finite number of seconds >= 0, got {value!r}")
    return float(value)


def durability(value: object) -> str:
    """The ``PRAGMA synchronous`` level for ``durability=`` ("normal" or "full")."""
    level = SYNCHRONOUS.get(value) if isinstance(value, str) else None
    if level is None:
        raise ValueError(f"durability must be 'normal' or 'full', got {value!r}")
    return level


def parse_url(url: str) -> tuple[str, dict[str, str]]:
    """Split ``sqlite:///relative.db``, ``sqlite:////abs.db`` or ``sqlite:///:memory:``.

    Returns the file path (or ``":memory:"``) and the query-string options.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() != "sqlite":
        raise ValueError(f"not an sqlite:// URL: {url!r}")
    if parts.netloc:
        raise ValueError(
            f"sqlite URLs have no host: use sqlite:///relative.db or sqlite:////abs.db, got {url!r}"
        )
    path = unquote(parts.path)
    if path.startswith("/"):  # the separator after the empty host
        path = path[1:]
    if not path:
        raise ValueError(f"sqlite URL without a file path: {url!r}")
    try:
        query = dict(parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True))
    except ValueError:
        if parts.query:
            raise ValueError(f"malformed query string in {url!r}") from None
        query = {}
    return path, query
