"""Long lists on Redis: checked in slices by the commit, left to the client by the unlinking read.

A list read whole is checked by the commit script. Item by item, a list of a
million items cost the script two million Lua strings and grew x6 in time per
x4 in length; at ``scripting.SLICE`` items or more the check goes as joined
slices instead. These tests pin when each form is used and that the sliced form
refuses every change to the list, including ones that move the separator into
an item. The unlinking read no longer scans a list longer than
``subtree.LONG_LIST`` (the client reads it with one ``LRANGE``); deleting a
document that holds one still collects everything below it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from etcher import DB
from etcher_redis import scripting, subtree
from etcher_redis.backend import RedisBackend

pytestmark = pytest.mark.redis

N = scripting.SLICE * 2 + 17  # three slices, the last one short


def _items(n: int = N) -> list[bytes]:
    return [b"i%d" % i for i in range(n)]


def _check(items: list[bytes], key: str = "t:list") -> list[Any]:
    return [("lrange", (key, 0, -1), tuple(items))]


def test_a_whole_long_list_read_is_checked_in_slices() -> None:
    keys, argv = scripting.encode(_check(_items()), [])
    assert keys == ["t:list"]
    assert argv[:6] == [1, "lslices", 1, N, scripting.SLICE, 3]
    assert len(argv) == 6 + 3 + 1  # the three joined slices, then the write count
    assert argv[6] == b"\xff".join(_items()[: scripting.SLICE])


@pytest.mark.parametrize(
    "items, start, end",
    [
        (_items(scripting.SLICE - 1), 0, -1),  # short: item by item
        (_items(), 5, -1),  # not the whole list
        (_items()[:-1] + [b"s\xff"], 0, -1),  # an item holds the separator
    ],
    ids=["short", "part", "separator"],
)
def test_other_list_reads_are_checked_item_by_item(
    items: list[bytes], start: int, end: int
) -> None:
    _, argv = scripting.encode([("lrange", ("t:list", start, end), tuple(items))], [])
    assert argv[1] == "lrange"
    assert argv[2:6] == [1, start, end, len(items)]
    assert list(argv[6 : 6 + len(items)]) == items


def _lset(at: int, value: bytes) -> Callable[[RedisBackend], None]:
    return lambda b: b.execute_command("LSET", "t:list", at, value)


CHANGES: dict[str, Callable[[RedisBackend], None]] = {
    "item in the middle slice": _lset(scripting.SLICE + 5, b"i-1"),
    "first item": _lset(0, b"s0"),
    "last item": _lset(N - 1, b"x"),
    "appended": lambda b: b.execute_command("RPUSH", "t:list", b"i0"),
    "popped": lambda b: b.execute_command("RPOP", "t:list"),
    "popped and pushed": lambda b: (
        b.execute_command("LPOP", "t:list"),
        b.execute_command("RPUSH", "t:list", b"i0"),
    ),
    # Two items joined by the separator, and an empty one: as many items, and the
    # same bytes but for one separator more inside an item.
    "separator moved into an item": lambda b: (
        b.execute_command("LSET", "t:list", 0, b"i0\xffi1"),
        b.execute_command("LSET", "t:list", 1, b""),
    ),
    "deleted": lambda b: b.execute_command("DEL", "t:list"),
    "another type": lambda b: (
        b.execute_command("DEL", "t:list"),
        b.execute_command("SET", "t:list", b"x"),
    ),
}


@pytest.mark.parametrize("change", [None, *CHANGES])
def test_the_sliced_check_applies_only_over_the_list_it_read(
    backend: RedisBackend, change: str | None
) -> None:
    backend.execute_command("DEL", "t:list", "t:out")
    items = _items()
    for start in range(0, N, 5000):
        backend.execute_command("RPUSH", "t:list", *items[start : start + 5000])
    if change is not None:
        CHANGES[change](backend)
    applied = backend.checked_commit(_check(items), [("hset", ("t:out", b"f", b"v"))])
    assert applied is (change is None)
    stored = backend.execute_command("HGET", "t:out", "f")
    assert stored == (b"v" if change is None else None)  # refused: nothing written
    backend.execute_command("DEL", "t:list", "t:out")


def test_the_unlinking_read_leaves_a_long_list_to_the_client(backend: RedisBackend) -> None:
    db = DB(backend=backend, prefix="longlist-read", grace=0)
    try:
        db["x"] = {"short": [1, {"a": 1}], "long": list(range(subtree.LONG_LIST + 1))}
        layout = db["x"]
        x = layout.uid
        short, long_ = db["x"]["short"].uid, db["x"]["long"].uid
        content_prefix = "{longlist-read}:c:"
        refs_prefix = "{longlist-read}:r:"
        _, _, _, contents = backend.read_unlinked(
            content_prefix, refs_prefix, "Droot", b"sx", (), 100
        )
        assert x in contents and short in contents
        assert long_ not in contents
    finally:
        db.close()


@pytest.mark.parametrize("grace", [0, 60])
def test_deleting_a_document_with_a_long_list_collects_all_of_it(
    backend: RedisBackend, grace: float
) -> None:
    prefix = f"longlist-del-{grace}"
    db = DB(backend=backend, prefix=prefix, grace=grace)
    try:
        n = subtree.LONG_LIST + 500
        # Links at the start, inside and at the end of the long list, each to a subtree.
        value = [{"at": i, "sub": [i]} if i in (0, n // 2, n - 1) else i for i in range(n)]
        db["keep"] = {"k": 1}
        db["x"] = {"long": value, "other": {"o": [1, 2]}}
        before = len(list(backend.scan_iter(match="{" + prefix + "}:r:*")))
        assert before == 1 + 1 + 1 + 1 + 2 + 3 * 2  # root, keep, x, long, other+list, 3x2
        del db["x"]
        report = db.check()
        assert report.ok, report
        nodes = set(backend.scan_iter(match="{" + prefix + "}:r:*"))
        if grace == 0:
            assert nodes == {f"{{{prefix}}}:r:Droot".encode(), _refs(db, prefix, "keep")}
        else:
            pending = backend.execute_command("HLEN", "{" + prefix + "}:g")
            assert pending == before - 2  # every node below x, and x itself
        assert db() == {"keep": {"k": 1}}
    finally:
        db.close()


def _refs(db: DB, prefix: str, key: str) -> bytes:
    return f"{{{prefix}}}:r:{db[key].uid}".encode()


def test_the_unlinking_commit_refuses_a_long_list_without_reading_it(
    backend: RedisBackend,
) -> None:
    """Over the unlink plan's item budget a node is refused by its length: its items
    never become Lua strings (for a 1M list that was ~300 ms per delete)."""
    prefix = "longlist-refused"
    db = DB(backend=backend, prefix=prefix, grace=0)
    try:
        db["x"] = list(range(subtree.LONG_LIST + 1))
        key = f"{{{prefix}}}:c:{db['x'].uid}".encode()
        backend.execute_command("CONFIG", "SET", "slowlog-log-slower-than", 0)
        backend.execute_command("SLOWLOG", "RESET")
        try:
            del db["x"]
            log = backend.execute_command("SLOWLOG", "GET", -1)
        finally:
            backend.execute_command("CONFIG", "SET", "slowlog-log-slower-than", 10_000)
        whole = [entry for entry in log if list(entry[3][:4]) == [b"LRANGE", key, b"0", b"-1"]]
        assert len(whole) == 1, "only the client's own read takes the whole list"
        assert db() == {}
        assert db.check().ok
    finally:
        db.close()
