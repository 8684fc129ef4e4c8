"""``etcher stats URL``: nodes, links, keys and bytes of each namespace."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from etcher_contrib.cli.commands._common import add_namespace, add_url, human_bytes, table
from etcher_contrib.cli.progress import Progress, wanted
from etcher_contrib.cli.store import open_store, require_namespace

NAME = "stats"
HELP = "count nodes, links, keys and bytes per namespace"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``stats``."""
    add_url(parser)
    add_namespace(parser)
    parser.add_argument("--json", action="store_true", help="JSON output, sizes in bytes")


def run(args: argparse.Namespace) -> int:
    """Print the statistics table (or JSON)."""
    progress = Progress(wanted(args.progress), unit="key")
    try:
        with open_store(args.url) as store:
            require_namespace(store, args.url, args.namespace)
            names = [args.namespace] if args.namespace else store.namespaces()
            results = [
                store.stats(name, progress=progress.hook(f"counting {name}")) for name in names
            ]
    finally:
        progress.close()
    if args.json:
        print(json.dumps([asdict(s) for s in results], indent=2))
        return 0
    rows = [["NAMESPACE", "NODES", "DICTS", "LISTS", "LINKS", "COUNTERS", "KEYS", "BYTES"]]
    for s in results:
        rows.append(
            [
                s.namespace,
                *(str(n) for n in (s.nodes, s.dicts, s.lists, s.links, s.counters, s.keys)),
                human_bytes(s.bytes),
            ]
        )
    print(table(rows, right=range(1, 8)))
    return 0
