"""JSON export and import through the Python API (``db.export_json`` / ``db.import_json``).

Runs on the reference backend (and on SQLite and the in-memory backend where they are
installed, see conftest.py): every
behaviour of the etcher-JSON convention, the byte-identical round trip, deep
nesting, and bad input that must leave the store untouched.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etcher import DB, EtcherError
from etcher._jsonio import JSONFormatError, _Obj, _parse_iterative, dumps, loads
from etcher.testing.reference import ReferenceBackend


@pytest.fixture
def db(store_url: Callable[[str], str]) -> Iterator[DB]:
    store = DB(store_url("jsonio"))
    with store:
        yield store


def roundtrip(db: DB, key: str, value: Any) -> str:
    """Store ``value``, export it, import the text elsewhere, and check byte identity."""
    db[key] = value
    text = db.export_json(key)
    db.import_json(key + "-copy", text)
    assert db.export_json(key + "-copy") == text
    return text


# --------------------------------------------------------------------------- plain JSON


def test_plain_value_exports_exactly_as_json_dumps(db: DB) -> None:
    value = {"name": "Ålice", "tags": ["a", "b"], "n": 3, "x": 1.5, "ok": True, "none": None}
    db["p"] = value
    assert db.export_json("p") == json.dumps(value, ensure_ascii=False)
    assert db.export_json("p", indent=2) == json.dumps(value, ensure_ascii=False, indent=2)


def test_plain_json_imports_as_itself(db: DB) -> None:
    doc = '{"a": [1, 2.0, {"b": null}], "c": "\\u00e9", "d": {}, "e": []}'
    db.import_json("p", doc)
    assert db["p"]() == json.loads(doc)
    assert type(db["p"]["a"][1]) is float


def test_whole_namespace_export_is_the_root_dict(db: DB) -> None:
    db["a"] = 1
    db["b"] = {"c": [2]}
    assert json.loads(db.export_json()) == {"a": 1, "b": {"c": [2]}}


def test_scalar_at_path_exports_as_a_json_scalar(db: DB) -> None:
    db["p"] = {"name": "Alice", "age": 30}
    assert db.export_json(("p", "name")) == '"Alice"'
    assert db.export_json(["p", "age"]) == "30"


def test_import_accepts_bytes_and_files(db: DB) -> None:
    db.import_json("b", b'\xef\xbb\xbf{"x": 1}')  # a UTF-8 byte order mark is tolerated
    db.import_json("f", io.StringIO('{"y": [2]}'))
    assert db["b"]() == {"x": 1}
    assert db["f"]() == {"y": [2]}


def test_import_nested_path_and_list_index(db: DB) -> None:
    db["p"] = {"tags": ["a", "b"]}
    db.import_json(("p", "tags", 1), '{"z": 1}')
    db.import_json(["p", "extra"], "[1, 2]")
    assert db["p"]() == {"tags": ["a", {"z": 1}], "extra": [1, 2]}


# --------------------------------------------------------------------------- sharing, cycles


def test_shared_dict_gets_id_then_refs(db: DB) -> None:
    shared = {"n": 1}
    text = roundtrip(db, "s", {"a": shared, "b": shared, "c": [shared]})
    assert text == '{"a": {"$id": 1, "n": 1}, "b": {"$ref": 1}, "c": [{"$ref": 1}]}'
    copy = db["s-copy"]()
    assert copy["a"] is copy["b"] is copy["c"][0]
    assert db["s-copy"]["a"].refcount == 3  # one stored node, three links


def test_shared_list_uses_an_object_wrapper(db: DB) -> None:
    shared = [1, 2]
    text = roundtrip(db, "s", [shared, shared])
    assert text == '[{"$id": 1, "$list": [1, 2]}, {"$ref": 1}]'
    copy = db["s-copy"]()
    assert copy[0] is copy[1]


def test_cycles_round_trip(db: DB) -> None:
    me: dict[str, Any] = {"name": "me"}
    me["self"] = me
    ring: list[Any] = [1]
    ring.append(ring)
    text = roundtrip(db, "c", {"me": me, "ring": ring})
    assert text == (
        '{"me": {"$id": 1, "name": "me", "self": {"$ref": 1}}, '
        '"ring": {"$id": 2, "$list": [1, {"$ref": 2}]}}'
    )
    copy = db["c-copy"]()
    assert copy["me"]["self"] is copy["me"]
    assert copy["ring"][1] is copy["ring"]
    assert db.check().ok


def test_ids_are_sequential_in_text_order_and_never_uids(db: DB) -> None:
    x, y = {"x": 1}, {"y": 2}
    text = roundtrip(db, "s", {"first": y, "second": x, "third": [x, y]})
    assert '"$id": 1, "y": 2' in text and '"$id": 2, "x": 1' in text
    assert db["s"]["first"].uid not in text


def test_empty_shared_containers(db: DB) -> None:
    d: dict[str, Any] = {}
    lst: list[Any] = []
    text = roundtrip(db, "e", [d, d, lst, lst])
    assert text == '[{"$id": 1}, {"$ref": 1}, {"$id": 2, "$list": []}, {"$ref": 2}]'
    assert roundtrip(db, "e2", {"a": d, "b": d}) == '{"a": {"$id": 1}, "b": {"$ref": 1}}'


def test_indented_export_of_shared_nodes_round_trips(db: DB) -> None:
    shared = [1, {"k": "v"}]
    db["s"] = {"a": shared, "b": shared, "c": {}}
    text = db.export_json("s", indent=2)
    db.import_json("t", text)
    assert db.export_json("t", indent=2) == text
    assert '"$list": [\n' in text


def test_whole_namespace_round_trip_replaces_the_root(db: DB) -> None:
    shared = {"n": 1}
    db["a"] = shared
    db["b"] = {"again": db["a"]}
    db["gone"] = 1
    text = db.export_json()
    db["junk"] = [1, 2, 3]
    db.import_json((), text)
    assert db.export_json() == text
    assert "junk" not in db
    assert db["b"]["again"].uid == db["a"].uid
    assert db.check().ok


def test_hand_written_string_labels_and_forward_refs(db: DB) -> None:
    doc = '{"owner": {"$ref": "alice"}, "people": [{"$id": "alice", "name": "Alice"}]}'
    db.import_json("t", doc)
    value = db["t"]()
    assert value["owner"] is value["people"][0]
    assert db.export_json("t") == (
        '{"owner": {"$id": 1, "name": "Alice"}, "people": [{"$ref": 1}]}'
    )


# --------------------------------------------------------------------------- keys and scalars


def test_int_keys_keep_their_type(db: DB) -> None:
    text = roundtrip(db, "k", {1: "int", "1": "str", -7: "neg", 0: "zero"})
    assert text == '{"$1": "int", "1": "str", "$-7": "neg", "$0": "zero"}'
    assert db["k-copy"]() == {1: "int", "1": "str", -7: "neg", 0: "zero"}


def test_dollar_keys_are_escaped_and_survive(db: DB) -> None:
    value = {"$id": 1, "$ref": 2, "$list": 3, "$": 4, "$$": 5, "$5": 6, "a$": 7}
    text = roundtrip(db, "d", value)
    assert text == ('{"$$id": 1, "$$ref": 2, "$$list": 3, "$$": 4, "$$$": 5, "$$5": 6, "a$": 7}')
    assert db["d-copy"]() == value


def test_huge_int_keys_and_values(db: DB) -> None:
    big = -(3**5000)
    text = roundtrip(db, "h", {big: big, "small": 2**1998})
    assert '{"$int": "-0x' in text
    assert db["h-copy"]() == {big: big, "small": 2**1998}
    assert json.loads(text)["small"] == 2**1998  # below the threshold: a plain JSON number


def test_non_finite_floats_and_negative_zero(db: DB) -> None:
    text = roundtrip(db, "f", [math.inf, -math.inf, math.nan, -0.0, 0.0, 1e300, 5e-324])
    assert text == (
        '[{"$float": "inf"}, {"$float": "-inf"}, {"$float": "nan"}, -0.0, 0.0, 1e+300, 5e-324]'
    )
    back = db["f-copy"]()
    assert back[0] == math.inf and back[1] == -math.inf and math.isnan(back[2])
    assert math.copysign(1.0, back[3]) == -1.0
    json.loads(text)  # strict JSON: no NaN/Infinity tokens were written


def test_lenient_nan_and_infinity_tokens_are_accepted_on_import(db: DB) -> None:
    db.import_json("f", "[NaN, Infinity, -Infinity]")
    values = db["f"]()
    assert math.isnan(values[0]) and values[1:] == [math.inf, -math.inf]


def test_bool_and_none_values_stay_exact(db: DB) -> None:
    text = roundtrip(db, "b", {"t": True, "f": False, "n": None, "one": 1, "zero": 0})
    assert text == '{"t": true, "f": false, "n": null, "one": 1, "zero": 0}'
    back = db["b-copy"]()
    assert back["t"] is True and type(back["one"]) is int


# --------------------------------------------------------------------------- depth and size


def test_ten_thousand_deep_nesting(tmp_path: Path) -> None:
    # One backend is enough here: the store side of depth is covered by the backends' own
    # tests, and this is about the JSON walk (the reference backend keeps it fast).
    with DB(backend=ReferenceBackend()) as db:
        _deep_round_trip(db)


def _deep_round_trip(db: DB) -> None:
    deep: Any = []
    node = deep
    for i in range(10_000):
        child: Any = [] if i % 2 else {}
        if isinstance(node, list):
            node.append(child)
        else:
            node["k"] = child
        node = child
    text = roundtrip(db, "deep", deep)
    assert text.count("[") + text.count("{") == 10_001


@pytest.mark.parametrize(
    "doc",
    ['{"a": [1, -2.5e3, "x\\n", true, null, {}], "b": []}', ' [ 0 , 1E2 , "\\u00e9" ] ', "-0.0"],
)
def test_the_flat_parser_agrees_with_json_loads(doc: str) -> None:
    assert _parse_iterative(doc) == json.loads(doc, object_pairs_hook=_Obj)


def test_deep_documents_parse() -> None:
    deep = "[" * 5000 + "]" * 5000
    value = loads(deep)
    for _ in range(4999):
        value = value[0]
    assert value == []


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ('{"a": 1', "invalid JSON at line 1"),
        ("[" * 3000 + "]" * 2999, "unexpected end"),
        ('{"a": 1} x', "line 1 column 10"),
        ('{"a": {"$ref": 9}}', "names no"),
        ('{"a": {"$ref": 1, "b": 2}}', "only member"),
        ('{"$schema": 1}', "'$$schema'"),
        ('{"a": {"$float": "big"}}', '"$float"'),
        ('{"a": {"$int": "12"}}', '"$int"'),
        ('{"a": 1, "a": 2}', "duplicate key 'a'"),
        ('{"$1": 1, "$1": 2}', "duplicate key 1"),
        ('[{"$id": 1}, {"$id": 1}]', "used twice"),
        ('{"$id": 1, "$id": 2}', 'two "$id"'),
        ('{"$list": [1]}', '"$list"'),
        ('{"$id": 1, "$list": [1], "x": 2}', '"$list"'),
        ('{"$id": [1]}', "must be an int or a string"),
        ('{"$ref": 1}', "top level"),
    ],
    ids=lambda v: v[:30] if isinstance(v, str) else None,
)
def test_bad_documents_raise_and_write_nothing(db: DB, doc: str, message: str) -> None:
    db["keep"] = {"old": 1}
    before = db.export_json()
    with pytest.raises(JSONFormatError, match=None) as info:
        db.import_json("keep", doc)
    assert message in str(info.value)
    assert isinstance(info.value, EtcherError) and isinstance(info.value, ValueError)
    assert db.export_json() == before


def test_unstorable_string_is_refused_before_writing(db: DB) -> None:
    db["keep"] = 1
    with pytest.raises(ValueError, match="lone surrogate"):
        db.import_json("keep", '{"a": ["\\ud800"]}')
    assert db["keep"] == 1


def test_import_into_missing_parent_or_scalar_fails_cleanly(db: DB) -> None:
    db["p"] = {"name": "x"}
    with pytest.raises(KeyError, match="no key 'nope' at /p"):
        db.import_json(("p", "nope", "x"), "1")
    with pytest.raises(TypeError, match="holds a str"):
        db.import_json(("p", "name", "x"), "1")
    assert db["p"]() == {"name": "x"}


def test_namespace_replacement_needs_an_object(db: DB) -> None:
    db["a"] = 1
    with pytest.raises(JSONFormatError, match="only a JSON object"):
        db.import_json((), "[1]")
    assert db() == {"a": 1}


def test_export_of_missing_path_names_the_step(db: DB) -> None:
    db["p"] = {"tags": ["a"]}
    with pytest.raises(KeyError, match="no key 'x' at /p"):
        db.export_json(("p", "x"))
    with pytest.raises(IndexError, match="no index 5 at /p/tags"):
        db.export_json(("p", "tags", 5))


def test_dumps_refuses_values_etcher_cannot_hold() -> None:
    with pytest.raises(TypeError, match=r"value\['a'\]\[0\] has type 'set'"):
        dumps({"a": [{1}]})
    with pytest.raises(TypeError, match="must be str or int"):
        dumps({(1, 2): 1})


# --------------------------------------------------------------------------- property


_keys = st.one_of(st.text(max_size=4), st.integers(-(2**70), 2**70))
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.sampled_from([math.inf, -math.inf, -0.0]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=6),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_keys, inner, max_size=4)),
    max_leaves=20,
)


def _share(value: Any, draw_bits: list[bool]) -> Any:
    """Make some containers appear twice, so sharing is exercised too."""
    containers: list[Any] = []
    stack = [value]
    while stack:
        obj = stack.pop()
        if isinstance(obj, dict):
            containers.append(obj)
            stack.extend(obj.values())
        elif isinstance(obj, list):
            containers.append(obj)
            stack.extend(obj)
    if draw_bits and draw_bits[0] and len(containers) > 1:
        holder = containers[-1]
        if isinstance(holder, list):
            holder.append(containers[0] if draw_bits[-1] else containers[1])
    return value


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(value=_values, bits=st.lists(st.booleans(), min_size=1, max_size=2))
def test_random_values_round_trip_byte_identically(db: DB, value: Any, bits: list[bool]) -> None:
    value = _share(value, bits)
    db["v"] = value
    text = db.export_json("v")
    db.import_json("w", text)
    assert db.export_json("w") == text
    again = loads(text)
    assert dumps(again) == text  # the pure functions agree with the store round trip


def test_root_that_links_to_itself_round_trips(db: DB) -> None:
    db["a"] = 1
    db["me"] = db._root
    text = db.export_json()
    assert text == '{"$id": 1, "a": 1, "me": {"$ref": 1}}'
    db.import_json((), text)
    assert db.export_json() == text
    assert db["me"].uid == db.uid  # the link points at the root again, not at a copy
    assert db.check().ok


_json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text()),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=15,
)


@settings(max_examples=100, deadline=None)
@given(value=_json_values, indent=st.sampled_from([None, 0, 2]))
def test_the_flat_parser_agrees_with_json_loads_on_random_documents(
    value: Any, indent: int | None
) -> None:
    text = json.dumps(value, indent=indent)
    assert _parse_iterative(text) == json.loads(text, object_pairs_hook=_Obj)
