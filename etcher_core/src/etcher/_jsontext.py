"""etcher JSON text <-> plain Python values, exactly (no store involved).

This is the text half of :mod:`etcher._jsonio`: it turns plain values
(dicts, lists, scalars, with sharing and cycles) into etcher JSON text and
back. :mod:`etcher._jsonio` adds the store half (export a stored value,
import a document into a namespace) and re-exports everything here.

Plain JSON cannot say "these two places hold the *same* dict", cannot hold a
cycle, has no integer object keys and no ``inf``/``nan``. etcher JSON is plain
JSON plus a few ``$``-prefixed member names that say those things. A value
with no sharing, no int keys, no non-finite floats and no ``$``-keys exports
as exactly what ``json.dumps`` would write, and any JSON without ``$``-keys
imports as itself.

The convention
==============

=====================================  =================================================
JSON                                   meaning
=====================================  =================================================
``{"$id": 1, "a": ...}``               a dict that appears more than once (shared, or
                                       part of a cycle); this is where it is written out
``{"$id": 2, "$list": [...]}``         the same for a list (a list needs an object to
                                       carry its id)
``{"$ref": 1}``                        another appearance of the node labelled ``1``
``{"$float": "inf"}``                  ``inf``, ``-inf`` or ``nan`` (not JSON numbers)
``{"$int": "-0x1f..."}``               an int too long for JSON parsers (2000+ bits),
                                       in hexadecimal
``"$5": ...`` (member name)            the int dict key ``5`` (``"$-3"`` is ``-3``)
``"$$x": ...`` (member name)           the str dict key ``"$x"``: a key that starts with
                                       ``$`` gets one more ``$`` in front
=====================================  =================================================

Export labels shared nodes ``1, 2, 3 ...`` in the order they first appear
in the text, so the same data always gives the same bytes (node uids never
leak into the file), and export → import → export is byte-identical. Import
also accepts string labels and references to labels defined later in the
text, so hand-written files may use ``{"$id": "alice"}``. Member names that
start with a single ``$`` and are none of the above are refused (not silently
taken as text), so a new directive can be added later without changing what
an old file means.

Both directions are iterative: nesting depth is limited by memory only.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator, Sequence
from json import decoder as _json_decoder
from typing import IO, Any, Protocol

from etcher.errors import EtcherTypeError, JSONFormatError

__all__ = [
    "JSONFormatError",
    "ProgressSink",
    "dump",
    "dumps",
    "iter_json",
    "loads",
]

# Ints at least this large are written as {"$int": hex}: every JSON parser (and CPython's
# int/str conversion limit, whose smallest setting is 640 digits) reads the decimal form
# of anything below it, and a fixed threshold keeps the output machine-independent.
_BIG_INT_BITS = 2000

_DIRECTIVES = frozenset(("$id", "$ref", "$list", "$float", "$int"))
_INT_KEY = re.compile(r"-?(?:0|[1-9][0-9]*)\Z")
_HEX_INT = re.compile(r"-?0x[0-9a-f]+\Z")
_NON_FINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}

_encode_str: Callable[[str], str] = json.encoder.encode_basestring
# The C-accelerated string scanner behind json.loads (untyped in typeshed).
scanstring: Callable[[str, int, bool], tuple[str, int]] = _json_decoder.scanstring  # type: ignore[attr-defined]


class ProgressSink(Protocol):
    """Receives progress of long exports and imports (the CLI shows it as a bar)."""

    def stage(self, name: str, total: int | None) -> None:
        """A new phase begins; ``total`` is its number of steps, if known."""

    def advance(self, n: int) -> None:
        """``n`` more steps of the current phase are done."""


class _NoProgress:
    def stage(self, name: str, total: int | None) -> None:
        pass

    def advance(self, n: int) -> None:
        pass


_QUIET = _NoProgress()


# ----------------------------------------------------------------------------- writing


def _scalar(value: Any, where: Callable[[], str]) -> str:
    """The JSON text of a scalar (``where`` names its position, for the error only)."""
    cls = type(value)
    if cls is str:
        return _encode_str(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if cls is int:
        if value.bit_length() < _BIG_INT_BITS:
            return str(value)
        sign = "-" if value < 0 else ""
        return '{"$int": "%s0x%x"}' % (sign, abs(value))  # noqa: UP031 - a fixed literal shape
    if cls is float:
        if math.isfinite(value):
            return float.__repr__(value)  # shortest round-trip text, as json.dumps writes
        return '{"$float": "%s"}' % ("nan" if value != value else repr(value))
    # Subclasses (enums ...) are written as their JSON base type, as the store keeps them.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _scalar(str.__str__(value), where)
    if isinstance(value, int):
        return _scalar(int(value), where)
    if isinstance(value, float):
        return _scalar(float(value), where)
    raise EtcherTypeError(f"{where()} has type {cls.__name__!r}, which etcher JSON cannot hold")


def _key(key: Any, where: Callable[[], str]) -> str:
    """The member name (already JSON-quoted) for a dict key."""
    if type(key) is str:
        return _encode_str("$" + key if key[:1] == "$" else key)
    if type(key) is int:
        return _encode_str(f"${key}" if key.bit_length() < _BIG_INT_BITS else f"${key:#x}")
    if isinstance(key, str):
        return _key(str.__str__(key), where)
    if isinstance(key, int) and not isinstance(key, bool):
        return _key(int(key), where)
    raise EtcherTypeError(
        f"key {key!r} in {where()} has type {type(key).__name__!r}; dict keys must be str or int"
    )


def _appearances(value: Any) -> dict[int, int]:
    """How often each container appears (by identity), counting the top value once."""
    counts: dict[int, int] = {}
    stack = [value]
    while stack:
        obj = stack.pop()
        if not isinstance(obj, (dict, list)):
            continue
        ident = id(obj)
        seen = counts.get(ident, 0)
        counts[ident] = seen + 1
        if not seen:
            stack.extend(obj.values() if isinstance(obj, dict) else obj)
    return counts


def iter_json(
    value: Any, *, indent: int | None = None, progress: ProgressSink | None = None
) -> Iterator[str]:
    """Yield the etcher-JSON text of a plain Python value, in pieces.

    ``value`` is what materializing gives (dicts, lists and scalars; a dict or
    list object met twice is shared). Formatting follows ``json.dumps``:
    ``indent=None`` writes one line, an int indents by that many spaces.
    """
    sink = progress or _QUIET
    counts = _appearances(value)
    sink.stage("writing", len(counts))
    labels: dict[int, int] = {}
    keep: list[Any] = []  # the objects whose ids are labelled stay alive (ids never reused)

    def nl(depth: int) -> str:
        return "" if indent is None else "\n" + " " * (indent * depth)

    def sep(depth: int) -> str:
        return ", " if indent is None else "," + nl(depth)

    # A frame: [items iterator, is_dict, item depth, closing text, first item pending, path]
    stack: list[list[Any]] = []
    out: list[str] = []

    def path_text() -> str:
        return "value" + "".join(f"[{frame[5]!r}]" for frame in stack)

    def open_value(obj: Any, depth: int, where: Callable[[], str]) -> None:
        is_dict = isinstance(obj, dict)
        if not is_dict and not isinstance(obj, list):
            out.append(_scalar(obj, where))
            return
        ident = id(obj)
        seen = labels.get(ident)
        if seen is not None:
            out.append('{"$ref": %d}' % seen)  # noqa: UP031
            return
        sink.advance(1)
        shared = counts[ident] > 1
        label = 0
        if shared:
            label = len(labels) + 1
            labels[ident] = label
            keep.append(obj)
        items = iter(obj.items()) if is_dict else iter(obj)
        if is_dict:
            if shared:
                out.append("{" + nl(depth + 1) + '"$id": %d' % label)  # noqa: UP031
                stack.append([items, True, depth + 1, nl(depth) + "}", False, None])
            elif obj:
                out.append("{")
                stack.append([items, True, depth + 1, nl(depth) + "}", True, None])
            else:
                out.append("{}")
        elif shared:
            head = "{" + nl(depth + 1) + '"$id": %d' % label + sep(depth + 1) + '"$list": '  # noqa: UP031
            if obj:
                out.append(head + "[")
                closing = nl(depth + 1) + "]" + nl(depth) + "}"
                stack.append([items, False, depth + 2, closing, True, None])
            else:
                out.append(head + "[]" + nl(depth) + "}")
        elif obj:
            out.append("[")
            stack.append([items, False, depth + 1, nl(depth) + "]", True, None])
        else:
            out.append("[]")

    open_value(value, 0, lambda: "value")
    while stack:
        frame = stack[-1]
        item = next(frame[0], _END)
        if item is _END:
            out.append(frame[3])
            stack.pop()
            if len(out) > 512:
                yield "".join(out)
                out.clear()
            continue
        depth = frame[2]
        out.append(nl(depth) if frame[4] else sep(depth))
        frame[4] = False
        if frame[1]:
            key, child = item
            frame[5] = key
            out.append(_key(key, path_text) + ": ")
        else:
            child = item
            frame[5] = frame[5] + 1 if isinstance(frame[5], int) else 0
        open_value(child, depth, path_text)
    yield "".join(out)


_END: Any = object()


def dumps(value: Any, *, indent: int | None = None, progress: ProgressSink | None = None) -> str:
    """The etcher-JSON text of a plain Python value (see the module docstring)."""
    return "".join(iter_json(value, indent=indent, progress=progress))


def dump(
    value: Any,
    file: IO[str],
    *,
    indent: int | None = None,
    progress: ProgressSink | None = None,
) -> None:
    """Write the etcher-JSON text of ``value`` to a text file, piece by piece."""
    for piece in iter_json(value, indent=indent, progress=progress):
        file.write(piece)


# ----------------------------------------------------------------------------- reading


class _Obj(list[tuple[str, Any]]):
    """A JSON object as parsed: its members in order (duplicates kept, to be refused)."""

    __slots__ = ()


def _fail(text: str, pos: int, why: str) -> JSONFormatError:
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return JSONFormatError(f"invalid JSON at line {line} column {col}: {why}")


_WS = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_LITERALS = {"true": True, "false": False, "null": None}
_LENIENT = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _member_name(text: str, pos: int) -> tuple[str, int]:
    """The member name at ``pos`` and the position after its ``:`` (and whitespace)."""
    if pos >= len(text) or text[pos] != '"':
        raise _fail(text, pos, "expected a member name in double quotes")
    key, pos = scanstring(text, pos + 1, True)
    pos = _WS.match(text, pos).end()  # type: ignore[union-attr]
    if pos >= len(text) or text[pos] != ":":
        raise _fail(text, pos, "expected ':' after a member name")
    return key, _WS.match(text, pos + 1).end()  # type: ignore[union-attr]


def _parse_iterative(text: str) -> Any:
    """A JSON parser with an explicit stack, for documents nested deeper than ``json`` allows.

    Produces exactly what ``json.loads(text, object_pairs_hook=_Obj)`` produces.
    """
    ws = _WS.match
    pos = ws(text, 0).end()  # type: ignore[union-attr]
    # Each open container: (container, is_object); pending object keys sit in ``keys``.
    stack: list[tuple[Any, bool]] = []
    keys: list[str] = []
    result: Any = _END
    n = len(text)
    while True:
        # --- parse one value at pos
        if pos >= n:
            raise _fail(text, pos, "unexpected end of the document")
        c = text[pos]
        value: Any = _END
        if c == "{" or c == "[":
            is_obj = c == "{"
            container: Any = _Obj() if is_obj else []
            pos = ws(text, pos + 1).end()  # type: ignore[union-attr]
            if pos < n and text[pos] == ("}" if is_obj else "]"):
                value = container
                pos += 1
            else:
                stack.append((container, is_obj))
                if is_obj:
                    key, pos = _member_name(text, pos)
                    keys.append(key)
                continue
        elif c == '"':
            value, pos = scanstring(text, pos + 1, True)
        else:
            m = _NUMBER.match(text, pos)
            if m and m.end() > pos:
                raw = m.group()
                value = float(raw) if m.group(1) or m.group(2) else int(raw)
                pos = m.end()
            else:
                for word, literal in (*_LITERALS.items(), *_LENIENT.items()):
                    if text.startswith(word, pos):
                        value = literal
                        pos += len(word)
                        break
                else:
                    raise _fail(text, pos, "expected a value")
        # --- attach the finished value, closing containers as far as the text says
        while True:
            if not stack:
                result = value
                break
            container, is_obj = stack[-1]
            if is_obj:
                container.append((keys.pop(), value))
            else:
                container.append(value)
            pos = ws(text, pos).end()  # type: ignore[union-attr]
            closer = "}" if is_obj else "]"
            if pos < n and text[pos] == ",":
                pos = ws(text, pos + 1).end()  # type: ignore[union-attr]
                if is_obj:
                    key, pos = _member_name(text, pos)
                    keys.append(key)
                break
            if pos < n and text[pos] == closer:
                pos += 1
                stack.pop()
                value = container
                continue
            if pos >= n:
                raise _fail(text, pos, "unexpected end of the document")
            raise _fail(text, pos, f"expected ',' or '{closer}'")
        if result is not _END:
            break
    pos = ws(text, pos).end()  # type: ignore[union-attr]
    if pos != n:
        raise _fail(text, pos, "extra data after the document")
    return result


def _parse(text: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_Obj)
    except RecursionError:
        # The C parser recurses per nesting level; deep documents take the slow, flat road.
        pass
    except json.JSONDecodeError as exc:
        raise JSONFormatError(
            f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except ValueError as exc:  # e.g. an integer longer than the int/str conversion limit
        raise JSONFormatError(f"invalid JSON: {exc}") from None
    try:
        return _parse_iterative(text)
    except JSONFormatError:
        raise
    except json.JSONDecodeError as exc:
        raise JSONFormatError(
            f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except ValueError as exc:
        raise JSONFormatError(f"invalid JSON: {exc}") from None


class _Step:
    """A path as a link to its parent path plus one key.

    A child's path costs one object instead of a copy of its parent's keys, so
    converting a document of depth d is linear, not quadratic, in d. The keys are
    only spelled out when an error message needs them.
    """

    __slots__ = ("key", "parent")

    def __init__(self, parent: _PathT, key: str | int) -> None:
        self.parent = parent
        self.key = key

    def keys(self) -> list[str | int]:
        out: list[str | int] = []
        step: _PathT = self
        while isinstance(step, _Step):
            out.append(step.key)
            step = step.parent
        out.reverse()
        return out


_PathT = _Step | tuple[()]
"""Where a value sits while a document is converted: ``()`` at the top level."""


def _where(path: Sequence[Any] | _Step) -> str:
    """A JSON-Pointer-like location for messages: ``/person/tags/0``."""
    if isinstance(path, _Step):
        path = path.keys()
    if not path:
        return "the top level"
    return "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in path)


def _member_key(name: str, path: _PathT) -> str | int:
    """The dict key a member name stands for (directives are handled by the caller)."""
    if name[:1] != "$":
        return name
    rest = name[1:]
    if rest[:1] == "$":
        return rest
    if _INT_KEY.match(rest):
        return int(rest)
    if _HEX_INT.match(rest):
        return int(rest.replace("0x", "", 1), 16)
    if name in _DIRECTIVES:
        raise JSONFormatError(f"{name!r} is not allowed here ({_where(path)})")
    raise JSONFormatError(
        f"member name {name!r} at {_where(path)} starts with '$', which etcher JSON reserves; "
        f"write {'$' + name!r} for a key that starts with '$'"
    )


def _label(value: Any, path: _PathT) -> str | int:
    if type(value) is int or type(value) is str:
        return value
    raise JSONFormatError(f'"$id"/"$ref" at {_where(path)} must be an int or a string')


def _special_scalar(obj: _Obj, path: _PathT) -> tuple[bool, Any]:
    """``{"$float": ...}`` / ``{"$int": ...}`` objects; ``(False, None)`` for anything else."""
    if len(obj) != 1 or obj[0][0] not in ("$float", "$int"):
        return False, None
    name, raw = obj[0]
    if name == "$float":
        if raw not in _NON_FINITE:
            raise JSONFormatError(
                f'"$float" at {_where(path)} must be "inf", "-inf" or "nan", not {raw!r}'
            )
        return True, _NON_FINITE[raw]
    if type(raw) is not str or not _HEX_INT.match(raw):
        raise JSONFormatError(f'"$int" at {_where(path)} must be hex text like "-0x1f"')
    return True, int(raw.replace("0x", "", 1), 16)


def _convert(raw: Any, root_alias: Any = None, progress: ProgressSink | None = None) -> Any:
    """Turn a parsed document into the Python value it stands for (sharing and cycles real).

    ``root_alias``, when given, replaces every ``$ref`` to the top-level node
    (used when importing over a namespace root, which is linked, not copied).
    """
    sink = progress or _QUIET
    sink.stage("reading", None)
    labels: dict[str | int, Any] = {}
    # Forward references: (container, slot, label, path) filled once every label is known.
    pending: list[tuple[Any, Any, str | int, _PathT]] = []
    top_label: list[str | int] = []

    def build(node: Any, path: _PathT) -> tuple[Any, list[tuple[Any, Any, Any, _PathT]]]:
        """The container/scalar for ``node`` and the children still to fill in."""
        if type(node) is list:
            items: list[Any] = [None] * len(node)
            return items, [(items, i, v, _Step(path, i)) for i, v in enumerate(node)]
        if type(node) is not _Obj:
            return node, []
        special, scalar = _special_scalar(node, path)
        if special:
            return scalar, []
        names = [name for name, _v in node]
        if "$ref" in names:
            raise JSONFormatError(f'"$ref" at {_where(path)} must be the only member')
        out: Any
        label: str | int | None = None
        members: list[tuple[str, Any]] = []
        list_items: Any = _END
        for name, value in node:
            if name == "$id":
                if label is not None:
                    raise JSONFormatError(f'two "$id" members at {_where(path)}')
                label = _label(value, path)
            elif name == "$list":
                list_items = value
            else:
                members.append((name, value))
        if list_items is not _END:
            if members or label is None or type(list_items) is not list:
                raise JSONFormatError(
                    f'"$list" at {_where(path)} must hold an array and sit beside only "$id"'
                )
            out, todo = build(list_items, path)
        else:
            obj: dict[Any, Any] = {}
            todo = []
            for name, value in members:
                key = _member_key(name, path)
                if key in obj:
                    raise JSONFormatError(f"duplicate key {key!r} at {_where(path)}")
                obj[key] = None  # placeholders keep the document's key order
                todo.append((obj, key, value, _Step(path, key)))
            out = obj
        if label is not None:
            if label in labels:
                raise JSONFormatError(f'"$id" {label!r} at {_where(path)} is used twice')
            labels[label] = out
            if not path:
                top_label.append(label)
        return out, todo

    def ref_of(node: Any, path: _PathT) -> tuple[bool, str | int | None]:
        if type(node) is _Obj and node and node[0][0] == "$ref":
            if len(node) != 1:
                raise JSONFormatError(f'"$ref" at {_where(path)} must be the only member')
            return True, _label(node[0][1], path)
        return False, None

    is_ref, _lbl = ref_of(raw, ())
    if is_ref:
        raise JSONFormatError('the top level cannot be a "$ref"')
    top, todo = build(raw, ())
    stack = todo[::-1]
    done = 0
    while stack:
        container, slot, node, path = stack.pop()
        is_ref, label = ref_of(node, path)
        if is_ref:
            assert label is not None
            if label in labels:
                container[slot] = labels[label]
            else:
                pending.append((container, slot, label, path))
            continue
        value, children = build(node, path)
        container[slot] = value
        if children:
            stack.extend(reversed(children))
        done += 1
        if done & 1023 == 0:
            sink.advance(1024)
    for container, slot, label, path in pending:
        if label not in labels:
            raise JSONFormatError(f'"$ref" {label!r} at {_where(path)} names no "$id"')
        container[slot] = labels[label]
    if root_alias is not None and top_label:
        _replace_identity(top, top, root_alias)
    return top


def _replace_identity(top: Any, target: Any, alias: Any) -> None:
    """Replace every reference to ``target`` inside ``top`` by ``alias`` (iteratively)."""
    seen: set[int] = set()
    stack = [top]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        slots = obj.items() if isinstance(obj, dict) else enumerate(obj)
        for slot, child in list(slots):
            if child is target:
                obj[slot] = alias
            elif isinstance(child, (dict, list)):
                stack.append(child)


def loads(source: str | bytes, *, progress: ProgressSink | None = None) -> Any:
    """Parse etcher JSON into plain Python values (shared nodes are shared objects)."""
    text = _text(source)
    return _convert(_parse(text), progress=progress)


def _text(source: str | bytes | IO[str] | IO[bytes]) -> str:
    if isinstance(source, bytes):
        try:
            return source.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise JSONFormatError(f"the document is not UTF-8 text: {exc}") from None
    if isinstance(source, str):
        return source
    data = source.read()
    return _text(data)
