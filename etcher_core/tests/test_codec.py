"""The codec on its own: every JSON-style scalar and dict key round-trips exactly.

The codec is pure (bytes in, values out), so these tests need no store. The
same guarantees are tested through a real store, nested values included, by
``etcher.testing.containers.CodecConformance`` on every backend.
"""

from __future__ import annotations

import enum
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from etcher._codec import (
    Link,
    decode,
    decode_key,
    encode_key,
    encode_link,
    encode_scalar,
    format_path,
    safe_decode,
)
from etcher.errors import StoreCorrupt
from etcher.testing.models import (
    ADVERSARIAL_STRINGS,
    BIG_INTS,
    LONE_SURROGATES,
    SPECIAL_FLOATS,
    json_values,
    keys,
    same_scalar,
    scalars,
    shaped_values,
)
from etcher.testing.state_machine import kit_settings

FIXED_SCALARS: list[Any] = [
    None,
    True,
    False,
    *ADVERSARIAL_STRINGS,
    *BIG_INTS,
    *SPECIAL_FLOATS,
    10**5000,  # beyond CPython's int/str conversion limit
    -(10**5000),
]


def leaves_and_keys(value: Any) -> tuple[list[Any], list[Any]]:
    """Every scalar and every dict key inside ``value`` (shared and cyclic data included)."""
    leaves: list[Any] = []
    found_keys: list[Any] = []
    seen: set[int] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is dict:
            if id(item) in seen:
                continue
            seen.add(id(item))
            found_keys.extend(item)
            stack.extend(item.values())
        elif type(item) is list:
            if id(item) in seen:
                continue
            seen.add(id(item))
            stack.extend(item)
        else:
            leaves.append(item)
    return leaves, found_keys


def round_trip(value: Any) -> Any:
    encoded = encode_scalar(value)
    assert isinstance(encoded, bytes)
    assert decode(encoded) == safe_decode(encoded) or value != value
    return decode(encoded)


def key_round_trip(key: Any) -> Any:
    return decode_key(encode_key(key))


# --------------------------------------------------------------------------- round trips


def _scalar_id(value: Any) -> str:
    if type(value) is int and abs(value) > 10**30:
        return f"int-{value.bit_length()}-bits"  # repr() of a huge int can be refused
    return ascii(value)[:40]


@pytest.mark.parametrize("value", FIXED_SCALARS, ids=_scalar_id)
def test_fixed_scalars_round_trip_exactly(value: Any) -> None:
    got = round_trip(value)
    assert same_scalar(got, value), f"{value!r} came back as {got!r}"
    assert type(decode(encode_scalar(value))) is not Link


@given(scalars())
@kit_settings(300)
def test_any_scalar_round_trips_exactly(value: Any) -> None:
    assert same_scalar(round_trip(value), value)


@given(keys())
@kit_settings(300)
def test_any_key_round_trips_with_its_type(key: str | int) -> None:
    got = key_round_trip(key)
    assert type(got) is type(key) and got == key


@given(st.one_of(json_values(), shaped_values()))
@kit_settings(150)
def test_every_leaf_and_key_of_nested_data_round_trips(value: Any) -> None:
    leaves, found_keys = leaves_and_keys(value)
    for leaf in leaves:
        assert same_scalar(round_trip(leaf), leaf), leaf
    for key in found_keys:
        got = key_round_trip(key)
        assert type(got) is type(key) and got == key


@given(st.lists(scalars(), min_size=2, max_size=2))
@kit_settings(300)
def test_distinct_scalars_have_distinct_encodings(pair: list[Any]) -> None:
    a, b = pair
    if same_scalar(a, b):
        assert encode_scalar(a) == encode_scalar(b) or math.isnan(a)
    else:
        assert encode_scalar(a) != encode_scalar(b), f"{a!r} and {b!r} encode alike"


@given(st.lists(keys(), min_size=2, max_size=2))
@kit_settings(300)
def test_distinct_keys_have_distinct_encodings(pair: list[Any]) -> None:
    a, b = pair
    same = type(a) is type(b) and a == b
    assert (encode_key(a) == encode_key(b)) == same


def test_lookalike_values_stay_apart() -> None:
    family = [1, "1", 1.0, True, "True", None, "None", "N", "", 0, 0.0, -0.0, False, "0"]
    encodings = [encode_scalar(v) for v in family]
    assert len(set(encodings)) == len(family)
    for value in family:
        assert same_scalar(round_trip(value), value)


def test_int_and_str_keys_stay_apart() -> None:
    assert encode_key("1") != encode_key(1)
    assert encode_key("-1") != encode_key(-1)
    assert encode_key("x1f") != encode_key(2**1100)
    assert key_round_trip("1") == "1" and key_round_trip(1) == 1
    assert type(key_round_trip("1")) is str and type(key_round_trip(1)) is int


@pytest.mark.parametrize("text", ["@Dabc", "@Lroot", "@", "Droot", "@D" + "0" * 18])
def test_strings_that_look_like_links_stay_strings(text: str) -> None:
    got = decode(encode_scalar(text))
    assert type(got) is str and got == text


