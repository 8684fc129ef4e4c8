"""Printed summaries of RD/RL: ``@{'name': 'Alice', 'tags': L3f…}`` and ``@[1, 2, D9a…]``.

A summary shows one node only: scalars as Python reprs, nested nodes as
unquoted identity tokens (their uid, or their ``link_field`` value, or ``*``
when that value equals the key it sits under). It never expands a child, so
cycles print safely, and it shows at most :data:`MAX_ITEMS` entries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from etcher.codec import decode_key, encode_key, item_value, link_target, safe_decode
from etcher.errors import ClosedError, StaleHandleError

if TYPE_CHECKING:
    from etcher.containers import Node

MAX_ITEMS = 100
#: Characters of a string a summary shows; the rest is counted, not printed.
MAX_CHARS = 100


def _scalar_repr(value: Any) -> str:
    if type(value) is int and value.bit_length() > 10_000:
        return f"<int of {value.bit_length()} bits>"  # repr() refuses ints this long
    if type(value) is str and len(value) > MAX_CHARS:
        # A 50 MB field must not print 50 MB: show its start and how much is left out.
        return f"{value[:MAX_CHARS]!r}…(+{len(value) - MAX_CHARS} chars)"
    return repr(value)


def _token(node: Node, raw: bytes, key: Any) -> str:
    uid = link_target(raw)
    if uid is None:
        return _scalar_repr(safe_decode(raw))
    field = node._db.link_field
    if field and uid[0] == "D":
        stored = node._db._reader().hget(node._db._layout.content(uid), encode_key(field))
        if stored is not None:
            value = safe_decode(item_value(stored))
            if key is not None and value == key and type(value) is type(key):
                return "*"
            if isinstance(value, str):
                return value if len(value) <= MAX_CHARS else value[:MAX_CHARS] + "…"
            if isinstance(value, (int, float)) or value is None:
                return _scalar_repr(value)
    return uid


def summarize(node: Node) -> str:
    """The ``@``-prefixed one-level summary of a node."""
    from etcher.containers import RD

    try:
        if isinstance(node, RD):
            items = node._raw_items()
            parts = [
                f"{_scalar_repr(decode_key(f))}: {_token(node, raw, decode_key(f))}"
                for f, raw in items[:MAX_ITEMS]
            ]
            more = len(items) - MAX_ITEMS
            if more > 0:
                parts.append(f"... (+{more} more)")
            return "@{" + ", ".join(parts) + "}"
        raws = node._raws()  # type: ignore[attr-defined]
        parts = [_token(node, raw, None) for raw in raws[:MAX_ITEMS]]
        more = len(raws) - MAX_ITEMS
        if more > 0:
            parts.append(f"... (+{more} more)")
        return "@[" + ", ".join(parts) + "]"
    except StaleHandleError:
        return f"<stale {type(node).__name__} {node._etcher_uid}>"
    except ClosedError:
        return f"<{type(node).__name__} {node._etcher_uid} of a closed DB>"
