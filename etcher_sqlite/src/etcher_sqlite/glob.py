"""Redis glob patterns (``SCAN MATCH``) turned into an index range plus an optional filter.

Redis matches patterns byte by byte: ``*`` any run of bytes, ``?`` one byte,
``[abc]`` / ``[^abc]`` / ``[a-z]`` classes (a reversed range is swapped), and
``\\`` makes the next byte literal, inside a class too. The literal head of a
pattern becomes a key range the ``keys`` primary key answers directly; a
pattern that is only that head plus ``*`` needs no filtering at all.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

Matcher = Callable[[bytes], object]
"""Called with a key's UTF-8 bytes; truthy when the key matches."""

_STAR, _QUESTION, _OPEN, _CLOSE, _ESCAPE, _CARET, _DASH = b"*?[]\\^-"


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


def _signed(byte: int) -> int:
    return byte - 256 if byte >= 0x80 else byte


def _class(pattern: bytes, i: int) -> tuple[bytes, int]:
    """Translate the class opened at ``pattern[i - 1]``: its regex and the index of its ``]``.

    Mirrors Redis ``stringmatchlen`` exactly, including its corner cases: an
    unterminated class ends at the end of the pattern, ``\\`` escapes inside a
    class, and ``x-y`` is a range whenever two more bytes follow ``x``.
    """
    n = len(pattern)
    negate = i < n and pattern[i] == _CARET
    if negate:
        i += 1
    ranges: list[tuple[int, int]] = []
    while True:
        if i < n and pattern[i] == _ESCAPE and n - i >= 2:
            i += 1
            ranges.append((pattern[i], pattern[i]))
        elif i < n and pattern[i] == _CLOSE:
            break
        elif i >= n:
            i -= 1  # unterminated: the class is what we saw, and the pattern ends here
            break
        elif n - i >= 3 and pattern[i + 1] == _DASH:
            # Redis compares range ends as C ``char``, which is signed: bytes >= 0x80 sort
            # below ASCII. Order the ends that way, then map back to unsigned byte spans.
            lo, hi = sorted((_signed(pattern[i]), _signed(pattern[i + 2])))
            if hi < 0 or lo >= 0:
                ranges.append((lo & 0xFF, hi & 0xFF))
            else:
                ranges.append((lo & 0xFF, 0xFF))
                ranges.append((0, hi))
            i += 2
        else:
            ranges.append((pattern[i], pattern[i]))
        i += 1
    if not ranges:
        return (b"." if negate else b"(?!)"), i
    body = b"".join(b"\\x%02x-\\x%02x" % pair for pair in ranges)
    return b"[" + (b"^" if negate else b"") + body + b"]", i


def to_regex(pattern: bytes) -> bytes:
    """The Python regex (for ``fullmatch`` with ``DOTALL``) equivalent to ``pattern``."""
    out: list[bytes] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == _STAR:
            while i + 1 < n and pattern[i + 1] == _STAR:
                i += 1
            out.append(b".*")
        elif c == _QUESTION:
            out.append(b".")
        elif c == _OPEN:
            regex, i = _class(pattern, i + 1)
            out.append(regex)
        else:
            if c == _ESCAPE and i + 1 < n:
                i += 1
                c = pattern[i]
            out.append(re.escape(bytes((c,))))
        i += 1
    return b"".join(out)


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
    return prefix, re.compile(to_regex(raw), re.DOTALL).fullmatch


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
