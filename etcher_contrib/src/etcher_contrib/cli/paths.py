"""The PATH syntax of the command line: ``person/tags/0``.

A path is keys and list indexes joined by ``/``, from the namespace root.
``\\/`` is a ``/`` inside a key and ``\\\\`` a backslash. A dict key that is an
int is written as its digits; when the dict also holds the *str* key with the
same text, the str key wins and ``\\#5`` means the int key ``5``. An empty path
(or ``/``) is the root; one leading and one trailing ``/`` are ignored, and an
empty segment (``a//b``) is the empty-string key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from etcher_contrib.cli.errors import CLIError

_INT = re.compile(r"-?(?:0|[1-9][0-9]*)\Z")


@dataclass(frozen=True)
class Segment:
    """One step of a path as typed: its text, and whether ``\\#`` forced an int key."""

    text: str
    force_int: bool = False

    def as_int(self) -> int | None:
        """The int this segment spells, if it spells one."""
        return int(self.text) if _INT.match(self.text) else None


def parse(path: str) -> list[Segment]:
    """Split a typed path into segments (raises :class:`CLIError` on a bad escape)."""
    if path.startswith("/"):
        path = path[1:]
    if path.endswith("/") and not _escaped_at(path, len(path) - 1):
        path = path[:-1]
    if not path:
        return []
    segments: list[Segment] = []
    text: list[str] = []
    force_int = False
    i = 0
    while i < len(path):
        c = path[i]
        if c == "\\":
            nxt = path[i + 1 : i + 2]
            if nxt in ("/", "\\"):
                text.append(nxt)
            elif nxt == "#" and not text:
                force_int = True
            else:
                bad = "\\" + nxt
                raise CLIError(
                    f"bad escape {bad!r} in path {path!r}: use \\/ for '/', "
                    "\\\\ for '\\' and \\#N for the int key N"
                )
            i += 2
            continue
        if c == "/":
            segments.append(_segment("".join(text), force_int, path))
            text, force_int = [], False
        else:
            text.append(c)
        i += 1
    segments.append(_segment("".join(text), force_int, path))
    return segments


def _escaped_at(path: str, index: int) -> bool:
    backslashes = 0
    while index - 1 - backslashes >= 0 and path[index - 1 - backslashes] == "\\":
        backslashes += 1
    return backslashes % 2 == 1


def _segment(text: str, force_int: bool, path: str) -> Segment:
    if force_int and not _INT.match(text):
        raise CLIError(f"\\#{text} in path {path!r} is not an int key")
    return Segment(text, force_int)


def format_key(key: Any, siblings: Any = None) -> str:
    """A key as it is typed in a path (``siblings``: the dict, to mark ambiguous int keys)."""
    if isinstance(key, int):
        if siblings is not None and str(key) in siblings:
            return f"\\#{key}"
        return str(key)
    return str(key).replace("\\", "\\\\").replace("/", "\\/")


def format_path(keys: list[Any]) -> str:
    """Keys from the root as a typed path (``/`` for the root)."""
    return "/".join(format_key(k) for k in keys) or "/"


def _is_dict(node: Any) -> bool:
    from etcher import DB, RD

    return isinstance(node, (RD, DB))


def _is_list(node: Any) -> bool:
    from etcher import RL

    return isinstance(node, RL)


def pick_key(node: Any, seg: Segment, *, for_write: bool = False) -> Any:
    """The actual key ``seg`` names in container ``node`` (str or int, as stored)."""
    number = seg.as_int()
    if _is_list(node):
        if number is None:
            raise CLIError(f"{seg.text!r} is not a list index")
        return number
    if seg.force_int:
        return number
    if seg.text in node or number is None:
        return seg.text
    if number in node:
        return number
    return seg.text if for_write else number


def resolve(db: Any, segments: list[Segment]) -> tuple[Any, list[Any]]:
    """Walk ``segments`` from the root: the value found (a handle or a scalar) and its keys."""
    node: Any = db
    keys: list[Any] = []
    for seg in segments:
        if not (_is_dict(node) or _is_list(node)):
            raise CLIError(
                f"{format_path(keys)} is a {type_name(node)}, so it has no {seg.text!r} inside"
            )
        key = pick_key(node, seg)
        try:
            node = node[key]
        except (KeyError, IndexError):
            what = "index" if _is_list(node) else "key"
            raise CLIError(f"no {what} {key!r} in {format_path(keys)}") from None
        keys.append(key)
    return node, keys


def resolve_parent(db: Any, segments: list[Segment]) -> tuple[Any, list[Any]]:
    """The keys of a path whose last step may not exist yet (for writing there)."""
    if not segments:
        return db, []
    parent, keys = resolve(db, segments[:-1])
    if not (_is_dict(parent) or _is_list(parent)):
        raise CLIError(f"{format_path(keys)} is a {type_name(parent)}, not a dict or list")
    last = pick_key(parent, segments[-1], for_write=True)
    if _is_list(parent) and not -len(parent) <= last < len(parent):
        raise CLIError(f"no index {last} in {format_path(keys)} (it has {len(parent)} items)")
    return parent, [*keys, last]


def type_name(value: Any) -> str:
    """The JSON-ish type name the CLI shows: dict, list, str, int, float, bool, null."""
    if _is_dict(value):
        return "dict"
    if _is_list(value):
        return "list"
    if value is None:
        return "null"
    return type(value).__name__