def test_links() -> None:
    link = decode(encode_link("Dabc123"))
    assert type(link) is Link and link == "Dabc123" and link.kind == "D"
    assert decode(encode_link("L9")).kind == "L"
    assert encode_link("Dx") != encode_scalar("Dx") and encode_link("Dx") != encode_scalar("@Dx")


def test_special_floats() -> None:
    assert math.copysign(1.0, round_trip(-0.0)) == -1.0
    assert math.copysign(1.0, round_trip(0.0)) == 1.0
    assert math.isnan(round_trip(math.nan))
    assert round_trip(math.inf) == math.inf and round_trip(-math.inf) == -math.inf
    assert round_trip(5e-324) == 5e-324 and round_trip(0.1) == 0.1
    for value in SPECIAL_FLOATS:
        assert type(round_trip(value)) is float


def test_big_ints_on_both_sides_of_the_decimal_limit() -> None:
    for value in [2**1024 - 1, 2**1024, -(2**1024) + 1, -(2**1024), 2**1100 + 1, -(2**1100) - 7]:
        assert round_trip(value) == value and type(round_trip(value)) is int
        assert key_round_trip(value) == value
    huge = 7**20000  # ~17000 decimal digits: str() would refuse it
    assert round_trip(huge) == huge and round_trip(-huge) == -huge
    assert key_round_trip(huge) == huge


def test_text_with_separators_nul_and_astral_characters() -> None:
    for text in ["a|b", "|", "0|s", "\x00", "a\x00b", "😀", "\U0010ffff", "é\u200b", "\r\n"]:
        assert round_trip(text) == text
        assert key_round_trip(text) == text


def test_subclasses_are_stored_as_their_json_base_type() -> None:
    class Level(enum.IntEnum):
        HIGH = 3

    class Ratio(float):
        pass

    for value, base in [(Level.HIGH, 3), (Ratio(0.5), 0.5), (True, True)]:
        got = round_trip(value)
        assert type(got) is type(base) and got == base
    got_key = key_round_trip(Level.HIGH)
    assert type(got_key) is int and got_key == 3


def test_str_enum_is_stored_by_value_like_json() -> None:
    # json.dumps(Color.RED) == '"red"'; a (str, Enum) member's str() is "Color.RED".
    class Color(str, enum.Enum):  # noqa: UP042 - the pre-3.11 idiom, still common
        RED = "red"

    assert round_trip(Color.RED) == "red" and type(round_trip(Color.RED)) is str
    assert key_round_trip(Color.RED) == "red"


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "value",
    [{1}, frozenset(), (1,), b"x", bytearray(b"x"), object(), 1j, [1], {"a": 1}],
    ids=lambda v: type(v).__name__,
)
def test_unsupported_scalars_are_refused_naming_the_path(value: Any) -> None:
    with pytest.raises(TypeError) as info:
        encode_scalar(value, ("a", 3))
    message = str(info.value)
    assert "value['a'][3]" in message and type(value).__name__ in message


@pytest.mark.parametrize("key", [1.5, 0.0, True, False, None, (1,), b"k", frozenset()], ids=repr)
def test_unsupported_keys_are_refused(key: Any) -> None:
    with pytest.raises(TypeError) as info:
        encode_key(key, ("outer",))
    assert "value['outer']" in str(info.value) and type(key).__name__ in str(info.value)


@pytest.mark.parametrize("text", LONE_SURROGATES, ids=ascii)
def test_lone_surrogates_are_refused(text: str) -> None:
    with pytest.raises(ValueError) as info:
        encode_scalar(text, ("a", 0))
    assert "value['a'][0]" in str(info.value)
    with pytest.raises(ValueError) as info:
        encode_key(text, ("a",))
    assert "value['a']" in str(info.value)


def test_format_path() -> None:
    assert format_path(()) == "value"
    assert format_path(("a", 0, 1, "1", "it's")) == "value['a'][0][1]['1'][\"it's\"]"


# --------------------------------------------------------------------------- corrupt data


@pytest.mark.parametrize(
    "raw",
    [b"", b"i", b"ix", b"i1.5", b"f", b"fzz", b"x", b"xg", b"s\xff", b"Q1", b"\x00"],
    ids=repr,
)
def test_undecodable_values_raise_store_corrupt(raw: bytes) -> None:
    with pytest.raises(StoreCorrupt):
        safe_decode(raw)


@pytest.mark.parametrize(
    "raw", [b"i", b"ix", b"s\xff", b"T", b"N", b"f1.5", b"@Dx", b"x"], ids=repr
)
def test_undecodable_keys_raise_store_corrupt(raw: bytes) -> None:
    with pytest.raises(StoreCorrupt):
        decode_key(raw)


def test_empty_key_raises_store_corrupt() -> None:
    with pytest.raises(StoreCorrupt):
        decode_key(b"")


def test_link_without_uid_is_corrupt() -> None:
    with pytest.raises(StoreCorrupt):
        safe_decode(b"@")


