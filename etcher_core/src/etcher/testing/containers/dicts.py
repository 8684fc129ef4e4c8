"""Container conformance: ``RD`` behaves like ``dict`` (:class:`DictConformance`)."""

from __future__ import annotations

import copy
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
    assert_same_outcome,
    dump_namespace,
    is_pinned,
    raises_like,
    uids_in_store,
)
from etcher.testing.models import (
    assert_same_shape,
    json_values,
    scalars,
)
from etcher.testing.state_machine import kit_settings

# --------------------------------------------------------------------------- dicts


class DictConformance(ContainerFixtures):
    """RD behaves exactly like ``dict``: every method, operator, error and the insertion order."""

    @pytest.fixture
    def dict_pair(self, db: DB) -> tuple[dict[Any, Any], RD]:
        """A plain dict and an RD holding the same items."""
        plain = {"a": 1, "b": [1, 2], "c": {"x": None}, 1: "int one", "1": "str one"}
        db["d"] = plain
        return copy.deepcopy(plain), db["d"]

    def test_getitem_and_missing_key(self, dict_pair: tuple[dict[Any, Any], RD]) -> None:
        plain, rd = dict_pair
        # True and 1.0 find the int key 1, as in a plain dict; [] is unhashable (TypeError).
        for key in ["a", 1, "1", "missing", 2, "A", "", True, 1.0, 2.0, 1.5, None, ()]:
            assert_same_outcome(lambda d, k=key: d[k], plain, rd, f"d[{key!r}]")
            assert (key in rd) == (key in plain), key
        assert_same_outcome(lambda d: d[[1]], plain, rd, "d[[1]]")
        assert_same_outcome(lambda d: d.pop(True), plain, rd, "pop(True)")
        with pytest.raises(KeyError) as info:
            rd["missing"]
        assert info.value.args == ("missing",)

    def test_get_with_and_without_default(self, dict_pair: tuple[dict[Any, Any], RD]) -> None:
        plain, rd = dict_pair
        for key in ["a", "b", "missing", 1]:
            assert_same_outcome(lambda d, k=key: d.get(k), plain, rd, f"get({key!r})")
            assert_same_outcome(lambda d, k=key: d.get(k, "dflt"), plain, rd, f"get({key!r}, d)")
        # Keys etcher can never store are simply absent, never an error on lookup.
        assert rd.get(1.5) is None and rd.get(None, 7) == 7
        assert 1.5 not in rd and None not in rd
        with pytest.raises(KeyError):
            rd[1.5]

    def test_setitem_adds_and_overwrites(self, dict_pair: tuple[dict[Any, Any], RD]) -> None:
        plain, rd = dict_pair
        for key, value in [("new", 5), ("a", "over"), ("b", {"now": "dict"}), (7, [7])]:
            assert_same_outcome(lambda d, k=key, v=value: d.__setitem__(k, v), plain, rd)
        assert list(rd) == list(plain)

    def test_delitem(self, dict_pair: tuple[dict[Any, Any], RD]) -> None:
        plain, rd = dict_pair
        for key in ["a", "c", "missing", 1]:
            assert_same_outcome(lambda d, k=key: d.__delitem__(k), plain, rd, f"del d[{key!r}]")
        with pytest.raises(KeyError):
            del rd[1.5]

    def test_setdefault(self, dict_pair: tuple[dict[Any, Any], RD]) -> None:
        plain, rd = dict_pair
        assert_same_outcome(lambda d: d.setdefault("a", 99), plain, rd, "setdefault existing")
        assert_same_outcome(lambda d: d.setdefault("new"), plain, rd, "setdefault no default")
        assert_same_outcome(lambda d: d.setdefault("n2", 3), plain, rd, "setdefault scalar")
        got = rd.setdefault("nested", {"k": [1]})
        plain.setdefault("nested", {"k": [1]})
        assert isinstance(got, RD) and got() == {"k": [1]}
        assert got.backrefs == {rd.uid: 1}, "the stored default is linked under its key"
        assert rd.setdefault("nested", {"other": 1}).uid == got.uid
        assert_same_shape(rd(), plain)

    def test_pop(self, dict_pair: tuple[dict[Any, Any], RD]) -> None:
        plain, rd = dict_pair
        assert_same_outcome(lambda d: d.pop("a"), plain, rd, "pop present")
        assert_same_outcome(lambda d: d.pop("a"), plain, rd, "pop missing")
        assert_same_outcome(lambda d: d.pop("a", "dflt"), plain, rd, "pop missing default")
        assert_same_outcome(lambda d: d.pop(1, None), plain, rd, "pop present default")
        assert_same_outcome(lambda d: d.pop("b"), plain, rd, "pop list node")
        with pytest.raises(KeyError) as info:
            rd.pop("gone")
        assert info.value.args == ("gone",)
        assert rd.pop(1.5, "unstorable key") == "unstorable key"

    def test_popitem_is_lifo_by_insertion(self, db: DB) -> None:
        plain: dict[Any, Any] = {}
        db["d"] = {}
        rd = db["d"]
        steps: list[Callable[..., Any]] = [
            lambda d: d.update(a=1, b=2, c=3),
            lambda d: d.__setitem__("a", "overwritten keeps its place"),
            lambda d: d.__delitem__("b"),
            lambda d: d.__setitem__("b", "re-added goes last"),
            lambda d: d.__setitem__(0, "zero"),
        ]
        for step in steps:
            assert_same_outcome(step, plain, rd)
        for _ in range(len(plain)):
            assert_same_outcome(lambda d: d.popitem(), plain, rd, "popitem")
        assert_same_outcome(lambda d: d.popitem(), plain, rd, "popitem on empty")
        with pytest.raises(KeyError):
            rd.popitem()

    def test_update_argument_forms(self, dict_pair: tuple[dict[Any, Any], RD], db: DB) -> None:
        plain, rd = dict_pair

        class KeysAndGetitem:
            def keys(self) -> list[str]:
                return ["k1", "a"]

            def __getitem__(self, key: str) -> str:
                return key.upper()

        db["other"] = {"o": 1, "a": "from RD"}
        forms: list[tuple[str, Callable[..., Any]]] = [
            ("mapping", lambda d: d.update({"a": 10, "z": [0]})),
            ("pairs", lambda d: d.update([("p", 1), ("a", 11)])),
            ("generator", lambda d: d.update((k, k * 2) for k in ["g", "a"])),
            ("kwargs", lambda d: d.update(kw=1, a=12)),
            ("mapping+kwargs", lambda d: d.update({"m": 1}, m=2)),
            ("keys()", lambda d: d.update(KeysAndGetitem())),
            ("empty", lambda d: d.update()),
            ("empty mapping", lambda d: d.update({})),
            ("pair strings", lambda d: d.update(["xy"])),
        ]
        for name, form in forms:
            assert_same_outcome(form, plain, rd, f"update({name})")
        rd.update(db["other"])
        plain.update({"o": 1, "a": "from RD"})
        assert_same_shape(rd(), plain)

    def test_update_with_wrong_pair_length_raises_value_error(
        self, dict_pair: tuple[dict[Any, Any], RD], db: DB
    ) -> None:
        plain, rd = dict_pair
        before = dump_namespace(db)
        for bad in ([("a", 1, 2)], ["abc"], [("ok", 1), ("x",)]):
            with pytest.raises(ValueError):
                rd.update(bad)
            # dict.update raises the same error, but after applying the good pairs; an RD
            # update is atomic, so it writes nothing at all.
            assert raises_like(lambda b=bad: dict(plain).update(b)) is ValueError
        assert dump_namespace(db) == before
        assert_same_shape(rd(), plain)

    def test_update_with_non_sequence_element_raises_type_error(
        self, dict_pair: tuple[dict[Any, Any], RD]
    ) -> None:
        plain, rd = dict_pair
        assert_same_outcome(lambda d: d.update([1]), plain, rd, "update([1])")

    def test_update_with_non_iterable_raises_type_error(
        self, dict_pair: tuple[dict[Any, Any], RD]
    ) -> None:
        plain, rd = dict_pair
        for bad in (None, 5):
            assert_same_outcome(lambda d, b=bad: d.update(b), plain, rd, f"update({bad!r})")

    def test_clear(self, dict_pair: tuple[dict[Any, Any], RD], db: DB) -> None:
        plain, rd = dict_pair
        assert_same_outcome(lambda d: d.clear(), plain, rd, "clear")
        assert len(rd) == 0 and not rd
        assert uids_in_store(db) == {db.uid, rd.uid}, "cleared children were collected"
        assert_same_outcome(lambda d: d.clear(), plain, rd, "clear empty")

    def test_copy_is_a_shallow_plain_dict(self, dict_pair: tuple[dict[Any, Any], RD]) -> None:
        plain, rd = dict_pair
        shallow = rd.copy()
        assert type(shallow) is dict
        assert list(shallow) == list(plain)
        assert isinstance(shallow["b"], RL) and shallow["b"].uid == rd["b"].uid
        shallow["a"] = "changed only in the copy"
        assert rd["a"] == 1
        assert copy.copy(rd) == shallow | {"a": 1}

    def test_keys_values_items(self, dict_pair: tuple[dict[Any, Any], RD]) -> None:
        plain, rd = dict_pair
        assert list(rd.keys()) == list(plain.keys())
        assert [type(k) for k in rd.keys()] == [type(k) for k in plain]
        assert_same_shape(
            [v() if isinstance(v, Node) else v for v in rd.values()], list(plain.values())
        )
        items = [(k, v() if isinstance(v, Node) else v) for k, v in rd.items()]
        assert items == list(plain.items())
        assert len(rd.keys()) == len(rd.values()) == len(rd.items()) == len(plain)
        assert "a" in rd.keys() and "zz" not in rd.keys()
        assert 1 in rd.values() and [1, 2] in rd.values() and "nope" not in rd.values()
        assert ("a", 1) in rd.items() and ("a", 2) not in rd.items()
        assert rd.keys() == plain.keys()
        assert rd.keys() & {"a", "zz"} == {"a"}
        assert rd.keys() | {"zz"} == set(plain) | {"zz"}
        assert rd.keys() - {"a"} == set(plain) - {"a"}
        assert rd.items() & {("a", 1), (1, "int one")} == {("a", 1), (1, "int one")}
        assert rd.keys().isdisjoint({"q"})

    def test_len_iter_contains_bool(self, dict_pair: tuple[dict[Any, Any], RD], db: DB) -> None:
        plain, rd = dict_pair
        assert len(rd) == len(plain)
        assert list(iter(rd)) == list(plain)
        assert list(reversed(rd)) == list(reversed(plain))
        for key in ["a", 1, "1", "zz", 0, "", -1]:
            assert (key in rd) == (key in plain), key
        assert bool(rd) is True
        db["empty"] = {}
        assert bool(db["empty"]) is False and len(db["empty"]) == 0
        assert list(db["empty"]) == [] and list(reversed(db["empty"])) == []

    def test_views_are_reversible(self, dict_pair: tuple[dict[Any, Any], RD]) -> None:
        plain, rd = dict_pair
        views: Any = rd  # typed as the abstract views, which do not declare __reversed__
        assert list(reversed(views.keys())) == list(reversed(plain.keys()))
        assert [k for k, _ in reversed(views.items())] == list(reversed(plain))
        assert len(list(reversed(views.values()))) == len(plain)

    def test_or_operators(self, dict_pair: tuple[dict[Any, Any], RD], db: DB) -> None:
        plain, rd = dict_pair
        merged = rd | {"a": "new", "q": 1}
        assert type(merged) is dict
        assert list(merged) == list(plain | {"a": "new", "q": 1})
        assert merged["a"] == "new" and merged["q"] == 1
        left = {"q": 1, "a": "old"} | rd
        assert type(left) is dict and list(left) == list({"q": 1, "a": "old"} | plain)
        assert left["a"] == 1
        assert_same_shape(rd(), plain)  # | never writes
        same = rd
        rd |= {"a": 2, "w": [3]}
        plain |= {"a": 2, "w": [3]}
        assert rd is same
        assert_same_shape(rd(), plain)
        rd |= [("pairs", "too")]
        plain |= [("pairs", "too")]
        assert_same_shape(rd(), plain)
        for bad in (5, [1, 2]):
            with pytest.raises(TypeError):
                rd | bad
            assert raises_like(lambda b=bad: plain | b) is TypeError

    def test_equality(self, dict_pair: tuple[dict[Any, Any], RD], db: DB) -> None:
        plain, rd = dict_pair
        assert rd == plain and plain == rd
        assert not (rd != plain)
        assert rd == dict(reversed(list(plain.items()))), "dict equality ignores order"
        assert rd != {**plain, "a": 2}
        assert rd != {k: v for k, v in plain.items() if k != "a"}
        assert rd != [1] and rd != "a" and rd != 1 and rd is not None
        db["twin"] = copy.deepcopy(plain)
        twin = db["twin"]
        assert twin.uid != rd.uid and twin == rd and rd == twin
        twin["a"] = "different"
        assert twin != rd
        assert rd == rd and db["d"] == rd

    def test_fromkeys(self, db: DB) -> None:
        made = RD.fromkeys(db, ["x", 1, "y"], 0)
        assert isinstance(made, RD)
        assert_same_shape(made(), dict.fromkeys(["x", 1, "y"], 0))
        assert_same_shape(RD.fromkeys(db, "ab")(), dict.fromkeys("ab"))
        db["linked"] = made
        assert db["linked"].uid == made.uid
        assert db["linked"]() == {"x": 0, 1: 0, "y": 0}

    def test_insertion_order(self, db: DB) -> None:
        plain: dict[Any, Any] = {}
        db["d"] = {}
        rd = db["d"]
        steps: list[Callable[..., Any]] = [
            lambda d: d.update([("b", 1), ("a", 2), (3, 3), ("c", 4)]),
            lambda d: d.__setitem__("a", "overwrite keeps position"),
            lambda d: d.__delitem__("b"),
            lambda d: d.__setitem__("b", "delete + re-add moves to the end"),
            lambda d: d.pop(3),
            lambda d: d.setdefault(3, "back at the end"),
            lambda d: d.update({"c": "update keeps position", "new": 1}),
        ]
        for step in steps:
            assert_same_outcome(step, plain, rd)
            assert list(rd) == list(plain)
            assert list(db["d"]) == list(plain), "a fresh handle sees the same order"
        assert list(db["d"]()) == list(plain)

    def test_int_and_str_keys_are_distinct(self, db: DB) -> None:
        db["d"] = {"1": "str", 1: "int", "-1": "s", -1: "i", "0": 0, 0: "0"}
        rd = db["d"]
        assert rd["1"] == "str" and rd[1] == "int" and rd[-1] == "i" and rd["-1"] == "s"
        assert [type(k) for k in rd] == [str, int, str, int, str, int]
        del rd[1]
        assert "1" in rd and 1 not in rd
        assert_same_shape(rd(), {"1": "str", "-1": "s", -1: "i", "0": 0, 0: "0"})

    def test_random_operations_match_dict(self, db: DB) -> None:
        key_pool = st.sampled_from(["a", "b", "c", 1, "1", 0, ""])
        ops = st.lists(
            st.one_of(
                st.tuples(st.just("set"), key_pool, json_values(max_leaves=4)),
                st.tuples(st.just("del"), key_pool),
                st.tuples(st.just("pop"), key_pool),
                st.tuples(st.just("popd"), key_pool),
                st.tuples(st.just("setdefault"), key_pool, scalars()),
                st.tuples(st.just("update"), st.dictionaries(key_pool, scalars(), max_size=3)),
                st.tuples(st.just("popitem")),
                st.tuples(st.just("clear")),
            ),
            max_size=12,
        )

        def apply(d: Any, op: tuple[Any, ...]) -> Any:
            name = op[0]
            if name == "set":
                d[op[1]] = copy.deepcopy(op[2])
                return None
            if name == "del":
                del d[op[1]]
                return None
            if name == "pop":
                return d.pop(op[1])
            if name == "popd":
                return d.pop(op[1], "dflt")
            if name == "setdefault":
                return d.setdefault(op[1], op[2])
            if name == "update":
                return d.update(op[1])
            if name == "popitem":
                return d.popitem()
            return d.clear()

        @kit_settings(40)
        @given(ops)
        def run(ops: list[tuple[Any, ...]]) -> None:
            db["d"] = {}
            rd = db["d"]
            plain: dict[Any, Any] = {}
            for op in ops:
                assert_same_outcome(lambda d, o=op: apply(d, o), plain, rd, repr(op))
                assert list(rd) == list(plain)

        run()
        assert_clean(db)

    def test_db_has_the_dict_api(self, db: DB) -> None:
        plain: dict[Any, Any] = {}
        db.update({"a": 1, "b": {"n": [1]}}, c=3)
        plain.update({"a": 1, "b": {"n": [1]}}, c=3)
        assert_same_shape(db(), plain)
        assert len(db) == 3 and bool(db) and list(db) == ["a", "b", "c"]
        assert list(db.keys()) == ["a", "b", "c"]
        assert [v() if isinstance(v, Node) else v for v in db.values()] == list(plain.values())
        assert [k for k, _ in db.items()] == ["a", "b", "c"]
        assert db.get("a") == 1 and db.get("zz") is None and db.get("zz", 5) == 5
        assert "a" in db and "zz" not in db
        assert db.setdefault("a", 9) == 1 and db.setdefault("d", 4) == 4
        assert db.pop("d") == 4 and db.pop("d", "x") == "x"
        with pytest.raises(KeyError):
            db.pop("d")
        assert db.pop("b") == {"n": [1]}
        assert db.popitem() == ("c", 3)
        assert type(db.copy()) is dict and db.copy() == {"a": 1}
        assert db == {"a": 1} and db != {"a": 2}
        db["x"] = [1]
        del db["x"]
        with pytest.raises(KeyError):
            del db["x"]
        db.clear()
        assert len(db) == 0 and not db and db() == {}
        with pytest.raises(KeyError):
            db.popitem()
        assert_clean(db)

    def test_unlinked_rd_constructor(self, db: DB) -> None:
        rd = RD(db, {"a": 1, "b": [2]})
        assert rd.pinned and rd.refcount == 0 and rd.backrefs == {}
        assert rd == {"a": 1, "b": [2]} and rd["b"].backrefs == {rd.uid: 1}
        empty = RD(db)
        assert len(empty) == 0 and empty() == {}
        db["x"] = rd
        assert not is_pinned(rd) and rd.backrefs == {db.uid: 1}
        assert_clean(db)
