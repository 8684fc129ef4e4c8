"""The store's own cost of etcher's statements, for the targets still missed (SQLite and Redis).

Run: ``python benchmarks/layout_replay.py --backend sqlite [--scale 0.1] [--rounds 3]
[--old-python benchmarks/.venv-0.2.3/bin/python]`` (``--backend redis`` starts a private
``redis-server``, or takes ``--redis-socket``).

For each phase of ``_layout_phases.py`` (the timed part of a harness workload at the
harness's size) this tool records, on one run of this etcher, every statement its
SQLite connections run (SQL and parameters, ``executemany`` rows included) or every
send its Redis connections make (each command with its arguments, the batches and
the Lua checked commits as they went: one send is one round trip). The *layout floor*
is then that same work replayed with bare ``sqlite3`` / redis-py on the exact store
the phase started from, with nothing around it but:

- SQLite: each packed container row written is packed again (MessagePack) at replay
  time, as building the row has to; every ``SELECT`` is fetched in full;
- Redis: each send is packed again from its arguments (hiredis, as etcher does) and
  every reply is read and parsed by redis-py.

So the floor issues *the same statements, no fewer* and writes the same rows or keys;
what it leaves out is etcher's own Python (the unit of work, the graph's bookkeeping,
decoding what the reads return, the backend's command layer). It is a lower bound:
a target the floor misses is beyond etcher's layout on this machine; one it meets is
reachable at most by making etcher's Python free. Each replay is verified: the store
it leaves is compared row by row (key by key) with the store etcher left, versions
included, and then read through etcher and checked like the harness checks it.

Figures are seconds per phase, the least of ``--rounds`` fresh stores: CPU time on
SQLite (the store runs in the process), wall time on Redis (it runs in the server).
etcher 0.2.3 runs the same phases from its own venv when ``--old-python`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _layout_phases as lp  # noqa: E402
import _placement  # noqa: E402
import msgpack  # type: ignore[import-untyped]  # noqa: E402

from etcher import DB  # noqa: E402

PHASES = {
    "sqlite": [
        "write_docs",
        "write_big",
        "list_append",
        "list_pop_front",
        "delete_big",
        "replace_shared",
        "iterate_keys",
    ],
    "redis": ["write_docs", "write_big", "list_append"],
}
"""The phases whose target was still missed at the start of round 4, per backend."""

TARGETS = {
    "sqlite": {
        "write_docs": 8,
        "write_big": 20,
        "list_append": 3,
        "list_pop_front": 1000,
        "delete_big": 30,
        "replace_shared": 10,
        "iterate_keys": 2,
    },
    "redis": {"write_docs": 5, "write_big": 20, "list_append": 2},
}
"""Issue 13's minimum speed of this etcher against 0.2.3 for each phase here."""

_HASH, _LIST = 2, 3
_PACKED_WRITE = "INSERT OR REPLACE INTO keys"


# --- SQLite ---------------------------------------------------------------------------


class SqlRecorder:
    """Every statement of the SQLite connections opened while it is installed, in order."""

    def __init__(self) -> None:
        self.log: list[tuple[int, str, Any, Any]] = []  # (connection, sql, params, many)
        self.on = False
        self._ids: dict[int, int] = {}
        self._original = sqlite3.connect

    def __enter__(self) -> SqlRecorder:
        rec = self

        class Recording(sqlite3.Connection):
            def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
                if rec.on:
                    params = args[0] if args else ()
                    if sql.startswith(_PACKED_WRITE):
                        # Whole keys rows, one or several VALUES in one statement: kept as
                        # rows (repacked, renamed or folded like executemany's), replayed
                        # as one statement of as many VALUES (values_sql).
                        rows = [tuple(params[i : i + 6]) for i in range(0, len(params), 6)]
                        rec.log.append((rec._conn(self), _one_row(sql), rows, VALUES))
                    else:
                        rec.log.append((rec._conn(self), sql, params, False))
                return super().execute(sql, *args)

            def executemany(self, sql: str, rows: Any) -> sqlite3.Cursor:
                rows = [tuple(r) for r in rows]
                if rec.on:
                    rec.log.append((rec._conn(self), sql, rows, True))
                return super().executemany(sql, rows)

        def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
            kwargs.setdefault("factory", Recording)
            return self._original(*args, **kwargs)

        sqlite3.connect = connect  # type: ignore[assignment]
        return self

    def __exit__(self, *exc: Any) -> None:
        sqlite3.connect = self._original  # type: ignore[assignment]

    def _conn(self, conn: sqlite3.Connection) -> int:
        return self._ids.setdefault(id(conn), len(self._ids))


