"""Node ids sort in the order their factory made them (a store ordered by key name keeps
a new document's rows together, after the previous document's)."""

from __future__ import annotations

from etcher._layout import UidFactory


def test_uids_sort_as_they_were_made_across_digit_counts() -> None:
    factory = UidFactory()
    made = [factory.new("D") for _ in range(5000)]  # 1 to 4 hex digits
    assert made == sorted(made)
    assert len(set(made)) == len(made)
    assert made[0].endswith("11") and made[15].endswith("210")  # 1, then 0x10


def test_uids_sort_as_made_past_a_rewind_across_a_digit_count() -> None:
    factory = UidFactory()
    factory._start(factory.token, 0xFFD)  # (3 digits; the third uid from here has 4)
    mark = factory.mark()
    dropped = [factory.new("L") for _ in range(4)]
    assert dropped[2].endswith("41000")
    factory.rewind(mark, factory.mark())
    again = [factory.new("L") for _ in range(4)]
    assert again == dropped == sorted(dropped)
    assert dropped[0].endswith("3ffe")
    assert factory.new("L") > again[-1]


def test_a_rewound_factory_makes_the_same_uid_again() -> None:
    factory = UidFactory()
    for _ in range(14):
        factory.new("D")
    mark = factory.mark()
    first = [factory.new("D") for _ in range(3)]  # 0xf, then two with 2 digits
    factory.rewind(mark, factory.mark())
    assert [factory.new("D") for _ in range(3)] == first
    assert first[0].endswith("1f") and first[1].endswith("210")
