"""``etcher check URL``: verify every invariant; exit 0 when clean, 1 when not."""

from __future__ import annotations

import argparse
import json
from typing import Any

from etcher_contrib.cli.commands._common import add_namespace, add_url
from etcher_contrib.cli.errors import OK, PROBLEMS
from etcher_contrib.cli.progress import Progress, wanted
from etcher_contrib.cli.store import open_db, open_store, require_namespace

NAME = "check"
HELP = "verify the store's invariants (exit 1 if something is wrong)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``check``."""
    add_url(parser)
    add_namespace(parser)
    parser.add_argument("--all", action="store_true", help="check every namespace")
    parser.add_argument("--json", action="store_true", help="a JSON report")


def report_dict(report: Any) -> dict[str, Any]:
    """A check report as plain JSON data."""
    return {
        "namespace": report.prefix,
        "ok": report.ok,
        "nodes": report.nodes,
        "reachable": report.reachable,
        "pinned": len(report.pinned),  # a count, as the text report gives it
        "pinned_uids": list(report.pinned),
        "counters": report.counters,
        "problems": report.problems(),
    }


def run(args: argparse.Namespace) -> int:
    """Check one namespace (or all) and report."""
    progress = Progress(wanted(args.progress))
    reports = []
    try:
        names: list[str] = []
        if args.all:
            with open_store(args.url) as store:
                require_namespace(store, args.url, args.namespace)
                names = store.namespaces()
        if not names:
            with open_db(args.url, args.namespace) as db:
                names = [db.prefix]
        for name in names:
            with open_db(args.url, name) as db:
                reports.append(db.check(progress=progress.hook(f"checking {name}")))
    finally:
        progress.close()
    ok = all(r.ok for r in reports)
    if args.json:
        print(json.dumps({"ok": ok, "namespaces": [report_dict(r) for r in reports]}, indent=2))
    else:
        for report in reports:
            print(report)
    return OK if ok else PROBLEMS
