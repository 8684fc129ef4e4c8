"""``etcher export URL [PATH] [-o FILE]``: a value (default: the namespace) as etcher JSON."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile

from etcher_contrib.cli import paths
from etcher_contrib.cli.commands._common import add_namespace, add_path, add_url
from etcher_contrib.cli.errors import CLIError
from etcher_contrib.cli.progress import Progress, wanted
from etcher_contrib.cli.store import open_db

NAME = "export"
HELP = "write a value (default: the whole namespace) as JSON"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``export``."""
    add_url(parser)
    add_path(parser)
    add_namespace(parser)
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE (default: stdout)")
    parser.add_argument(
        "--indent", type=int, default=2, metavar="N", help="indent by N spaces (default 2)"
    )
    parser.add_argument("--compact", action="store_true", help="everything on one line")


def run(args: argparse.Namespace) -> int:
    """Export the value at PATH."""
    from etcher._jsonio import export_json

    indent = None if args.compact else args.indent
    progress = Progress(wanted(args.progress))
    try:
        with open_db(args.url, args.namespace) as db:
            _node, keys = paths.resolve(db, paths.parse(args.path))
            if args.output is None or args.output == "-":
                # JSON is UTF-8 whatever the terminal's locale says.
                sys.stdout.flush()
                out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="\n")
                try:
                    export_json(db, keys, file=out, indent=indent, progress=progress)
                    out.write("\n")
                    out.flush()
                finally:
                    out.detach()
                return 0
            # Write beside the target and rename at the end: an interrupted export never
            # leaves a truncated file under the requested name.
            target = os.path.abspath(args.output)
            folder = os.path.dirname(target)
            if not os.path.isdir(folder):
                raise CLIError(f"cannot write {args.output}: folder {folder} does not exist")
            try:
                fd, temp = tempfile.mkstemp(prefix=".etcher-export-", dir=folder, text=True)
            except OSError as exc:
                # The temporary file is ours, not the user's: name what they asked for.
                raise CLIError(
                    f"cannot write {args.output} in {folder}: {exc.strerror or exc}"
                ) from None
            try:
                with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
                    export_json(db, keys, file=out, indent=indent, progress=progress)
                    out.write("\n")
                os.replace(temp, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
                raise
    finally:
        progress.close()
    print(f"exported {paths.format_path(keys)} to {args.output} ({os.path.getsize(target)} bytes)")
    return 0
