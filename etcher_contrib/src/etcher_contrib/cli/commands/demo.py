"""``etcher demo [URL]``: the quick start, run for real, saying what each step does."""

from __future__ import annotations

import argparse
import os
import tempfile
from typing import Any

from etcher_contrib.cli.commands._common import add_namespace, add_url
from etcher_contrib.cli.errors import CLIError
from etcher_contrib.cli.store import open_db

NAME = "demo"
HELP = "run the quick start on a store (default: a temporary SQLite file)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``demo``."""
    add_url(parser, optional=True)
    add_namespace(parser)


def _step(code: str, why: str = "", result: Any = None) -> None:
    line = f"  {code:<36}" + (f"  # {why}" if why else "")
    print(line.rstrip() + ("" if result is None else f"\n      -> {result}"))


def _tour(db: Any) -> None:
    db["person"] = {"id": "123", "name": "Alice", "tags": ["a", "b"]}
    _step('db["person"] = {"id": "123", "name": "Alice", "tags": ["a", "b"]}')
    _step('db["person"]["name"]', "a point lookup", repr(db["person"]["name"]))
    db["person"]["tags"].append("c")
    _step('db["person"]["tags"].append("c")', "edits in place, stored at once")
    _step('print(db["person"])', "a summary: nested nodes show as ids", db["person"])
    _step('db["person"]()', "materialize a plain dict", db["person"]())
    db["task"] = {"owner": db["person"], "status": "waiting"}
    _step('db["task"] = {"owner": db["person"], "status": "waiting"}')
    _step(
        'db["task"]["owner"].uid == db["person"].uid',
        "linked, not copied",
        db["task"]["owner"].uid == db["person"].uid,
    )
    _step('db["person"].refcount', "links from the root and from task", db["person"].refcount)
    _step("db.check().ok", "every invariant holds", db.check().ok)


def run(args: argparse.Namespace) -> int:
    """Run the tour on URL (or a temporary store) and suggest what to try next."""
    if args.url is None:
        with tempfile.TemporaryDirectory(prefix="etcher-demo-") as folder:
            path = os.path.join(folder, "demo.db")
            print(f"etcher demo on a temporary SQLite store: {path}")
            with open_db(path, args.namespace, create=True) as db:
                _tour(db)
            print("done; the temporary store is removed again.")
            print("run `etcher demo state.db` to keep the store and explore it with the CLI.")
        return 0
    with open_db(args.url, args.namespace, create=True) as db:
        if len(db):
            raise CLIError(
                f"namespace {db.prefix!r} of {args.url} is not empty; the demo writes "
                "'person' and 'task' there, so give it an empty one: -n demo"
            )
        print(f"etcher demo on {args.url}, namespace {db.prefix!r}")
        _tour(db)
    ns = f" -n {args.namespace}" if args.namespace else ""
    print("done. Look around with:")
    print(f"  etcher tree {args.url}{ns}")
    print(f"  etcher ls {args.url} person{ns}")
    print(f"  etcher export {args.url}{ns}")
    return 0
