"""Redis ``SCAN MATCH`` globs as compiled regular expressions, for backends to reuse.

A backend that scans its keys in Python (a dict, a dbm file, a KV store with
prefix iteration) answers ``scan_iter(match=...)`` with::

    regex = glob_to_regex(match)
    found = [key for key in keys if regex.fullmatch(key)]

The rules are Redis's (``stringmatchlen``), byte by byte over the UTF-8 key:

* ``*`` any run of bytes, ``?`` exactly one *byte* (not one character);
* ``[abc]``, ``[^abc]``, ``[a-z]``: a reversed range is swapped, and range ends
  compare as C ``char`` (signed), so bytes >= 0x80 sort below ASCII;
  ``[]`` matches nothing, ``[^]`` any byte, a class left open at the end of the
  pattern is closed there, and ``a-]`` inside a class is the range ``a..]``;
* ``\\x`` is ``x`` literally (inside a class too); a trailing ``\\`` is itself.

The conformance kit does not use this module: it keeps its own escaping
(:func:`etcher.testing.fixtures.glob_escape`) so a bug here cannot hide the same
bug in a backend.
"""

from __future__ import annotations

import re

__all__ = ["glob_to_regex"]

_STAR, _QUESTION, _OPEN, _CLOSE, _CARET, _DASH, _BACKSLASH = b"*?[]^-\\"


def _signed(byte: int) -> int:
    return byte - 256 if byte >= 128 else byte


def _spans(first: int, last: int) -> list[tuple[int, int]]:
    """The unsigned byte spans of the range ``first``-``last`` as Redis compares it."""
    lo, hi = sorted((_signed(first), _signed(last)))
    if hi < 0 or lo >= 0:
        return [(lo & 0xFF, hi & 0xFF)]
    return [(lo & 0xFF, 0xFF), (0, hi)]


def _byte(value: int) -> str:
    return f"\\x{value:02x}"


def _class(pattern: bytes, i: int) -> tuple[str, int]:
    """The regex of the class opened just before ``pattern[i]``, and where the pattern goes on."""
    n = len(pattern)
    negate = i < n and pattern[i] == _CARET
    i += negate
    spans: list[tuple[int, int]] = []
    while i < n:
        char = pattern[i]
        if char == _BACKSLASH and n - i >= 2:
            spans.append((pattern[i + 1], pattern[i + 1]))
            i += 2
        elif char == _CLOSE:
            i += 1
            break
        elif n - i >= 3 and pattern[i + 1] == _DASH:
            spans.extend(_spans(char, pattern[i + 2]))
            i += 3
        else:
            spans.append((char, char))
            i += 1
    if not spans:
        return ("." if negate else "(?!)"), i
    body = "".join(_byte(a) if a == b else f"{_byte(a)}-{_byte(b)}" for a, b in spans)
    return f"[{'^' if negate else ''}{body}]", i


def glob_to_regex(pattern: str | bytes) -> re.Pattern[bytes]:
    """Compile a Redis glob; test a key (bytes) with ``fullmatch``.

    ``str`` patterns are UTF-8 encoded first, like the key names they are matched against.
    """
    raw = pattern.encode() if isinstance(pattern, str) else bytes(pattern)
    out: list[str] = []
    i, n = 0, len(raw)
    while i < n:
        char = raw[i]
        if char == _STAR:
            if not out or out[-1] != ".*":
                out.append(".*")
            i += 1
        elif char == _QUESTION:
            out.append(".")
            i += 1
        elif char == _OPEN:
            regex, i = _class(raw, i + 1)
            out.append(regex)
        elif char == _BACKSLASH and n - i >= 2:
            out.append(_byte(raw[i + 1]))
            i += 2
        else:
            out.append(_byte(char))
            i += 1
    return re.compile("".join(out).encode(), re.DOTALL)
