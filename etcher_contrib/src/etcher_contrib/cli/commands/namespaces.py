"""``etcher namespaces URL``: list the namespaces of a store, or delete one (after asking)."""

from __future__ import annotations

import argparse
import json
import sys

from etcher_contrib.cli.commands._common import add_url
from etcher_contrib.cli.errors import OK, PROBLEMS, CLIError
from etcher_contrib.cli.store import open_store

NAME = "namespaces"
HELP = "list the namespaces of a store, or --delete one"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``namespaces``."""
    add_url(parser)
    parser.add_argument("--delete", metavar="NAME", help="delete namespace NAME and all its data")
    parser.add_argument("-y", "--yes", action="store_true", help="delete without asking")
    parser.add_argument("--json", action="store_true", help="list as JSON")


def _confirm(question: str) -> bool:
    # The question goes to stderr so stdout stays clean for scripts; the answer comes from
    # stdin even when it is not a terminal (a script can pipe "y"), and EOF means no.
    sys.stderr.write(question)
    sys.stderr.flush()
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def run(args: argparse.Namespace) -> int:
    """List namespaces, or delete one."""
    with open_store(args.url) as store:
        names = store.namespaces()
        default = store.default_namespace
        if not names:
            raise CLIError(f"{args.url} holds no etcher namespace")
        if args.delete is None:
            if args.json:
                print(json.dumps({"default": default, "namespaces": names}))
            else:
                for name in names:
                    print(f"{name} (default)" if name == default else name)
            return OK
        name = args.delete
        if name not in names:
            listing = ", ".join(repr(n) for n in names)
            raise CLIError(f"no namespace {name!r} in {args.url} (namespaces: {listing})")
        count = store.key_count(name)
        if not args.yes and not _confirm(
            f"delete namespace {name!r} ({count} keys) from {args.url}? [y/N] "
        ):
            print("nothing deleted")
            return PROBLEMS
        # Deleted at store level: no DB is opened, so no namespace is created or re-created.
        deleted = store.delete_prefix(name)
    note = " (the store holds no namespace now)" if names == [name] else ""
    print(f"deleted namespace {name!r}: {deleted} keys{note}")
    return OK
