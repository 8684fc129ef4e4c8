"""Differential testing: one random program, run on several backends, must behave identically.

The conformance kit compares each backend with plain Python; this module
compares backends *with each other*, which also catches what a model cannot
see: an error raised on one store and not another, a different exception
type, sharing or key order that differs, a ``db.check()`` that only one
store fails.

A *program* is a list of operations on a namespace (set, delete, update,
append, insert, pop, slice assignment and deletion, sort, reverse, clear,
links to existing nodes, reads, and transactions holding several of these),
addressed by paths from the root. :func:`run_program` runs it on one
:class:`~etcher._db.DB` and returns a :class:`Trace`: the outcome of every step
(its result, or the type of the exception it raised), the materialized state
after every step, and the final ``check()`` verdict. :func:`assert_same_traces`
compares traces and names the first step where two backends disagree.

Every value in a trace is :func:`canonical`: type-tagged (``1``, ``1.0``
and ``True`` differ, so do ``-0.0`` and ``0.0``), in order (key order is part
of a dict), and sharing-aware (a container met twice is a back reference, so
shared substructure and cycles must match too).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from etcher._containers import Node
from etcher._db import DB
from etcher.testing.models import scalars, shaped_values

Op = tuple[Any, ...]
"""One operation: its name first, then its arguments (see :func:`apply`)."""

TOP_KEYS = ("a", "b", "c")


# --------------------------------------------------------------------------- canonical values


def canonical(value: Any) -> Any:
    """A comparable, hashable description of ``value`` (see the module docstring)."""
    seen: dict[int, int] = {}
    return _canonical(value, seen)


def _canonical(value: Any, seen: dict[int, int]) -> Any:
    if isinstance(value, Node | DB):  # handles (and the root) stand for their content
        value = value()
    if value is None or isinstance(value, bool | int | str):
        return (type(value).__name__, value)
    if isinstance(value, float):
        return ("float", repr(value))  # repr tells -0.0 from 0.0 and keeps nan comparable
    if isinstance(value, dict | list):
        if id(value) in seen:
            return ("ref", seen[id(value)])
        seen[id(value)] = mark = len(seen)
        if isinstance(value, dict):
            items = tuple((_canonical(k, seen), _canonical(v, seen)) for k, v in value.items())
            return ("dict", mark, items)
        # An explicit stack would avoid recursion, but values here are a few levels deep.
        return ("list", mark, tuple(_canonical(v, seen) for v in value))
    if isinstance(value, tuple):  # several results of one transaction
        return ("results", tuple(_canonical(v, seen) for v in value))
    return ("other", type(value).__name__, repr(value))


# --------------------------------------------------------------------------- running programs


def target(root: Any, path: Sequence[Any]) -> Any:
    """``root[p0][p1]...``: the container (or value) a path leads to."""
    node = root
    for key in path:
        node = node[key]
    return node


def apply(db: DB, root: Any, op: Op) -> Any:
    """Run one operation against ``root`` (a DB or a transactor); return its result."""
    name, *args = op
    if name == "set":
        path, key, value = args
        target(root, path)[key] = value
        return None
    if name == "del":
        path, key = args
        del target(root, path)[key]
        return None
    if name == "update":
        path, mapping = args
        return target(root, path).update(mapping)
    if name == "append":
        path, value = args
        return target(root, path).append(value)
    if name == "insert":
        path, index, value = args
        return target(root, path).insert(index, value)
    if name == "extend":
        path, values = args
        return target(root, path).extend(values)
    if name == "pop":
        path, where = args
        node = target(root, path)
        return node.pop() if where is None else node.pop(where)
    if name == "setslice":
        path, start, stop, values = args
        target(root, path)[start:stop] = values
        return None
    if name == "delslice":
        path, start, stop = args
        del target(root, path)[start:stop]
        return None
    if name in ("sort", "reverse", "clear"):
        (path,) = args
        return getattr(target(root, path), name)()
    if name == "link":
        source, path, key = args
        target(root, path)[key] = target(root, source)  # a handle: the node gets shared
        return None
    if name == "read":
        (path,) = args
        return target(root, path)
    if name == "len":
        (path,) = args
        return len(target(root, path))
    if name == "txn":
        (ops,) = args

        def body(t: Any) -> tuple[Any, ...]:
            return tuple(canonical(apply(db, t, inner)) for inner in ops)

        return db.transact(body)
    raise ValueError(f"unknown operation {name!r}")


@dataclass
class Step:
    """What one operation did on one backend."""

    op: Op
    outcome: Any
    """``("ok", canonical result)`` or ``("raised", exception type name)``."""
    state: Any
    """The canonical materialized namespace after the step."""


@dataclass
class Trace:
    """Everything a program did on one backend."""

    steps: list[Step] = field(default_factory=list)
    final_ok: bool | None = None
    problems: str = ""


def run_program(db: DB, program: Sequence[Op]) -> Trace:
    """Run ``program`` on ``db`` (a fresh namespace) and record what happened."""
    trace = Trace()
    for op in program:
        try:
            outcome: Any = ("ok", canonical(apply(db, db, op)))
        except Exception as exc:  # every outcome is data here, compared across backends
            outcome = ("raised", type(exc).__name__)
        trace.steps.append(Step(op, outcome, canonical(db())))
    report = db.check()
    trace.final_ok = report.ok
    trace.problems = "" if report.ok else str(report)
    return trace


def assert_same_traces(traces: dict[str, Trace]) -> None:
    """Raise ``AssertionError`` at the first step where the backends' traces differ."""
    names = list(traces)
    reference, first = names[0], traces[names[0]]
    for other in names[1:]:
        trace = traces[other]
        for i, (want, got) in enumerate(zip(first.steps, trace.steps, strict=True)):
            if want.outcome != got.outcome:
                raise AssertionError(
                    f"step {i} {want.op!r}: {reference} gave {want.outcome!r}, "
                    f"{other} gave {got.outcome!r}"
                )
            if want.state != got.state:
                raise AssertionError(
                    f"after step {i} {want.op!r}: the namespace on {other} differs from "
                    f"{reference}:\n{reference}: {want.state!r}\n{other}: {got.state!r}"
                )
        if first.final_ok != trace.final_ok:
            raise AssertionError(
                f"check(): {reference} ok={first.final_ok}, {other} ok={trace.final_ok}\n"
                f"{first.problems}{trace.problems}"
            )


