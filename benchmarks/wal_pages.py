"""Which pages one small-document write dirties, by table and index (SQLite).

Usage::

    python benchmarks/wal_pages.py [--docs 4000] [--sample 100] [--impls etcher,diskcache,floor]

Each implementation writes ``--docs`` of the harness's small documents (``write_docs``), then
``--sample`` more, one at a time. Before each sampled write the WAL is checkpointed and
truncated, so the frames the write appends are exactly the pages its commit dirtied. Each page
is attributed to its table or index through SQLite's ``dbstat`` view.

Why: a commit's cost at steady state follows the pages it writes (each is appended to the WAL,
checksummed, and later copied back by a checkpoint). This tool counts them instead of
inferring them from times. It needs an ``sqlite3`` built with ``dbstat`` (CPython's wheels and
Debian's are).
"""

from __future__ import annotations

import argparse
import collections
import os
import sqlite3
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path

import _data as d
import _floor_wl

_WAL_HEADER, _FRAME_HEADER = 32, 24


def wal_frames(wal: str) -> list[int]:
    """The page number of every frame in the WAL file ``wal``, in order."""
    try:
        data = Path(wal).read_bytes()
    except FileNotFoundError:
        return []
    if len(data) < _WAL_HEADER:
        return []
    (page_size,) = struct.unpack(">I", data[8:12])
    frames, offset = [], _WAL_HEADER
    while offset + _FRAME_HEADER + page_size <= len(data):
        frames.append(struct.unpack(">I", data[offset : offset + 4])[0])
        offset += _FRAME_HEADER + page_size
    return frames


def page_owners(path: str) -> dict[int, str]:
    """Each page of the database at ``path``: the table or index it belongs to, and its kind."""
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT name, pageno, pagetype FROM dbstat").fetchall()
    finally:
        conn.close()
    return {page: f"{name} {kind}" for name, page, kind in rows}


def writer(impl: str, folder: str) -> tuple[str, Callable[[int], None]]:
    """The database file ``impl`` writes in ``folder``, and a function writing document i."""
    if impl == "etcher":
        from etcher import DB

        path = os.path.join(folder, "etcher.db")
        db = DB(path)

        def put(i: int) -> None:
            db[f"d{i}"] = d.small_doc(i)

        return path, put
    if impl == "diskcache":
        from diskcache import Cache

        cache = Cache(folder)

        def put_cache(i: int) -> None:
            cache[f"d{i}"] = d.small_doc(i)

        return os.path.join(folder, "cache.db"), put_cache
    if impl == "floor":
        floor = _floor_wl.open_floor("sqlite", folder)

        def put_floor(i: int) -> None:
            _floor_wl.assign(floor, f"d{i}", d.small_doc(i))

        return os.path.join(folder, "floor.db"), put_floor
    raise SystemExit(f"unknown implementation {impl!r}: use etcher, diskcache or floor")


def measure(impl: str, docs: int, sample: int) -> tuple[float, collections.Counter[str]]:
    """Frames per sampled write, and per owner the distinct pages per write."""
    with tempfile.TemporaryDirectory() as folder:
        path, put = writer(impl, folder)
        for i in range(docs):
            put(i)
        checkpoint = sqlite3.connect(path)
        owners: collections.Counter[str] = collections.Counter()
        frames = 0
        for i in range(docs, docs + sample):
            checkpoint.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            put(i)
            pages = wal_frames(path + "-wal")
            frames += len(pages)
            names = page_owners(path)
            for page in set(pages):
                owners[names.get(page, "(freed)")] += 1
        checkpoint.close()
    return frames / sample, owners


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=4000, help="documents written first")
    parser.add_argument("--sample", type=int, default=100, help="documents measured")
    parser.add_argument("--impls", default="etcher,diskcache,floor")
    args = parser.parse_args()
    for impl in args.impls.split(","):
        frames, owners = measure(impl, args.docs, args.sample)
        print(f"{impl}: {frames:.2f} pages per document (after {args.docs} documents)")
        for owner, count in owners.most_common():
            print(f"  {count / args.sample:6.2f}  {owner}")


if __name__ == "__main__":
    main()
