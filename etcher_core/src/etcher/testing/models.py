"""Plain-Python reference data for the container kit: strategies and exact comparison.

The container conformance classes and the state machine compare etcher's
RD/RL against plain ``dict``/``list`` doing the same thing. Two things make
that comparison trustworthy, and both live here:

* **Generators of hostile data** (hypothesis strategies): strings that look
  like etcher's own type tags, uids, separators and glob syntax; integers far
  beyond 64 bits; ``-0.0``, infinities and NaN; ``int`` and ``str`` keys that
  print the same; and *shaped* values where one plain object appears several
  times or contains itself.
* **An exact comparison** (:func:`assert_same_shape`): ``==`` is too weak for a
  persistence layer. It says ``1 == 1.0 == True``, ``0.0 == -0.0`` and
  ``{"1": x} != {1: x}`` only by accident of hashing, never compares NaN
  equal to itself, ignores dict order, recurses forever on cycles, and cannot
  see whether two places share one object. The comparison here checks exact
  types, float sign bits, NaN, key order and types, and that sharing and
  cycles match object for object -- without recursion.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

from hypothesis import strategies as st

ADVERSARIAL_STRINGS: tuple[str, ...] = (
    "",
    " ",
    "1",
    "-1",
    "1.0",
    "0x1f",
    "1e400",
    "nan",
    "None",
    "True",
    "null",
    "$x",
    "#N",
    "#k",
    "#s",
    "#p",
    "s",
    "i",
    "i1",
    "x1f",
    "T",
    "F",
    "N",
    "f1.5",
    "@",
    "@Dabc",
    "@Lroot",
    "Droot",
    "D",
    "L0",
    "|",
    "0|",
    "0|s",
    "a|b",
    "||",
    "*",
    "?",
    "[",
    "]",
    "[a-z]",
    "\\",
    "{",
    "}",
    "{P}:c:Droot",
    "etcher:namespaces",
    "\x00",
    "a\x00b",
    "\x00\x00",
    "\n",
    "\r\n",
    "\t",
    "\x7f",
    "é",
    "ß",
    "日本語",
    "😀",
    "a😀b",
    "\u200b",
    "\ufeff",
    "\U0010ffff",
    "x" * 1000,
)
"""Strings that an encoder relying on guesswork, separators or globs would get wrong."""

BIG_INTS: tuple[int, ...] = (
    0,
    -1,
    2**31,
    2**63 - 1,
    2**63,
    -(2**63),
    -(2**63) - 1,
    2**64,
    10**20,
    2**1024 - 1,
    2**1024,
    -(2**1024),
    2**1100 + 1,
    -(2**1100) - 7,
    10**400,
    -(10**400),
)
"""Integers around every width a backend might be tempted to use, and beyond."""

SPECIAL_FLOATS: tuple[float, ...] = (
    0.0,
    -0.0,
    1.0,
    -1.5,
    0.1,
    1e308,
    -1e308,
    5e-324,
    -5e-324,
    2.0**53 + 2,
    math.inf,
    -math.inf,
    math.nan,
)
"""Floats whose round trip loses information when printed carelessly."""

LONE_SURROGATES: tuple[str, ...] = ("\ud800", "\udfff", "a\udc80b", "\udc00\ud800")
"""Text that Python holds but UTF-8 cannot encode: etcher must refuse it."""


# --------------------------------------------------------------------------- strategies


def texts() -> st.SearchStrategy[str]:
    """Any storable text, biased towards :data:`ADVERSARIAL_STRINGS`."""
    return st.one_of(st.sampled_from(ADVERSARIAL_STRINGS), st.text(max_size=20))


def ints() -> st.SearchStrategy[int]:
    """Any ``int``, biased towards :data:`BIG_INTS`."""
    return st.one_of(st.sampled_from(BIG_INTS), st.integers())


def floats() -> st.SearchStrategy[float]:
    """Any ``float`` (NaN and infinities included), biased towards :data:`SPECIAL_FLOATS`."""
    return st.one_of(st.sampled_from(SPECIAL_FLOATS), st.floats())


def scalars() -> st.SearchStrategy[Any]:
    """Every JSON-style scalar etcher stores: ``None``, ``bool``, ``int``, ``float``, ``str``."""
    return st.one_of(st.none(), st.booleans(), ints(), floats(), texts())


def keys() -> st.SearchStrategy[str | int]:
    """Valid dict keys: ``str`` and ``int`` (so ``"1"`` and ``1`` both occur)."""
    return st.one_of(texts(), ints(), st.sampled_from(["1", 1, "0", 0, "-1", -1]))


def json_values(max_leaves: int = 25) -> st.SearchStrategy[Any]:
    """Tree-shaped JSON-style values: scalars, lists and dicts nested to any depth."""
    return st.recursive(
        scalars(),
        lambda children: st.one_of(
            st.lists(children, max_size=5),
            st.dictionaries(keys(), children, max_size=5),
        ),
        max_leaves=max_leaves,
    )


@st.composite
def shaped_values(draw: st.DrawFn, max_nodes: int = 6, max_items: int = 4) -> Any:
    """A dict or list graph in which containers may be shared and may contain themselves.

    Up to ``max_nodes`` containers are made; each item is a scalar or a link
    to any of them (itself included), so the result can hold diamonds,
    self-loops and longer cycles. The first container is returned.
    """
    count = draw(st.integers(1, max_nodes))
    nodes: list[Any] = [{} if draw(st.booleans()) else [] for _ in range(count)]
    for node in nodes:
        for _ in range(draw(st.integers(0, max_items))):
            if draw(st.integers(0, 2)) == 0:
                value = nodes[draw(st.integers(0, count - 1))]
            else:
                value = draw(scalars())
            if isinstance(node, dict):
                node[draw(keys())] = value
            else:
                node.append(value)
    return nodes[0]


def storable_values() -> st.SearchStrategy[Any]:
    """Anything etcher must store exactly: scalars, trees, and graphs with sharing and cycles."""
    return st.one_of(scalars(), json_values(), shaped_values())


# --------------------------------------------------------------------------- comparison


def same_scalar(a: Any, b: Any) -> bool:
    """Exact scalar equality: same type, NaN equals NaN, ``-0.0`` differs from ``0.0``."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    return bool(a == b)


