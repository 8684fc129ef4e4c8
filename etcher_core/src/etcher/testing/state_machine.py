"""A hypothesis state machine that drives RD/RL/DB against a plain-Python model.

Every step applies one random operation twice: to the store (through RD, RL
or DB) and to a model made of plain ``dict``/``list`` objects. Values are
tree-shaped, shared (one plain object in several places), self-containing,
or links to nodes already in the store (so diamonds and cycles arise through
handles too); operations overwrite, delete and pop them, so garbage
collection runs all the time.

After every step the invariant walks the store through handles in lock-step
with the model and demands:

* the same structure, exactly (key order, key and value types, ``-0.0``, NaN);
* one stored node per model object: sharing and cycles match object for object,
  and a node's uid never changes while it lives;
* exact back-references (``node.backrefs``) for every node;
* ``db()`` materializes to the model, with the same sharing;
* ``db.check()`` is clean and the store holds exactly the reachable nodes;
* a handle whose model object became unreachable is stale: every write
  through it, and every attempt to link it, raises
  :class:`~etcher.errors.StaleHandleError`. Reads raise it too when the DB
  reclaims at once (``grace=0``); inside a grace period they must instead
  agree with the model object as it was left (its own version, never a newer
  one), the documented handle lifetime rule.

The machine is backend-agnostic: :func:`run_container_machine` takes a
zero-argument callable that opens a :class:`~etcher._db.DB` on a fresh
namespace of the store under test. Its size is bounded for a fast suite and
scales with the environment variables ``ETCHER_KIT_SCALE`` (multiplies the
number of examples of every property test of the kit, e.g. ``10``) and
``ETCHER_KIT_STEPS`` (steps per example).
"""

from __future__ import annotations

import copy
import os
from collections import Counter
from collections.abc import Callable
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from etcher._containers import RD, RL, Node
from etcher._db import DB
from etcher.errors import StaleHandleError
from etcher.testing.models import (
    assert_same_shape,
    containers_in,
    json_values,
    outcome,
    same_scalar,
    scalars,
    shaped_values,
)

SCALE_ENV = "ETCHER_KIT_SCALE"
STEPS_ENV = "ETCHER_KIT_STEPS"

DEFAULT_EXAMPLES = 30
DEFAULT_STEPS = 25


def kit_scale() -> float:
    """The multiplier from ``ETCHER_KIT_SCALE`` (default 1)."""
    raw = os.environ.get(SCALE_ENV, "").strip()
    try:
        return max(float(raw), 0.01) if raw else 1.0
    except ValueError:
        raise ValueError(f"{SCALE_ENV} must be a number, got {raw!r}") from None


def kit_settings(max_examples: int, **overrides: Any) -> settings:
    """Hypothesis settings for the kit: ``max_examples`` scaled, no deadline, no example DB.

    There is no deadline because backends differ wildly in speed (a remote
    Redis, a file on a slow disk); there is no example database because the
    kit runs inside other people's projects and must not write files there.
    """
    return settings(
        max_examples=max(1, round(max_examples * kit_scale())),
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        **overrides,
    )


def machine_settings(max_examples: int = DEFAULT_EXAMPLES, steps: int = DEFAULT_STEPS) -> settings:
    """Settings for :func:`run_container_machine` (see the module docstring for scaling)."""
    raw = os.environ.get(STEPS_ENV, "").strip()
    if raw:
        steps = int(raw)
    return kit_settings(max_examples, stateful_step_count=steps)


class Tracked:
    """A handle together with the model object it must always agree with."""

    __slots__ = ("handle", "model")

    def __init__(self, handle: RD | RL, model: dict[Any, Any] | list[Any]) -> None:
        self.handle = handle
        self.model = model

    def __repr__(self) -> str:
        return f"<{type(self.handle).__name__} {self.handle.uid}>"


# NaN is left out of searched values: a plain list finds its own NaN object by identity, while
# a value read back from any store is a new object (so even list.count would differ).
searchable = scalars().filter(lambda v: v == v)

