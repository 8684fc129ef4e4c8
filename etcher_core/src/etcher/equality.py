"""Structural equality that terminates on cyclic data.

``==`` on two self-referencing plain lists recurses forever in CPython; RD/RL
compare by content and must not. Two values are equal here when no finite
walk from them reaches a difference (pairs already being compared are assumed
equal, which is what makes cycles terminate), and an ``int``/``float``/``bool``
compares the way Python compares them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def _is_seq(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes, bytearray))


def deep_equal(a: Any, b: Any) -> bool:
    """Compare two plain (materialized) values by content, safely on cycles."""
    assumed: set[tuple[int, int]] = set()
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if x is y:
            continue
        x_map, y_map = isinstance(x, Mapping), isinstance(y, Mapping)
        x_seq, y_seq = _is_seq(x), _is_seq(y)
        if not (x_map or x_seq or y_map or y_seq):
            if x != y:
                return False
            continue
        if x_map != y_map or x_seq != y_seq:
            return False
        pair = (id(x), id(y))
        if pair in assumed:
            continue
        assumed.add(pair)
        if len(x) != len(y):
            return False
        if x_map:
            for key, value in x.items():
                if key not in y:
                    return False
                stack.append((value, y[key]))
        else:
            stack.extend(zip(x, y, strict=True))
    return True
