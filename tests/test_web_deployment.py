"""A real deployment: a Flask app under gunicorn (4 workers x 4 threads), with and without
``--preload``, on SQLite and on Redis, driven by a bounded load that keeps a ledger.

Every acknowledged write must read back exactly once, nothing may be corrupted, the hit
counter must be exact, ``check()`` must be clean and no request may fail. ``--preload`` opens
the store in gunicorn's master before the workers fork: the case that once corrupted most
documents because every worker made the same node ids.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from etcher import DB

APP_DIR = Path(__file__).parent / "deployment"
CLIENTS = 4
USERS_PER_CLIENT = 10
ORDERS_PER_USER = 5
MAINTENANCE_EVERY = 6  # users created by client 0 between two admin maintenance calls


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=60)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(60)
        self.sock.connect(self._path)


class _Client:
    def __init__(self, sock_path: str) -> None:
        self._sock_path = sock_path
        self.errors: list[str] = []

    def call(self, method: str, path: str, body: Any = None) -> Any:
        conn = _UnixHTTPConnection(self._sock_path)
        try:
            data = None if body is None else json.dumps(body)
            headers = {"Content-Type": "application/json"} if body is not None else {}
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            payload = resp.read()
        finally:
            conn.close()
        if resp.status != 200:
            self.errors.append(f"{method} {path}: HTTP {resp.status}")
            return None
        return json.loads(payload)


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[Any]:
    procs: list[subprocess.Popen[str]] = []

    def start(url: str, prefix: str, preload: bool) -> str:
        sock_path = str(tmp_path / f"web-{len(procs)}.sock")
        cmd = [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            "4",
            "--threads",
            "4",
            "--worker-class",
            "gthread",
            "--bind",
            f"unix:{sock_path}",
            "--chdir",
            str(APP_DIR),
            "--config",
            str(APP_DIR / "gunicorn_conf.py"),
            "--timeout",
            "120",
            "--no-control-socket",
        ]
        if preload:
            cmd.append("--preload")
        cmd.append("webapp:app")
        env = {**os.environ, "ETCHER_WEB_URL": url, "ETCHER_WEB_PREFIX": prefix}
        log = open(tmp_path / f"gunicorn-{len(procs)}.log", "w")  # noqa: SIM115
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
        procs.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()  # when_ready's line, or EOF if gunicorn died
        assert line.strip() == "ETCHER-WEB-READY", (
            f"gunicorn did not start: {(tmp_path / f'gunicorn-{len(procs) - 1}.log').read_text()}"
        )
        return sock_path

    yield start
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def _drive(sock_path: str, client_no: int, ledger: dict[str, Any], client: _Client) -> None:
    for n in range(USERS_PER_CLIENT):
        uid = f"c{client_no}u{n}"
        doc = {
            "name": f"User {uid}",
            "tags": ["new", uid],
            "address": {"city": f"City {n}", "zip": 10000 + n},
        }
        if client.call("PUT", f"/users/{uid}", doc) is None:
            continue
        expected = {**doc, "orders": []}
        ledger[uid] = expected
        for k in range(ORDERS_PER_USER):
            order = {"id": f"{uid}-o{k}", "qty": k + 1, "items": [{"sku": f"s{k}", "n": 1}]}
            if client.call("POST", f"/users/{uid}/orders", order) is not None:
                expected["orders"].append(order)
        got = client.call("GET", f"/users/{uid}")
        if got is not None and got != expected:
            client.errors.append(f"read back {uid} differs: {str(got)[:200]}")
        if client.call("POST", "/hits") is not None:
            ledger.setdefault("#hits", 0)
            ledger["#hits"] += 1
        if client_no == 0 and n % MAINTENANCE_EVERY == MAINTENANCE_EVERY - 1:
            report = client.call("POST", "/admin/maintenance")
            if report is not None and not report["ok"]:
                client.errors.append(f"check() during the load: {report['problems'][:3]}")


def _run_deployment(url: str, preload: bool, start: Any, log_dir: Path) -> None:
    def log_tail() -> str:
        text = "".join(p.read_text() for p in sorted(log_dir.glob("gunicorn-*.log")))
        return text[-4000:]

    prefix = f"web-{'preload' if preload else 'plain'}"
    sock_path = start(url, prefix, preload)
    ledgers: list[dict[str, Any]] = [{} for _ in range(CLIENTS)]
    clients = [_Client(sock_path) for _ in range(CLIENTS)]
    threads = [
        threading.Thread(target=_drive, args=(sock_path, i, ledgers[i], clients[i]))
        for i in range(CLIENTS)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    errors = [e for c in clients for e in c.errors]
    assert errors == [], f"{len(errors)} failed requests, first: {errors[:5]}\n{log_tail()}"

    with DB(url, prefix=prefix) as db:
        lost, corrupted = [], []
        hits = 0
        for ledger in ledgers:
            hits += ledger.pop("#hits", 0)
            for uid, expected in ledger.items():
                key = f"user:{uid}"
                if key not in db:
                    lost.append(uid)
                elif db[key]() != expected:
                    corrupted.append(uid)
        total = sum(len(ledger) for ledger in ledgers)
        assert (lost, corrupted) == ([], []), (
            f"{len(lost)} of {total} documents lost, {len(corrupted)} corrupted"
        )
        assert total == CLIENTS * USERS_PER_CLIENT
        assert db.count("hits") == hits
        report = db.check()
        assert report.ok, report.problems


@pytest.mark.slow
@pytest.mark.parametrize("preload", [False, True], ids=["plain", "preload"])
def test_gunicorn_on_sqlite(tmp_path: Path, gunicorn: Any, preload: bool) -> None:
    _run_deployment(str(tmp_path / "web.db"), preload, gunicorn, tmp_path)


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.parametrize("preload", [False, True], ids=["plain", "preload"])
def test_gunicorn_on_redis(redis_url: str, gunicorn: Any, preload: bool, tmp_path: Path) -> None:
    _run_deployment(redis_url, preload, gunicorn, tmp_path)