# Small key and index pools make hits (overwrites, deletes of existing keys) common.
small_keys = st.one_of(
    st.sampled_from(["a", "b", "c", "1", 1, 2, 0, "", "#N"]), st.text(max_size=3)
)
small_indexes = st.integers(-6, 6)
slice_bounds = st.one_of(st.none(), st.integers(-6, 6))
slice_steps = st.sampled_from([None, 1, 2, -1, -2, 3, 0])
plain_values = st.one_of(scalars(), json_values(max_leaves=8), shaped_values(max_nodes=4))


def _sort_key(value: Any) -> str:
    # repr is defined for every model value (cycles print as {...}/[...]), and gives the
    # same text for a model object and its materialized copy, so both sides sort alike.
    return repr(value)


class ContainerMachine(RuleBasedStateMachine):
    """RD/RL/DB against plain dict/list (see the module docstring).

    Subclass it with ``open_db`` (and optionally ``close_db``) set, or use
    :func:`machine_for`. Operations pick their targets among every node seen
    so far -- live ones and ones that became garbage -- so stale handles get
    exercised as naturally as live ones.
    """

    open_db: ClassVar[Callable[[], DB]]
    close_db: ClassVar[Callable[[DB], None] | None] = None

    def __init__(self) -> None:
        super().__init__()
        self.db = type(self).open_db()
        self.model: dict[Any, Any] = {}
        # Every model object ever used stays referenced, so an id() is never reused and
        # "this node's uid never changes" can be checked by model identity.
        self.keep: dict[int, Any] = {id(self.model): self.model}
        self.uid_of: dict[int, str] = {}
        # Every node ever seen (by model id), in order of discovery; stale ones stay.
        self.seen: dict[int, Tracked] = {
            id(self.model): Tracked(self.db.get_via_uid(self.db.uid), self.model)
        }

    def teardown(self) -> None:
        close_db = type(self).close_db
        if close_db is not None:
            close_db(self.db)
            return
        try:
            self.db.delete_prefix_immediately(self.db.prefix)
        finally:
            self.db.close()

    # --- helpers -------------------------------------------------------------------
    def live_ids(self) -> set[int]:
        return {id(c) for c in containers_in(self.model)}

    @property
    def root(self) -> Tracked:
        return self.seen[id(self.model)]

    def target(self, data: st.DataObject, kind: type, label: str = "target") -> Tracked | None:
        """A node of ``kind`` seen so far (live or stale), or ``None`` if there is none."""
        candidates = [t for t in self.seen.values() if type(t.model) is kind]
        if not candidates:
            return None
        return data.draw(st.sampled_from(candidates), label=label)

    def child(self, data: st.DataObject) -> Tracked | None:
        """A node to link somewhere (live or stale)."""
        candidates = list(self.seen.values())  # the root too: linking it makes cycles
        if not candidates:
            return None
        return data.draw(st.sampled_from(candidates), label="child")

    def payload(
        self, data: st.DataObject, memo: dict[int, Any] | None = None
    ) -> tuple[Any, Any, list[Tracked]]:
        """``(value for the store, value for the model, handles the value links)``.

        A plain value (tree, shared or cyclic), a link to a seen node, or a new
        plain wrapper holding such a link twice. Values written by one operation
        share one ``memo``, so an object drawn twice is shared in the model as
        it is in the store (one write, one node).
        """
        kind = data.draw(st.sampled_from(["plain", "plain", "link", "wrapped"]), label="payload")
        child = self.child(data) if kind != "plain" else None
        if child is None:
            plain = data.draw(plain_values, label="value")
            # deepcopy keeps sharing and cycles and shares nothing with ``plain``.
            mine = copy.deepcopy(plain, memo if memo is not None else {})
            for c in containers_in(mine):
                self.keep[id(c)] = c
            return plain, mine, []
        if kind == "link":
            return child.handle, child.model, [child]
        wrapper = {"w": child.model, "l": [child.model, 0]}
        for c in containers_in(wrapper):
            self.keep.setdefault(id(c), c)
        return {"w": child.handle, "l": [child.handle, 0]}, wrapper, [child]

    def payloads(
        self, data: st.DataObject, most: int = 3
    ) -> tuple[list[Any], list[Any], list[Tracked]]:
        stores, models, uses = [], [], []
        memo: dict[int, Any] = {}
        for _ in range(data.draw(st.integers(0, most), label="count")):
            s, m, u = self.payload(data, memo)
            stores.append(s)
            models.append(m)
            uses += u
        return stores, models, uses

    def apply(
        self,
        target: Tracked,
        store_op: Callable[[Any], Any],
        model_op: Callable[[Any], Any],
        uses: list[Tracked] | tuple[Tracked, ...] = (),
        read: bool = False,
    ) -> None:
        """Run ``store_op(handle)`` and ``model_op(model)``; demand the same outcome.

        ``read=True`` marks a read-only operation: on an unreachable target it
        must still agree with the model while the DB's grace period keeps old
        nodes readable.
        """
        live = self.live_ids()
        if id(target.model) not in live and not (read and self.db.grace > 0):
            with pytest.raises(StaleHandleError):
                store_op(target.handle)
            return
        if any(id(u.model) not in live for u in uses):
            # The value links a stale node. The store may refuse it (StaleHandleError), or
            # complain about another argument first (IndexError ...), and then the model stays
            # as it is. It may also not need the value at all (setdefault of an existing key):
            # then the model does the same, and the invariant proves nothing stale got in.
            got_status, got = outcome(store_op, target.handle)
            if got_status == "raised":
                allowed: tuple[type[BaseException], ...] = (StaleHandleError,)
                status, err = outcome(model_op, copy.copy(target.model))
                if status == "raised":
                    allowed += (type(err),)
                if not isinstance(got, allowed):
                    raise got
                return
            status, expected = outcome(model_op, target.model)
            if status == "raised":
                raise AssertionError(f"plain raised {expected!r}, etcher returned {got!r}")
            self.compare_result(got, expected)
            return
        status, expected = outcome(model_op, target.model)
        got_status, got = outcome(store_op, target.handle)
        if status == "raised":
            assert got_status == "raised", (
                f"plain {type(target.model).__name__} raised {expected!r}, etcher returned {got!r}"
            )
            assert isinstance(got, type(expected)) and not isinstance(got, StaleHandleError), (
                f"plain {type(target.model).__name__} raised {type(expected).__name__}, "
                f"etcher raised {type(got).__name__}: {got}"
            )
            return
        if got_status == "raised":
            raise got
        self.compare_result(got, expected)

    def compare_result(self, got: Any, expected: Any) -> None:
        if isinstance(got, Node):
            assert type(expected) in (dict, list), f"got a handle {got!r}, expected {expected!r}"
            assert_same_shape(got(), expected, "returned node")
        elif type(got) is tuple:
            assert type(expected) is tuple and len(got) == len(expected)
            for g, e in zip(got, expected, strict=True):
                self.compare_result(g, e)
        elif type(expected) in (dict, list):
            assert_same_shape(got, expected, "returned value")
        else:
            assert same_scalar(got, expected), f"returned {got!r}, expected {expected!r}"

    # --- seeding -----------------------------------------------------------------------
    @initialize(
        value=shaped_values(max_nodes=5), items=st.lists(plain_values, min_size=3, max_size=6)
    )
    def seed(self, value: Any, items: list[Any]) -> None:
        # Start from a graph with sharing and cycles, and a list long enough for every index
        # and slice rule to bite, so rules find targets at once.
        root = self.root.handle
        assert isinstance(root, RD)
        root.update({"seed": value, "list": items})
        self.model.update(copy.deepcopy({"seed": value, "list": items}))

    # --- dict operations ---------------------------------------------------------------
    @rule(data=st.data(), key=small_keys)
    def dict_set(self, data: st.DataObject, key: Any) -> None:
        t = self.target(data, dict)
        assert t is not None  # the root is always there
        store_value, model_value, uses = self.payload(data)
        self.apply(
            t,
            lambda h: h.__setitem__(key, store_value),
            lambda m: m.__setitem__(key, model_value),
            uses,
        )

    @rule(data=st.data(), key=small_keys)
    def dict_del(self, data: st.DataObject, key: Any) -> None:
        t = self.target(data, dict)
        assert t is not None
        self.apply(t, lambda h: h.__delitem__(key), lambda m: m.__delitem__(key))

    @rule(data=st.data(), key=small_keys, use_default=st.booleans(), default=scalars())
    def dict_pop(self, data: st.DataObject, key: Any, use_default: bool, default: Any) -> None:
        t = self.target(data, dict)
        assert t is not None
        if not use_default:
            self.apply(t, lambda h: h.pop(key), lambda m: m.pop(key))
        else:
            self.apply(t, lambda h: h.pop(key, default), lambda m: m.pop(key, default))

    @rule(data=st.data())
    def dict_popitem(self, data: st.DataObject) -> None:
        t = self.target(data, dict)
        assert t is not None
        self.apply(t, lambda h: h.popitem(), lambda m: m.popitem())

    @rule(data=st.data(), key=small_keys)
    def dict_setdefault(self, data: st.DataObject, key: Any) -> None:
        t = self.target(data, dict)
        assert t is not None
        store_value, model_value, uses = self.payload(data)
        self.apply(
            t,
            lambda h: h.setdefault(key, store_value),
            lambda m: m.setdefault(key, model_value),
            uses,
        )

    @rule(data=st.data(), keys=st.lists(small_keys, max_size=4))
    def dict_update(self, data: st.DataObject, keys: list[Any]) -> None:
        t = self.target(data, dict)
        assert t is not None
        store_pairs, model_pairs, uses = [], [], []
        memo: dict[int, Any] = {}
        for k in keys:
            s, m, u = self.payload(data, memo)
            store_pairs.append((k, s))
            model_pairs.append((k, m))
            uses += u
        self.apply(t, lambda h: h.update(store_pairs), lambda m: m.update(model_pairs), uses)

    @rule(data=st.data())
    def dict_clear(self, data: st.DataObject) -> None:
        t = self.target(data, dict)
        assert t is not None
        if t is self.root and data.draw(st.integers(0, 3), label="clear root?") != 0:
            return  # clearing the root wipes everything: keep it rare
        self.apply(t, lambda h: h.clear(), lambda m: m.clear())

    # --- list operations ---------------------------------------------------------------
    @rule(data=st.data())
    def list_append(self, data: st.DataObject) -> None:
        t = self.target(data, list)
        if t is None:
            return
        store_value, model_value, uses = self.payload(data)
        self.apply(t, lambda h: h.append(store_value), lambda m: m.append(model_value), uses)

    @rule(data=st.data(), index=small_indexes)
    def list_insert(self, data: st.DataObject, index: int) -> None:
        t = self.target(data, list)
        if t is None:
            return
        store_value, model_value, uses = self.payload(data)
        self.apply(
            t, lambda h: h.insert(index, store_value), lambda m: m.insert(index, model_value), uses
        )

    @rule(data=st.data(), index=small_indexes)
    def list_setitem(self, data: st.DataObject, index: int) -> None:
        t = self.target(data, list)
        if t is None:
            return
        store_value, model_value, uses = self.payload(data)
        self.apply(
            t,
            lambda h: h.__setitem__(index, store_value),
            lambda m: m.__setitem__(index, model_value),
            uses,
        )

    @rule(data=st.data(), index=st.one_of(st.none(), small_indexes))
    def list_pop(self, data: st.DataObject, index: int | None) -> None:
        t = self.target(data, list)
        if t is None:
            return
        if index is None:
            self.apply(t, lambda h: h.pop(), lambda m: m.pop())
        else:
            self.apply(t, lambda h: h.pop(index), lambda m: m.pop(index))

    @rule(data=st.data(), index=small_indexes)
    def list_delitem(self, data: st.DataObject, index: int) -> None:
        t = self.target(data, list)
        if t is None:
            return
        self.apply(t, lambda h: h.__delitem__(index), lambda m: m.__delitem__(index))

    @rule(data=st.data(), start=slice_bounds, stop=slice_bounds, step=slice_steps)
    def list_del_slice(self, data: st.DataObject, start: Any, stop: Any, step: Any) -> None:
        t = self.target(data, list)
        if t is None:
            return
        s = slice(start, stop, step)
        self.apply(t, lambda h: h.__delitem__(s), lambda m: m.__delitem__(s))

    @rule(data=st.data(), start=slice_bounds, stop=slice_bounds, step=slice_steps)
    def list_set_slice(self, data: st.DataObject, start: Any, stop: Any, step: Any) -> None:
        t = self.target(data, list)
        if t is None:
            return
        s = slice(start, stop, step)
        store_values, model_values, uses = self.payloads(data)
        self.apply(
            t,
            lambda h: h.__setitem__(s, store_values),
            lambda m: m.__setitem__(s, model_values),
            uses,
        )

    @rule(data=st.data(), inplace=st.booleans())
    def list_extend(self, data: st.DataObject, inplace: bool) -> None:
        t = self.target(data, list)
        if t is None:
            return
        store_values, model_values, uses = self.payloads(data)
        if inplace:

            def store_op(h: Any) -> None:
                h += store_values

            def model_op(m: Any) -> None:
                m += model_values

            self.apply(t, store_op, model_op, uses)
        else:
            self.apply(t, lambda h: h.extend(store_values), lambda m: m.extend(model_values), uses)

    @rule(data=st.data())
    def list_reverse(self, data: st.DataObject) -> None:
        t = self.target(data, list)
        if t is None:
            return
        self.apply(t, lambda h: h.reverse(), lambda m: m.reverse())

    @rule(data=st.data(), reverse=st.booleans())
    def list_sort(self, data: st.DataObject, reverse: bool) -> None:
        t = self.target(data, list)
        if t is None:
            return
        self.apply(
            t,
            lambda h: h.sort(key=_sort_key, reverse=reverse),
            # Not m.sort(): CPython empties a list while sorting it, so a key function would
            # see a self-containing list as [] -- sorted() leaves the original readable.
            lambda m: m.__setitem__(slice(None), sorted(m, key=_sort_key, reverse=reverse)),
        )

    @rule(data=st.data(), n=st.integers(-1, 3))
    def list_imul(self, data: st.DataObject, n: int) -> None:
        t = self.target(data, list)
        if t is None:
            return

        def store_op(h: Any) -> None:
            h *= n

        def model_op(m: Any) -> None:
            m *= n

        self.apply(t, store_op, model_op)

    @rule(data=st.data(), value=searchable)
    def list_remove(self, data: st.DataObject, value: Any) -> None:
        t = self.target(data, list)
        if t is None:
            return
        self.apply(t, lambda h: h.remove(value), lambda m: m.remove(value))

    @rule(data=st.data(), value=searchable, start=small_indexes)
    def list_searches(self, data: st.DataObject, value: Any, start: int) -> None:
        t = self.target(data, list)
        if t is None:
            return
        self.apply(t, lambda h: h.count(value), lambda m: m.count(value), read=True)
        self.apply(t, lambda h: value in h, lambda m: value in m, read=True)
        self.apply(t, lambda h: h.index(value, start), lambda m: m.index(value, start), read=True)

    @rule(data=st.data())
    def list_index_of_node(self, data: st.DataObject) -> None:
        t = self.target(data, list)
        child = self.child(data)
        if t is None or child is None or id(child.model) not in self.live_ids():
            return

        # Model side: identity search (a node is itself); store side: by handle.
        def model_index(m: list[Any]) -> int:
            for i, v in enumerate(m):
                if v is child.model:
                    return i
            raise ValueError("not in list")

        self.apply(t, lambda h: h.index(child.handle), model_index, read=True)
        self.apply(
            t,
            lambda h: h.count(child.handle),
            lambda m: sum(1 for v in m if v is child.model),
            read=True,
        )

    # --- database-level operations -------------------------------------------------------
    @rule(data=st.data(), key=small_keys, form=st.sampled_from(["with", "transact", "transactor"]))
    def transaction_write(self, data: st.DataObject, key: Any, form: str) -> None:
        store_value, model_value, uses = self.payload(data)
        db = self.db

        def store_op(_h: Any) -> None:
            if form == "with":
                with db.transaction() as t:
                    t[key] = store_value
            elif form == "transact":
                db.transact(lambda t: t.__setitem__(key, store_value))
            else:
                t = db.transactor()
                t.watch()
                t.multi()
                try:
                    t[key] = store_value
                except BaseException:
                    t.reset()
                    raise
                t.execute()

        self.apply(self.root, store_op, lambda m: m.__setitem__(key, model_value), uses)

    @rule(
        data=st.data(),
        op=st.sampled_from(["pop", "pop_default", "popitem", "setdefault", "update", "del"]),
        key=small_keys,
    )
    def db_dict_api(self, data: st.DataObject, op: str, key: Any) -> None:
        db = self.db
        store_value, model_value, uses = self.payload(data)
        store_ops: dict[str, Callable[[Any], Any]] = {
            "pop": lambda _h: db.pop(key),
            "pop_default": lambda _h: db.pop(key, None),
            "popitem": lambda _h: db.popitem(),
            "setdefault": lambda _h: db.setdefault(key, store_value),
            "update": lambda _h: db.update({key: store_value}),
            "del": lambda _h: db.__delitem__(key),
        }
        model_ops: dict[str, Callable[[Any], Any]] = {
            "pop": lambda m: m.pop(key),
            "pop_default": lambda m: m.pop(key, None),
            "popitem": lambda m: m.popitem(),
            "setdefault": lambda m: m.setdefault(key, model_value),
            "update": lambda m: m.update({key: model_value}),
            "del": lambda m: m.__delitem__(key),
        }
        self.apply(self.root, store_ops[op], model_ops[op], uses)

    # --- reads -------------------------------------------------------------------------
    @rule(data=st.data())
    def read_or_refuse(self, data: st.DataObject) -> None:
        t = self.child(data)
        if t is None:
            return
        h = t.handle
        live = id(t.model) in self.live_ids()
        if live or self.db.grace > 0:
            # Live, or unlinked but inside the grace period: it reads as the model says.
            assert_same_shape(h(), t.model, f"materialized {t!r}")
            assert len(h) == len(t.model)
            if live:
                return
            writes: list[Callable[[], Any]] = (
                [lambda: h.__setitem__("a", 1), lambda: h.update()]
                if isinstance(h, RD)
                else [lambda: h.append(1), lambda: h.extend([])]
            )
            for write in writes:
                with pytest.raises(StaleHandleError):
                    write()
            return
        reads: list[Callable[[], Any]] = [h, lambda: len(h), lambda: list(h), lambda: h.backrefs]
        if isinstance(h, RD):
            reads += [lambda: h["a"], lambda: "a" in h, lambda: h.__setitem__("a", 1)]
        else:
            reads += [lambda: h[0], lambda: h[:], lambda: h.append(1), lambda: h.extend([])]
        for read in reads:
            with pytest.raises(StaleHandleError):
                read()

    # --- the invariant -----------------------------------------------------------------
    @invariant()
    def store_equals_model(self) -> None:
        root = self.db.get_via_uid(self.db.uid)
        handle_of: dict[int, RD | RL] = {id(self.model): root}
        model_of: dict[str, Any] = {root.uid: self.model}
        parents: dict[str, Counter[str]] = {root.uid: Counter()}
        queue: list[tuple[RD | RL, Any]] = [(root, self.model)]
        while queue:
            handle, model = queue.pop()
            if type(model) is dict:
                assert isinstance(handle, RD), f"{handle!r} should be a dict node"
                items = list(handle.items())
                got_keys = [k for k, _ in items]
                want_keys = list(model)
                assert len(got_keys) == len(want_keys) and all(
                    same_scalar(g, w) for g, w in zip(got_keys, want_keys, strict=True)
                ), f"{handle!r}: keys {got_keys!r}, expected {want_keys!r}"
                pairs = zip([v for _, v in items], model.values(), strict=True)
            else:
                assert isinstance(handle, RL), f"{handle!r} should be a list node"
                values = list(handle)
                assert len(values) == len(model), f"{handle!r}: {values!r} vs {model!r}"
                pairs = zip(values, model, strict=True)
            for got, want in pairs:
                if type(want) not in (dict, list):
                    assert not isinstance(got, Node) and same_scalar(got, want), (
                        f"{handle!r} holds {got!r}, expected {want!r}"
                    )
                    continue
                assert isinstance(got, RD | RL), f"{handle!r} holds {got!r}, expected a node"
                known = model_of.get(got.uid)
                if known is None:
                    assert id(want) not in handle_of, (
                        f"one plain object is stored as two nodes: {handle_of.get(id(want))!r} "
                        f"and {got!r}"
                    )
                    model_of[got.uid] = want
                    handle_of[id(want)] = got
                    parents[got.uid] = Counter()
                    queue.append((got, want))
                else:
                    assert known is want, f"node {got.uid} stands for two different objects"
                parents[got.uid][handle.uid] += 1
        live = self.live_ids()
        assert set(handle_of) == live, "the store and the model reach different objects"
        for mid, handle in handle_of.items():
            previous = self.uid_of.setdefault(mid, handle.uid)
            assert previous == handle.uid, f"a node changed uid: {previous} -> {handle.uid}"
            self.keep.setdefault(mid, model_of[handle.uid])
        for uid, counts in parents.items():
            handle = handle_of[id(model_of[uid])]
            assert handle.backrefs == dict(counts), (
                f"{handle!r}: backrefs {handle.backrefs}, expected {dict(counts)}"
            )
            assert handle.refcount == sum(counts.values())
        assert_same_shape(self.db(), self.model, "db()")
        report = self.db.check()
        assert report.ok, str(report)
        assert report.nodes == len(live), f"{report.nodes} stored nodes, {len(live)} reachable"
        assert not report.pinned, f"unexpected pinned nodes {report.pinned}"
        for mid, handle in handle_of.items():
            if mid not in self.seen:
                self.seen[mid] = Tracked(handle, self.keep[mid])


