"""Tests of the conformance kit itself (``etcher.testing``).

The kit is only worth something if it passes a correct backend and fails an
incorrect one, so most tests here run it in a nested pytest session
(``pytester``) against the reference backend and its deliberately broken
variants, and look at which kit tests passed, failed or were skipped and why.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
# The helper modules sit next to this file and the nested sessions import
# them by name; --import-mode=importlib does not put this folder on sys.path.
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import kit_broken_backends as broken  # noqa: E402

import etcher.registry  # noqa: E402, F401  (imported once here so nested sessions share it)
from etcher.spec import Capabilities  # noqa: E402
from etcher.testing import (  # noqa: E402
    ConcurrencyConformance,
    ListCommands,
    StorageConformance,
    UnitScopes,
    WholeHashConformance,
    glob_escape,
)
from etcher.testing.markers import missing_capability  # noqa: E402
from etcher.testing.options import parse_option  # noqa: E402
from etcher.testing.reference import ReferenceBackend, drop_store, named_store  # noqa: E402

pytest_plugins = ["pytester"]


# Capabilities the reference backend does not declare.
UNDECLARED = {"locking_units"}


def _needs_locking_units(cls: type, name: str) -> bool:
    marks = getattr(getattr(cls, name), "pytestmark", [])
    return any(m.name == "etcher_requires" and UNDECLARED & set(m.args) for m in marks)


# Every storage test the reference backend runs: all of them but those needing unit scopes,
# a capability it does not declare.
SCOPE_TESTS = {name for name in dir(UnitScopes) if name.startswith("test_")} | {
    name
    for name in dir(StorageConformance)
    if name.startswith("test_") and _needs_locking_units(StorageConformance, name)
}
KIT_TESTS = {name for name in dir(StorageConformance) if name.startswith("test_")} - SCOPE_TESTS
WHOLE_TESTS = {name for name in dir(WholeHashConformance) if name.startswith("test_")}
CONCURRENCY_TESTS = {name for name in dir(ConcurrencyConformance) if name.startswith("test_")}

KIT_MODULE = """
import pytest
from etcher.testing import BackendFixtures, StorageConformance
from {module} import {cls}

class TestKit(StorageConformance, BackendFixtures):
    @pytest.fixture
    def make_backend(self):
        return lambda: {cls}.from_url({url!r})
"""


@dataclass
class KitRun:
    """What a nested pytest session reported, by test function name."""

    passed: list[Any]
    skipped: list[Any]
    failed: list[Any]  # failures *and* setup/teardown errors

    @staticmethod
    def name(report: Any) -> str:
        return str(report.nodeid.split("::")[-1].split("[")[0])

    def names(self, reports: list[Any]) -> set[str]:
        return {self.name(r) for r in reports}

    @property
    def failed_names(self) -> set[str]:
        return self.names(self.failed)

    @property
    def skip_reasons(self) -> set[str]:
        return {str(r.longrepr[2]).removeprefix("Skipped: ") for r in self.skipped}

    def failure_summary(self) -> str:
        return "\n".join(f"{r.nodeid} ({r.when})" for r in self.failed)


def run(pytester: pytest.Pytester, *args: str) -> KitRun:
    """Run a nested in-process session with the kit's plugin loaded."""
    reprec = pytester.inline_run("-p", "etcher.testing", "-p", "no:cacheprovider", *args)
    passed, skipped, failed = reprec.listoutcomes()
    return KitRun(list(passed), list(skipped), list(failed))


@pytest.fixture
def kit_store() -> Iterator[str]:
    """A fresh named reference store; the URL ``ref://<name>`` opens it."""
    name = f"meta-{uuid.uuid4().hex}"
    yield name
    drop_store(name)


@pytest.fixture
def run_kit(pytester: pytest.Pytester, kit_store: str) -> Any:
    """Run the whole storage kit against a backend class from the helper modules."""
    pytester.syspathinsert(HERE)

    def go(cls: type, *args: str) -> KitRun:
        pytester.makepyfile(
            test_kit=KIT_MODULE.format(
                module=cls.__module__, cls=cls.__name__, url=f"ref://{kit_store}"
            )
        )
        # --tb=no: failure reports are counted, not read, and rendering
        # hundreds of diffs would dominate the run time.
        return run(pytester, "--tb=no", *args)

    return go


