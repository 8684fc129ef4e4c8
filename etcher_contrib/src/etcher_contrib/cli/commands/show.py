"""``etcher show URL [PATH]``: the ``@`` summary of a node, or ``--json`` for all of it."""

from __future__ import annotations

import argparse
import sys

from etcher_contrib.cli import paths
from etcher_contrib.cli.commands._common import add_namespace, add_path, add_url
from etcher_contrib.cli.store import open_db

NAME = "show"
HELP = "print the @ summary of a value (or --json: the whole value)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``show``."""
    add_url(parser)
    add_path(parser)
    add_namespace(parser)
    parser.add_argument("--json", action="store_true", help="the materialized value as JSON")
    parser.add_argument(
        "--indent", type=int, default=2, metavar="N", help="JSON indent (default 2)"
    )


def run(args: argparse.Namespace) -> int:
    """Print the summary (or JSON) of the value at PATH."""
    from etcher._jsonio import export_json

    with open_db(args.url, args.namespace) as db:
        node, keys = paths.resolve(db, paths.parse(args.path))
        if args.json:
            export_json(db, keys, file=sys.stdout, indent=args.indent)
            sys.stdout.write("\n")
        elif paths.type_name(node) in ("dict", "list"):
            print(node)
        else:
            print(repr(node))
    return 0
