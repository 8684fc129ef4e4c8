"""Container conformance: ``RL`` behaves like ``list`` (:class:`ListConformance`)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from etcher._containers import RD, RL
from etcher._db import DB
from etcher.errors import (
    StaleHandleError,
)
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

# --------------------------------------------------------------------------- lists

BASE = [0, 1, 2, 3, 4, 5, 6]
INDEXES = [None, -9, -7, -3, -1, 0, 2, 6, 7, 9]
STEPS = [None, 1, 2, -1, -2, 3, 0]


class ListConformance(ContainerFixtures):
    """RL behaves exactly like ``list``: indexing, slices, every method, same errors."""

    @pytest.fixture
    def list_pair(self, db: DB) -> tuple[list[Any], RL]:
        db["l"] = list(BASE)
        return list(BASE), db["l"]

    @staticmethod
    def reset(plain: list[Any], rl: RL, content: list[Any] | None = None) -> None:
        plain[:] = list(content if content is not None else BASE)
        rl[:] = list(content if content is not None else BASE)

    def test_index_reads_match_list(self, list_pair: tuple[list[Any], RL]) -> None:
        plain, rl = list_pair
        for i in range(-len(plain) - 2, len(plain) + 2):
            assert_same_outcome(lambda x, i=i: x[i], plain, rl, f"x[{i}]")
        with pytest.raises(IndexError):
            rl[len(plain)]

    def test_slice_reads_match_list(self, list_pair: tuple[list[Any], RL]) -> None:
        plain, rl = list_pair
        for start in INDEXES:
            for stop in INDEXES:
                for step in STEPS:
                    s = slice(start, stop, step)
                    assert_same_outcome(lambda x, s=s: x[s], plain, rl, f"x[{s}]")
        assert type(rl[1:3]) is list

    def test_slice_assignment_matches_list(self, list_pair: tuple[list[Any], RL]) -> None:
        plain, rl = list_pair
        for start in (None, -3, 0, 2, 9):
            for stop in (None, -1, 0, 4):
                for step in STEPS:
                    for n in (0, 2, 4):
                        s = slice(start, stop, step)
                        values = [f"v{j}" for j in range(n)]
                        assert_same_outcome(
                            lambda x, s=s, v=values: x.__setitem__(s, v),
                            plain,
                            rl,
                            f"x[{s}] = {values}",
                        )
                        self.reset(plain, rl)

    def test_extended_slice_length_mismatch_raises_value_error(
        self, list_pair: tuple[list[Any], RL], db: DB
    ) -> None:
        plain, rl = list_pair
        before = dump_namespace(db)
        with pytest.raises(ValueError):
            rl[::2] = [1]
        with pytest.raises(ValueError):
            rl[::0] = []
        assert raises_like(lambda: plain.__setitem__(slice(None, None, 2), [1])) is ValueError
        assert dump_namespace(db) == before

    def test_slice_assignment_value_forms(self, list_pair: tuple[list[Any], RL], db: DB) -> None:
        plain, rl = list_pair
        forms: list[tuple[str, Callable[..., Any]]] = [
            ("tuple", lambda x: x.__setitem__(slice(1, 3), (9, 9, 9))),
            ("generator", lambda x: x.__setitem__(slice(0, 1), (i for i in range(3)))),
            ("string", lambda x: x.__setitem__(slice(0, 0), "ab")),
            ("not iterable", lambda x: x.__setitem__(slice(0, 1), 5)),
        ]
        for name, form in forms:
            assert_same_outcome(form, plain, rl, f"slice = {name}")
        db["other"] = ["o1", "o2"]
        rl[0:1] = db["other"]
        plain[0:1] = ["o1", "o2"]
        assert_same_shape(rl(), plain)
        rl[0:2] = rl
        plain[0:2] = list(plain)
        assert_same_shape(rl(), plain)
        assert_clean(db)

    def test_slices_keep_nodes_outside_the_slice(self, db: DB) -> None:
        db["l"] = [{"keep": 0}, "x", [1], "y", {"keep": 4}]
        rl = db["l"]
        plain: list[Any] = [{"keep": 0}, "x", [1], "y", {"keep": 4}]
        ops: list[tuple[str, Callable[..., Any]]] = [
            ("del x[1:2]", lambda x: x.__delitem__(slice(1, 2))),
            ("x[2:3] = nested", lambda x: x.__setitem__(slice(2, 3), [{"a": 1}, [2]])),
            ("del x[::2]", lambda x: x.__delitem__(slice(None, None, 2))),
            ("x[::-1] = ...", lambda x: x.__setitem__(slice(None, None, -1), ["r"] * len(x))),
        ]
        for name, op in ops:
            assert_same_outcome(op, plain, rl, name)
            assert_clean(db)

    def test_slice_deletion_matches_list(self, list_pair: tuple[list[Any], RL]) -> None:
        plain, rl = list_pair
        for start in INDEXES:
            for stop in (None, -2, 0, 3, 9):
                for step in STEPS:
                    s = slice(start, stop, step)
                    assert_same_outcome(lambda x, s=s: x.__delitem__(s), plain, rl, f"del x[{s}]")
                    self.reset(plain, rl)

    def test_item_assignment_matches_list(self, list_pair: tuple[list[Any], RL]) -> None:
        plain, rl = list_pair
        for i in range(-len(BASE) - 2, len(BASE) + 2):
            assert_same_outcome(lambda x, i=i: x.__setitem__(i, f"set{i}"), plain, rl, f"x[{i}]=")

    def test_item_deletion_matches_list(self, list_pair: tuple[list[Any], RL]) -> None:
        plain, rl = list_pair
        for i in range(-len(BASE) - 2, len(BASE) + 2):
            assert_same_outcome(lambda x, i=i: x.__delitem__(i), plain, rl, f"del x[{i}]")
            self.reset(plain, rl)

    def test_pop_matches_list(self, list_pair: tuple[list[Any], RL]) -> None:
        plain, rl = list_pair
        assert_same_outcome(lambda x: x.pop(), plain, rl, "pop()")
        for i in range(-len(BASE) - 2, len(BASE) + 2):
            self.reset(plain, rl)
            assert_same_outcome(lambda x, i=i: x.pop(i), plain, rl, f"pop({i})")
        self.reset(plain, rl, [])
        assert_same_outcome(lambda x: x.pop(), plain, rl, "pop() on empty")
        assert_same_outcome(lambda x: x.pop(0), plain, rl, "pop(0) on empty")

    def test_insert_matches_list(self, list_pair: tuple[list[Any], RL]) -> None:
        plain, rl = list_pair
        for i in [-100, -8, -7, -4, -1, 0, 1, 3, 4, 6, 7, 8, 100]:
            assert_same_outcome(lambda x, i=i: x.insert(i, f"at{i}"), plain, rl, f"insert({i})")
        self.reset(plain, rl, [])
        assert_same_outcome(lambda x: x.insert(-5, "only"), plain, rl, "insert into empty")

    def test_append(self, list_pair: tuple[list[Any], RL]) -> None:
        plain, rl = list_pair
        for value in [7, "s", None, [1, [2]], {"a": {}}]:
            assert_same_outcome(lambda x, v=value: x.append(v), plain, rl, f"append({value!r})")

    def test_remove(self, list_pair: tuple[list[Any], RL], db: DB) -> None:
        plain, rl = list_pair
        self.reset(plain, rl, [1, "a", 1, {"k": [1]}, [2], True, 0.0])
        for value in [1, "a", {"k": [1]}, [2], 1, 0, "missing", {"k": []}]:
            assert_same_outcome(lambda x, v=value: x.remove(v), plain, rl, f"remove({value!r})")
        before = dump_namespace(db)
        with pytest.raises(ValueError):
            rl.remove("missing")
        assert dump_namespace(db) == before

    def test_index_and_count(self, list_pair: tuple[list[Any], RL]) -> None:
        plain, rl = list_pair
        self.reset(plain, rl, ["a", 1, "b", 1, {"d": 1}, [1], "a", 1.0, True])
        for value in ["a", 1, True, {"d": 1}, [1], "zz", [2]]:
            assert_same_outcome(lambda x, v=value: x.count(v), plain, rl, f"count({value!r})")
            assert_same_outcome(lambda x, v=value: x.index(v), plain, rl, f"index({value!r})")
            for start in (-20, -3, 0, 2, 5, 20):
                assert_same_outcome(
                    lambda x, v=value, s=start: x.index(v, s),
                    plain,
                    rl,
                    f"index({value!r}, {start})",
                )
                for stop in (-20, -2, 0, 4, 20):
                    assert_same_outcome(
                        lambda x, v=value, s=start, e=stop: x.index(v, s, e),
                        plain,
                        rl,
                        f"index({value!r}, {start}, {stop})",
                    )

    def test_nodes_are_found_by_identity_and_content(self, db: DB) -> None:
        db["l"] = [{"a": 1}, [2], {"a": 1}]
        rl = db["l"]
        first = rl[0]
        assert rl.index(first) == 0 and rl.index(rl[2]) == 2
        assert first in rl and rl.count(first) == 1
        assert rl.count({"a": 1}) == 2 and {"a": 1} in rl and rl.index([2]) == 1

    def test_non_integer_indexes_raise_type_error_like_list(
        self, list_pair: tuple[list[Any], RL]
    ) -> None:
        plain, rl = list_pair
        for bad in ("a", 1.0, None, (1,)):
            ops: list[Callable[..., Any]] = [
                lambda x, b=bad: x[b],
                lambda x, b=bad: x.__setitem__(b, 0),
                lambda x, b=bad: x.__delitem__(b),
                lambda x, b=bad: x.pop(b),
                lambda x, b=bad: x.insert(b, 0),
            ]
            for op in ops:
                assert_same_outcome(op, plain, rl, f"index {bad!r}")

    def test_sort(self, list_pair: tuple[list[Any], RL], db: DB) -> None:
        plain, rl = list_pair
        data = [5, -1, 3, 3.5, 0, -7, 2]
        for kwargs in ({}, {"reverse": True}, {"key": abs}, {"key": abs, "reverse": True}):
            self.reset(plain, rl, data)
            assert_same_outcome(lambda x, kw=kwargs: x.sort(**kw), plain, rl, f"sort({kwargs})")
        self.reset(plain, rl, ["b", "A", "c", "B", "a"])
        assert_same_outcome(lambda x: x.sort(key=str.lower), plain, rl, "sort(key=str.lower)")
        assert rl() == ["A", "a", "b", "B", "c"], "sort is stable"
        self.reset(plain, rl, [])
        assert_same_outcome(lambda x: x.sort(), plain, rl, "sort empty")

    def test_sort_of_nodes_is_stable_and_keeps_links(self, db: DB) -> None:
        rows = [{"k": 1, "v": "a"}, {"k": 0, "v": "b"}, {"k": 1, "v": "c"}, {"k": 0, "v": "d"}]
        db["rows"] = rows
        rl = db["rows"]
        uids = {r["v"]: r.uid for r in rl}
        rl.sort(key=lambda r: r["k"])
        assert [r["v"] for r in rl] == ["b", "d", "a", "c"]
        rl.sort(key=lambda r: r["k"], reverse=True)
        assert [r["v"] for r in rl] == ["a", "c", "b", "d"]
        assert {r["v"]: r.uid for r in rl} == uids, "sorting moves links, never copies nodes"
        assert_clean(db)

    def test_sort_failure_changes_nothing(self, list_pair: tuple[list[Any], RL], db: DB) -> None:
        plain, rl = list_pair
        self.reset(plain, rl, [3, "a", 1])
        before = dump_namespace(db)
        assert raises_like(lambda: sorted([3, "a", 1])) is TypeError
        with pytest.raises(TypeError):
            rl.sort()
        with pytest.raises(ZeroDivisionError):
            rl.sort(key=lambda v: 1 / 0)
        assert dump_namespace(db) == before

    def test_reverse(self, list_pair: tuple[list[Any], RL]) -> None:
        plain, rl = list_pair
        for content in (BASE, [], [1], [{"a": 1}, [2], 3]):
            self.reset(plain, rl, list(content))
            assert_same_outcome(lambda x: x.reverse(), plain, rl, "reverse")

    def test_extend_and_iadd(self, list_pair: tuple[list[Any], RL], db: DB) -> None:
        plain, rl = list_pair
        forms: list[tuple[str, Any]] = [
            ("list", [7, [8]]),
            ("tuple", (9, {"a": 1})),
            ("string", "xy"),
            ("empty", []),
        ]
        for name, arg in forms:
            assert_same_outcome(lambda x, a=arg: x.extend(a), plain, rl, f"extend({name})")
        rl.extend(i for i in range(2))
        plain.extend(i for i in range(2))
        assert_same_shape(rl(), plain)
        with pytest.raises(TypeError):
            rl.extend(5)  # type: ignore[arg-type]
        rl.extend(rl)
        plain.extend(plain)
        assert_same_shape(rl(), plain)
        same = rl
        rl += (1, 2)
        plain += (1, 2)
        assert rl is same and isinstance(rl, RL)
        rl += "ab"
        plain += "ab"
        db["other"] = ["o"]
        rl += db["other"]
        plain += ["o"]
        assert_same_shape(rl(), plain)
        assert_clean(db)

    def test_add_and_mul(self, list_pair: tuple[list[Any], RL], db: DB) -> None:
        plain, rl = list_pair
        # The operators themselves are under test, so no [*x, 9] rewrites here.
        assert rl + [9] == plain + [9] and type(rl + [9]) is list
        assert [9] + rl == [9] + plain and type([9] + rl) is list
        assert rl + rl == plain + plain
        with pytest.raises(TypeError):
            rl + (1,)
        assert raises_like(lambda: plain + (1,)) is TypeError  # type: ignore[operator]
        for n in (-1, 0, 1, 3):
            assert rl * n == plain * n and n * rl == n * plain and type(rl * n) is list
        with pytest.raises(TypeError):
            rl * 1.5
        assert_same_shape(rl(), plain)  # + and * never write

    def test_imul(self, db: DB) -> None:
        for n in (-1, 0, 1, 3):
            db["l"] = [1, {"a": 1}]
            rl = db["l"]
            child = rl[1]
            plain: list[Any] = [1, {"a": 1}]
            same = rl
            rl *= n
            plain *= n
            assert rl is same
            assert_same_shape(rl(), plain, f"*= {n}")
            if n > 0:
                assert child.backrefs == {rl.uid: n}
            else:
                with pytest.raises(StaleHandleError):
                    child["a"] = 2  # unlinked: never written again (reads: HandleLifetime...)
            assert_clean(db)

    def test_contains_and_equality(self, list_pair: tuple[list[Any], RL], db: DB) -> None:
        plain, rl = list_pair
        self.reset(plain, rl, [1, "a", {"d": [1]}, [2], None])
        for value in [1, "a", {"d": [1]}, [2], None, "zz", {"d": []}, 1.0, True]:
            assert (value in rl) == (value in plain), value
        assert rl == plain and plain == rl and not (rl != plain)
        assert rl != tuple(plain) and tuple(plain) != rl, "like a list, an RL never equals a tuple"
        assert rl != plain[:-1] and rl != [*plain, 0] and rl != "a" and rl != {1: 1}
        db["twin"] = copy.deepcopy(plain)
        assert db["twin"] == rl and db["twin"].uid != rl.uid
        db["twin"].append(0)
        assert db["twin"] != rl

    def test_len_bool_iter_reversed(self, list_pair: tuple[list[Any], RL], db: DB) -> None:
        plain, rl = list_pair
        assert len(rl) == len(plain) and bool(rl)
        assert list(iter(rl)) == plain and list(reversed(rl)) == list(reversed(plain))
        db["e"] = []
        assert len(db["e"]) == 0 and not db["e"] and list(db["e"]) == [] and db["e"][:] == []

    def test_clear_and_copy(self, list_pair: tuple[list[Any], RL], db: DB) -> None:
        plain, rl = list_pair
        self.reset(plain, rl, [1, {"a": 1}, [2]])
        shallow = rl.copy()
        assert type(shallow) is list and isinstance(shallow[1], RD)
        assert shallow[1].uid == rl[1].uid
        assert_same_outcome(lambda x: x.clear(), plain, rl, "clear")
        assert uids_in_store(db) == {db.uid, rl.uid}

    def test_nested_access(self, db: DB) -> None:
        db["l"] = [{"a": [1, {"b": 2}]}, [[3]]]
        rl = db["l"]
        assert rl[0]["a"][1]["b"] == 2 and rl[1][0][0] == 3 and rl[-1][-1][-1] == 3
        rl[0]["a"][1]["b"] = 5
        assert db["l"]() == [{"a": [1, {"b": 5}]}, [[3]]]

    def test_unlinked_rl_constructor(self, db: DB) -> None:
        rl = RL(db, [1, [2]])
        assert rl.pinned and rl == [1, [2]] and rl.refcount == 0
        assert len(RL(db)) == 0
        db["x"] = {"held": rl}
        assert not is_pinned(rl) and rl.backrefs == {db["x"].uid: 1}
        assert_clean(db)

    def test_random_operations_match_list(self, db: DB) -> None:
        idx = st.integers(-5, 5)
        bounds = st.one_of(st.none(), idx)
        ops = st.lists(
            st.one_of(
                st.tuples(st.just("append"), json_values(max_leaves=3)),
                st.tuples(st.just("insert"), idx, scalars()),
                st.tuples(st.just("set"), idx, scalars()),
                st.tuples(st.just("del"), idx),
                st.tuples(st.just("pop"), st.one_of(st.none(), idx)),
                st.tuples(
                    st.just("setslice"),
                    bounds,
                    bounds,
                    st.sampled_from([None, 1, 2, -1]),
                    st.lists(scalars(), max_size=3),
                ),
                st.tuples(st.just("delslice"), bounds, bounds, st.sampled_from([None, 2, -1, -2])),
                st.tuples(st.just("extend"), st.lists(scalars(), max_size=3)),
                st.tuples(st.just("reverse")),
                st.tuples(st.just("sort"), st.booleans()),
                st.tuples(st.just("remove"), st.sampled_from([0, 1, "a", None])),
                st.tuples(st.just("imul"), st.integers(0, 2)),
            ),
            max_size=12,
        )

        def apply(x: Any, op: tuple[Any, ...]) -> Any:
            name, args = op[0], op[1:]
            if name == "append":
                return x.append(copy.deepcopy(args[0]))
            if name == "insert":
                return x.insert(*args)
            if name == "set":
                x[args[0]] = args[1]
                return None
            if name == "del":
                del x[args[0]]
                return None
            if name == "pop":
                return x.pop() if args[0] is None else x.pop(args[0])
            if name == "setslice":
                x[slice(*args[:3])] = args[3]
                return None
            if name == "delslice":
                del x[slice(*args)]
                return None
            if name == "extend":
                return x.extend(args[0])
            if name == "reverse":
                return x.reverse()
            if name == "sort":
                return x.sort(key=repr, reverse=args[0])
            if name == "remove":
                return x.remove(args[0])
            x *= args[0]
            return None

        @kit_settings(40)
        @given(st.lists(scalars(), max_size=6), ops)
        def run(start: list[Any], ops: list[tuple[Any, ...]]) -> None:
            db["l"] = start
            rl = db["l"]
            plain = copy.deepcopy(start)
            for op in ops:
                assert_same_outcome(lambda x, o=op: apply(x, o), plain, rl, repr(op))

        run()
        assert_clean(db)