def test_lookup_keys_find_what_a_dict_would() -> None:
    from etcher._codec import lookup_key

    assert lookup_key(True) == encode_key(1) and lookup_key(False) == encode_key(0)
    assert lookup_key(2.0) == encode_key(2)
    assert lookup_key(2.5) is None and lookup_key(None) is None and lookup_key((1,)) is None
    with pytest.raises(TypeError):
        lookup_key([1])  # unhashable, as for a dict


# --------------------------------------------------------------------------- the stored format
# The codec is tuned for speed; these pin its output to the format table in codec.py's
# docstring, written out here independently, so a faster encoder can never change a byte
# that existing stores hold.


def documented_scalar(value: Any) -> bytes:
    """The stored form of a plain scalar, straight from the format table."""
    if value is None:
        return b"N"
    if value is True or value is False:
        return b"T" if value else b"F"
    if type(value) is str:
        return b"s" + value.encode("utf-8")
    if type(value) is int:
        if abs(value) < 2**1024:
            return b"i" + str(value).encode("ascii")
        return b"x" + format(value, "x").encode("ascii")
    assert type(value) is float
    return b"f" + repr(value).encode("ascii")


def documented_item(raw: bytes) -> tuple[int, bytes] | None:
    """``b"<digits>|<non-empty value>"`` split at its first bar; None if malformed."""
    seq, bar, value = raw.partition(b"|")
    if not bar or not value or not seq or any(c not in b"0123456789" for c in seq):
        return None
    return int(seq.decode("ascii")), value


@given(st.one_of(scalars(), st.sampled_from(FIXED_SCALARS), st.integers()))
def test_scalars_are_stored_exactly_as_documented(value: Any) -> None:
    assert encode_scalar(value) == documented_scalar(value)


@given(keys())
def test_keys_are_stored_exactly_as_documented(key: str | int) -> None:
    assert encode_key(key) == documented_scalar(key)


@pytest.mark.parametrize("n", [2**1024 - 1, 2**1024, -(2**1024) + 1, -(2**1024)])
def test_ints_switch_to_hex_exactly_at_the_decimal_limit(n: int) -> None:
    assert encode_scalar(n) == encode_key(n) == documented_scalar(n)
    assert safe_decode(encode_scalar(n)) == n and decode_key(encode_key(n)) == n


# Bytes that int() would take (signs, spaces, underscores, non-ASCII digits) and bars.
ITEM_PIECES = [b"0", b"7", b"|", b"+", b"-", b" ", b"_", b"s", b"\xd9\xa1", b"\xff"]


@given(st.lists(st.sampled_from(ITEM_PIECES), max_size=8).map(b"".join) | st.binary(max_size=8))
def test_dict_items_split_exactly_as_documented(raw: bytes) -> None:
    from etcher._codec import item_value, split_item

    want = documented_item(raw)
    if want is None:
        with pytest.raises(StoreCorrupt):
            split_item(raw)
    else:
        assert split_item(raw) == want
        assert item_value(raw) == want[1]


@given(st.binary(max_size=12))
def test_safe_decode_agrees_with_decode_or_reports_corruption(raw: bytes) -> None:
    try:
        expected = decode(raw)
    except Exception:  # decode may raise anything on garbage; safe_decode must not
        with pytest.raises(StoreCorrupt):
            safe_decode(raw)
        return
    got = safe_decode(raw)
    assert type(got) is type(expected) and (got == expected or got != got)


@given(
    st.dictionaries(keys(), scalars(), max_size=12),
    st.randoms(use_true_random=False),
)
def test_ordered_and_decoded_items_follow_the_insertion_sequence(
    data: dict[Any, Any], rng: Any
) -> None:
    from etcher._codec import decoded_items, ordered_items

    seqs = rng.sample(range(10_000), len(data))  # unique, in any order, with gaps
    content = {
        encode_key(k): b"%d|" % seq + encode_scalar(v)
        for seq, (k, v) in zip(seqs, data.items(), strict=True)
    }
    order = [k for _seq, k in sorted(zip(seqs, data, strict=True))]
    assert [decode_key(f) for f, _ in ordered_items(content)] == order
    assert [k for k, _ in decoded_items(content)] == order
    for (key, raw), (field, raw2) in zip(
        decoded_items(content), ordered_items(content), strict=True
    ):
        assert raw == raw2 and key == decode_key(field) and type(key) is type(decode_key(field))
        assert same_scalar(safe_decode(raw), data[key])


@pytest.mark.parametrize(
    "content",
    [
        {b"sa": b"x|sv"},
        {b"sa": b"1|"},
        {b"sa": b"1"},
        {b"": b"1|sv"},
        {b"Q": b"1|sv"},
        {b"s\xff": b"1|sv"},
        {b"ix": b"1|sv"},
        {b"sa": b"0|sv", b"sb": b"+1|sv"},
    ],
    ids=repr,
)
def test_ordered_and_decoded_items_refuse_corrupt_content(content: dict[bytes, bytes]) -> None:
    from etcher._codec import decoded_items, ordered_items

    with pytest.raises(StoreCorrupt):
        decoded_items(content)
    if all(documented_item(raw) for raw in content.values()):
        return  # the items are fine, only a key is corrupt: ordered_items does not decode keys
    with pytest.raises(StoreCorrupt):
        ordered_items(content)