# --------------------------------------------------------------------------- (a) known good


def test_kit_passes_the_reference_backend_and_cleans_up(run_kit: Any, kit_store: str) -> None:
    result = run_kit(ReferenceBackend)
    assert result.failed == [], result.failure_summary()
    # The reference declares every capability but locking_units (a unit scope would need a
    # per-thread snapshot of the whole store), so nothing else may be skipped.
    assert result.skip_reasons == {"ReferenceBackend.capabilities.locking_units is False"}
    assert result.names(result.skipped) == SCOPE_TESTS
    assert result.names(result.passed) >= KIT_TESTS
    assert len(result.passed) > 200
    assert named_store(kit_store).data == {}, "the kit left keys behind"


def test_kit_families_are_separately_usable(pytester: pytest.Pytester, kit_store: str) -> None:
    pytester.syspathinsert(HERE)
    pytester.makepyfile(
        test_part=f"""
        import pytest
        from etcher.testing import BackendFixtures, ListCommands
        from etcher.testing.reference import ReferenceBackend

        class TestLists(ListCommands, BackendFixtures):
            @pytest.fixture
            def make_backend(self):
                return lambda: ReferenceBackend.from_url("ref://{kit_store}")
        """
    )
    result = run(pytester)
    assert result.failed == []
    assert result.names(result.passed) == {n for n in dir(ListCommands) if n.startswith("test_")}


def test_no_kit_class_is_collected_by_its_own_name() -> None:
    import etcher.testing as kit

    exported = [getattr(kit, name) for name in kit.__all__]
    classes = [obj for obj in exported if isinstance(obj, type)]
    assert classes
    assert [c.__name__ for c in classes if c.__name__.startswith("Test")] == []


# --------------------------------------------------------------------------- (b) known bad


@pytest.mark.parametrize("cls", broken.BROKEN, ids=lambda cls: cls.__name__)
def test_kit_catches_a_broken_backend(run_kit: Any, kit_store: str, cls: Any) -> None:
    # Past the basics stage, so every test proves on its own that it catches the bug.
    result = run_kit(cls, "--etcher-no-basics-stop")
    missed = cls.MUST_FAIL - result.failed_names
    assert not missed, f"{cls.__name__}: these kit tests passed but must fail: {sorted(missed)}"
    # Even against a broken backend, cleanup removes every key the kit made.
    assert named_store(kit_store).data == {}


