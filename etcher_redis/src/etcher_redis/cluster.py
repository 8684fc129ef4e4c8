"""The Redis Cluster backend: many namespaces spread over many masters.

etcher keeps every key of a namespace under one hash tag (``{P}:...``, see
:mod:`etcher._layout`), so a namespace lives in one hash slot and so on one
master. This backend sends each unit of work to that one master:

* a single command goes to the master that owns its key's slot;
* a transactional pipeline binds, at its first key, to the owner of that
  key's slot and runs ``WATCH``/``MULTI``/``EXEC`` on one connection of that
  node (an ordinary :class:`~etcher_redis.client.EtcherPipeline`, so a lost
  ``EXEC`` reply is reported, never re-sent); a key of another slot in the same
  pipeline is refused before anything is sent (:class:`CrossSlotError`);
* a checked commit (one Lua script, :mod:`etcher_redis.scripting`) is sent with
  every key in ``KEYS`` to the owner of their one slot, like a single write;
* a subtree read (the walk script, :mod:`etcher_redis.subtree`) goes to the
  owner of its first root's slot, which holds the whole namespace;
* a plain batch (``transaction=False``) is split by node;
* a scan whose pattern starts with a literal hash tag (every namespace scan)
  asks only the slot's owner, any other scan asks every master.

Redirections (``MOVED``/``ASK``), ``TRYAGAIN``, ``CLUSTERDOWN`` and connection
failures while a master fails over are retried: a single command by this
backend (for at most ``retry_timeout`` seconds; a write whose reply was lost
is never re-sent), a unit of work as a whole by etcher's retry policy, because
the pipeline raises :class:`TopologyChanged`, a ``WatchError``. An ``EXEC``
refused with a redirection applied nothing, so redoing the unit cannot apply
it twice.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar, Self, TypeVar
from urllib.parse import urlsplit

import redis
import redis.cluster
import redis.exceptions

from etcher.errors import (
    BackendUnavailable,
    StorageError,
    TransactionError,
    WatchError,
)
from etcher.spec import Capabilities, SubtreeChunk, UnlinkChunk, UnlinkOutcome, UnlinkPlan
from etcher_redis import scripting, subtree
from etcher_redis.backend import SCAN_COUNT
from etcher_redis.client import (
    NOT_IDEMPOTENT,
    READ_COMMANDS,
    CommitOutcomeUnknown,
    EtcherPipeline,
    EtcherRedis,
    ReplicationNotConfirmed,
    commit_outcome_unknown,
    translate_error,
    wait_options,
)

SCHEMES = ("redis+cluster", "rediss+cluster")

T = TypeVar("T")

COMMANDS = (
    "get", "set", "incr", "decr",
    "hget", "hmget", "hset", "hdel", "hgetall", "hkeys", "hlen", "hexists", "hincrby",
    "rpush", "lpush", "lpop", "rpop", "lrange", "lindex", "lset", "llen", "ltrim",
    "type",
)  # fmt: skip
"""Protocol commands on one key (``delete``/``exists`` take several and are split by slot)."""


class TopologyChanged(WatchError):
    """The namespace's slot moved, or its master failed, before the unit committed.

    A ``WatchError``, so etcher's retry policy redoes the whole unit on the
    slot's current owner; nothing of the failed attempt was applied.
    """


class CrossSlotError(StorageError, ValueError):
    """One transaction named keys of two hash slots (Redis Cluster cannot run that atomically)."""


# --------------------------------------------------------------------------- errors

_REDIRECT = (redis.exceptions.AskError, redis.exceptions.TryAgainError)
_DOWN = (
    redis.exceptions.ClusterDownError,
    redis.exceptions.ClusterError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.SlotNotCoveredError,
    redis.exceptions.RedisClusterException,
)
_CONNECTION = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _retryable(exc: BaseException) -> str | None:
    """Why ``exc`` is a passing state of the cluster: "moved", "down", "connection" or None."""
    if isinstance(exc, CommitOutcomeUnknown | ReplicationNotConfirmed):
        return None
    for link in _chain(exc):
        if isinstance(link, redis.exceptions.ClusterCrossSlotError):
            return None
        if isinstance(link, _REDIRECT):
            return "moved"
        if isinstance(link, _DOWN):
            return "down"
        if isinstance(link, _CONNECTION):
            return "connection"
        if isinstance(link, redis.exceptions.ResponseError):
            # EXECABORT after a queued command was redirected names the redirection.
            text = str(link)
            if "MOVED" in text or "ASK " in text or "TRYAGAIN" in text or "CLUSTERDOWN" in text:
                return "moved"
    return None


def _hash_tag_slot_key(pattern: str) -> str | None:
    """The literal hash tag a glob ``pattern`` starts with (unescaped), or None.

    ``{P}:*`` with ``P`` escaped for globbing names exactly one slot: the one
    of the tag ``P``. A pattern whose tag holds an unescaped glob character
    could match many tags, so it names none.
    """
    if not pattern.startswith("{"):
        return None
    tag: list[str] = []
    i = 1
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            tag.append(pattern[i + 1])
            i += 2
            continue
        if ch in "*?[":
            return None
        if ch == "}":
            return "".join(tag) if tag else None
        tag.append(ch)
        i += 1
    return None


# --------------------------------------------------------------------------- backend


class RedisClusterBackend:
    """etcher's storage Protocol on a Redis Cluster (``redis+cluster://``, ``rediss+cluster://``).

    Open it with ``RedisClusterBackend.from_url("redis+cluster://10.0.0.1:7000,10.0.0.2:7000/")``
    or ``RedisClusterBackend.from_client(RedisCluster(host=..., port=...))``, or let
    ``DB(url)`` / ``DB(redis=client)`` do it.
    """

    capabilities: ClassVar[Capabilities] = Capabilities(
        persistent=True,
        multiprocess=True,
        atomic_batches=False,
        maintenance=False,
        snapshot_reads=False,
        subtree_reads=True,
        checked_commits=True,
        item_writes=True,
        unlink_reads=True,
        unlink_commits=True,
    )

    def __init__(
        self,
        cluster: redis.cluster.RedisCluster,
        *,
        owned: bool = False,
        wait_replicas: int = 0,
        wait_timeout: int = 1000,
        retry_timeout: float = 30.0,
    ) -> None:
        self._cluster = cluster
        self._owned = owned
        self.wait_replicas = wait_replicas
        self.wait_timeout = wait_timeout
        self.retry_timeout = retry_timeout
        self._clients: dict[str, EtcherRedis] = {}
        self._lock = threading.Lock()
        self._closed = False

    # --- construction ----------------------------------------------------------
    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Connect to the cluster whose nodes ``url`` names.

        ``redis+cluster://[user:password@]host:port[,host:port...]/[?option=value...]``,
        or ``rediss+cluster://`` for TLS. Every listed node is a startup node
        (one that answers is enough to discover the rest). Query options and
        ``options`` go to ``redis.cluster.RedisCluster`` (``ssl_ca_certs=...``,
        ``socket_timeout=...``), except etcher's own: ``wait_replicas=N`` and
        ``wait_timeout=ms`` (every commit waits until N replicas have it, see
        :class:`~etcher_redis.client.ReplicationNotConfirmed`) and
        ``retry_timeout=seconds`` (how long a single command keeps retrying
        while the cluster fails over or reshards; default 30).

        :raises ValueError: another scheme, a database other than 0, or ``decode_responses``.
        :raises BackendUnavailable: no listed node answers.
        """
        scheme, sep, _rest = url.partition("://")
        if not sep or scheme.lower() not in SCHEMES:
            raise ValueError(
                f"{url!r} is not a Redis Cluster URL: use "
                "redis+cluster://host:port[,host:port...]/ or rediss+cluster://..."
            )
        if options.get("decode_responses"):
            raise ValueError(_DECODE_MESSAGE)
        retry_timeout = float(options.pop("retry_timeout", 30.0))
        url, wait_replicas, wait_timeout = wait_options(url, options)
        parts = urlsplit(url)
        userinfo, _, hostlist = parts.netloc.rpartition("@")
        nodes = []
        for item in hostlist.split(","):
            host, _, port = item.strip().rpartition(":")
            if not host:
                host, port = port, "6379"
            try:
                nodes.append((host.strip("[]"), int(port)))
            except ValueError:
                raise ValueError(f"bad node {item!r} in {url!r}: use host:port") from None
        if not nodes or not nodes[0][0]:
            raise ValueError(f"{url!r} names no node: use redis+cluster://host:port/")
        if parts.path.strip("/") not in ("", "0"):
            raise ValueError("Redis Cluster has only database 0: drop the path from the URL")
        base = "rediss" if scheme.lower().startswith("rediss") else "redis"
        auth = userinfo + "@" if userinfo else ""
        first = f"{base}://{auth}{nodes[0][0]}:{nodes[0][1]}"
        if parts.query:
            first += "?" + parts.query
        startup = [redis.cluster.ClusterNode(h, p) for h, p in nodes[1:]]
        try:
            cluster = redis.cluster.RedisCluster.from_url(first, startup_nodes=startup, **options)
        except (redis.exceptions.RedisError, redis.exceptions.RedisClusterException) as exc:
            label = f"{scheme}://" + ",".join(f"{h}:{p}" for h, p in nodes) + "/"
            raise BackendUnavailable(f"cannot reach the Redis Cluster at {label}: {exc}") from exc
        if cluster.get_encoder().decode_responses:
            cluster.close()
            raise ValueError(_DECODE_MESSAGE)
        return cls(
            cluster,
            owned=True,
            wait_replicas=wait_replicas,
            wait_timeout=wait_timeout,
            retry_timeout=retry_timeout,
        )

    @classmethod
    def claims_client(cls, client: object) -> bool:
        """Whether :meth:`from_client` can use ``client`` (a ``redis.cluster.RedisCluster``)."""
        return isinstance(client, redis.cluster.RedisCluster)

    @classmethod
    def from_client(
        cls,
        client: redis.cluster.RedisCluster,
        *,
        owned: bool = False,
        wait_replicas: int = 0,
        wait_timeout: int = 1000,
        retry_timeout: float = 30.0,
    ) -> Self:
        """Store through an existing ``RedisCluster`` client, sharing its nodes and pools.

        Closing the backend leaves the client open unless ``owned=True``.

        :raises TypeError: ``client`` is not a ``redis.cluster.RedisCluster``.
        :raises ValueError: the client decodes responses to ``str``.
        """
        if not isinstance(client, redis.cluster.RedisCluster):
            raise TypeError(
                f"from_client() needs a redis.cluster.RedisCluster, not {type(client).__name__}"
            )
        if client.get_encoder().decode_responses:
            raise ValueError(_DECODE_MESSAGE)
        _, replicas, timeout = wait_options(
            "", {"wait_replicas": wait_replicas, "wait_timeout": wait_timeout}
        )
        return cls(
            client,
            owned=owned,
            wait_replicas=replicas,
            wait_timeout=timeout,
            retry_timeout=retry_timeout,
        )

    # --- routing ---------------------------------------------------------------
    @property
    def client(self) -> redis.cluster.RedisCluster:
        """The underlying ``redis.cluster.RedisCluster``."""
        return self._cluster

    def keyslot(self, key: str | bytes) -> int:
        """The hash slot of ``key``."""
        return int(self._cluster.keyslot(key))

    def node_client(self, key: str | bytes) -> EtcherRedis:
        """An :class:`EtcherRedis` on the master that owns ``key``'s slot now."""
        self._check_open()
        return self._client_for(self._cluster.get_node_from_key(key))

    def _client_for(self, node: Any) -> EtcherRedis:
        pool = self._cluster.get_redis_connection(node).connection_pool
        client = self._clients.get(node.name)
        if client is None or client.connection_pool is not pool:
            with self._lock:
                client = EtcherRedis(connection_pool=pool)
                client.wait_replicas = self.wait_replicas
                client.wait_timeout = self.wait_timeout
                self._clients[node.name] = client
        return client

    def masters(self) -> list[EtcherRedis]:
        """A client for every master, as the cluster's slot map has them now."""
        self._check_open()
        return [self._client_for(node) for node in self._cluster.get_primaries()]

    def refresh(self) -> None:
        """Re-read the slot map from the cluster (after a redirection or a failover)."""
        # When no node answers yet, the next attempt tries again.
        with contextlib.suppress(
            redis.exceptions.RedisError, redis.exceptions.RedisClusterException
        ):
            self._cluster.nodes_manager.initialize()

    def _run(self, key: str | bytes, call: Callable[[EtcherRedis], T], command: str) -> T:
        """``call`` on the owner of ``key``'s slot, retried while the cluster settles.

        A write is re-sent only when it demonstrably never reached a server
        (a redirection, or a connection that could not be opened); a write
        whose reply was lost raises :class:`CommitOutcomeUnknown`.
        """
        deadline: float | None = None
        delay = 0.005
        idempotent = command.upper() not in NOT_IDEMPOTENT
        while True:
            self._check_open()
            try:
                return call(self.node_client(key))
            except Exception as exc:
                reason = _retryable(exc)
                if reason is None:
                    raise translate_error(exc, self.server_label()) from exc
                if not idempotent and any(
                    isinstance(e, redis.exceptions.TimeoutError) for e in _chain(exc)
                ):
                    raise commit_outcome_unknown(exc, self.server_label()) from exc
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self.retry_timeout
                elif now > deadline:
                    raise BackendUnavailable(
                        f"the Redis Cluster at {self.server_label()} did not serve slot "
                        f"{self.keyslot(key)} within {self.retry_timeout} s (retry_timeout): {exc}"
                    ) from exc
                self.refresh()
                time.sleep(delay)
                delay = min(delay * 2, 0.2)

    # --- the storage Protocol --------------------------------------------------
    def delete(self, *names: str | bytes) -> int:
        """Delete keys; keys of different slots are deleted slot by slot (not atomically)."""
        return sum(
            self._run(group[0], lambda c, g=group: int(c.delete(*g)), "del")  # type: ignore[misc]
            for group in self._by_slot(names)
        )

    def exists(self, *names: str | bytes) -> int:
        """How many of ``names`` exist (counted slot by slot)."""
        return sum(
            self._run(group[0], lambda c, g=group: int(c.exists(*g)), "exists")  # type: ignore[misc]
            for group in self._by_slot(names)
        )

    def checked_commit(
        self,
        checks: Sequence[tuple[str, tuple[Any, ...], Any]],
        writes: Sequence[tuple[str, tuple[Any, ...]]],
    ) -> bool:
        """Check reads and apply writes in one script on the owner of their one slot.

        See :class:`etcher.spec.CheckedCommits`. Every key goes to the script in
        ``KEYS``; keys of more than one slot raise :class:`CrossSlotError` before
        anything is sent. A redirection means the script never ran, so it is
        re-sent to the new owner; a lost reply raises ``CommitOutcomeUnknown``.
        """
        keys = list(dict.fromkeys([c[1][0] for c in checks] + [w[1][0] for w in writes]))
        # An item's check and write name its node's header too (the counter's key).
        keys += [c[1][2] for c in checks if c[0] == "unlinked_item"]
        keys += [w[1][3] for w in writes if w[0] == "hset_item"]
        if not keys:
            return True
        if len({self.keyslot(k) for k in keys}) > 1:
            raise CrossSlotError(
                f"a checked commit names keys of several hash slots ({keys[:5]!r}...): on "
                "Redis Cluster one unit stays in one slot (keep its keys under one {hash tag})"
            )
        return self._run(
            keys[0],
            lambda c: scripting.checked_commit(c, checks, writes),
            "evalsha",
        )

    def unlinking_commit(
        self,
        checks: Sequence[tuple[str, tuple[Any, ...], Any]],
        writes: Sequence[tuple[str, tuple[Any, ...]]],
        plan: UnlinkPlan,
    ) -> UnlinkOutcome:
        """:meth:`checked_commit` that collects a small unlinked tree, on the item's slot.

        See :class:`etcher.spec.UnlinkCommits`. The nodes the script visits are not
        declared; they carry the namespace's ``{hash tag}`` as the item does, so they
        are in the slot every declared key must share.
        """
        keys = [plan.content_prefix + plan.parent, plan.pending]
        keys += [c[1][0] for c in checks] + [w[1][0] for w in writes]
        keys += [w[1][3] for w in writes if w[0] == "hset_item"]
        if len({self.keyslot(k) for k in keys}) > 1:
            raise CrossSlotError(
                f"an unlinking commit names keys of several hash slots ({keys[:5]!r}...): "
                "on Redis Cluster one unit stays in one slot (keep its keys under one "
                "{hash tag})"
            )
        return self._run(
            keys[0],
            lambda c: scripting.unlinking_commit(c, checks, writes, plan),
            "evalsha",
        )

    def read_subtree(
        self, content_prefix: str, refs_prefix: str, roots: Sequence[str], limit: int
    ) -> SubtreeChunk:
        """The walk script on the owner of the first root's slot.

        See :meth:`etcher.spec.SubtreeReads.read_subtree`. Every node of a
        namespace carries its ``{hash tag}``, so the whole walk reads one slot.
        It only reads: a redirection or a lost reply is simply read again.
        """
        roots = list(roots)
        if not roots:
            return {}, [], []
        return self._run(
            content_prefix + roots[0],
            lambda c: subtree.walk(c, content_prefix, refs_prefix, roots, limit),
            "read_subtree",
        )

    def read_unlinked(
        self,
        content_prefix: str,
        refs_prefix: str,
        parent: str,
        field: bytes,
        alive: Sequence[str],
        limit: int,
        also: Sequence[str] = (),
    ) -> UnlinkChunk:
        """The unlinking read on the owner of the item's slot (as :meth:`read_subtree`).

        See :meth:`etcher.spec.UnlinkReads.read_unlinked`.
        """
        return self._run(
            content_prefix + parent,
            lambda c: subtree.read_unlinked(
                c, content_prefix, refs_prefix, parent, field, alive, limit, also
            ),
            "read_unlinked",
        )

    def _by_slot(self, names: tuple[str | bytes, ...]) -> list[list[str | bytes]]:
        groups: dict[int, list[str | bytes]] = {}
        for name in names:
            groups.setdefault(self.keyslot(name), []).append(name)
        return list(groups.values())

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> SlotPipeline:
        """A new pipeline (see :class:`SlotPipeline`); each thread needs its own."""
        self._check_open()
        return SlotPipeline(self, transaction)

    def scan_iter(
        self, match: str | None = None, count: int | None = None, **kwargs: Any
    ) -> Iterator[bytes]:
        """Every key matching ``match``, each once: from the slot owner when the pattern
        starts with a literal hash tag (a namespace), else from every master."""
        self._check_open()
        tag = _hash_tag_slot_key(match) if match else None
        clients = [self.node_client(tag)] if tag is not None else self.masters()
        seen: set[bytes] = set()
        if count is None:
            count = SCAN_COUNT
        for client in clients:
            for key in client.scan_iter(match=match, count=count, **kwargs):
                if key not in seen:
                    seen.add(key)
                    yield key

    def maintenance(self) -> None:
        """Nothing to do: the cluster's nodes do their own housekeeping."""

    def close(self) -> None:
        """Stop using the cluster; its client is closed too if this backend made it."""
        if self._closed:
            return
        self._closed = True
        self._clients.clear()
        if self._owned:
            self._cluster.close()

    def _check_open(self) -> None:
        if self._closed:
            raise BackendUnavailable(f"this etcher backend for {self.server_label()} was closed")

    def server_label(self) -> str:
        """The cluster's startup nodes as a URL (no credentials), for messages."""
        nodes = self._cluster.nodes_manager.startup_nodes
        return "redis+cluster://" + ",".join(sorted(nodes)) + "/"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.server_label()}>"


