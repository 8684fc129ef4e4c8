"""Structural equality that terminates on cyclic data.

``==`` on two self-referencing plain lists recurses forever in CPython; RD/RL
compare by content and must not. Two values are equal here when no finite
walk from them reaches a difference (pairs already being compared are assumed
equal, which is what makes cycles terminate), and an ``int``/``float``/``bool``
compares the way Python compares them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def deep_equal(a: Any, b: Any) -> bool:
    """Compare two plain (materialized) values by content, safely on cycles.

    The answer is what ``a == b`` gives in Python: a list equals only a list
    (never a tuple or a range), a tuple only a tuple, a dict any mapping with
    the same items; anything else is compared with ``==`` itself.
    """
    assumed: set[tuple[int, int]] = set()
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if x is y:
            continue
        if isinstance(x, Mapping) and isinstance(y, Mapping):
            pair = (id(x), id(y))
            if pair in assumed:
                continue
            assumed.add(pair)
            if len(x) != len(y):
                return False
            for key, value in x.items():
                if key not in y:
                    return False
                stack.append((value, y[key]))
        elif (type(x) is list and type(y) is list) or (type(x) is tuple and type(y) is tuple):
            pair = (id(x), id(y))
            if pair in assumed:
                continue
            assumed.add(pair)
            if len(x) != len(y):
                return False
            stack.extend(zip(x, y, strict=True))
        elif x != y:
            # Scalars, and the mixed pairs Python decides itself (list vs tuple is False,
            # a list vs a UserList or an RL handle asks that type).
            return False
    return True
