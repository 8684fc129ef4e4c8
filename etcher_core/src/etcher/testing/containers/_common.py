"""Fixtures and helpers shared by the RD/RL/DB families (the public ones are re-exported
by :mod:`etcher.testing.containers`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from etcher._containers import RD, RL, Node
from etcher._db import DB
from etcher._layout import NAMESPACES_KEY, Layout
from etcher.errors import (
    StaleHandleError,
)
from etcher.spec import StorageBackend
from etcher.testing.fixtures import BackendFactory, as_bytes, shares_store
from etcher.testing.models import (
    assert_same_shape,
    outcome,
    same_scalar,
)

# --------------------------------------------------------------------------- fixtures


def unique_prefix(tag: str = "") -> str:
    """A namespace name nobody else uses, full of glob and separator characters."""
    return f"t-*?[]:x-{tag}{uuid.uuid4().hex}"


def namespace_keys(db: DB, prefix: str | None = None) -> list[bytes]:
    """Every raw key of namespace ``prefix`` (default: ``db``'s), found by a literal scan."""
    layout = Layout(prefix if prefix is not None else db.prefix)
    literal = ("{" + layout.prefix + "}:").encode()
    found = (as_bytes(k) for k in db.backend.scan_iter(match=layout.scan))
    return sorted(k for k in found if k.startswith(literal))


def dump_namespace(db: DB, prefix: str | None = None) -> dict[bytes, Any]:
    """The raw content of every key of a namespace (to prove that nothing was written)."""
    backend = db.backend
    out: dict[bytes, Any] = {}
    for key in namespace_keys(db, prefix):
        kind = backend.type(key)
        if kind == b"hash":
            out[key] = ("hash", dict(backend.hgetall(key)))
        elif kind == b"list":
            out[key] = ("list", list(backend.lrange(key, 0, -1)))
        else:
            out[key] = (as_bytes(kind).decode(), backend.get(key))
    return out


def purge_namespace(backend: StorageBackend, prefix: str) -> None:
    """Remove every trace of namespace ``prefix`` from the store (cleanup only)."""
    layout = Layout(prefix)
    literal = ("{" + prefix + "}:").encode()
    doomed = [
        k for k in map(as_bytes, backend.scan_iter(match=layout.scan)) if k.startswith(literal)
    ]
    if doomed:
        backend.delete(*doomed)
    backend.hdel(NAMESPACES_KEY, prefix.encode())


class DBFactory:
    """Opens :class:`~etcher._db.DB` objects on the store under test and cleans up after them.

    ``factory()`` opens a DB on a brand-new namespace; ``factory(prefix)``
    opens (another DB object on) a given one; ``link_field=`` and ``grace=``
    are passed on; ``second_connection=True`` opens it through a second connection to the
    same store when the fixture provider can make one (else through the
    backend under test, so the test still runs with two DB objects).
    """

    def __init__(self, backend: StorageBackend, make_backend: BackendFactory | None) -> None:
        self.backend = backend
        self._make_backend = make_backend
        self._second: StorageBackend | None = None
        self._opened: list[StorageBackend] = []
        self.dbs: list[DB] = []
        self.prefixes: list[str] = []

    def new_prefix(self, tag: str = "") -> str:
        """A fresh namespace name, remembered for cleanup."""
        prefix = unique_prefix(tag)
        self.prefixes.append(prefix)
        return prefix

    def second_backend(self) -> StorageBackend:
        """Another connection to the store under test, or the backend itself if there is none."""
        if self._second is None:
            self._second = self.backend
            if self._make_backend is not None:
                other = self._make_backend()
                probe = "{" + unique_prefix("probe-") + "}:probe"
                if shares_store(self.backend, other, probe):
                    self._second = other
                    self._opened.append(other)
                else:
                    other.close()
        return self._second

    def __call__(
        self,
        prefix: str | None = None,
        *,
        link_field: str = "",
        second_connection: bool = False,
        grace: float | None = None,
    ) -> DB:
        if prefix is None:
            prefix = self.new_prefix()
        elif prefix not in self.prefixes:
            self.prefixes.append(prefix)
        backend = self.second_backend() if second_connection else self.backend
        db = DB(backend=backend, prefix=prefix, link_field=link_field, grace=grace)
        self.dbs.append(db)
        return db

    def discard(self, db: DB) -> None:
        """Delete ``db``'s namespace now (through the public API, then every remnant)."""
        try:
            db.delete_prefix_immediately(db.prefix)
        finally:
            db.close()
            # Deleting a DB's own namespace re-creates it empty (documented), so the
            # remnants are removed by hand to leave the store as the test found it.
            purge_namespace(db.backend, db.prefix)
            if db.prefix in self.prefixes:
                self.prefixes.remove(db.prefix)

    def cleanup(self) -> None:
        """Close every DB, delete every namespace used, close extra connections."""
        try:
            for db in self.dbs:
                db.close()
            if self.prefixes:
                janitor = DB(backend=self.backend, prefix=self.prefixes[0])
                try:
                    for prefix in self.prefixes:
                        janitor.delete_prefix_immediately(prefix)
                finally:
                    janitor.close()
        finally:
            for prefix in self.prefixes:
                purge_namespace(self.backend, prefix)
            for other in self._opened:
                other.close()


_FAMILIES = __name__.rpartition(".")[0] + "."
"""The package whose modules hold the kit's families (``etcher.testing.containers.``)."""


class ContainerFixtures:
    """The ``db`` and ``db_factory`` fixtures (needs ``backend`` and ``make_backend``)."""

    db_grace: float | None = None
    """The ``grace=`` of the ``db`` fixture for this family's tests (``None``: the default).

    Looked up on the kit class that defines the running test, so families
    keep their own setting when combined into :class:`ContainerConformance`.
    """

    @pytest.fixture
    def db_factory(
        self, backend: StorageBackend, make_backend: BackendFactory | None
    ) -> Iterator[DBFactory]:
        """A :class:`DBFactory` on the backend under test; every namespace it used is deleted."""
        factory = DBFactory(backend, make_backend)
        yield factory
        factory.cleanup()

    @pytest.fixture
    def db(self, db_factory: DBFactory, request: pytest.FixtureRequest) -> DB:
        """A DB on a fresh, private namespace of the backend under test."""
        name = request.function.__name__
        family: Any = next(
            (
                klass
                for klass in type(self).__mro__
                if klass.__module__.startswith(_FAMILIES) and name in vars(klass)
            ),
            ContainerFixtures,
        )
        # A family that does not say (EdgeConformance mixes in without these fixtures) gets
        # the default.
        return db_factory(grace=getattr(family, "db_grace", None))


# --------------------------------------------------------------------------- helpers


def assert_same_outcome(
    op: Callable[..., Any], plain: Any, handle: RD | RL, what: str = ""
) -> None:
    """Run ``op`` on a plain container and on a handle: same result or same exception type,
    and the same content afterwards."""
    want_status, want = outcome(op, plain)
    got_status, got = outcome(op, handle)
    label = what or getattr(op, "__name__", "operation")
    if want_status == "raised":
        assert got_status == "raised", f"{label}: plain raised {want!r}, etcher returned {got!r}"
        assert isinstance(got, type(want)) and not isinstance(got, StaleHandleError), (
            f"{label}: plain raised {type(want).__name__}, "
            f"etcher raised {type(got).__name__}: {got}"
        )
    else:
        if got_status == "raised":
            raise AssertionError(
                f"{label}: plain returned {want!r}, etcher raised {got!r}"
            ) from got
        assert_same_result(got, want, label)
    assert_same_shape(handle(), plain, f"after {label}")


def assert_same_result(got: Any, want: Any, label: str) -> None:
    """Compare what an operation returned: handles by content, tuples item by item."""
    if isinstance(got, Node):
        got = got()
    if type(got) is tuple and type(want) is tuple and len(got) == len(want):
        for g, w in zip(got, want, strict=True):
            assert_same_result(g, w, label)
        return
    if isinstance(got, list) and any(isinstance(v, Node) for v in got):
        got = [v() if isinstance(v, Node) else v for v in got]
    if type(want) in (dict, list):
        assert_same_shape(got, want, f"{label} result")
    else:
        assert same_scalar(got, want), f"{label}: returned {got!r}, expected {want!r}"


def uids_in_store(db: DB) -> set[str]:
    """Uids of every node stored in ``db``'s namespace (from the raw key space).

    Pending garbage (unlinked nodes waiting out their grace period, listed in
    the namespace's pending hash) is left out: it is already collected, only
    not yet swept.
    """
    refs = ("{" + db.prefix + "}:r:").encode()
    pending = {as_bytes(f).decode() for f in db.backend.hgetall(db._layout.pending)}
    found = {k[len(refs) :].decode() for k in namespace_keys(db) if k.startswith(refs)}
    return found - pending


def assert_clean(db: DB) -> None:
    """``db.check()`` finds nothing wrong."""
    report = db.check()
    assert report.ok, str(report)


def make_deep(levels: int, as_dict: bool) -> Any:
    """A chain of ``levels`` nested dicts (``{"c": {...}}``) or lists (``[i, [...]]``).

    Built in a loop: plain recursion would hit Python's limit long before the store's.
    """
    top: Any = {} if as_dict else []
    node = top
    for i in range(levels - 1):
        child: Any = {} if as_dict else []
        if as_dict:
            node["c"] = child
            node["n"] = i
        else:
            node.append(i)
            node.append(child)
        node = child
    return top


def deep_child(node: Any) -> Any:
    """The next level of a :func:`make_deep` chain, or ``None`` at the bottom."""
    if isinstance(node, dict):
        return node.get("c")
    return node[1] if len(node) > 1 else None


def chain_depth(value: Any) -> int:
    """Number of levels of a :func:`make_deep` chain."""
    depth = 1
    while (value := deep_child(value)) is not None:
        depth += 1
    return depth


def is_pinned(node: Node) -> bool:
    """``node.pinned``, read through a call so type checkers do not carry a narrowing over."""
    return node.pinned


def raises_like(plain_op: Callable[..., Any]) -> type[BaseException]:
    """The exception type a plain operation raises (the test fails if it raises nothing)."""
    try:
        plain_op()
    except Exception as exc:
        return type(exc)
    raise AssertionError("the plain operation was expected to raise")


LONG_GRACE = 600.0
"""A grace period no test outlives: time only moves on where a test moves the clock."""