VALUES = "values"
"""A plan entry's ``many`` for one statement writing several ``keys`` rows as its VALUES
(its ``params`` are the rows, its SQL the one-row statement): truthy, so it reads as rows
wherever executemany's do."""


def _one_row(sql: str) -> str:
    """A multi-row ``INSERT ... VALUES (...), (...)`` as its one-row statement."""
    return sql.split("), (", 1)[0] + ")" if "), (" in sql else sql


def values_sql(sql: str, n: int) -> str:
    """The one-row ``INSERT`` ``sql`` with ``n`` rows of VALUES (as etcher_sqlite builds it)."""
    return sql + ", (?, ?, ?, ?, ?, ?)" * (n - 1)


def _repack_plan(log: list[tuple[int, str, Any, Any]]) -> list[tuple[int, str, Any, Any]]:
    """The log with each packed container written as its unpacked content, to pack at replay."""
    out = []
    for conn, sql, params, many in log:
        if many and sql.lstrip().startswith(_PACKED_WRITE):
            rows = []
            for row in params:
                name, kind, version, lo, hi, value = row
                if kind in (_HASH, _LIST) and value is not None:
                    content = msgpack.unpackb(value, raw=True, strict_map_key=True)
                    if _PACK(content) == value:  # else keep the bytes (never seen)
                        value = _Packed(content)
                rows.append((name, kind, version, lo, hi, value))
            params = rows
        out.append((conn, sql, params, many))
    return out


_PACK = msgpack.Packer(use_bin_type=True, autoreset=True).pack


class _Packed:
    """A container's content that the replay packs when it builds the row."""

    __slots__ = ("content",)

    def __init__(self, content: Any) -> None:
        self.content = content


def sql_replay(conns: list[sqlite3.Connection], plan: list[tuple[int, str, Any, Any]]) -> Any:
    """Run a recorded phase again with bare ``sqlite3`` (the timed part of the floor).

    Returns the rows of the last statement (what a read-only phase answers with).
    """
    pack = _PACK
    rows: Any = None
    for conn, sql, params, many in plan:
        c = conns[conn]
        if many is VALUES:
            flat = [pack(x.content) if type(x) is _Packed else x for row in params for x in row]
            c.execute(values_sql(sql, len(params)), flat)
        elif many:
            if sql.startswith(_PACKED_WRITE):
                params = [
                    (n, k, v, lo, hi, pack(x.content) if type(x) is _Packed else x)
                    for n, k, v, lo, hi, x in params
                ]
            c.executemany(sql, params)
        else:
            rows = c.execute(sql, params).fetchall()
    return rows


_TXN = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


def sql_warm(conns: list[sqlite3.Connection], plan: list[tuple[int, str, Any, Any]]) -> None:
    """Prepare every statement of ``plan`` once and read its pages, leaving the file as it was.

    etcher's timed phase runs on a connection that built the store: the schema is
    parsed, its statements are prepared and its pages are in the connection's cache.
    A replay on a fresh connection would pay all that inside its clock, so each
    distinct statement runs once beforehand, in a transaction rolled back.
    """
    firsts: dict[tuple[int, str], tuple[Any, Any]] = {}
    for conn, sql, params, many in plan:
        if many is VALUES:  # (each number of rows is its own statement)
            sql, params, many = (
                values_sql(sql, len(params)),
                [x for row in params for x in row],
                False,
            )
        firsts.setdefault((conn, sql), (params, many))
    for i, c in enumerate(conns):
        mine = [(sql, p, m) for (conn, sql), (p, m) in firsts.items() if conn == i]
        txn = [sql for sql, _, _ in mine if sql.lstrip().upper().startswith(_TXN)]
        c.execute("BEGIN IMMEDIATE")
        for sql, params, many in mine:
            if sql in txn:
                continue
            if many:
                rows = [tuple(_PACK(x.content) if type(x) is _Packed else x for x in params[0])]
                c.executemany(sql, rows if params else [])
            else:
                c.execute(sql, [_PACK(x.content) if type(x) is _Packed else x for x in params])
        c.execute("ROLLBACK")
        begins = [t for t in txn if t.lstrip().upper().startswith("BEGIN")]
        ends = [t for t in txn if t.lstrip().upper().startswith(("COMMIT", "ROLLBACK"))]
        for begin in begins:
            for end in ends:
                c.execute(begin)
                c.execute(end)


def _decode_keys(rows: list[tuple[Any, ...]]) -> list[str]:
    """The top-level keys from the root hash's rows (the keys row, then ``field, value`` rows).

    A listing has to turn the stored field names into ``str`` keys: the floor of
    iterate_keys does that much (a root this size is spilled: one row per field).
    """
    return [field[1:].decode() for field, *_ in rows if type(field) is bytes]


