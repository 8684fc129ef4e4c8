"""Assertions that say which rule of the storage Protocol a backend broke.

A bare ``assert b'59' == b'80'`` tells a backend author nothing about what was
expected or why. The helpers here fail with the rule in words first, then the
two values, with the test's long, glob-hostile key prefix shortened to
``<prefix>`` so the part that differs is visible::

    The Protocol requires: a failed incr changes nothing (the value stays as it was).
      key      <prefix>n
      expected b'9223372036854775807'
      got      b'-9223372036854775808'
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["expect", "expect_equal", "shorten"]


def _forms(prefix: str) -> list[str]:
    """How ``prefix`` can appear inside a repr: as text, and inside a bytes literal."""
    forms = {prefix, repr(prefix)[1:-1], repr(prefix.encode())[2:-1]}
    # Longest first, so a form that contains another is replaced whole.
    return sorted((f for f in forms if f), key=len, reverse=True)


def shorten(text: str, prefix: str | None) -> str:
    """``text`` with every occurrence of the test's key prefix replaced by ``<prefix>``."""
    if not prefix:
        return text
    for form in _forms(prefix):
        text = text.replace(form, "<prefix>")
    return text


def _show(value: Any, prefix: str | None, limit: int = 600) -> str:
    text = shorten(repr(value), prefix)
    if len(text) > limit:
        text = f"{text[: limit // 2]} ... ({len(text)} characters) ... {text[-limit // 4 :]}"
    return text


def expect(
    condition: object,
    rule: str,
    *,
    prefix: str | None = None,
    details: Iterable[tuple[str, Any]] = (),
) -> None:
    """Fail with ``The Protocol requires: <rule>`` (plus labelled details) unless ``condition``."""
    if condition:
        return
    lines = [f"The Protocol requires: {rule}"]
    lines += [f"  {label:<8} {_show(value, prefix)}" for label, value in details]
    raise AssertionError("\n".join(lines))


def expect_equal(
    actual: Any,
    expected: Any,
    rule: str,
    *,
    prefix: str | None = None,
    key: str | bytes | None = None,
) -> None:
    """Fail with the rule in words, the key and both values unless ``actual == expected``."""
    if actual == expected:
        return
    details: list[tuple[str, Any]] = []
    if key is not None:
        details.append(("key", _Raw(shorten(key if isinstance(key, str) else repr(key), prefix))))
    details += [("expected", expected), ("got", actual)]
    expect(False, rule, prefix=prefix, details=details)


class _Raw:
    """A value whose repr is the given text (so a key is shown without quotes)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text
