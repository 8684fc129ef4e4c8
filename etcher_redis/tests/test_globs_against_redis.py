"""``etcher.globs.glob_to_regex`` agrees with a real Redis server's ``KEYS``/``SCAN MATCH``.

etcher-core tests the matcher against a table alone (it runs with no server); here random
patterns over the characters that matter are checked against ``redis-server`` itself.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from etcher._layout import glob_escape
from etcher.globs import glob_to_regex

pytestmark = pytest.mark.redis

ALPHABET = "ab*?[]^-\\é"


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    opened = redis.Redis.from_url(redis_url)
    yield opened
    opened.close()


@settings(
    max_examples=150,
    deadline=None,
    # One client serves every example; each example uses keys of its own.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    pattern=st.text(ALPHABET, max_size=7),
    keys=st.lists(st.text(ALPHABET, max_size=5), max_size=6, unique=True),
)
@example(pattern="[?-é", keys=["["])  # range ends compare as signed chars
@example(pattern="a[a-]", keys=["a]", "a-"])
def test_glob_to_regex_matches_like_redis(
    client: redis.Redis, pattern: str, keys: list[str]
) -> None:
    prefix = f"g{uuid.uuid4().hex}:"
    names = [(prefix + key).encode() for key in keys]
    try:
        for name in names:
            client.set(name, 1)
        expected = sorted(client.keys(glob_escape(prefix) + pattern))
        regex = glob_to_regex(glob_escape(prefix) + pattern)
        assert sorted(n for n in names if regex.fullmatch(n)) == expected, pattern
    finally:
        if names:
            client.delete(*names)
