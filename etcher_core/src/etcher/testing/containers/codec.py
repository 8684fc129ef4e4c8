"""Container conformance: every JSON-style value round-trips, the rest is refused
(:class:`CodecConformance`).
"""

from __future__ import annotations

import decimal
import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from etcher._containers import RD, RL, Node
from etcher._db import DB
from etcher.testing.containers._common import (
    ContainerFixtures,
    assert_clean,
    dump_namespace,
)
from etcher.testing.models import (
    ADVERSARIAL_STRINGS,
    BIG_INTS,
    LONE_SURROGATES,
    SPECIAL_FLOATS,
    assert_same_shape,
    json_values,
    keys,
    same_scalar,
    scalars,
    shaped_values,
)
from etcher.testing.state_machine import kit_settings

# --------------------------------------------------------------------------- codec


UNSUPPORTED_VALUES: list[Any] = [
    {1, 2},
    frozenset([1]),
    (1, 2),
    (),
    b"bytes",
    bytearray(b"x"),
    object(),
    1j,
    decimal.Decimal("1.5"),
    range(3),
    Exception("x"),
]
UNSUPPORTED_KEYS: list[Any] = [1.5, 0.0, True, False, None, (1, 2), frozenset(), b"k"]


def _value_id(value: Any) -> str:
    return type(value).__name__


