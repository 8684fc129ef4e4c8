"""Printed summaries of RD/RL: ``@{'name': 'Alice', 'tags': L3f…}`` and ``@[1, 2, D9a…]``.

A summary shows one node only: scalars as Python reprs, nested nodes as
unquoted identity tokens (their uid, or their ``link_field`` value, or ``*``
when that value equals the key it sits under). It never expands a child, so
cycles print safely, and it shows at most :data:`MAX_ITEMS` entries.

The functions here take the node's stored items as read (no store access of
their own); ``label(uid)``, when given, returns the stored ``link_field``
item of child dict ``uid`` (or None), for the identity tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from etcher._codec import decode_key, item_value, link_target, safe_decode
from etcher._layout import is_dict

MAX_ITEMS = 100
#: Characters of a string a summary shows; the rest is counted, not printed.
MAX_CHARS = 100

Label = Callable[[str], bytes | None]
"""``label(uid)``: the stored ``link_field`` item of child dict ``uid``, or None."""


def _scalar_repr(value: Any) -> str:
    if type(value) is int and value.bit_length() > 10_000:
        return f"<int of {value.bit_length()} bits>"  # repr() refuses ints this long
    if type(value) is str and len(value) > MAX_CHARS:
        # A 50 MB field must not print 50 MB: show its start and how much is left out.
        return f"{value[:MAX_CHARS]!r}…(+{len(value) - MAX_CHARS} chars)"
    return repr(value)


def _token(raw: bytes, key: Any, label: Label | None) -> str:
    uid = link_target(raw)
    if uid is None:
        return _scalar_repr(safe_decode(raw))
    if label is not None and is_dict(uid):
        stored = label(uid)
        if stored is not None:
            value = safe_decode(item_value(stored))
            if key is not None and value == key and type(value) is type(key):
                return "*"
            if isinstance(value, str):
                return value if len(value) <= MAX_CHARS else value[:MAX_CHARS] + "…"
            if isinstance(value, (int, float)) or value is None:
                return _scalar_repr(value)
    return uid


def _more(parts: list[str], total: int) -> None:
    more = total - MAX_ITEMS
    if more > 0:
        parts.append(f"... (+{more} more)")


def summarize_dict(items: Sequence[tuple[bytes, bytes]], label: Label | None = None) -> str:
    """``@{...}`` from a dict node's ``(stored key, tagged value)`` pairs, in order."""
    parts = [
        f"{_scalar_repr(decode_key(f))}: {_token(raw, decode_key(f), label)}"
        for f, raw in items[:MAX_ITEMS]
    ]
    _more(parts, len(items))
    return "@{" + ", ".join(parts) + "}"


def summarize_list(raws: Sequence[bytes], label: Label | None = None) -> str:
    """``@[...]`` from a list node's tagged values, in order."""
    parts = [_token(raw, None, label) for raw in raws[:MAX_ITEMS]]
    _more(parts, len(raws))
    return "@[" + ", ".join(parts) + "]"
