"""The hook specifications: names, signatures and the markers plugins use."""

from __future__ import annotations

import inspect

import pluggy

import etcher
from etcher import hookspecs


def test_hookimpl_is_etchers_marker_and_exported_from_the_package() -> None:
    assert isinstance(hookspecs.hookimpl, pluggy.HookimplMarker)
    assert hookspecs.hookimpl.project_name == "etcher"
    assert etcher.hookimpl is hookspecs.hookimpl


def test_register_hook_is_specified_with_one_register_argument() -> None:
    pm = pluggy.PluginManager("etcher")
    pm.add_hookspecs(hookspecs)
    caller = pm.hook.etcher_register_backends
    assert caller.spec is not None
    assert caller.spec.argnames == ("register",)
    assert not caller.spec.opts["firstresult"]


def test_hook_docstring_shows_how_to_call_register() -> None:
    doc = inspect.getdoc(hookspecs.etcher_register_backends) or ""
    assert ":param register:" in doc
    assert "@etcher.hookimpl" in doc
    assert 'target="etcher_mykv.backend:MyKVBackend"' in doc


def test_registrar_protocol_signature() -> None:
    params = inspect.signature(hookspecs.BackendRegistrar.__call__).parameters
    assert list(params) == ["self", "name", "schemes", "target", "description"]
    assert params["description"].default == ""


def test_every_hook_is_prefixed_and_documented() -> None:
    hooks = [
        obj
        for name, obj in vars(hookspecs).items()
        if inspect.isfunction(obj) and hasattr(obj, "etcher_spec")
    ]
    assert [hook.__name__ for hook in hooks] == [
        "etcher_register_backends",
        "etcher_claim_client",
        "etcher_local_path",
    ]
    for hook in hooks:
        assert hook.__doc__ and hook.__doc__.strip()