class CodecConformance(ContainerFixtures):
    """Every JSON-style value and key round-trips exactly; everything else is refused cleanly."""

    def test_json_values_round_trip(self, db: DB) -> None:
        @kit_settings(60)
        @given(json_values())
        def run(value: Any) -> None:
            db["v"] = value
            got = db["v"]
            assert_same_shape(got() if isinstance(got, Node) else got, value)

        run()
        assert_clean(db)

    def test_shaped_values_round_trip(self, db: DB) -> None:
        @kit_settings(40)
        @given(shaped_values())
        def run(value: Any) -> None:
            db["v"] = value
            assert_same_shape(db["v"](), value)
            assert_same_shape(db()["v"], value)

        run()
        assert_clean(db)

    def test_keys_round_trip(self, db: DB) -> None:
        @kit_settings(40)
        @given(st.dictionaries(keys(), scalars(), max_size=8))
        def run(value: dict[Any, Any]) -> None:
            db["d"] = value
            rd = db["d"]
            assert_same_shape(rd(), value)
            for k in value:
                assert k in rd and same_scalar(rd[k], value[k])

        run()

    def test_adversarial_strings(self, db: DB) -> None:
        strings = list(ADVERSARIAL_STRINGS)
        db["values"] = strings
        db["keys"] = {s: i for i, s in enumerate(strings)}
        assert_same_shape(db["values"](), strings)
        assert_same_shape(db["keys"](), {s: i for i, s in enumerate(strings)})
        for i, s in enumerate(strings):
            assert db["keys"][s] == i and db["values"][i] == s
            db[s] = s
        for s in strings:
            assert db[s] == s and type(db[s]) is str
        assert_clean(db)

    def test_numbers(self, db: DB) -> None:
        numbers: list[Any] = [*BIG_INTS, *SPECIAL_FLOATS]
        db["n"] = numbers
        assert_same_shape(db["n"](), numbers)
        for i, n in enumerate(numbers):
            assert same_scalar(db["n"][i], n), (i, n)
        db["k"] = {n: str(n)[:20] for n in BIG_INTS}
        assert_same_shape(db["k"](), {n: str(n)[:20] for n in BIG_INTS})
        assert db["k"][2**1100 + 1] == str(2**1100 + 1)[:20]
        neg = db["n"][len(BIG_INTS) + 1]
        assert SPECIAL_FLOATS[1] == 0.0 and math.copysign(1.0, neg) == -1.0
        assert math.isnan(db["n"][-1])

    def test_int_and_str_keys_keep_their_type(self, db: DB) -> None:
        db["1"] = "str key"
        db[1] = "int key"
        assert db["1"] == "str key" and db[1] == "int key" and len(db) == 2
        assert [type(k) for k in db] == [str, int]
        db["d"] = {"1": "a", 1: "b"}
        assert db["d"]() == {"1": "a", 1: "b"} and len(db["d"]) == 2
        assert [type(k) for k in db["d"]] == [str, int]

    def test_bool_none_and_ints_stay_distinct(self, db: DB) -> None:
        values = [True, False, None, 1, 0, 1.0, 0.0, "True", "1", ""]
        db["v"] = values
        for got, want in zip(db["v"], values, strict=True):
            assert same_scalar(got, want)
        assert db["v"][0] is True and db["v"][1] is False and db["v"][2] is None

    @pytest.mark.parametrize("bad", UNSUPPORTED_VALUES, ids=_value_id)
    def test_unsupported_values_are_refused_with_nothing_written(self, db: DB, bad: Any) -> None:
        db["l"] = [0]
        db["d"] = {"k": 0}
        before = dump_namespace(db)
        materialized = db()
        rl, rd = db["l"], db["d"]
        writes: list[Callable[[], Any]] = [
            lambda: db.__setitem__("x", bad),
            lambda: db.__setitem__("x", {"a": {"b": [1, bad]}}),
            lambda: db.update({"ok": 1, "x": bad}),
            lambda: db.setdefault("x", [bad]),
            lambda: rd.__setitem__("x", bad),
            lambda: rd.update(ok=1, x={"deep": bad}),
            lambda: rl.append(bad),
            lambda: rl.extend([1, 2, bad]),
            lambda: rl.insert(0, [bad]),
            lambda: rl.__setitem__(0, bad),
            lambda: rl.__setitem__(slice(0, 1), [1, bad]),
            lambda: rl.__iadd__([bad]),
        ]
        for write in writes:
            with pytest.raises((TypeError, ValueError)) as info:
                write()
            assert type(bad).__name__ in str(info.value), str(info.value)
        with pytest.raises((TypeError, ValueError)):
            RD(db, {"a": bad})
        with pytest.raises((TypeError, ValueError)):
            RL(db, [bad])
        assert dump_namespace(db) == before, "a refused write leaves the store untouched"
        assert_same_shape(db(), materialized)
        assert_clean(db)

    @pytest.mark.parametrize("bad", UNSUPPORTED_KEYS, ids=repr)
    def test_unsupported_keys_are_refused_with_nothing_written(self, db: DB, bad: Any) -> None:
        db["d"] = {"k": 0}
        before = dump_namespace(db)
        rd = db["d"]
        writes: list[Callable[[], Any]] = [
            lambda: db.__setitem__(bad, 1),
            lambda: db.__setitem__("x", {"a": {bad: 1}}),
            lambda: db.__setitem__("x", [{"ok": 1}, {bad: 1}]),
            lambda: rd.__setitem__(bad, 1),
            lambda: rd.update({"ok": 1, bad: 2}),
            lambda: rd.setdefault(bad, 1),
        ]
        for write in writes:
            with pytest.raises((TypeError, ValueError)):
                write()
        assert dump_namespace(db) == before
        assert_clean(db)

    @pytest.mark.parametrize("text", LONE_SURROGATES, ids=ascii)
    def test_lone_surrogates_are_refused(self, db: DB, text: str) -> None:
        db["d"] = {}
        before = dump_namespace(db)
        writes: list[Callable[[], Any]] = [
            lambda: db.__setitem__("x", text),
            lambda: db.__setitem__("x", {"a": [text]}),
            lambda: db.__setitem__(text, 1),
            lambda: db.__setitem__("x", {"a": {text: 1}}),
            lambda: db["d"].update({"ok": 1, text: 2}),
            lambda: db["d"].__setitem__("v", ["ok", text]),
        ]
        for write in writes:
            with pytest.raises((TypeError, ValueError)):
                write()
        assert dump_namespace(db) == before
        assert text not in db and db.get(text) is None

    def test_errors_name_the_path(self, db: DB) -> None:
        cases: list[tuple[Any, str]] = [
            ({"a": {"b": [1, 2, {3}]}}, "['x']['a']['b'][2]"),
            ([{"ok": 1}, {"k": [b"x"]}], "['x'][1]['k'][0]"),
            ({"a": {"b": {1.5: 1}}}, "['x']['a']['b']"),
            ({"a": ["ok", "bad\ud800"]}, "['x']['a'][1]"),
        ]
        for value, path in cases:
            with pytest.raises((TypeError, ValueError)) as info:
                db["x"] = value
            assert path in str(info.value), f"{str(info.value)!r} should name {path}"
        assert "x" not in db

    def test_refused_value_inside_shared_and_cyclic_data(self, db: DB) -> None:
        loop: dict[str, Any] = {}
        loop["self"] = loop
        loop["bad"] = {1, 2}
        shared = {"s": 1}
        db["keep"] = 1
        before = dump_namespace(db)
        with pytest.raises(TypeError):
            db["x"] = {"a": shared, "b": shared, "loop": loop}
        assert dump_namespace(db) == before
        assert_clean(db)