FINISH: dict[str, Callable[[Any], Any]] = {"iterate_keys": _decode_keys}
"""What a phase's floor does with the answer of its last read (timed with the replay)."""


def _ignore(rows: Any) -> None:
    return None


def sql_dump(path: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of an etcher-sqlite file, table by table, in key order."""
    conn = sqlite3.connect(path)
    try:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
            for table in ("keys", "hashes", "list_items")
        }
    finally:
        conn.close()


def _snapshot(src: str, dst: str) -> None:
    """A consistent copy of a live SQLite file (WAL included), as one ordinary file."""
    a, b = sqlite3.connect(src), sqlite3.connect(dst)
    try:
        a.backup(b)
        b.execute("PRAGMA journal_mode = WAL").fetchall()
    finally:
        a.close()
        b.close()


class SqlFloor:
    """One phase recorded on this etcher and its replay on copies of the starting file."""

    def __init__(self, tmp: str, name: str, scale: float) -> None:
        self.tmp, self.name, self.scale = tmp, name, scale
        phase = lp.PHASES[name]
        self.path = os.path.join(tmp, f"{name}.db")
        self.start = os.path.join(tmp, f"{name}.start.db")
        with SqlRecorder() as rec:
            db = DB(f"sqlite:///{self.path}")
            phase.build(db, scale)
            state = phase.prepare(db, scale)
            _snapshot(self.path, self.start)
            rec.on = True
            result = phase.run(db, state)
            rec.on = False
            self.etcher_ok = phase.check(db, scale, result)
            self.connections = len(rec._ids)
            self.log = rec.log
            db.close()
        self.plan = _repack_plan(self.log)
        self.expected = sql_dump(self.path)

    def statements(self) -> dict[str, int]:
        """The phase's statements by first word (``(many)`` for an ``executemany``)."""
        out: dict[str, int] = {}
        for _, sql, _, many in self.log:
            key = sql.split(None, 1)[0].upper() + ("(many)" if many is True else "")
            out[key] = out.get(key, 0) + 1
        return out

    def _fresh(self) -> tuple[str, list[sqlite3.Connection]]:
        path = os.path.join(self.tmp, f"{self.name}.replay.db")
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
        shutil.copyfile(self.start, path)
        conns = []
        for _ in range(max(1, self.connections)):
            c = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, cached_statements=256
            )
            c.execute("PRAGMA synchronous = NORMAL")  # etcher-sqlite's default durability
            conns.append(c)
        sql_warm(conns, self.plan)
        return path, conns

    def time_once(self) -> float:
        _, conns = self._fresh()
        try:
            finish = FINISH.get(self.name, _ignore)
            t0 = time.process_time()
            finish(sql_replay(conns, self.plan))
            return time.process_time() - t0
        finally:
            for c in conns:
                c.close()

    def verify(self) -> bool:
        """Replay once more and compare every row, then read it back through etcher."""
        path, conns = self._fresh()
        try:
            answer = FINISH.get(self.name, _ignore)(sql_replay(conns, self.plan))
        finally:
            for c in conns:
                c.close()
        if sql_dump(path) != self.expected:
            return False
        if self.name == "iterate_keys" and not lp._keys_check(
            None, self.scale, (len(answer), answer)
        ):
            return False
        db = DB(f"sqlite:///{path}")
        try:
            phase = lp.PHASES[self.name]
            result = lp._keys_run(db, None) if self.name == "iterate_keys" else None
            return bool(phase.check(db, self.scale, result))
        finally:
            db.close()


# --- Redis ----------------------------------------------------------------------------


def _parse_commands(data: bytes) -> list[tuple[bytes, ...]]:
    """The commands in a packed RESP send (arrays of bulk strings)."""
    out, i = [], 0
    while i < len(data):
        assert data[i : i + 1] == b"*", data[i : i + 20]
        j = data.index(b"\r\n", i)
        n = int(data[i + 1 : j])
        i = j + 2
        args = []
        for _ in range(n):
            assert data[i : i + 1] == b"$"
            j = data.index(b"\r\n", i)
            size = int(data[i + 1 : j])
            args.append(data[j + 2 : j + 2 + size])
            i = j + 2 + size + 2
        out.append(tuple(args))
    return out


