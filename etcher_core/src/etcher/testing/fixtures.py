"""The fixtures every conformance class runs on.

A backend author subclasses :class:`BackendFixtures` and overrides
``make_backend`` (or ``backend``); the conformance classes only *request*
fixtures, so they combine with any fixture provider through the MRO::

    class TestMyKV(StorageConformance, MyKVFixtures): ...
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import pytest

from etcher.spec import StorageBackend
from etcher.testing.basics import basics_problem, stop_message
from etcher.testing.options import OPTION_OPTION, URL_OPTION, get_options, get_url, open_url

_BASICS = pytest.StashKey[dict[type, "str | None"]]()
"""Per session: the basics-stage finding for each backend class already checked."""

BackendFactory = Callable[[], StorageBackend]
"""A zero-argument callable that opens a *new* connection to the store under test."""

HOSTILE_CHARS = "*?[]{}\\:"
"""Characters that are glob or hash-tag syntax elsewhere and plain data in an etcher key."""

_GLOB_SPECIAL = re.compile(r"([\\*?\[\]])")


def glob_escape(text: str) -> str:
    """Escape Redis glob metacharacters so ``text`` matches only itself.

    The kit keeps its own copy (rather than importing core's) so a bug in
    core's escaping can never hide a bug in a backend's matching.
    """
    return _GLOB_SPECIAL.sub(r"\\\1", text)


def as_bytes(key: object) -> bytes:
    """A key returned by a backend, as bytes (a wrong ``str`` is tolerated so cleanup works)."""
    if isinstance(key, str):
        return key.encode()
    if isinstance(key, bytes | bytearray | memoryview):
        return bytes(key)
    raise TypeError(f"backend returned a key of type {type(key).__name__}: {key!r}")


class RawAccess(Protocol):
    """What the kit asks of the ``raw`` fixture: a reader/writer that bypasses the backend.

    Only these methods are used, with the Protocol's semantics, so an author
    can hand in a thin wrapper over their medium (a second SQL connection, a
    plain client of the server) instead of a second backend instance.
    """

    def get(self, name: str) -> Any: ...
    def set(self, name: str, value: bytes) -> Any: ...
    def hgetall(self, name: str) -> Any: ...
    def hset(self, name: str, key: Any = None, value: Any = None, mapping: Any = None) -> Any: ...
    def lrange(self, name: str, start: int, end: int) -> Any: ...
    def rpush(self, name: str, *values: bytes) -> Any: ...
    def type(self, name: str) -> Any: ...
    def exists(self, *names: str) -> Any: ...


class KeyMaker:
    """Makes keys under one test's private prefix and remembers every key it made.

    ``key("a")`` is ``prefix + "a"``. The cleanup fixture deletes what this
    remembers *and* whatever a literal prefix scan finds, so a test's keys go
    away even when the backend's scan is the thing under test (and broken).
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.made: set[str] = set()

    def __call__(self, name: str) -> str:
        full = self.prefix + name
        self.made.add(full)
        return full


def shares_store(backend: StorageBackend, other: Any, probe: str) -> bool:
    """Whether ``other`` sees a value written through ``backend`` (both on one store)."""
    token = uuid.uuid4().hex.encode()
    backend.set(probe, token)
    try:
        return bool(other.get(probe) == token)
    finally:
        backend.delete(probe)


def _no_backend_message(request: pytest.FixtureRequest) -> str:
    owner = request.cls.__name__ if request.cls is not None else "your test class"
    return (
        f"{owner} has no backend to test. Either override the `make_backend` fixture "
        "(a factory returning a new connection to your store) or the `backend` fixture "
        f"in your BackendFixtures subclass, or pass {URL_OPTION} URL "
        f"(and {OPTION_OPTION} KEY=VALUE for open options) with `-p etcher.testing`."
    )


class BackendFixtures:
    """Fixture provider for the conformance classes; subclass it and override what you need.

    Fixtures (all function-scoped):

    ``make_backend``
        A factory opening a *new* connection to the store under test, or
        ``None`` when there is none. Default: ``--etcher-url`` through the
        registry. Overriding this one fixture is enough for the whole kit.
    ``backend``
        The backend under test; closed after the test.
    ``raw``
        An out-of-band reader/writer (:class:`RawAccess`) used to prove writes
        reach the medium and reads come from it. Default: a second connection
        from ``make_backend`` when the backend declares itself persistent or
        multiprocess *and* that connection demonstrably shares the store;
        otherwise the backend itself.
    ``second_backend``
        Another connection to the same store (watch conflicts made by "another
        client"). Skipped with a reason when ``make_backend`` cannot give one.
    ``prefix`` / ``key``
        A unique per-test key prefix full of glob characters, and a
        :class:`KeyMaker` on it. Every key a kit test touches lives under it,
        and an autouse fixture deletes everything under it afterwards, so
        running the kit against a real store removes only its own keys.
    """

    @pytest.fixture
    def make_backend(self, request: pytest.FixtureRequest) -> BackendFactory | None:
        """A factory for new connections to the store under test (``None`` if unknown)."""
        url = get_url(request.config)
        if url is None:
            return None
        return functools.partial(open_url, url, get_options(request.config))

    @pytest.fixture
    def backend(
        self, request: pytest.FixtureRequest, make_backend: BackendFactory | None
    ) -> Iterator[StorageBackend]:
        """The backend under test (required: override this or ``make_backend``)."""
        if make_backend is None:
            pytest.fail(_no_backend_message(request), pytrace=False)
        opened = make_backend()
        yield opened
        opened.close()

    @pytest.fixture
    def prefix(self) -> str:
        """A key prefix no other test (or user data) shares, containing glob characters."""
        return f"t{uuid.uuid4().hex}{HOSTILE_CHARS}"

    @pytest.fixture
    def key(self, prefix: str) -> KeyMaker:
        """``key("name")`` → a key under this test's prefix (remembered for cleanup)."""
        return KeyMaker(prefix)

    @pytest.fixture(autouse=True)
    def _etcher_cleanup(self, backend: StorageBackend, key: KeyMaker) -> Iterator[None]:
        """Delete every key the test created, and nothing else."""
        yield
        doomed = {name.encode() for name in key.made}
        wanted = key.prefix.encode()
        # The scan only *proposes* keys: the startswith filter guarantees a
        # backend whose matching is broken can never make cleanup delete a
        # key outside this test's prefix.
        for found in backend.scan_iter(match=glob_escape(key.prefix) + "*"):
            name = as_bytes(found)
            if name.startswith(wanted):
                doomed.add(name)
        if doomed:
            backend.delete(*sorted(doomed))

    @pytest.fixture(autouse=True)
    def _etcher_basics(self, request: pytest.FixtureRequest, backend: StorageBackend) -> None:
        """Stop the run with one message when the backend breaks a fundamental rule.

        Checked once per backend class per session, before the first test that
        gets such a backend (see :mod:`etcher.testing.basics`).
        """
        if request.config.getoption("etcher_no_basics_stop", False):
            return
        checked = request.config.stash.setdefault(_BASICS, {})
        kind = type(backend)
        if kind not in checked:
            checked[kind] = basics_problem(backend)
        problem = checked[kind]
        if problem is None:
            return
        if not request.session.shouldstop:
            # Fail this one test with the whole story and ask pytest to stop after it
            # (pytest.exit here would skip the teardown of fixtures such as tmp_path).
            request.session.shouldstop = f"{kind.__name__} breaks a basic rule (see above)"
            pytest.fail(stop_message(kind.__name__, problem), pytrace=False)
        # Only reached where the stop is not honoured at once (e.g. xdist workers).
        pytest.skip(f"{kind.__name__} breaks a basic rule of the Protocol (see the first failure)")

    @pytest.fixture
    def raw(
        self, backend: StorageBackend, make_backend: BackendFactory | None, key: KeyMaker
    ) -> Iterator[RawAccess]:
        """Out-of-band access to the medium (see the class docstring for the default)."""
        caps = backend.capabilities
        if make_backend is not None and (caps.persistent or caps.multiprocess):
            other = make_backend()
            try:
                if shares_store(backend, other, key("~raw-probe")):
                    yield other
                    return
            finally:
                other.close()
        yield backend

    @pytest.fixture
    def second_backend(
        self, backend: StorageBackend, make_backend: BackendFactory | None, key: KeyMaker
    ) -> Iterator[StorageBackend]:
        """Another connection to the same store; skipped when there cannot be one."""
        name = type(backend).__name__
        if make_backend is None:
            pytest.skip(
                f"no second {name} connection: override `make_backend` to return a factory "
                "of connections to the same store"
            )
        other = make_backend()
        try:
            if not shares_store(backend, other, key("~second-probe")):
                pytest.skip(
                    f"make_backend() opened a {type(other).__name__} that does not share "
                    f"the store of the {name} under test (e.g. an unnamed in-memory store)"
                )
            yield other
        finally:
            other.close()
