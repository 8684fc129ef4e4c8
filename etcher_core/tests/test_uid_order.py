"""Node ids sort in the order their factory made them (a store ordered by key name keeps
a new document's rows together, after the previous document's)."""

from __future__ import annotations

from etcher._layout import UidFactory


def test_uids_sort_as_they_were_made_across_digit_counts() -> None:
    factory = UidFactory()
    made = [factory.new("D") for _ in range(5000)]  # 1 to 4 hex digits
    assert made == sorted(made)
    assert len(set(made)) == len(made)


def test_uids_sort_as_made_past_a_rewind() -> None:
    factory = UidFactory()
    factory._n = 0xFFE  # (3 digits; the next ones cross to 4)
    mark = factory.mark()
    dropped = [factory.new("L") for _ in range(3)]
    factory.rewind(mark, factory.mark())
    again = [factory.new("L") for _ in range(3)]
    assert again == dropped == sorted(dropped)
    assert factory.new("L") > again[-1]
