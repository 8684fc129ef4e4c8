"""Fuzzing: the codec and the readers, fed arbitrary bytes, fail only with etcher's own errors.

Two targets, both driven by hypothesis (``ETCHER_FUZZ_EXAMPLES`` examples each,
default 150, derandomized so CI is repeatable; raise it for a soak run):

* the codec: ``safe_decode``/``decode_key`` on any bytes, and exact round
  trips of every storable scalar and key;
* raw store contents: a namespace written by etcher is then damaged the way
  another program could damage it (any bytes in any field, item, key name or
  header; keys deleted or of the wrong type; stray keys), and every reader
  (materializing, iterating, lookups, printing, ``check()``, ``gc()``) must
  either work or raise an :class:`~etcher.errors.EtcherError` (a lookup may
  also raise ``KeyError``/``IndexError``), within a time limit.

Bugs found and not fixed yet are pinned by ``xfail(strict=True)`` tests that
replay the smallest failing examples, so they turn red once fixed.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from etcher import DB
from etcher._codec import decode_key, encode_key, encode_scalar, safe_decode
from etcher.errors import EtcherError, StoreCorrupt

EXAMPLES = int(os.environ.get("ETCHER_FUZZ_EXAMPLES", "150") or 150)
_COMMON: dict[str, Any] = {
    "deadline": None,
    "derandomize": True,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    "database": None,
}
FUZZ = settings(max_examples=EXAMPLES, **_COMMON)
# A store example writes, damages and reads a whole namespace: a third as many of them.
FUZZ_STORE = settings(max_examples=max(10, EXAMPLES // 3), **_COMMON)

# --------------------------------------------------------------------------- codec


@FUZZ
@given(st.binary(max_size=64))
@example(b"")
@example(b"i" + b"9" * 5000)  # beyond int()'s digit limit
@example(b"x" + b"f" * 5000)
@example(b"f1e999999")
@example(b"s\xff")
@example(b"@\xff")
def test_decode_any_bytes(raw: bytes) -> None:
    with contextlib.suppress(StoreCorrupt):
        safe_decode(raw)


@FUZZ
@given(st.binary(max_size=64))
@example(b"")  # found by this suite: used to raise IndexError
@example(b"i" + b"9" * 5000)
@example(b"s\xff")
def test_decode_key_any_bytes(raw: bytes) -> None:
    try:
        value = decode_key(raw)
    except StoreCorrupt:
        return
    assert type(value) in (str, int)


def _same_scalar(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    return bool(a == b)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**60).map(lambda n: n**40),  # far beyond 64 bits and decimal limits
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),
)


@FUZZ
@given(scalars)
def test_scalars_round_trip(value: Any) -> None:
    assert _same_scalar(safe_decode(encode_scalar(value)), value)


@FUZZ
@given(st.one_of(st.text(), st.integers(), st.integers(min_value=2**60).map(lambda n: -(n**30))))
def test_keys_round_trip(key: Any) -> None:
    assert _same_scalar(decode_key(encode_key(key)), key)


@FUZZ
@given(
    st.one_of(
        st.binary(),
        st.tuples(st.integers()),
        st.sets(st.integers()),
        st.complex_numbers(),
        st.dates(),
        st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1),
    )
)
def test_unstorable_scalars_are_refused(value: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        encode_scalar(value)


# --------------------------------------------------------------------------- raw store contents


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Fail instead of hanging: a reader must never loop on damaged data."""

    def expire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"a reader ran for more than {seconds} s on damaged data")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=4), st.integers()), children, max_size=4),
    ),
    max_leaves=12,
)

# Payloads a foreign writer could leave: bytes that look almost right, and bytes that don't.
_TAGS = [b"s", b"i", b"x", b"f", b"T", b"F", b"N", b"@", b"@D", b"@L", b"Z", b""]
near_valid = st.builds(
    lambda seq, tag, body: seq + tag + body,
    st.sampled_from([b"", b"0|", b"7|", b"x|", b"|", b"-1|"]),
    st.sampled_from(_TAGS),
    st.one_of(st.binary(max_size=12), st.sampled_from([b"root", b"nothere", b"\xff", b"1e5"])),
)
payloads = st.one_of(near_valid, st.binary(max_size=24))

MUTATIONS = ["set_field", "set_item_value", "rename_field", "add_field", "del_field", "set_item",
             "push_item", "delete_key", "retype_key", "stray_key"]  # fmt: skip

