"""``etcher.globs.glob_to_regex``: Redis's ``SCAN MATCH`` rules, for backends that scan in Python.

The table is the one etcher-sqlite's own glob checks against a real Redis server
(``etcher_sqlite/tests/test_scan.py``), plus the signed-range cases.
"""

from __future__ import annotations

import pytest

from etcher.globs import glob_to_regex

GLOB_CASES = [
    ("abc", "abc", True),
    ("abc", "abcd", False),
    ("a*", "a", True),
    ("a*c", "abbbc", True),
    ("a*c", "abbb", False),
    ("a?c", "abc", True),
    ("a?c", "ac", False),
    ("a[bc]d", "acd", True),
    ("a[^bc]d", "acd", False),
    ("a[^bc]d", "aed", True),
    ("a[b-d]", "ac", True),
    ("a[d-b]", "ac", True),  # reversed ranges are swapped
    ("a[\\]]", "a]", True),
    ("a[\\-]", "a-", True),
    ("a[-z]", "a-", True),
    ("a[a-]", "a]", True),  # "a-]" reads as the range a..]
    ("a[bc", "ab", True),  # unterminated class: what was seen
    ("a[bc", "abc", False),
    ("a[", "a", False),
    ("a[]", "a", False),
    ("a[]b]", "ab]", False),
    ("a[^]", "ax", True),
    ("a\\*", "a*", True),
    ("a\\*", "ab", False),
    ("a\\", "a\\", True),  # a trailing backslash is literal
    ("a\\b", "ab", True),
    ("a**b", "ab", True),
    ("*", "", True),
    ("?", "é", False),  # one byte, not one character
    ("??", "é", True),
    # Range ends compare as signed chars: "é" starts with 0xC3, which sorts below "?".
    ("[?-é]", "[", False),
    ("[?-é]", "\x00", True),
    ("[a-é]", "b", False),
    ("[a-é]", "[", True),
    ("x.y", "xzy", False),  # regex syntax is literal
    ("(a|b)", "(a|b)", True),
    ("a\nb*", "a\nbc", True),
]


@pytest.mark.parametrize(("pattern", "key", "expected"), GLOB_CASES)
def test_glob_semantics(pattern: str, key: str, expected: bool) -> None:
    regex = glob_to_regex(pattern)
    assert bool(regex.fullmatch(key.encode())) is expected
    assert bool(glob_to_regex(pattern.encode()).fullmatch(key.encode())) is expected
