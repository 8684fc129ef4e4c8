"""``etcher import URL PATH [FILE|-]``: store an etcher-JSON document at a path, atomically."""

from __future__ import annotations

import argparse
import os
import sys

from etcher_contrib.cli import paths
from etcher_contrib.cli.commands._common import add_namespace, add_url
from etcher_contrib.cli.errors import CLIError
from etcher_contrib.cli.progress import Progress, wanted
from etcher_contrib.cli.store import local_file, open_db, remove_store_file

NAME = "import"
HELP = "store a JSON document at a path (one atomic write)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``import``."""
    add_url(parser)
    parser.add_argument(
        "path",
        metavar="PATH",
        help="where to store it, e.g. person/tags (its parent must exist); "
        "'/' replaces the whole namespace",
    )
    parser.add_argument(
        "file", metavar="FILE", nargs="?", default="-", help="JSON file (default '-': stdin)"
    )
    add_namespace(parser)


def _read(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read()
    try:
        with open(name, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise CLIError(f"cannot read {name}: {exc.strerror or exc}") from None


def run(args: argparse.Namespace) -> int:
    """Import FILE at PATH."""
    from etcher._jsonio import import_json

    data = _read(args.file)
    progress = Progress(wanted(args.progress))
    new_file = local_file(args.url)
    if new_file is not None and os.path.exists(new_file):
        new_file = None
    try:
        with open_db(args.url, args.namespace, create=True) as db:
            _parent, keys = paths.resolve_parent(db, paths.parse(args.path))
            import_json(db, keys, data, progress=progress)
    except BaseException:
        if new_file is not None:
            remove_store_file(new_file)  # the store did not exist: a failed import leaves none
        raise
    finally:
        progress.close()
    source = "stdin" if args.file == "-" else args.file
    print(f"imported {source} into {paths.format_path(keys)}")
    return 0
