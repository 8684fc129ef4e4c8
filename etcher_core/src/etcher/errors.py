"""Every exception etcher raises, in one place.

Each class derives from :class:`EtcherError` *and*, where one fits, from the
built-in exception a Python programmer would expect (``KeyError``,
``TypeError`` ...), so ``except KeyError`` keeps working on persistent
containers exactly as it does on plain ones.
"""

from __future__ import annotations


class EtcherError(Exception):
    """Base class of every error raised by etcher itself."""


# --- the built-in errors a dict or list user expects --------------------------------


class EtcherKeyError(EtcherError, KeyError):
    """A key that is not there (what ``dict`` raises), e.g. ``db["missing"]``."""


class EtcherIndexError(EtcherError, IndexError):
    """An index outside the list (what ``list`` raises), e.g. ``rl[99]`` on a short list."""


class EtcherTypeError(EtcherError, TypeError):
    """A value, key or argument of a type etcher refuses (a set, bytes, an object ...).

    The message names the offending path; nothing was written.
    """


class EtcherValueError(EtcherError, ValueError):
    """An argument of the right type but a wrong value (an empty URL, a lone surrogate ...)."""


class ClosedError(EtcherValueError):
    """The DB was closed: reading and writing through it (or its handles) both raise this.

    A ``ValueError`` like the one a closed Python file raises; open a new DB.
    """


# --- transactions -----------------------------------------------------------------


WATCH_MESSAGE = (
    "the transaction read data that another writer changed before it committed; "
    "nothing was written: run it again (db.transact(fn) retries for you)"
)


class WatchError(EtcherError):
    """An optimistic transaction lost a race: something it read changed before it committed.

    Raised identically by every backend: backends translate their native
    conflict error into this class, and whatever words a backend gives go to
    :attr:`detail` while the message is always :data:`WATCH_MESSAGE`. Nothing
    of the failed transaction was written; run it again (``db.transact(fn)``
    does that for you).
    """

    def __init__(self, detail: object = "", *args: object) -> None:
        super().__init__(WATCH_MESSAGE)
        #: What the backend said about the conflict (for logs and debugging).
        self.detail = str(detail)

    def __reduce__(self) -> tuple[type[WatchError], tuple[str]]:
        return (type(self), (self.detail,))


class TransactionError(EtcherError):
    """A transaction API was used out of order (e.g. ``multi()`` outside a transactor)."""


class ConflictTimeout(EtcherError, TimeoutError):
    """A retrying operation gave up after too many conflicts or too long a wait."""


# --- storage ----------------------------------------------------------------------


class StorageError(EtcherError):
    """A backend could not carry out a storage command."""


class ResponseError(StorageError):
    """A storage command was rejected by the store (the analogue of Redis ``ERR`` replies)."""


class WrongTypeError(ResponseError, TypeError):
    """A command was applied to a key holding another kind of value (Redis ``WRONGTYPE``)."""


class StoreIndexError(ResponseError, IndexError):
    """``lset`` on a list index that does not exist (Redis ``ERR index out of range``)."""


class StoreValueError(ResponseError, ValueError):
    """A counter command found a value that is not an integer, or the result overflowed."""


class BackendUnavailable(StorageError, ConnectionError):
    """The store could not be reached (server down, connection dropped, socket missing)."""


class StoreLocked(StorageError, TimeoutError):
    """The store stayed locked by another writer for longer than the configured timeout."""


class StoreCorrupt(StorageError):
    """The file or key space is not an etcher store, or holds data etcher cannot read."""


class ReadOnlyStore(StorageError, PermissionError):
    """A write was attempted on a store that can only be read (e.g. a read-only file)."""


# --- plugins ----------------------------------------------------------------------


class PluginError(EtcherError):
    """Base class of backend-registration problems."""


class BackendNotFound(PluginError, LookupError):
    """No installed backend handles the requested URL scheme or backend name."""


class BackendConflict(PluginError):
    """Two installed plugins claim the same URL scheme or backend name."""


# --- containers -------------------------------------------------------------------


class StaleHandleError(EtcherError, LookupError):
    """An RD/RL handle points at a node that has been garbage-collected.

    The node became unreachable from the namespace root (its last link was
    overwritten or deleted, possibly by another process). For the DB's grace
    period such a handle can still read the node's old contents, but writing
    through it or linking it raises this at once; after the grace period every
    use does. Fetch a fresh handle from the database instead of reusing the old one.
    """


class ForeignNodeError(EtcherError, ValueError):
    """An RD/RL from another database or namespace was assigned; links never cross namespaces."""


class JSONFormatError(EtcherError, ValueError):
    """A document is not valid etcher JSON; the message says where and why.

    Raised before anything is written: an import that fails leaves the store untouched.
    """


__all__ = [
    "WATCH_MESSAGE",
    "BackendConflict",
    "BackendNotFound",
    "BackendUnavailable",
    "ClosedError",
    "ConflictTimeout",
    "EtcherError",
    "EtcherIndexError",
    "EtcherKeyError",
    "EtcherTypeError",
    "EtcherValueError",
    "ForeignNodeError",
    "JSONFormatError",
    "PluginError",
    "ReadOnlyStore",
    "ResponseError",
    "StaleHandleError",
    "StorageError",
    "StoreCorrupt",
    "StoreIndexError",
    "StoreLocked",
    "StoreValueError",
    "TransactionError",
    "WatchError",
    "WrongTypeError",
]
