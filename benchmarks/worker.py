"""Run one workload once in this (fresh) process and print its result as one JSON line.

    python benchmarks/worker.py --impl etcher|floor|diskcache|sqlitedict --backend sqlite \\
        --workload write_big --scale 0.1 --store /tmp/x

``--impl etcher`` uses whichever etcher this interpreter has installed, so the
harness points it at this repo's venv or at the 0.2.3 venv.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import traceback

from _data import WORKLOADS


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--impl", choices=["etcher", "floor", "diskcache", "sqlitedict"], required=True
    )
    parser.add_argument("--backend", required=True)
    parser.add_argument("--workload", choices=WORKLOADS, required=True)
    parser.add_argument("--scale", type=float, required=True)
    parser.add_argument("--store", required=True)
    args = parser.parse_args()
    wl = importlib.import_module(f"_{args.impl}_wl")
    try:
        workload = getattr(wl, args.workload)  # a name from WORKLOADS (argparse checked it)
        seconds, ok, note = workload(args.backend, args.store, args.scale)
        out = {"seconds": seconds, "ok": bool(ok), "note": note}
    except Exception as exc:  # a crash is a failed (unverified) run, reported, not fatal
        traceback.print_exc(file=sys.stderr)
        out = {"seconds": None, "ok": False, "note": f"error: {type(exc).__name__}: {exc}"[:300]}
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
