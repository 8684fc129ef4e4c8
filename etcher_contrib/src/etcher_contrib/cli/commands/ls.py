"""``etcher ls URL [PATH]``: the keys at a path, with type, size and a short value."""

from __future__ import annotations

import argparse
import json
import math

from etcher_contrib.cli import paths
from etcher_contrib.cli.commands._common import add_namespace, add_path, add_url, clip, table
from etcher_contrib.cli.store import open_db

NAME = "ls"
HELP = "list the keys at a path, with type and size"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``ls``."""
    add_url(parser)
    add_path(parser)
    add_namespace(parser)
    parser.add_argument("--json", action="store_true", help="one JSON object per entry")


def _size(value: object) -> int | None:
    if paths.type_name(value) in ("dict", "list", "str"):
        return len(value)  # type: ignore[arg-type]
    return None


def _preview(value: object) -> str:
    if paths.type_name(value) in ("dict", "list"):
        return clip(str(value))
    return clip(repr(value))


def _json_value(value: object) -> object:
    """What the VALUE column shows, as JSON data: a scalar exactly, a node as its summary.

    Scalars use etcher JSON's forms, so ``inf`` and ``nan`` stay valid JSON.
    """
    if paths.type_name(value) in ("dict", "list"):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": repr(value)}
    return value


def run(args: argparse.Namespace) -> int:
    """List the entries at PATH (a scalar at PATH lists as itself)."""
    with open_db(args.url, args.namespace) as db:
        node, keys = paths.resolve(db, paths.parse(args.path))
        kind = paths.type_name(node)
        if kind == "dict":
            entries = list(node.items())
            siblings = {k for k, _v in entries}
            shown = [(paths.format_key(k, siblings), k, v) for k, v in entries]
        elif kind == "list":
            shown = [(str(i), i, v) for i, v in enumerate(node)]
        else:
            last = keys[-1] if keys else "/"
            shown = [(paths.format_key(last), last, node)]
        if args.json:
            for _text, key, value in shown:
                entry = {
                    "key": key,
                    "type": paths.type_name(value),
                    "size": _size(value),
                    "value": _json_value(value),
                }
                print(json.dumps(entry, ensure_ascii=False))
            return 0
        rows = [["KEY", "TYPE", "SIZE", "VALUE"]]
        for text, _key, value in shown:
            size = _size(value)
            rows.append(
                [text, paths.type_name(value), "" if size is None else str(size), _preview(value)]
            )
        print(table(rows, right=(2,)))
    return 0
