"""The fast paths of the hot operations keep every guarantee of the general ones.

Each test pins down a case a fast path could get wrong: a scalar assigned over
a container (its old value must still be collected, or kept when shared),
fresh nodes created with their first link in their header (sharing and cycles
inside one written value), and ``rd[key]`` decoding stored items inline.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from etcher import DB, RD, RL, StaleHandleError
from etcher.errors import EtcherValueError, StoreCorrupt


@pytest.fixture
def db(store_url: Callable[[str], str]) -> Iterator[DB]:
    # No grace period: what a write leaves unreachable is gone when it returns.
    d = DB(store_url("hot"), prefix="hot", grace=0)
    yield d
    d.close()


def namespace_keys(db: DB) -> int:
    return sum(1 for _ in db.backend.scan_iter(match=db._layout.scan))


def clean(db: DB) -> bool:
    report = db.check()
    return report.ok and not report.pinned and not report.pending


# --- a scalar assigned to a dict field -------------------------------------------------
@pytest.mark.parametrize("scalar", [5, "five", 5.5, True, None])
def test_scalar_over_a_container_collects_it(db: DB, scalar: Any) -> None:
    db["doc"] = {"x": 0}
    rd = db["doc"]
    empty = namespace_keys(db)
    rd["x"] = {"deep": {"er": [1, 2]}}
    old = rd["x"]
    assert namespace_keys(db) > empty
    rd["x"] = scalar
    assert rd["x"] == scalar
    assert namespace_keys(db) == empty  # the replaced subtree was collected at once
    with pytest.raises(StaleHandleError):
        old()
    assert clean(db)


def test_scalar_over_a_shared_container_keeps_it(db: DB) -> None:
    db["a"] = {"x": {"v": 1}}
    shared = db["a"]["x"]
    db["b"] = shared  # now linked from two parents
    db["a"]["x"] = 7
    assert shared.backrefs == {"Droot": 1}
    assert shared() == {"v": 1}
    assert db["b"]() == {"v": 1}
    assert clean(db)


def test_scalar_over_a_cycle_collects_it(db: DB) -> None:
    loop: dict[str, Any] = {"n": 1}
    loop["self"] = loop
    db["doc"] = {"x": loop}
    rd = db["doc"]
    empty_doc = namespace_keys(db)
    node = rd["x"]
    assert node["self"].uid == node.uid
    rd["x"] = 3
    # Only the cycle's own link held it: nothing but the doc node is left.
    assert namespace_keys(db) < empty_doc
    with pytest.raises(StaleHandleError):
        node()
    assert clean(db)


def test_scalar_over_a_scalar_and_a_new_key(db: DB) -> None:
    db["doc"] = {"a": 1}
    rd = db["doc"]
    rd["a"] = 2
    rd["b"] = "x"
    rd["a"] = 3
    assert list(rd.items()) == [("a", 3), ("b", "x")]  # an existing key keeps its place
    assert clean(db)


def test_scalar_with_a_lone_surrogate_is_refused_untouched(db: DB) -> None:
    db["doc"] = {"a": 1}
    rd = db["doc"]
    with pytest.raises(ValueError, match="surrogate"):
        rd["a"] = "\udc80"
    with pytest.raises(ValueError, match="surrogate"):
        rd["new"] = "\udc80"
    assert rd() == {"a": 1}
    assert clean(db)


def test_scalar_subclass_is_stored_as_its_base(db: DB) -> None:
    class Name(str):
        pass

    db["doc"] = {}
    db["doc"]["n"] = Name("ann")
    assert type(db["doc"]["n"]) is str
    assert db["doc"]["n"] == "ann"


# --- fresh nodes carry their first link -----------------------------------------------
def test_fresh_nodes_have_exact_backrefs(db: DB) -> None:
    db["doc"] = {"a": {"b": {"c": [1, {"d": 2}]}}}
    doc = db["doc"]
    assert doc.backrefs == {"Droot": 1}
    a = doc["a"]
    assert a.backrefs == {doc.uid: 1}
    c = a["b"]["c"]
    assert c.backrefs == {a["b"].uid: 1}
    assert c[1].backrefs == {c.uid: 1}
    assert not doc.pinned and not c.pinned
    assert clean(db)


def test_fresh_node_met_twice_counts_both_links(db: DB) -> None:
    sub = {"v": 1}
    db["doc"] = {"x": sub, "y": sub, "z": [sub, sub]}
    doc = db["doc"]
    assert doc["x"].uid == doc["y"].uid == doc["z"][0].uid
    assert doc["x"].backrefs == {doc.uid: 2, doc["z"].uid: 2}
    del doc["x"]
    assert doc["y"].backrefs == {doc.uid: 1, doc["z"].uid: 2}
    assert clean(db)


def test_fresh_cycle_counts_its_own_link(db: DB) -> None:
    loop: dict[str, Any] = {}
    loop["me"] = loop
    db["c"] = loop
    node = db["c"]
    assert node.backrefs == {"Droot": 1, node.uid: 1}
    before = namespace_keys(db)
    del db["c"]
    assert namespace_keys(db) < before
    with pytest.raises(StaleHandleError):
        node()
    assert clean(db)


def test_pinned_handle_linked_into_a_fresh_node_loses_its_pin(db: DB) -> None:
    made = RD(db, {"k": 1})
    assert made.pinned
    db["doc"] = {"inner": {"made": made}}
    assert not made.pinned
    assert made.backrefs == {db["doc"]["inner"].uid: 1}
    del made
    assert clean(db)


# --- rd[key] decoding inline -----------------------------------------------------------
def test_getitem_returns_every_kind_of_value(db: DB) -> None:
    db["doc"] = {"s": "é", "i": 3, "f": 1.5, "t": True, "n": None, "d": {}, "l": [], 4: "four"}
    doc = db["doc"]
    assert doc["s"] == "é" and doc["i"] == 3 and doc["f"] == 1.5
    assert doc["t"] is True and doc["n"] is None
    assert type(doc["d"]) is RD and type(doc["l"]) is RL
    assert doc["d"].db is db and doc["l"].uid.startswith("L")
    assert doc[4] == doc[4.0] == "four"
    with pytest.raises(KeyError):
        doc["\udc80"]  # a lone surrogate can never be stored, so it is never found
    with pytest.raises(KeyError):
        doc["missing"]


def test_getitem_on_a_stale_handle_raises(db: DB) -> None:
    db["doc"] = {"x": {"y": 1}}
    inner = db["doc"]["x"]
    del db["doc"]
    with pytest.raises(StaleHandleError):
        inner["y"]


@pytest.mark.parametrize("item", [b"0|s\xff", b"0|@", b"0|@D", b"0|@X1", b"0|@\xff", b"|sa", b"0|"])
def test_getitem_of_a_corrupt_item_raises_store_corrupt(db: DB, item: bytes) -> None:
    db["doc"] = {"x": "ok"}
    doc = db["doc"]
    db.backend.hset(db._layout.content(doc.uid), b"sx", item)
    with pytest.raises(StoreCorrupt):
        doc["x"]


# --- list append and counters ----------------------------------------------------------
def test_append_scalars_and_containers(db: DB) -> None:
    db["lst"] = []
    lst = db["lst"]
    for value in (1, "two", 3.0, False, None):
        lst.append(value)
    lst.append({"k": [1]})
    with pytest.raises(ValueError, match="surrogate"):
        lst.append("\udc80")
    assert lst() == [1, "two", 3.0, False, None, {"k": [1]}]
    assert lst[5].backrefs == {lst.uid: 1}
    assert clean(db)


def test_counter_names_ascii_and_not(db: DB) -> None:
    assert db.incr("plain") == 1
    assert db.incr("zäh", 5) == 5
    assert db.count("zäh") == 5
    with pytest.raises(EtcherValueError, match="lone surrogate"):
        db.incr("\udc80")
    with pytest.raises(TypeError):
        db.incr(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        db.incr("plain", True)
    assert db.count("plain") == 1
    db.close()
    with pytest.raises(Exception, match="closed"):
        db.incr("plain")


# --- materialize and item values decoded in one pass -----------------------------------
def typed(value: Any) -> Any:
    """``value`` with every scalar spelled with its exact type (``-0.0``, ``nan`` included)."""
    if isinstance(value, dict):
        return ("dict", [(typed(k), typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [typed(v) for v in value])
    return (type(value).__name__, repr(value))


def test_materialize_keeps_every_exact_type_and_the_order(db: DB) -> None:
    doc: dict[Any, Any] = {
        "1": "str key",
        1: "int key",
        -(2**1500): "huge int key",
        "": "",
        "s": "é☃",
        "i": -7,
        "big": 2**2000,
        "f": -0.0,
        "inf": float("inf"),
        "nan": float("nan"),
        "t": True,
        "F": False,
        "n": None,
        "l": [1, "1", 1.0, True, False, None, -(2**3000), "", [], {}, "@Dnot-a-link"],
        "d": {"@": "@L1", 0: {"x": [0.5]}},
    }
    db["doc"] = doc
    handle: Any = db["doc"]
    # Overwritten keys keep their place; a deleted and re-added key moves to the end.
    handle["s"] = "again"
    del handle["i"]
    handle["i"] = 8
    doc["s"] = "again"
    del doc["i"]
    doc["i"] = 8
    assert typed(handle()) == typed(doc)
    assert typed(db()["doc"]) == typed(doc)


def test_fill_reorders_items_a_store_hands_out_of_insertion_order() -> None:
    from etcher._materialize import fill

    objects: dict[str, Any] = {}
    created: list[str] = []
    target: dict[Any, Any] = {}
    content = {b"sb": b"2|i2", b"i7": b"0|sa", b"sa": b"1|@Lc1", b"x10": b"3|N"}
    fill(target, "Dx", content, objects, created)
    assert list(target.items()) == [(7, "a"), ("a", []), ("b", 2), (16, None)]
    assert created == ["Lc1"] and target["a"] is objects["Lc1"]
    # Two items with one sequence number (never written by etcher) keep the reference order.
    target = {}
    fill(target, "Dy", {b"sb": b"0|i2", b"sa": b"0|i1"}, {}, [])
    assert list(target.items()) == [("a", 1), ("b", 2)]


CORRUPT_DICT_ITEMS = [b"0|s\xff", b"0|@", b"0|@D", b"0|@X1", b"0|@\xff", b"|sa", b"0|",
                      b"0|iabc", b"0|i", b"0|q", b"0|x", b"0|fnope", b"a|i1"]  # fmt: skip
CORRUPT_LIST_ITEMS = [b"s\xff", b"@", b"@D", b"@X1", b"@\xff", b"", b"iabc", b"i", b"q"]


@pytest.mark.parametrize("item", CORRUPT_DICT_ITEMS)
def test_materialize_of_a_corrupt_dict_item_raises_store_corrupt(db: DB, item: bytes) -> None:
    db["doc"] = {"inner": {"x": "ok", "y": 1}}
    inner: Any = db["doc"]["inner"]
    db.backend.hset(db._layout.content(inner.uid), b"sx", item)
    with pytest.raises(StoreCorrupt):
        db["doc"]()
    with pytest.raises(StoreCorrupt):
        inner.copy()


@pytest.mark.parametrize("field", [b"", b"q1", b"s\xff", b"iabc", b"x"])
def test_materialize_of_a_corrupt_dict_key_raises_store_corrupt(db: DB, field: bytes) -> None:
    db["doc"] = {"inner": {"x": "ok"}}
    inner: Any = db["doc"]["inner"]
    db.backend.hset(db._layout.content(inner.uid), field, b"5|i1")
    with pytest.raises(StoreCorrupt):
        db["doc"]()


@pytest.mark.parametrize("item", CORRUPT_LIST_ITEMS)
def test_materialize_of_a_corrupt_list_item_raises_store_corrupt(db: DB, item: bytes) -> None:
    db["doc"] = {"inner": ["ok", 1]}
    inner: Any = db["doc"]["inner"]
    db.backend.rpush(db._layout.content(inner.uid), item)
    with pytest.raises(StoreCorrupt):
        db["doc"]()
    with pytest.raises(StoreCorrupt):
        list(inner)


@pytest.mark.parametrize(
    "content",
    [
        {b"sb": b"2|i2", b"i7": b"0|sa", b"sa": b"1|@Lc1", b"x10": b"3|N"},  # out of order
        {b"sa": b"0|i1", b"sb": b"1|i2"},  # in order
        {b"sb": b"0|i2", b"sa": b"0|i1", b"sc": b"0|i1"},  # corrupt: one sequence number
    ],
)
def test_decoded_items_follow_the_reference_order(content: dict[bytes, bytes]) -> None:
    from etcher._codec import decode_key, decoded_items, split_item

    rows = sorted((*split_item(raw), field) for field, raw in content.items())
    assert decoded_items(content) == [(decode_key(field), value) for _s, value, field in rows]
    assert decoded_items(content) == decoded_items(content)  # the key cache changes nothing


def test_the_key_cache_keeps_short_keys_only_and_stays_bounded(db: DB) -> None:
    from etcher import _codec

    long_key = "k" * 1000
    wide = {f"w{i}": i for i in range(_codec.CACHE_LIMIT + 10)}
    db["doc"] = {long_key: 1, "inner": wide}
    doc: Any = db["doc"]
    assert doc() == {long_key: 1, "inner": wide}
    assert 0 < len(_codec.KEYS) <= _codec.CACHE_LIMIT
    assert len(_codec.SEQS) <= _codec.CACHE_LIMIT
    assert list(doc) == [long_key, "inner"]
    assert b"s" + long_key.encode() not in _codec.KEYS
    assert b"sinner" in _codec.KEYS