class RedisRecorder:
    """Every send of redis-py connections while it is on (one send is one round trip)."""

    def __init__(self) -> None:
        from redis.connection import AbstractConnection

        self.cls = AbstractConnection
        self.original = AbstractConnection.send_packed_command
        self.sends: list[list[tuple[bytes, ...]]] = []
        self.on = False

    def __enter__(self) -> RedisRecorder:
        rec = self
        original = self.original

        def send(conn: Any, command: Any, check_health: bool = True) -> None:
            if rec.on:
                data = (
                    command
                    if isinstance(command, bytes | str)
                    else b"".join(bytes(c) for c in command)
                )
                rec.sends.append(
                    _parse_commands(data if isinstance(data, bytes) else data.encode())
                )
            original(conn, command, check_health)

        self.cls.send_packed_command = send  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: Any) -> None:
        self.cls.send_packed_command = self.original  # type: ignore[method-assign]


def _redis_pack() -> Callable[..., bytes]:
    try:
        import hiredis

        return hiredis.pack_command  # type: ignore[no-any-return]
    except (ImportError, AttributeError):  # pragma: no cover - etcher-redis needs hiredis
        from redis.connection import PythonRespSerializer

        ser = PythonRespSerializer(6000, lambda x: x)
        return lambda args: b"".join(ser.pack(*args))


def redis_replay(conn: Any, sends: list[list[tuple[bytes, ...]]]) -> list[Any]:
    """Send each recorded batch again on one connection and read every reply."""
    pack = _redis_pack()
    replies = []
    for cmds in sends:
        conn.send_packed_command([b"".join([pack(args) for args in cmds])], check_health=False)
        for _ in cmds:
            try:
                replies.append(conn.read_response())
            except Exception as exc:  # a refused command is a reply too: verified below
                replies.append(exc)
    return replies


def redis_dump(client: Any) -> dict[bytes, Any]:
    """Every key of the server with its type and content."""
    out: dict[bytes, Any] = {}
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        if kind == b"hash":
            out[key] = ("hash", client.hgetall(key))
        elif kind == b"list":
            out[key] = ("list", client.lrange(key, 0, -1))
        elif kind == b"string":
            out[key] = ("string", client.get(key))
        elif kind == b"set":
            out[key] = ("set", client.smembers(key))
        elif kind == b"zset":
            out[key] = ("zset", client.zrange(key, 0, -1, withscores=True))
        else:
            out[key] = (kind, None)
    return out


class RedisFloor:
    """One phase recorded on this etcher (on Redis) and replayed on the same starting keys."""

    def __init__(self, socket: str, name: str, scale: float) -> None:
        import redis

        self.socket, self.name, self.scale = socket, name, scale
        self.client = redis.Redis(unix_socket_path=socket)
        self.client.flushall()
        phase = lp.PHASES[name]
        with RedisRecorder() as rec:
            db = lp.open_db("redis", socket)
            phase.build(db, scale)
            state = phase.prepare(db, scale)
            self.start = {k: self.client.dump(k) for k in self.client.scan_iter(count=1000)}
            rec.on = True
            result = phase.run(db, state)
            rec.on = False
            self.sends = rec.sends
        self.etcher_ok = phase.check(db, scale, result)
        self.expected = redis_dump(self.client)

    def commands(self) -> dict[str, int]:
        """The phase's commands by name, and ``round trips`` (sends)."""
        out: dict[str, int] = {"round trips": len(self.sends)}
        for cmds in self.sends:
            for args in cmds:
                key = args[0].decode().upper()
                out[key] = out.get(key, 0) + 1
        return out

    def _restore(self) -> Any:
        self.client.flushall()
        pipe = self.client.pipeline(transaction=False)
        for k, v in self.start.items():
            pipe.restore(k, 0, v)
        pipe.execute()
        return self.client.connection_pool.get_connection()

    def time_once(self) -> float:
        conn = self._restore()
        try:
            t0 = time.perf_counter()
            redis_replay(conn, self.sends)
            return time.perf_counter() - t0
        finally:
            self.client.connection_pool.release(conn)

    def verify(self) -> bool:
        conn = self._restore()
        try:
            redis_replay(conn, self.sends)
        finally:
            self.client.connection_pool.release(conn)
        if redis_dump(self.client) != self.expected:
            return False
        db = lp.open_db("redis", self.socket)
        return bool(lp.PHASES[self.name].check(db, self.scale, None))


# --- the measurement ------------------------------------------------------------------


