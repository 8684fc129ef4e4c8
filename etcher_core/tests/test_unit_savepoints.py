"""Unit savepoints: rolling back an operation's buffered writes restores exactly the state
before it, for every kind of write, whatever was read in between.

Two units run the same random operations on two copies of one store; one of them
wraps every group in a savepoint and rolls some groups back, the other simply never
runs those groups. Every read and the committed result must be the same.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from etcher._unit import Unit
from etcher.testing.reference import ReferenceBackend

HASHES = ["h1", "h2"]
LISTS = ["l1", "l2"]
STRINGS = ["s1"]
FIELDS = [b"a", b"b", b"c"]
VALUES = [b"1", b"2", b"3"]

field_op = st.tuples(
    st.sampled_from(["hset", "hdel", "hset_many", "create_hash", "drop_hash"]),
    st.sampled_from(HASHES),
    st.sampled_from(FIELDS),
    st.sampled_from(VALUES),
)
list_op = st.tuples(
    st.sampled_from(["rpush", "lpush", "lpop", "rpop", "lset", "ltrim", "delete", "create_list"]),
    st.sampled_from(LISTS),
    st.sampled_from(FIELDS),
    st.sampled_from(VALUES),
)
string_op = st.tuples(st.just("set"), st.sampled_from(STRINGS), st.none(), st.sampled_from(VALUES))
read_op = st.tuples(
    st.sampled_from(["hget", "hgetall", "hlen", "lrange", "llen", "lindex", "get"]),
    st.sampled_from(HASHES + LISTS + STRINGS),
    st.sampled_from(FIELDS),
    st.none(),
)
any_op = st.one_of(field_op, list_op, string_op, read_op)
groups = st.lists(st.tuples(st.booleans(), st.lists(any_op, max_size=6)), max_size=8)


def seed(backend: Any) -> None:
    backend.hset("h1", mapping={b"a": b"0", b"b": b"0"})
    backend.rpush("l1", b"x", b"y", b"z")
    backend.set("s1", b"0")


def run(unit: Unit, op: tuple[Any, ...], fresh: str) -> Any:
    """Apply ``op``; ``create_*`` (which etcher uses for new nodes only) makes key ``fresh``."""
    name, key, field, value = op
    if name.startswith("create_"):
        key = fresh
    kinds = {"h": HASHES, "l": LISTS, "s": STRINGS}
    if name in ("hget", "hgetall", "hlen") and key not in kinds["h"]:
        return None
    if name in ("lrange", "llen", "lindex") and key not in kinds["l"]:
        return None
    if name == "get" and key not in kinds["s"]:
        return None
    if name == "hget":
        return unit.hget(key, field)
    if name == "hgetall":
        return unit.hgetall(key)
    if name == "hlen":
        return unit.hlen(key)
    if name == "lrange":
        return unit.lrange(key, 0, -1)
    if name == "llen":
        return unit.llen(key)
    if name == "lindex":
        return unit.lindex(key, 1)
    if name == "get":
        return unit.get(key)
    if name == "hset":
        unit.hset(key, field, value)
    elif name == "hdel":
        unit.hdel(key, field)
    elif name == "hset_many":
        unit.hset_many(key, {field: value, b"c": value})
    elif name == "create_hash":
        unit.create_hash(key, {field: value})
    elif name == "drop_hash":
        unit.drop_hash(key)
    elif name == "create_list":
        unit.create_list(key, [value, value])
    elif name == "set":
        unit.set(key, value if value != b"3" else None)
    elif name in ("rpush", "lpush"):
        unit.list_op(key, name, value)
    elif name == "lset":
        if unit.llen(key) > 0:
            unit.list_op(key, "lset", 0, value)
    elif name == "ltrim":
        unit.list_op(key, "ltrim", 1, -1)
    else:
        unit.list_op(key, name)
    return None


def state(backend: Any, fresh: list[str]) -> dict[str, Any]:
    return {
        **{k: backend.hgetall(k) for k in HASHES + [f for f in fresh if f[0] == "H"]},
        **{k: backend.lrange(k, 0, -1) for k in LISTS + [f for f in fresh if f[0] == "L"]},
        **{k: backend.get(k) for k in STRINGS},
    }


def observe(unit: Unit, fresh: list[str]) -> dict[str, Any]:
    return {
        **{k: unit.hgetall(k) for k in HASHES + [f for f in fresh if f[0] == "H"]},
        **{k: list(unit.lrange(k, 0, -1)) for k in LISTS + [f for f in fresh if f[0] == "L"]},
        **{k: unit.get(k) for k in STRINGS},
    }


@settings(max_examples=300, deadline=None)
@given(groups=groups, peek=st.booleans())
def test_rollback_restores_exactly_the_state_before(
    groups: list[tuple[bool, list[tuple[Any, ...]]]], peek: bool
) -> None:
    with_sp = ReferenceBackend()
    plain = ReferenceBackend()
    seed(with_sp)
    seed(plain)
    a, b = Unit(with_sp), Unit(plain)
    after_commit: list[str] = []
    fresh: list[str] = []
    for g, (keep, ops) in enumerate(groups):
        a.savepoint()
        a.after_commit.append(lambda: after_commit.append("x"))
        for j, op in enumerate(ops):
            name = ("H" if op[0] == "create_hash" else "L") + f"{g}.{j}"
            if op[0].startswith("create_"):
                fresh.append(name)
            got = run(a, op, name)
            if keep:
                assert got == run(b, op, name)
        if keep:
            a.release()
            b.after_commit.append(lambda: None)
        else:
            a.rollback()
        if peek:
            assert observe(a, fresh) == observe(b, fresh), "reads after the group"
    assert len(a.after_commit) == len(b.after_commit)
    a.commit()
    b.commit()
    assert state(with_sp, fresh) == state(plain, fresh)


def test_savepoints_nest() -> None:
    backend = ReferenceBackend()
    seed(backend)
    u = Unit(backend)
    u.savepoint()
    u.hset("h1", b"a", b"outer")
    u.savepoint()
    u.hset("h1", b"a", b"inner")
    u.list_op("l1", "rpush", b"inner")
    u.rollback()
    assert u.hget("h1", b"a") == b"outer" and u.lrange("l1", 0, -1) == [b"x", b"y", b"z"]
    u.release()
    u.commit()
    assert backend.hget("h1", b"a") == b"outer" and backend.llen("l1") == 3


def test_a_hash_read_whole_after_an_undone_write_is_read_again() -> None:
    backend = ReferenceBackend()
    seed(backend)
    u = Unit(backend)
    u.savepoint()
    u.hset("h1", b"a", b"new")
    assert u.hgetall("h1") == {b"a": b"new", b"b": b"0"}
    u.rollback()
    assert u.hgetall("h1") == {b"a": b"0", b"b": b"0"}
    u.savepoint()
    u.list_op("l1", "rpush", b"w")
    assert u.lrange("l1", 0, -1) == [b"x", b"y", b"z", b"w"]
    u.rollback()
    assert u.lrange("l1", 0, -1) == [b"x", b"y", b"z"] and not u.has_writes