@pytest.mark.parametrize(
    ("cls", "phrase"), list(broken.BREAKS_BASICS.items()), ids=lambda v: getattr(v, "__name__", "")
)
def test_basics_stage_stops_the_run_with_one_message(
    pytester: pytest.Pytester, kit_store: str, cls: Any, phrase: str
) -> None:
    pytester.syspathinsert(HERE)
    pytester.makepyfile(
        test_kit=KIT_MODULE.format(
            module=cls.__module__, cls=cls.__name__, url=f"ref://{kit_store}"
        )
    )
    result = pytester.runpytest_inprocess("-p", "etcher.testing", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    # One error (in the first test's setup) carrying the whole story, then the run stops.
    assert result.parseoutcomes() == {"errors": 1}
    text = result.stdout.str()
    assert "Interrupted:" in text
    assert f"{cls.__name__} breaks a basic rule of the storage Protocol" in text
    assert phrase in text
    assert "--etcher-no-basics-stop" in text
    assert named_store(kit_store).data == {}, "the basics probe left keys behind"


def test_basics_stage_passes_a_correct_backend_quietly(
    pytester: pytest.Pytester, kit_store: str
) -> None:
    pytester.syspathinsert(HERE)
    pytester.makepyfile(
        test_kit=KIT_MODULE.format(
            module="etcher.testing.reference", cls="ReferenceBackend", url=f"ref://{kit_store}"
        )
    )
    result = run(pytester, "--tb=short", "-k", "test_get_missing_is_none or test_lrange")
    assert result.failed == [] and len(result.passed) > 5


def test_worded_assertions_name_the_rule_and_hide_the_prefix() -> None:
    from etcher.testing.wording import expect_equal

    prefix = "t" + "a" * 32 + "*?[]{}\\:"
    with pytest.raises(AssertionError) as caught:
        expect_equal(
            {(prefix + "x").encode(): b"59"},
            {(prefix + "x").encode(): b"80"},
            "a failed incr changes nothing",
            key=prefix + "n",
            prefix=prefix,
        )
    message = str(caught.value)
    assert message.splitlines()[0] == "The Protocol requires: a failed incr changes nothing"
    assert "<prefix>n" in message and "{b'<prefix>x': b'80'}" in message
    assert "aaaa" not in message


# --------------------------------------------------------------------------- (c) zero-code route


def test_zero_code_route_runs_the_suite_against_a_url(
    pytester: pytest.Pytester, kit_store: str
) -> None:
    pytester.syspathinsert(HERE)
    # Data the kit must not touch, including keys that look like a kit prefix
    # and keys a wildcard-interpreting cleanup would catch.
    foreign = ReferenceBackend(named_store(kit_store))
    look_alike = "t" + "0" * 32 + "*?[]{}\\:x"
    foreign.set("user:data", b"keep")
    foreign.set(look_alike, b"keep too")
    foreign.rpush("t*", b"x")
    foreign.hset("*", b"f", b"v")
    result = run(
        pytester,
        "-p", "kit_registry_shim",
        "--pyargs", "etcher.testing",
        "--etcher-url", f"ref://{kit_store}",
    )  # fmt: skip
    assert result.failed == [], result.failure_summary()
    # The skips: the unit-scope tests and the concurrency part, capabilities the reference
    # backend does not declare (its named stores live in one process).
    skipped = result.names(result.skipped)
    assert skipped == SCOPE_TESTS | CONCURRENCY_TESTS
    assert (
        "ReferenceBackend.capabilities.multiprocess is False: other processes cannot open "
        "this store"
    ) in result.skip_reasons
    assert {r.nodeid.split("::")[-2] for r in result.passed} == {
        "TestStorageFromURL",
        "TestContainersFromURL",
    }
    assert {r.nodeid.split("::")[-2] for r in result.skipped} >= {"TestConcurrencyFromURL"}
    assert result.names(result.passed) >= KIT_TESTS
    left = sorted(named_store(kit_store).data)
    assert left == sorted([b"user:data", look_alike.encode(), b"t*", b"*"])


def test_zero_code_route_without_url_skips_with_reason(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--pyargs", "etcher.testing")
    assert result.passed == [] and result.failed == []
    assert len(result.skipped) > 200
    assert result.skip_reasons == {
        "no store to test: pass --etcher-url URL (with -p etcher.testing) to run the kit against it"
    }


def test_etcher_options_reach_open_backend(pytester: pytest.Pytester, kit_store: str) -> None:
    pytester.syspathinsert(HERE)
    pytester.makepyfile(
        test_opts="""
        from etcher.testing import BackendFixtures

        class TestOptions(BackendFixtures):
            def test_options(self, backend):
                expected = {"timeout": 5, "mode": "wal", "flag": True, "path": "/x=y"}
                assert backend.options == expected
        """
    )
    result = run(
        pytester,
        "-p", "kit_registry_shim",
        "--etcher-url", f"ref://{kit_store}",
        "--etcher-option", "timeout=5",
        "--etcher-option", "mode=wal",
        "--etcher-option", "flag=True",
        "--etcher-option", "path=/x=y",
    )  # fmt: skip
    assert result.failed == [], result.failure_summary()
    assert len(result.passed) == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("timeout=5", ("timeout", 5)),
        ("ratio=0.5", ("ratio", 0.5)),
        ("flag=False", ("flag", False)),
        ("mode=wal", ("mode", "wal")),
        ("empty=", ("empty", "")),
        ("quoted='5'", ("quoted", "5")),
        ("url=redis://h:1/0", ("url", "redis://h:1/0")),
    ],
)
def test_parse_option(text: str, expected: tuple[str, Any]) -> None:
    assert parse_option(text) == expected


