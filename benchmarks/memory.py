"""Peak memory of materializing a big document, against the size of the result.

    python benchmarks/memory.py [--containers 100000] [--backend sqlite|memory]

Issue 7's memory target: ``db["big"]()`` on a 100,000-container document must
peak below 3x the size of the Python object it returns. Both sides are measured
with tracemalloc in this process: the result's size is what stays allocated
once materializing is over (the returned object and nothing else), the peak is
the highest allocation seen while it ran. The result is also checked against
the document that was stored.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _data as d

from etcher import DB


def measure(containers: int, backend: str) -> tuple[int, int, bool]:
    """(peak bytes while materializing, bytes the result keeps, result correct)."""
    doc = d.big_doc(containers)
    with tempfile.TemporaryDirectory() as tmp:
        url = str(Path(tmp) / "mem.db") if backend == "sqlite" else "memory://"
        with DB(url) as db:
            db["big"] = doc
            big = db["big"]
            gc.collect()
            tracemalloc.start()
            base = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            value = big()
            gc.collect()
            kept, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            ok = value == doc
    return peak - base, kept - base, ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--containers", type=int, default=100_000)
    parser.add_argument("--backend", choices=["sqlite", "memory"], default="sqlite")
    args = parser.parse_args()
    peak, kept, ok = measure(args.containers, args.backend)
    ratio = peak / kept
    verdict = "ok" if ok else "WRONG RESULT"
    print(
        f"{args.backend}: {d.count_containers(d.big_doc(args.containers)):,} containers; "
        f"result {kept / 2**20:.1f} MiB, peak while materializing {peak / 2**20:.1f} MiB, "
        f"peak / result = {ratio:.2f} (target < 3); result {verdict}"
    )
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