def phase_times(
    python: str, backend: str, names: list[str], scale: float, rounds: int, socket: str | None
) -> dict[str, dict[str, Any]]:
    """An etcher's seconds per phase from a fresh process of ``python`` (empty if it failed).

    Both etchers run this way (0.2.3 from its own venv), as the harness runs them: a
    process that holds the floor's recordings would make this etcher's collector slower.
    """
    cmd = [python, str(HERE / "_layout_phases.py"), "--backend", backend]
    cmd += ["--phases", ",".join(names), "--scale", str(scale), "--rounds", str(rounds)]
    cmd += ["--redis-socket", socket] if socket else []
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=str(HERE), timeout=30 * 60)
    if proc.returncode != 0:
        print(f"{python}: phases failed:", proc.stderr.strip()[-500:], file=sys.stderr)
        return {}
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def measure(
    backend: str,
    names: list[str],
    scale: float,
    rounds: int,
    old_python: str | None = None,
    redis_socket: str | None = None,
) -> list[dict[str, Any]]:
    """One row per phase: seconds of etcher, its layout floor and 0.2.3; verified flags.

    Rounds are interleaved (floor, etcher, 0.2.3) so drift hits all three alike.
    """
    rows = []
    if backend == "redis":
        # A fresh redis-server is up to 3x slower on its first big writes (its allocator
        # is still growing): one untimed round of everything first, as the harness's
        # server is warm from earlier workloads.
        for python in (sys.executable, old_python):
            if python:
                phase_times(python, backend, names, scale, 1, redis_socket)
    with tempfile.TemporaryDirectory(prefix="etcher-replay-") as tmp:
        for name in names:
            floor: SqlFloor | RedisFloor
            if backend == "sqlite":
                floor = SqlFloor(tmp, name, scale)
                counts = floor.statements()
            else:
                assert redis_socket is not None
                floor = RedisFloor(redis_socket, name, scale)
                counts = floor.commands()
            ok = floor.etcher_ok and floor.verify()
            floor_t: list[float] = []
            mine_t: list[float] = []
            old_t: list[float] = []
            mine_ok = old_ok = True
            for _ in range(rounds):
                floor_t.append(floor.time_once())
                mine = phase_times(sys.executable, backend, [name], scale, 1, redis_socket)
                mine_t += [mine[name]["seconds"]] if name in mine else []
                mine_ok &= name in mine and mine[name]["verified"]
                if old_python:
                    old = phase_times(old_python, backend, [name], scale, 1, redis_socket)
                    if name in old:
                        old_t.append(old[name]["seconds"])
                        old_ok &= old[name]["verified"]
            row: dict[str, Any] = {
                "backend": backend,
                "workload": name,
                "scale": scale,
                "target": {"etcher023": TARGETS[backend].get(name)},
                # The least of the rounds: each is a fresh store doing the same work, so
                # the slower ones only measured other sessions' load on this shared machine
                # (on Redis, up to 3x in wall time from one minute to the next).
                "etcher": min(mine_t) if mine_t else None,
                "floor": min(floor_t),
                "rounds": {"etcher": mine_t, "floor": floor_t, "etcher023": old_t},
                "verified": {"etcher": mine_ok, "floor": ok},
                "statements": counts,
            }
            if old_t:
                row["etcher023"] = min(old_t)
                row["verified"]["etcher023"] = old_ok and len(old_t) == rounds
            rows.append(row)
    return rows


def main() -> None:
    from _report import layout_replay_table

    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--backend", choices=sorted(PHASES), default="sqlite")
    ap.add_argument("--phases", default=None, help="comma list (default: the backend's missed)")
    ap.add_argument("--scale", type=float, default=0.1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--old-python", default=None, help="interpreter of a venv with etcher 0.2.3")
    ap.add_argument("--redis-socket", default=None, help="a running server (else one is started)")
    ap.add_argument(
        "--redis-server", default=shutil.which("redis-server") or "/usr/bin/redis-server"
    )
    ap.add_argument(
        "--placement",
        choices=_placement.PLACEMENTS,
        default="free",
        help="where a started redis-server and every client run (benchmarks/_placement.py)",
    )
    ap.add_argument("--json", default=None, help="also write the rows as JSON here")
    args = ap.parse_args()
    names = args.phases.split(",") if args.phases else PHASES[args.backend]
    server = None
    socket = args.redis_socket
    server_cpus, client_cpus = _placement.cpus(args.placement)
    if args.backend != "redis":
        client_cpus = None
    if args.backend == "redis" and socket is None:
        from run import RedisServer

        server = RedisServer(args.redis_server, server_cpus)
        socket = server.sock
    try:
        # The floor replays in this process and the etchers run in its children, which
        # inherit this pinning: all three see the same round-trip cost.
        with _placement.Pinned(client_cpus):
            rows = measure(args.backend, names, args.scale, args.rounds, args.old_python, socket)
    finally:
        if server:
            server.stop()
    print("\n".join(layout_replay_table(rows)))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