@pytest.mark.parametrize("text", ["novalue", "=5", "two words=1", "1x=2"])
def test_parse_option_rejects_malformed(text: str) -> None:
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_option(text)


# --------------------------------------------------------------------------- (d) capabilities

MARKS_MODULE = """
import pytest
from etcher.spec import Capabilities
from etcher.testing import BackendFixtures
from etcher.testing.reference import ReferenceBackend

class Partial(ReferenceBackend):
    capabilities = Capabilities(persistent=True, atomic_batches=False, snapshot_reads=True)

class Fixtures(BackendFixtures):
    @pytest.fixture
    def make_backend(self):
        return lambda: Partial.from_url("ref://{store}")

class TestMarks(Fixtures):
    @pytest.mark.etcher_requires("persistent")
    def test_declared(self, backend):
        assert backend.capabilities.persistent

    @pytest.mark.etcher_requires("atomic_batches")
    def test_missing(self, backend):
        raise AssertionError("must be skipped")

    @pytest.mark.etcher_requires("persistent", "atomic_batches", "snapshot_reads")
    def test_one_of_several_missing(self, backend):
        raise AssertionError("must be skipped")

    @pytest.mark.etcher_requires("ttl")
    def test_unknown_capability(self, backend):
        raise AssertionError("must be skipped")

    @pytest.mark.etcher_requires()
    def test_no_capability_named(self, backend):
        raise AssertionError("must not run")

@pytest.mark.etcher_requires("maintenance")
class TestClassMark(Fixtures):
    def test_inherits_the_class_mark(self, backend):
        raise AssertionError("must be skipped")

@pytest.mark.etcher_requires("persistent")
def test_without_a_backend_fixture():
    raise AssertionError("must not run")
"""


def test_etcher_requires_turns_into_skips_with_reasons(
    pytester: pytest.Pytester, kit_store: str
) -> None:
    pytester.syspathinsert(HERE)
    pytester.makepyfile(test_marks=MARKS_MODULE.format(store=kit_store))
    result = run(pytester, "--strict-markers")  # the marker is registered
    assert result.names(result.passed) == {"test_declared"}
    by_name = {result.name(r): str(r.longrepr[2]) for r in result.skipped}
    assert by_name == {
        "test_missing": "Skipped: Partial.capabilities.atomic_batches is False",
        "test_one_of_several_missing": "Skipped: Partial.capabilities.atomic_batches is False",
        "test_unknown_capability": "Skipped: Partial.capabilities has no 'ttl' (etcher knows: "
        + ", ".join(Capabilities.__dataclass_fields__)
        + ")",
        "test_inherits_the_class_mark": "Skipped: Partial.capabilities.maintenance is False",
    }
    failures = {result.name(r): str(r.longrepr) for r in result.failed}
    assert set(failures) == {"test_no_capability_named", "test_without_a_backend_fixture"}
    assert "needs at least one capability name" in failures["test_no_capability_named"]
    assert "needs a `backend` fixture" in failures["test_without_a_backend_fixture"]


def test_kit_skips_what_a_backend_does_not_declare(run_kit: Any) -> None:
    result = run_kit(broken.VolatileBackend)
    assert result.failed == [], result.failure_summary()
    assert result.skip_reasons == {
        "VolatileBackend.capabilities.atomic_batches is False",
        "VolatileBackend.capabilities.persistent is False",
        "VolatileBackend.capabilities.locking_units is False",
        "VolatileBackend.capabilities.whole_hash_writes is False",
    }
    assert result.names(result.skipped) == {
        "test_failing_command_applies_nothing",
        "test_data_survives_reopening",
        *SCOPE_TESTS,
        *WHOLE_TESTS,
    }


def test_instance_capabilities_override_the_class() -> None:
    backend = ReferenceBackend()
    assert missing_capability(backend, ["persistent"]) is None
    backend.capabilities = Capabilities(persistent=False)  # type: ignore[misc]
    assert (
        missing_capability(backend, ["persistent"])
        == "ReferenceBackend.capabilities.persistent is False"
    )
    assert missing_capability(object(), ["persistent"]) == (
        "object declares no capabilities (the `capabilities` class attribute is missing)"
    )