def _describe(path: str, what: str, actual: Any, expected: Any) -> str:
    return f"{path}: {what}: got {_short(actual)}, expected {_short(expected)}"


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, dict | list) else type(value).__name__
    return text if len(text) <= 80 else text[:77] + "..."


def shape_differences(actual: Any, expected: Any, limit: int = 5) -> list[str]:
    """How ``actual`` differs from ``expected`` beyond what ``==`` sees (empty if identical).

    Containers must have the same type (exactly ``dict``/``list``), the same
    keys with the same types in the same order, and the same length; scalars
    must satisfy :func:`same_scalar`. Object identity must correspond one to
    one: wherever ``expected`` reuses a container (sharing, cycles), ``actual``
    reuses the corresponding one, and nowhere else.
    """
    problems: list[str] = []
    forward: dict[int, int] = {}
    backward: dict[int, int] = {}
    stack: list[tuple[Any, Any, str]] = [(actual, expected, "value")]
    while stack and len(problems) < limit:
        got, want, path = stack.pop()
        want_container = type(want) in (dict, list)
        got_container = type(got) in (dict, list)
        if not want_container or not got_container:
            if want_container or got_container or not same_scalar(got, want):
                problems.append(_describe(path, "differs", got, want))
            continue
        if type(got) is not type(want):
            problems.append(_describe(path, "wrong container type", got, want))
            continue
        seen = forward.get(id(want))
        if seen is not None:
            if seen != id(got):
                problems.append(f"{path}: a shared/cyclic object came back as a separate copy")
            continue
        if id(got) in backward:
            problems.append(f"{path}: two distinct objects came back as one shared object")
            continue
        forward[id(want)] = id(got)
        backward[id(got)] = id(want)
        if len(got) != len(want):
            problems.append(f"{path}: length {len(got)}, expected {len(want)}")
            continue
        if type(want) is dict:
            got_keys, want_keys = list(got), list(want)
            for position, (gk, wk) in enumerate(zip(got_keys, want_keys, strict=True)):
                if not same_scalar(gk, wk):
                    problems.append(
                        f"{path}: key #{position} is {gk!r} ({type(gk).__name__}), "
                        f"expected {wk!r} ({type(wk).__name__})"
                    )
                    break
            else:
                for k in reversed(want_keys):
                    stack.append((got[k], want[k], f"{path}[{k!r}]"))
        else:
            for i in range(len(want) - 1, -1, -1):
                stack.append((got[i], want[i], f"{path}[{i}]"))
    return problems


def assert_same_shape(actual: Any, expected: Any, context: str = "") -> None:
    """Fail unless ``actual`` is exactly ``expected`` (see :func:`shape_differences`)."""
    problems = shape_differences(actual, expected)
    if problems:
        head = f"{context}: " if context else ""
        raise AssertionError(
            head + "stored value differs from the reference:\n  " + "\n  ".join(problems)
        )


def containers_in(value: Any) -> Iterator[Any]:
    """Every distinct dict/list reachable from ``value`` (itself included), each once."""
    seen: set[int] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) not in (dict, list) or id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        stack.extend(item.values() if type(item) is dict else item)


def links_from(container: dict[Any, Any] | list[Any]) -> Iterator[Any]:
    """The dict/list children held directly by ``container`` (with repeats)."""
    items = container.values() if type(container) is dict else container
    return (v for v in items if type(v) in (dict, list))


def outcome(op: Callable[..., Any], target: Any) -> tuple[str, Any]:
    """``("ok", result)`` or ``("raised", exception)`` of ``op(target)``."""
    try:
        return "ok", op(target)
    except Exception as exc:
        return "raised", exc


def nested_depth(value: Any, child: Callable[[Any], Any]) -> int:
    """How many times ``child`` can be applied to ``value`` before it returns ``None``."""
    depth = 0
    node = child(value)
    while node is not None:
        depth += 1
        node = child(node)
    return depth


__all__ = [
    "ADVERSARIAL_STRINGS",
    "BIG_INTS",
    "LONE_SURROGATES",
    "SPECIAL_FLOATS",
    "assert_same_shape",
    "containers_in",
    "floats",
    "ints",
    "json_values",
    "keys",
    "links_from",
    "nested_depth",
    "outcome",
    "same_scalar",
    "scalars",
    "shape_differences",
    "shaped_values",
    "storable_values",
    "texts",
]
