"""Redis glob patterns (``SCAN MATCH``) turned into an index range plus an optional filter.

Redis matches patterns byte by byte: ``*`` any run of bytes, ``?`` one byte,
``[abc]`` / ``[^abc]`` / ``[a-z]`` classes (a reversed range is swapped), and
``\\`` makes the next byte literal, inside a class too. The literal head of a
pattern becomes a key range the ``keys`` primary key answers directly; a
pattern that is only that head plus ``*`` needs no filtering at all. The rest is
matched by :func:`etcher.globs.glob_to_regex`, core's tested translation.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from etcher.globs import glob_to_regex

Matcher = Callable[[bytes], object]
"""Called with a key's UTF-8 bytes; truthy when the key matches."""

_STAR, _QUESTION, _OPEN, _ESCAPE = b"*?[\\"


def literal_prefix(pattern: bytes) -> tuple[bytes, int]:
    """The literal bytes every match starts with, and where the rest of ``pattern`` begins."""
    out = bytearray()
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c in (_STAR, _QUESTION, _OPEN):
            break
        if c == _ESCAPE and i + 1 < n:
            i += 1
            c = pattern[i]
        out.append(c)
        i += 1
    return bytes(out), i


@lru_cache(maxsize=256)
def plan(pattern: str | bytes | None) -> tuple[str, Matcher | None]:
    """How to scan for ``pattern``: a literal key prefix and a filter (``None``: no filter).

    Every key matching ``pattern`` starts with the prefix, so the scan reads only
    that key range; the filter then checks the rest of the pattern, if any.
    """
    if pattern is None:
        return "", None
    raw = pattern.encode() if isinstance(pattern, str) else bytes(pattern)
    head, rest = literal_prefix(raw)
    # Pattern metacharacters are ASCII and UTF-8 continuation bytes never are, so
    # the head ends on a character boundary and always decodes.
    prefix = head.decode()
    if rest < len(raw) and raw[rest:] == b"*" * (len(raw) - rest):
        return prefix, None
    return prefix, glob_to_regex(raw).fullmatch


def prefix_upper_bound(prefix: str) -> str | None:
    """The smallest text greater than every text starting with ``prefix`` (None: no bound).

    SQLite compares TEXT by its UTF-8 bytes, which orders the same way as code
    points, so bumping the last character that can still grow gives the bound.
    """
    chars = prefix.rstrip("\U0010ffff")
    if not chars:
        return None
    nxt = ord(chars[-1]) + 1
    if nxt == 0xD800:  # surrogates cannot be stored; the next storable code point follows them
        nxt = 0xE000
    return chars[:-1] + chr(nxt)
