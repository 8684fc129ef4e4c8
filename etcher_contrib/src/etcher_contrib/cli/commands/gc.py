"""``etcher gc URL``: mark-and-sweep repair of a namespace (``--dry-run`` only reports)."""

from __future__ import annotations

import argparse
import json

from etcher_contrib.cli.commands._common import add_namespace, add_url
from etcher_contrib.cli.commands.check import report_dict
from etcher_contrib.cli.progress import Progress, wanted
from etcher_contrib.cli.store import open_db

NAME = "gc"
HELP = "repair a namespace by mark and sweep (--dry-run: only say what it would do)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``gc``."""
    add_url(parser)
    add_namespace(parser)
    parser.add_argument("--dry-run", action="store_true", help="report, change nothing")
    parser.add_argument(
        "--drop-pins",
        action="store_true",
        help="also collect nodes pinned by RD(db)/RL(db) handles of crashed processes",
    )
    parser.add_argument("--json", action="store_true", help="a JSON report")


def run(args: argparse.Namespace) -> int:
    """Repair (or, with --dry-run, just inspect) one namespace."""
    progress = Progress(wanted(args.progress))
    try:
        with open_db(args.url, args.namespace) as db:
            if args.dry_run:
                report = db.check(progress=progress.hook("checking"))
            else:
                report = db.gc(drop_pins=args.drop_pins, progress=progress.hook("collecting"))
    finally:
        progress.close()
    problems = report.problems()
    pins = report.pinned if args.drop_pins else []
    if args.json:
        data = report_dict(report)
        data["dry_run"] = args.dry_run
        data["dropped_pins" if not args.dry_run else "would_drop_pins"] = pins
        print(json.dumps(data, indent=2))
        return 0
    verb = "would fix" if args.dry_run else "fixed"
    if not problems and not pins:
        print(f"namespace {report.prefix!r}: {report.nodes} nodes, nothing to repair")
        return 0
    print(f"namespace {report.prefix!r}: {verb} {len(problems)} problem(s)")
    for line in problems:
        print(f"  {line}")
    for uid in pins:
        print(f"  {'would drop' if args.dry_run else 'dropped'} the pin of node {uid}")
    return 0
