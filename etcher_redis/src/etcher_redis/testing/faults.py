"""Fault injection at the redis-py connection, for etcher's reliability tests (no stability
promise).

Moved here from etcher-core's private harness because it patches redis-py:
:func:`arm_redis` hangs a tripwire (:mod:`etcher.testing._harness.faults`) on
the commands written to Redis sockets.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from etcher import DB
from etcher.testing._harness.faults import Tripwire

__all__ = ["arm_redis", "killed_clients_applied", "split_resp"]

# CLIENT LIST's "cmd" of the connection that asks (Redis 7 says "client|list", older "client").
_ASKING = frozenset(("client|list", "client"))


def killed_clients_applied(
    db: DB, name: str | None = None, timeout: float = 30.0
) -> Callable[[], None]:
    """A crash campaign's ``settle`` hook for a Redis server (see ``crash.Settle``).

    Called before a child starts, it notes the server's connections; what it returns
    waits until every connection opened since is gone (only those named ``name``,
    when given: the child's, on a server other clients share). Redis executes what
    a client sent before it sees that client's socket close, so once the killed
    child's connections are gone every command it sent has been applied, and the
    campaign's read sees the state the child left. Raises ``AssertionError`` naming
    the connections if they are still open after ``timeout`` seconds (a child not
    dead). Use it as ``settle=functools.partial(killed_clients_applied, name=...)``.
    """
    client: Any = db.backend
    known = {entry["id"] for entry in client.client_list()}

    def wait() -> None:
        deadline = time.monotonic() + timeout
        while True:  # each CLIENT LIST is a round trip: no sleep needed between them
            left = [
                entry
                for entry in client.client_list()
                if entry["id"] not in known
                and entry.get("cmd") not in _ASKING
                and (name is None or entry.get("name") == name)
            ]
            if not left:
                return
            if time.monotonic() > deadline:
                named = (f"id={e['id']} name={e.get('name')} cmd={e.get('cmd')}" for e in left)
                raise AssertionError(
                    f"connections still open {timeout:g} s after their client was killed: "
                    + ", ".join(named)
                )

    return wait


def split_resp(buffer: bytes) -> list[bytes]:
    """Split packed RESP commands (``*<n>\\r\\n`` + bulk strings) into one chunk per command.

    Anything that does not parse is returned as one chunk.
    """
    chunks: list[bytes] = []
    pos, n = 0, len(buffer)
    try:
        while pos < n:
            start = pos
            if buffer[pos : pos + 1] != b"*":
                raise ValueError("not an array")
            end = buffer.index(b"\r\n", pos)
            items = int(buffer[pos + 1 : end])
            pos = end + 2
            for _ in range(items):
                if buffer[pos : pos + 1] != b"$":
                    raise ValueError("not a bulk string")
                end = buffer.index(b"\r\n", pos)
                length = int(buffer[pos + 1 : end])
                pos = end + 2 + length + 2
            if pos > n:
                raise ValueError("truncated")
            chunks.append(buffer[start:pos])
    except ValueError:
        return [buffer]
    return chunks


_REDIS_READS = frozenset(
    {b"GET", b"HGET", b"HMGET", b"HGETALL", b"HKEYS", b"HLEN", b"HEXISTS", b"LRANGE",
     b"LINDEX", b"LLEN", b"EXISTS", b"TYPE", b"SCAN", b"WATCH", b"UNWATCH", b"PING",
     b"CLIENT", b"HELLO", b"AUTH", b"SELECT", b"INFO"}
)  # fmt: skip


def _command_name(chunk: bytes) -> bytes:
    """The command of one packed RESP command (``b""`` if it does not parse)."""
    parts = chunk.split(b"\r\n", 3)
    return parts[2].upper() if len(parts) > 2 else b""


def arm_redis(tripwire: Tripwire, *, writes_only: bool = True) -> Callable[[], None]:
    """Hit ``tripwire`` for commands redis-py sends, and once after each complete send.

    When the tripwire fires on a command, the commands before it and *half*
    of it are written to the socket first, then the action runs (default:
    :func:`die`), so the server sees exactly what a client killed mid-write
    would leave. The extra event after a complete send stands for "killed
    after the server got everything, before the reply was read". With
    ``writes_only`` (the default) reads and watches are not events, and a send
    without any write has no "(sent)" event. Returns a function that undoes
    the patch.
    """
    from redis.connection import AbstractConnection

    original: Callable[..., None] = AbstractConnection.send_packed_command

    def send_packed_command(self: Any, command: Any, check_health: bool = True) -> None:
        if isinstance(command, str):
            command = [command.encode()]
        elif isinstance(command, bytes):
            command = [command]
        buffer = b"".join(bytes(item) for item in command)
        chunks = split_resp(buffer)
        events = [
            i
            for i, c in enumerate(chunks)
            if not writes_only or _command_name(c) not in _REDIS_READS
        ]
        remaining = tripwire.remaining()
        if remaining is not None and remaining <= len(events):
            fatal = events[remaining - 1]
            sent = b"".join(chunks[:fatal]) + chunks[fatal][: len(chunks[fatal]) // 2]
            if sent:
                original(self, [sent], check_health)
            for i in events[:remaining]:
                tripwire.hit(chunks[i][:40].decode(errors="replace"))
            return  # only reached when the action does not kill or raise
        for i in events:
            tripwire.hit(chunks[i][:40].decode(errors="replace"))
        original(self, [buffer], check_health)
        if events:
            tripwire.hit("(sent)")

    AbstractConnection.send_packed_command = send_packed_command  # type: ignore[method-assign]

    def undo() -> None:
        AbstractConnection.send_packed_command = original  # type: ignore[method-assign]

    return undo
