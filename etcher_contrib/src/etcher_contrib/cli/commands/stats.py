"""``etcher stats URL``: nodes, links, keys and bytes of each namespace."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from typing import Any

from etcher_contrib.cli.commands._common import add_namespace, add_url, human_bytes, table
from etcher_contrib.cli.progress import Progress, wanted
from etcher_contrib.cli.store import namespace_names, open_db

NAME = "stats"
HELP = "count nodes, links, keys and bytes per namespace"

_BATCH = 500  # keys per pipelined round trip


@dataclass
class Stats:
    """What one namespace holds. ``bytes`` counts key names, fields and values as stored."""

    namespace: str
    nodes: int = 0
    dicts: int = 0
    lists: int = 0
    links: int = 0
    counters: int = 0
    keys: int = 0
    bytes: int = 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``stats``."""
    add_url(parser)
    add_namespace(parser)
    parser.add_argument("--json", action="store_true", help="JSON output, sizes in bytes")


def _collect(backend: Any, name: str, progress: Progress) -> Stats:
    from etcher.layout import HEADER_FIELDS, Layout

    layout = Layout(name)
    stats = Stats(name)
    keys = list(backend.scan_iter(match=layout.scan))
    progress.stage(f"counting {name}", len(keys))
    refs_prefix = layout.refs_prefix.encode()
    counter_prefix = layout.counter_prefix.encode()
    for start in range(0, len(keys), _BATCH):
        batch = keys[start : start + _BATCH]
        pipe = backend.pipeline(transaction=False)
        for key in batch:
            pipe.type(key)
        kinds = pipe.execute()
        pipe = backend.pipeline(transaction=False)
        for key, kind in zip(batch, kinds, strict=True):
            if kind == b"hash":
                pipe.hgetall(key)
            elif kind == b"list":
                pipe.lrange(key, 0, -1)
            else:
                pipe.get(key)
        for key, kind, value in zip(batch, kinds, pipe.execute(), strict=True):
            stats.keys += 1
            stats.bytes += len(key)
            if isinstance(value, dict):
                stats.bytes += sum(len(f) + len(v) for f, v in value.items())
            elif isinstance(value, list):
                stats.bytes += sum(len(v) for v in value)
            elif value is not None:
                stats.bytes += len(value)
            if key.startswith(refs_prefix) and kind == b"hash":
                uid = key[len(refs_prefix) :]
                stats.nodes += 1
                stats.dicts += uid[:1] == b"D"
                stats.lists += uid[:1] == b"L"
                stats.links += sum(
                    int(v) for f, v in value.items() if f not in HEADER_FIELDS and v.isdigit()
                )
            elif key.startswith(counter_prefix):
                stats.counters += 1
        progress.advance(len(batch))
    return stats


def run(args: argparse.Namespace) -> int:
    """Print the statistics table (or JSON)."""
    progress = Progress(wanted(args.progress), unit="key")
    try:
        with open_db(args.url, args.namespace) as db:
            names = [args.namespace] if args.namespace else namespace_names(db.backend)
            results = [_collect(db.backend, name, progress) for name in names]
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
