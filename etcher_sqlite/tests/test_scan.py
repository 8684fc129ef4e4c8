"""scan_iter: Redis glob rules, literal prefixes as index ranges, batching."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from etcher_sqlite import SQLiteBackend
from etcher_sqlite.glob import plan, prefix_upper_bound


def escape(text: str) -> str:
    return re.sub(r"([\\*?\[\]])", r"\\\1", text)


HOSTILE = [
    "a",
    "ab",
    "a*",
    "a*b",
    "a*\\",
    "a\\",
    "a\\b",
    "a[1]",
    "a[",
    "a]",
    "a?",
    "a?x",
    "b",
    "[",
    "\\",
    "*",
    "{tag}:a",
    "é",
    "éa",
]


@pytest.fixture
def hostile(store: SQLiteBackend) -> SQLiteBackend:
    for name in HOSTILE:
        store.set(name, 1)
    return store


def scan(store: SQLiteBackend, match: str | None = None, count: int | None = None) -> list[bytes]:
    return list(store.scan_iter(match=match, count=count))


def test_everything_without_a_pattern(hostile: SQLiteBackend) -> None:
    assert sorted(scan(hostile)) == sorted(name.encode() for name in HOSTILE)
    assert sorted(scan(hostile, "*")) == sorted(name.encode() for name in HOSTILE)


@pytest.mark.parametrize("prefix", HOSTILE)
def test_escaped_prefix_matches_exactly_the_keys_with_that_prefix(
    hostile: SQLiteBackend, prefix: str
) -> None:
    found = scan(hostile, escape(prefix) + "*")
    assert found == sorted(n.encode() for n in HOSTILE if n.startswith(prefix))
    assert len(found) == len(set(found))


@pytest.mark.parametrize("name", HOSTILE)
def test_escaped_name_matches_only_itself(hostile: SQLiteBackend, name: str) -> None:
    assert scan(hostile, escape(name)) == [name.encode()]


def test_patterns_filter_the_rest(hostile: SQLiteBackend) -> None:
    assert scan(hostile, "a?") == [b"a*", b"a?", b"a[", b"a\\", b"a]", b"ab"]
    assert scan(hostile, "a[*?]*") == [b"a*", b"a*\\", b"a*b", b"a?", b"a?x"]
    assert scan(hostile, "[^a]") == [b"*", b"[", b"\\", b"b"]
    assert scan(hostile, "*b") == [b"a*b", b"a\\b", b"ab", b"b"]
    assert scan(hostile, "?") == [b"*", b"[", b"\\", b"a", b"b"]  # "é" is two bytes


def test_small_count_pages_through_everything_once(store: SQLiteBackend) -> None:
    names = [f"p:{i:04d}" for i in range(250)] + ["p", "q:1", "o:9"]
    for name in names:
        store.set(name, 1)
    assert scan(store, "p:*", count=7) == sorted(n.encode() for n in names if n.startswith("p:"))
    assert sorted(scan(store, count=1)) == sorted(n.encode() for n in names)
    assert scan(store, "p:00?5", count=3) == [b"p:00%d5" % i for i in range(10)]


def test_literal_prefix_is_an_index_range(hostile: SQLiteBackend) -> None:
    statements: list[str] = []
    conn = hostile._conn()
    conn.set_trace_callback(statements.append)
    try:
        assert scan(hostile, "a\\*b*") == [b"a*b"]
    finally:
        conn.set_trace_callback(None)
    (query,) = statements
    assert "name >= 'a*b' AND name < 'a*c'" in query
    plan_rows = conn.execute(
        "EXPLAIN QUERY PLAN SELECT name FROM keys WHERE name >= ? AND name < ? ORDER BY name"
        " LIMIT ?",
        ("a", "b", 10),
    ).fetchall()
    assert "USING PRIMARY KEY (name>? AND name<?)" in plan_rows[0][-1]


def test_keys_changing_during_a_scan(store: SQLiteBackend) -> None:
    for i in range(30):
        store.set(f"k{i:02d}", i)
    seen = []
    for name in store.scan_iter("k*", count=4):
        seen.append(name)
        store.delete(name)
        store.set(b"z" + name, 1)
    assert sorted(seen) == [f"k{i:02d}".encode() for i in range(30)]


def test_count_must_be_an_int(store: SQLiteBackend) -> None:
    with pytest.raises(TypeError):
        store.scan_iter(count="10")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("prefix", "bound"),
    [
        ("ab", "ac"),
        ("a\U0010ffff", "b"),
        ("\U0010ffff\U0010ffff", None),
        ("", None),
        ("x\ud7ff", "x\ue000"),
        ("a\x00", "a\x01"),
    ],
)
def test_prefix_upper_bound(prefix: str, bound: str | None) -> None:
    assert prefix_upper_bound(prefix) == bound


def test_prefix_ending_in_the_last_code_point(store: SQLiteBackend) -> None:
    for name in ("a\U0010ffff", "a\U0010ffffz", "b", "a\ud7ff"):
        store.set(name, 1)
    assert scan(store, "a\U0010ffff*") == ["a\U0010ffff".encode(), "a\U0010ffffz".encode()]


# Each case: pattern, key, whether Redis matches it. test_glob_table_agrees_with_redis
# checks this very table against a real server, so it cannot drift from Redis.
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
]


@pytest.mark.parametrize(("pattern", "key", "expected"), GLOB_CASES)
def test_glob_semantics(pattern: str, key: str, expected: bool) -> None:
    prefix, matcher = plan(pattern)
    matched = key.startswith(prefix) and (matcher is None or bool(matcher(key.encode())))
    assert matched is expected


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[object]:
    import redis

    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.mark.redis
def test_glob_table_agrees_with_redis(redis_client: object) -> None:
    prefix = f"glob{uuid.uuid4().hex}:"
    client = redis_client
    try:
        for pattern, key, expected in GLOB_CASES:
            if key == "":
                continue  # the prefix makes every key non-empty
            client.set(prefix + key, 1)  # type: ignore[attr-defined]
            found = client.keys(escape(prefix) + pattern)  # type: ignore[attr-defined]
            assert ((prefix + key).encode() in found) is expected, (pattern, key)
            client.delete(prefix + key)  # type: ignore[attr-defined]
    finally:
        for name in client.keys(escape(prefix) + "*"):  # type: ignore[attr-defined]
            client.delete(name)  # type: ignore[attr-defined]


GLOB_ALPHABET = "ab*?[]^-\\é"


@pytest.mark.redis
@settings(
    max_examples=300,
    deadline=None,
    # One client serves every example; each example uses its own keys.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    pattern=st.text(GLOB_ALPHABET, max_size=7),
    keys=st.lists(st.text("ab*?[]^-\\é", min_size=0, max_size=5), max_size=6, unique=True),
)
# Redis compares range ends as signed chars: "é" (0xC3...) sorts below "?" there.
@example(pattern="[?-é", keys=["["])
@example(pattern="[a-é]", keys=["b", "é", "["])
def test_random_globs_match_like_redis(redis_client: object, pattern: str, keys: list[str]) -> None:
    prefix = f"g{uuid.uuid4().hex}:"
    client = redis_client
    store = SQLiteBackend(":memory:")
    try:
        for key in keys:
            client.set(prefix + key, 1)  # type: ignore[attr-defined]
            store.set(prefix + key, 1)
        expected = sorted(client.keys(escape(prefix) + pattern))  # type: ignore[attr-defined]
        assert scan(store, escape(prefix) + pattern) == expected, pattern
    finally:
        for key in keys:
            client.delete(prefix + key)  # type: ignore[attr-defined]
        store.close()