# --------------------------------------------------------------------------- programs


# Programs start from a known shape (a list at "a", a dict at "b", both nested under "c"),
# so most operations land on a container of the right kind; a few go astray on purpose,
# to compare the errors too.
LIST_PATHS = [("a",), ("c", "x")]
DICT_PATHS = [(), ("b",), ("c",), ("c", "y")]
MAYBE_PATHS = [("a", 0), ("a", -1), ("b", "x"), ("b", "y"), ("c", "x", 0), ("c", "y", "x")]


def _paths() -> st.SearchStrategy[tuple[Any, ...]]:
    """Any path: mostly to known containers, sometimes a random walk that may lead nowhere."""
    step = st.sampled_from(["x", "y", 0, 1, -1])
    stray = st.builds(
        lambda top, rest: (top, *rest), st.sampled_from(TOP_KEYS), st.lists(step, max_size=2)
    )
    return st.one_of(st.sampled_from(LIST_PATHS + DICT_PATHS + MAYBE_PATHS), stray)


def _list_paths() -> st.SearchStrategy[tuple[Any, ...]]:
    known = st.sampled_from(LIST_PATHS)
    return st.one_of(known, known, known, st.sampled_from(MAYBE_PATHS), _paths())


def _dict_paths() -> st.SearchStrategy[tuple[Any, ...]]:
    known = st.sampled_from(DICT_PATHS)
    return st.one_of(known, known, known, st.sampled_from(MAYBE_PATHS), _paths())