# --------------------------------------------------------------------------- fixtures


def test_backend_fixture_explains_what_to_override(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_none="""
        from etcher.testing import BackendFixtures, StringCommands

        class TestNothingConfigured(StringCommands, BackendFixtures):
            pass
        """
    )
    reprec = pytester.inline_run(
        "-p", "etcher.testing", "-p", "no:cacheprovider", "-k", "test_get_missing"
    )
    (report,) = [r for r in reprec.getreports("pytest_runtest_logreport") if r.failed]
    assert report.when == "setup"
    message = str(report.longrepr)
    assert "TestNothingConfigured has no backend to test" in message
    assert "override the `make_backend` fixture" in message
    assert "--etcher-url" in message


FIXTURES_MODULE = """
import pytest
from etcher.testing import BackendFixtures, HOSTILE_CHARS
from etcher.testing.reference import ReferenceBackend

class Shared(BackendFixtures):
    @pytest.fixture
    def make_backend(self):
        return lambda: ReferenceBackend.from_url("ref://{store}")

class TestShared(Shared):
    def test_raw_and_second_are_other_connections(self, backend, raw, second_backend):
        assert raw is not backend and second_backend is not backend
        backend.set("probe-shared", b"1")
        assert raw.get("probe-shared") == b"1"
        assert second_backend.get("probe-shared") == b"1"
        backend.delete("probe-shared")

    def test_prefix_is_unique_and_hostile(self, prefix, key):
        assert all(c in prefix for c in HOSTILE_CHARS)
        assert key("a") == prefix + "a" and key.made == {{prefix + "a"}}

class Private(BackendFixtures):
    @pytest.fixture
    def make_backend(self):
        return ReferenceBackend  # every call: a new, private store

class TestPrivate(Private):
    def test_raw_falls_back_to_the_backend(self, backend, raw):
        assert raw is backend

    def test_second_backend_is_skipped(self, second_backend):
        raise AssertionError("must be skipped")

class OnlyBackend(BackendFixtures):
    @pytest.fixture
    def backend(self):
        yield ReferenceBackend()

class TestOnlyBackend(OnlyBackend):
    def test_raw_is_backend(self, backend, raw):
        assert raw is backend

    def test_second_backend_is_skipped(self, second_backend):
        raise AssertionError("must be skipped")
"""


def test_fixture_defaults(pytester: pytest.Pytester, kit_store: str) -> None:
    pytester.syspathinsert(HERE)
    pytester.makepyfile(test_fixtures=FIXTURES_MODULE.format(store=kit_store))
    result = run(pytester)
    assert result.failed == [], result.failure_summary()
    assert len(result.passed) == 4
    assert result.skip_reasons == {
        "make_backend() opened a ReferenceBackend that does not share the store of the "
        "ReferenceBackend under test (e.g. an unnamed in-memory store)",
        "no second ReferenceBackend connection: override `make_backend` to return a factory "
        "of connections to the same store",
    }
    assert named_store(kit_store).data == {}


def test_kit_runs_with_private_stores(run_kit: Any, pytester: pytest.Pytester) -> None:
    """A second connection that opens another store: its tests skip, the rest pass."""
    pytester.syspathinsert(HERE)
    pytester.makepyfile(
        test_kit="""
        import pytest
        from etcher.testing import BackendFixtures, StorageConformance
        from kit_broken_backends import VolatileBackend

        class TestKit(StorageConformance, BackendFixtures):
            @pytest.fixture
            def make_backend(self):
                return VolatileBackend
        """
    )
    result = run(pytester)
    assert result.failed == [], result.failure_summary()
    assert "test_watch_conflict_from_another_connection" in result.names(result.skipped)
    assert "test_watch_conflict_from_a_plain_write_on_the_same_backend" in result.names(
        result.passed
    )


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("plain", "plain"),
        ("a*b", "a\\*b"),
        ("?[x]", "\\?\\[x\\]"),
        ("back\\slash", "back\\\\slash"),
        ("{}:%_", "{}:%_"),
    ],
)
def test_glob_escape(text: str, escaped: str) -> None:
    assert glob_escape(text) == escaped