def _key_command(name: str) -> Callable[..., Any]:
    def command(self: RedisClusterBackend, key: str | bytes, *args: Any, **kwargs: Any) -> Any:
        return self._run(key, lambda c: getattr(c, name)(key, *args, **kwargs), name)

    command.__name__ = command.__qualname__ = name
    command.__doc__ = f"``{name}`` on the master that owns the key's slot (see etcher.spec)."
    return command


for _name in COMMANDS:
    setattr(RedisClusterBackend, _name, _key_command(_name))


# --------------------------------------------------------------------------- pipelines


class SlotPipeline:
    """A pipeline on a Redis Cluster (see :class:`etcher.spec.Pipeline`).

    With ``transaction=True``, or once ``watch()``/``multi()`` is called, it
    is bound to the master of its first key's slot and every later key must
    be in that slot. A plain batch is split by node instead; it is resent
    after a redirection only when it holds reads alone.
    """

    def __init__(self, backend: RedisClusterBackend, transaction: bool) -> None:
        self._backend = backend
        self._transaction = transaction
        self._inner: EtcherPipeline | None = None
        self._slot: int | None = None
        self._multi = False
        self._queue: list[tuple[str, str | bytes, tuple[Any, ...], dict[str, Any]]] = []

    # --- binding ---------------------------------------------------------------
    @property
    def _bound_mode(self) -> bool:
        return self._transaction or self._inner is not None or self._multi

    def _bind(self, keys: tuple[str | bytes, ...]) -> EtcherPipeline:
        backend = self._backend
        slots = {backend.keyslot(k) for k in keys}
        if self._slot is not None:
            slots.add(self._slot)
        if len(slots) > 1:
            raise CrossSlotError(
                f"keys {list(keys)!r} are not all in the hash slot this transaction "
                "is bound to: on Redis Cluster one transaction stays in one slot (keep its "
                "keys under one {hash tag}, as every etcher namespace does)"
            )
        if self._inner is None:
            try:
                self._inner = backend.node_client(keys[0]).pipeline(transaction=self._transaction)
            except Exception as exc:
                self._settle(exc)
                raise
            self._slot = slots.pop()
            if self._multi:
                self._inner.multi()
        return self._inner

    def _settle(self, exc: Exception) -> None:
        """Turn a passing cluster state into :class:`TopologyChanged` (a retry of the unit)."""
        if _retryable(exc) is None:
            return
        self.reset()
        self._backend.refresh()
        raise TopologyChanged(
            f"the Redis Cluster moved or lost this transaction's slot ({exc}); retrying"
        ) from exc

    def _call(self, name: str, key: str | bytes, *args: Any, **kwargs: Any) -> Any:
        if not self._bound_mode:
            self._backend.keyslot(key)  # type errors surface now, as on a plain pipeline
            self._queue.append((name, key, args, kwargs))
            return self
        keys = (key, *args) if name in ("delete", "exists") else (key,)
        inner = self._bind(keys)
        try:
            result = getattr(inner, name)(key, *args, **kwargs)
        except Exception as exc:
            self._settle(exc)
            raise
        return self if result is inner else result

    # --- the Pipeline protocol -------------------------------------------------
    def watch(self, *names: str | bytes) -> Any:
        if not names:
            return True
        inner = self._bind(names)
        try:
            return inner.watch(*names)
        except Exception as exc:
            self._settle(exc)
            raise

    def unwatch(self) -> Any:
        return self._inner.unwatch() if self._inner is not None else True

    def multi(self) -> None:
        if self._inner is not None:
            self._inner.multi()
            return
        if self._multi:
            raise TransactionError("Cannot issue nested calls to MULTI")
        if self._queue:
            raise TransactionError("Commands without an initial WATCH have already been issued")
        self._multi = True

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        try:
            if self._bound_mode:
                if self._inner is None:
                    return []
                try:
                    return self._inner.execute(raise_on_error)
                except Exception as exc:
                    self._settle(exc)
                    raise
            return self._execute_batch(raise_on_error)
        finally:
            self.reset()

    def _execute_batch(self, raise_on_error: bool) -> list[Any]:
        backend = self._backend
        groups: dict[int, list[int]] = {}
        for i, (_name, key, _a, _k) in enumerate(self._queue):
            groups.setdefault(backend.keyslot(key), []).append(i)
        results: list[Any] = [None] * len(self._queue)
        for indexes in groups.values():
            commands = [self._queue[i] for i in indexes]
            first_key = commands[0][1]
            read_only = all(name.upper() in READ_COMMANDS for name, *_ in commands)

            def run(client: EtcherRedis, cmds: list[Any] = commands) -> list[Any]:
                pipe = client.pipeline(transaction=False)
                for name, key, args, kwargs in cmds:
                    getattr(pipe, name)(key, *args, **kwargs)
                return pipe.execute(raise_on_error)

            if read_only:
                answers = backend._run(first_key, run, "get")
            else:
                answers = run(backend.node_client(first_key))
            for i, answer in zip(indexes, answers, strict=True):
                results[i] = answer
        return results

    def reset(self) -> None:
        inner, self._inner = self._inner, None
        self._slot = None
        self._multi = False
        self._queue = []
        if inner is not None:
            inner.reset()

    def __len__(self) -> int:
        if self._inner is not None:
            return len(self._inner)
        return len(self._queue)

    def __enter__(self) -> SlotPipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.reset()


def _pipe_command(name: str) -> Callable[..., Any]:
    def command(self: SlotPipeline, key: str | bytes, *args: Any, **kwargs: Any) -> Any:
        return self._call(name, key, *args, **kwargs)

    command.__name__ = command.__qualname__ = name
    return command


for _name in (*COMMANDS, "delete", "exists"):
    setattr(SlotPipeline, _name, _pipe_command(_name))


_DECODE_MESSAGE = (
    "etcher stores bytes: build the Redis Cluster client without decode_responses=True "
    "(etcher decodes values itself)"
)

__all__ = [
    "SCHEMES",
    "CrossSlotError",
    "RedisClusterBackend",
    "SlotPipeline",
    "TopologyChanged",
]