mutations = st.lists(
    st.tuples(st.sampled_from(MUTATIONS), st.integers(0, 10_000), payloads), min_size=1, max_size=4
)


def _damage(db: DB, plan: list[tuple[str, int, bytes]]) -> None:
    backend = db.backend
    keys = sorted(backend.scan_iter(match=db._layout.scan))
    for kind, pick, payload in plan:
        if kind == "stray_key":
            backend.set("{" + db.prefix + "}:" + payload.hex(), payload or b"x")
            continue
        if not keys:
            return
        pool = keys
        if kind == "set_item_value":  # only a dict node's items, never a header
            pool = [k for k in keys if k.startswith(db._layout.content_prefix.encode())]
            pool = [k for k in pool if backend.type(k) == b"hash"] or keys
        key = pool[pick % len(pool)]
        ktype = backend.type(key)
        if kind == "delete_key":
            backend.delete(key)
        elif kind == "retype_key":
            backend.delete(key)
            if ktype == b"hash":
                backend.rpush(key, payload)
            else:
                backend.hset(key, b"f", payload)
        elif ktype == b"hash":
            fields = sorted(backend.hkeys(key))
            field = fields[pick % len(fields)] if fields else b"f"
            if kind in ("set_field", "set_item_value"):
                backend.hset(key, field, payload)
            elif kind == "rename_field":
                value = backend.hget(key, field) or b"0|N"
                backend.hdel(key, field)
                backend.hset(key, payload, value)
            elif kind == "add_field":
                backend.hset(key, payload, payload)
            elif kind == "del_field":
                backend.hdel(key, field)
        elif ktype == b"list":
            n = backend.llen(key)
            if kind == "set_item" and n:
                backend.lset(key, pick % n, payload)
            elif kind in ("push_item", "add_field"):
                backend.rpush(key, payload)


def _read_everything(db: DB) -> None:
    """Every reader once; only etcher errors (and lookup errors from lookups) may escape."""

    def attempt(fn: Any, lookup: bool = False) -> Any:
        allowed: tuple[type[BaseException], ...] = (EtcherError,)
        if lookup:
            allowed += (KeyError, IndexError)
        try:
            return fn()
        except allowed:
            return None

    attempt(db)
    attempt(lambda: repr(db))
    keys = attempt(lambda: list(db)) or []
    for key in keys[:10]:
        value = attempt(lambda key=key: db[key], lookup=True)
        if hasattr(value, "uid"):
            attempt(value)
            attempt(lambda value=value: repr(value))
            attempt(lambda value=value: list(value))
            attempt(lambda value=value: len(value))
            attempt(lambda value=value: value[0], lookup=True)
            attempt(lambda value=value: value.backrefs)
    attempt(lambda: list(db.items()))
    attempt(db.check)
    attempt(db.gc)
    attempt(db.check)


def _fresh_db() -> DB:
    return DB("sqlite:///:memory:", prefix="fuzz")


def _readers_survive(doc: Any, plan: list[tuple[str, int, bytes]]) -> None:
    db = _fresh_db()
    try:
        db["doc"] = doc
        db["other"] = {"keep": [1, 2, {"x": "y"}]}
        _damage(db, plan)
        with _time_limit(20):
            _read_everything(db)
    finally:
        db.close()


# Payload families every reader already handles: well-formed items whose value is junk.
tolerated_payloads = st.builds(
    lambda tag, body: b"0|" + tag + body,
    st.sampled_from([b"s", b"i", b"x", b"f", b"Z", b"Q"]),
    st.binary(min_size=1, max_size=12).filter(lambda b: b[:1] not in (b"|",)),
)
tolerated = st.lists(
    st.tuples(st.sampled_from(["set_item_value", "delete_key", "stray_key"]),
              st.integers(0, 10_000), tolerated_payloads),
    min_size=1,
    max_size=4,
)  # fmt: skip


@FUZZ_STORE
@given(json_values, tolerated)
def test_readers_on_damaged_values(doc: Any, plan: list[tuple[str, int, bytes]]) -> None:
    _readers_survive(doc, plan)


@FUZZ_STORE
@given(json_values, mutations)
@example({"a": {"b": 1}}, [("set_field", 0, b"junk")])
@example({"a": [1]}, [("set_item", 0, b"")])
@example({"a": {"b": 1}}, [("rename_field", 0, b"")])
def test_readers_on_any_damage(doc: Any, plan: list[tuple[str, int, bytes]]) -> None:
    _readers_survive(doc, plan)
