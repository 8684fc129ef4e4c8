"""JSON export and import that keep etcher's data model exact.

The text convention and the text <-> Python conversion live in
:mod:`etcher._jsontext` (re-exported here); this module adds the store side:
:func:`export_json` reads a stored value as one snapshot and writes it as
etcher JSON, :func:`import_json` stores a document at a key path in one
atomic write. Both take the namespace's public mapping API (a DB or a
transactor), nothing below it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import IO, TYPE_CHECKING, Any

from etcher._jsontext import (
    _QUIET,
    ProgressSink,
    _convert,
    _parse,
    _text,
    _where,
    dump,
    dumps,
    iter_json,
    loads,
)
from etcher._jsontext import _Obj as _Obj  # re-exported: the parser's tests reach it here
from etcher._jsontext import _parse_iterative as _parse_iterative
from etcher._writer import nodes_written
from etcher.errors import (
    EtcherIndexError,
    EtcherKeyError,
    EtcherTypeError,
    JSONFormatError,
    StaleHandleError,
)

if TYPE_CHECKING:
    from etcher._db import DB
    from etcher._namespace import Namespace
    from etcher._transactions import Transactor

__all__ = [
    "JSONFormatError",
    "ProgressSink",
    "dump",
    "dumps",
    "export_json",
    "import_json",
    "iter_json",
    "loads",
    "resolve_path",
]

PathLike = str | int | Sequence[str | int] | None


def _as_path(path: Any) -> tuple[Any, ...]:
    if path is None:
        return ()
    if isinstance(path, (str, int)):
        return (path,)
    if hasattr(path, "_etcher_uid"):
        raise EtcherTypeError("pass a key path such as ('person', 'tags'), not a handle")
    return tuple(path)


def resolve_path(db: Namespace, path: PathLike) -> Any:
    """The value at ``path`` (a key, or a sequence of keys/indexes from the root).

    Containers come back as RD/RL handles, scalars as themselves; the root is
    the DB itself. Raises ``KeyError``/``IndexError`` naming the missing step.
    """
    node: Any = db
    done: list[Any] = []
    for step in _as_path(path):
        if not hasattr(node, "_etcher_uid") and node is not db:
            raise EtcherTypeError(
                f"{_where(done)} holds a {type(node).__name__}, which has no key {step!r}"
            )
        try:
            node = node[step]
        except KeyError:
            raise EtcherKeyError(f"no key {step!r} at {_where(done)}") from None
        except IndexError:
            raise EtcherIndexError(f"no index {step!r} at {_where(done)}") from None
        except TypeError as exc:
            raise EtcherTypeError(f"cannot look up {step!r} at {_where(done)}: {exc}") from None
        done.append(step)
    return node


def _materialize(db: Namespace, path: PathLike) -> Any:
    for _attempt in range(5):
        node = resolve_path(db, path)
        if node is db:
            return db()
        if not hasattr(node, "_etcher_uid"):
            return node
        try:
            return node()
        except StaleHandleError:
            # Another writer replaced the node between finding it and reading it: look again.
            continue
    raise StaleHandleError(f"{_where(_as_path(path))} kept changing while it was exported")


def export_json(
    db: Namespace,
    path: PathLike = None,
    *,
    file: IO[str] | None = None,
    indent: int | None = None,
    progress: ProgressSink | None = None,
) -> str | None:
    """Export the value at ``path`` (default: the whole namespace) as etcher JSON.

    The value is read as one consistent snapshot. Returns the text, or writes
    it to ``file`` and returns None.
    """
    sink = progress or _QUIET
    sink.stage("reading", None)
    value = _materialize(db, path)
    if file is None:
        return dumps(value, indent=indent, progress=sink)
    dump(value, file, indent=indent, progress=sink)
    return None


def import_json(
    db: DB | Transactor,
    path: PathLike,
    source: str | bytes | IO[str] | IO[bytes],
    *,
    progress: ProgressSink | None = None,
) -> None:
    """Store the etcher-JSON document ``source`` at ``path``, in one atomic write.

    ``path`` is a key or a sequence of keys from the root; its parent must
    exist. An empty path replaces the whole namespace (the document must be
    an object). Bad JSON raises :class:`JSONFormatError` and writes nothing.
    """
    sink = progress or _QUIET
    sink.stage("parsing", None)
    text = _text(source)
    raw = _parse(text)
    keys = _as_path(path)
    if not keys:
        if type(raw) is not _Obj:
            raise JSONFormatError("only a JSON object can replace a whole namespace")
        root = db._root
        value = _convert(raw, root_alias=root, progress=sink)
        sink.stage("storing", None)

        # A DB's transact() passes the transaction; a transactor's runs in itself.
        def replace(t: Any = db) -> None:
            t.clear()
            t.update(value)

        with _counting_nodes(sink):
            db.transact(replace)
        return
    value = _convert(raw, progress=sink)
    sink.stage("storing", None)
    parent = resolve_path(db, keys[:-1])
    if not hasattr(parent, "_etcher_uid") and parent is not db:
        raise EtcherTypeError(
            f"{_where(keys[:-1])} holds a {type(parent).__name__}, not a dict or list"
        )
    with _counting_nodes(sink):
        parent[keys[-1]] = value


@contextlib.contextmanager
def _counting_nodes(sink: ProgressSink) -> Iterator[None]:
    """Advance ``sink`` by every node the write inside the block stores."""
    if sink is _QUIET:
        yield
        return
    token = nodes_written.set(sink.advance)
    try:
        yield
    finally:
        nodes_written.reset(token)
