"""``etcher tree URL [PATH] --depth N``: the nested structure, drawn as a tree.

A node that appears more than once (shared, or part of a cycle) is expanded
at its first appearance only; later ones point back to that path, so cycles
print finitely.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from etcher_contrib.cli import paths
from etcher_contrib.cli.commands._common import add_namespace, add_path, add_url, clip
from etcher_contrib.cli.store import open_db

NAME = "tree"
HELP = "draw the structure below a path as a tree"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``tree``."""
    add_url(parser)
    add_path(parser)
    add_namespace(parser)
    parser.add_argument(
        "-d", "--depth", type=int, default=None, metavar="N", help="show N levels (default: all)"
    )


def _children(node: Any) -> list[tuple[str, Any]]:
    if paths.type_name(node) == "dict":
        entries = list(node.items())
        siblings = {k for k, _v in entries}
        return [(paths.format_key(k, siblings), v) for k, v in entries]
    return [(str(i), v) for i, v in enumerate(node)]


def _glyphs() -> tuple[str, str, str, str]:
    """Branch drawing: box characters, or ASCII when stdout cannot encode them."""
    if "utf" in (sys.stdout.encoding or "").lower():
        return "├── ", "└── ", "│   ", " …"
    return "|-- ", "`-- ", "|   ", " ..."


def _shape(node: Any) -> str:
    return ("{%d}" if paths.type_name(node) == "dict" else "[%d]") % len(node)


def run(args: argparse.Namespace) -> int:
    """Print the tree below PATH."""
    if args.depth is not None and args.depth < 0:
        from etcher_contrib.cli.errors import CLIError

        raise CLIError("--depth must be 0 or more")
    with open_db(args.url, args.namespace) as db:
        node, keys = paths.resolve(db, paths.parse(args.path))
        top = paths.format_path(keys)
        if paths.type_name(node) not in ("dict", "list"):
            print(f"{top}: {clip(repr(node))}")
            return 0
        tee, elbow, pipe, cut = _glyphs()
        print(f"{top} {_shape(node)}")
        seen: dict[str, str] = {getattr(node, "uid", ""): top}
        # Each frame: the remaining children (reversed, so pop() is the next one),
        # the line prefix, the depth of those children and the path text of the parent.
        stack: list[tuple[list[tuple[str, Any]], str, int, str]] = []
        if args.depth is None or args.depth > 0:
            stack.append((_children(node)[::-1], "", 1, "" if not keys else top))
        while stack:
            pending, prefix, depth, base = stack[-1]
            if not pending:
                stack.pop()
                continue
            label, child = pending.pop()
            last = not pending
            branch = elbow if last else tee
            here = f"{base}/{label}" if base else label
            if paths.type_name(child) not in ("dict", "list"):
                print(f"{prefix}{branch}{label}: {clip(repr(child))}")
                continue
            first = seen.get(child.uid)
            if first is not None:
                print(f"{prefix}{branch}{label} {_shape(child)} -> {first} (shared)")
                continue
            seen[child.uid] = here
            more = len(child) and args.depth is not None and depth >= args.depth
            print(f"{prefix}{branch}{label} {_shape(child)}" + (cut if more else ""))
            if not more and len(child):
                stack.append(
                    (_children(child)[::-1], prefix + ("    " if last else pipe), depth + 1, here)
                )
    return 0
