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


__all__ = ["PROJECT_NAME", "BackendRegistrar", "etcher_register_backends", "hookimpl"]