def machine_for(
    open_db: Callable[[], DB], close_db: Callable[[DB], None] | None = None
) -> type[ContainerMachine]:
    """A :class:`ContainerMachine` whose examples each open a DB on a fresh namespace.

    ``open_db()`` opens it; ``close_db(db)`` (default: delete the namespace and
    close the DB) disposes of it after the example.
    """
    attrs = {
        "open_db": staticmethod(open_db),
        "close_db": staticmethod(close_db) if close_db else None,
    }
    return type("EtcherContainerMachine", (ContainerMachine,), attrs)


def run_container_machine(
    open_db: Callable[[], DB],
    close_db: Callable[[DB], None] | None = None,
    *,
    config: settings | None = None,
) -> None:
    """Run the state machine (see :func:`machine_for`).

    ``config`` replaces :func:`machine_settings`, e.g. to run longer in a nightly job.
    """
    machine = machine_for(open_db, close_db)
    run_state_machine_as_test(machine, settings=config or machine_settings())  # type: ignore[no-untyped-call, unused-ignore]  # typed in newer hypothesis


__all__ = [
    "DEFAULT_EXAMPLES",
    "DEFAULT_STEPS",
    "SCALE_ENV",
    "STEPS_ENV",
    "ContainerMachine",
    "Tracked",
    "kit_scale",
    "kit_settings",
    "machine_for",
    "machine_settings",
    "run_container_machine",
]