def _values() -> st.SearchStrategy[Any]:
    small_scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-3, 3),
        st.sampled_from([-0.0, 1.5, 2**70, "", "s", "1"]),
        scalars(),
    )
    trees = st.recursive(
        small_scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.dictionaries(st.sampled_from(["x", "y", "z", 1]), inner, max_size=3),
        ),
        max_leaves=6,
    )
    return st.one_of(small_scalars, small_scalars, trees, shaped_values(max_nodes=3, max_items=3))


def _dict_keys() -> st.SearchStrategy[Any]:
    return st.sampled_from(["x", "y", "z", "a", 1, 0])


def _index() -> st.SearchStrategy[int | None]:
    return st.one_of(st.none(), st.integers(-4, 4))


def _list_ops() -> st.SearchStrategy[Op]:
    p, v, i = _list_paths(), _values(), st.integers(-4, 4)
    return st.one_of(
        st.tuples(st.just("append"), p, v),
        st.tuples(st.just("insert"), p, i, v),
        st.tuples(st.just("extend"), p, st.lists(v, max_size=3)),
        st.tuples(st.just("pop"), p, _index()),
        st.tuples(st.just("set"), p, i, v),
        st.tuples(st.just("del"), p, i),
        st.tuples(st.just("setslice"), p, _index(), _index(), st.lists(v, max_size=3)),
        st.tuples(st.just("delslice"), p, _index(), _index()),
        st.tuples(st.sampled_from(["sort", "reverse", "clear"]), p),
    )


def _dict_ops() -> st.SearchStrategy[Op]:
    p, v = _dict_paths(), _values()
    return st.one_of(
        st.tuples(st.just("set"), p, _dict_keys(), v),
        st.tuples(st.just("set"), st.just(()), st.sampled_from(TOP_KEYS), v),
        st.tuples(st.just("del"), p, _dict_keys()),
        st.tuples(st.just("update"), p, st.dictionaries(_dict_keys(), v, max_size=2)),
        st.tuples(st.just("pop"), p, _dict_keys()),
        st.tuples(st.just("clear"), p),
    )


def _other_ops() -> st.SearchStrategy[Op]:
    return st.one_of(
        # Links make shared nodes, diamonds and cycles out of what is already stored.
        st.tuples(st.just("link"), _paths(), _dict_paths(), _dict_keys()),
        st.tuples(st.just("link"), _paths(), _list_paths(), st.integers(-2, 2)),
        st.tuples(st.sampled_from(["read", "len"]), _paths()),
    )


def _simple_ops() -> st.SearchStrategy[Op]:
    return st.one_of(_list_ops(), _dict_ops(), _other_ops())


def programs(max_ops: int = 12) -> st.SearchStrategy[list[Op]]:
    """Random programs: the starting shape (with random content), then mixed operations."""
    v = _values()
    seed = st.builds(
        lambda a, b, cx, cy: [
            ("set", (), "a", a),
            ("set", (), "b", b),
            ("set", (), "c", {"x": cx, "y": cy}),
        ],
        st.lists(v, max_size=4),
        st.dictionaries(_dict_keys(), v, max_size=3),
        st.lists(v, max_size=3),
        st.dictionaries(_dict_keys(), v, max_size=3),
    )
    txn = st.tuples(st.just("txn"), st.lists(_simple_ops(), min_size=1, max_size=3))
    body = st.lists(
        st.one_of(_simple_ops(), _simple_ops(), _simple_ops(), txn),
        min_size=min(3, max_ops),
        max_size=max_ops,
    )
    return st.builds(lambda a, b: [*a, *b], seed, body)


def run_everywhere(
    program: Sequence[Op], open_dbs: dict[str, Callable[[], DB]]
) -> dict[str, Trace]:
    """Run ``program`` on a fresh DB from each opener; every DB is closed afterwards."""
    traces = {}
    for name, open_db in open_dbs.items():
        db = open_db()
        try:
            traces[name] = run_program(db, program)
        finally:
            db.close()
    return traces


__all__ = [
    "Op",
    "Step",
    "Trace",
    "apply",
    "assert_same_traces",
    "canonical",
    "programs",
    "run_everywhere",
    "run_program",
    "target",
]
