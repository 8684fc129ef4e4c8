"""Outside authors' backends, installed from wheels into a clean virtualenv, pass the kit.

This is the whole third-party path end to end: ``examples/etcher-dictstore``
(dicts in one process) and ``examples/etcher-dbmstore`` (``dbm.dumb`` files and
a lock file, several processes) are built into wheels next to a wheel of
etcher-core, all are installed into a fresh virtualenv (no system
site-packages, nothing from this checkout on ``sys.path``), etcher discovers
both backends through their entry points, and each example's own conformance
tests pass there.

Only third-party dependencies (pluggy, pytest, hypothesis) come from the
package index, once per session; every etcher distribution comes from the
local wheelhouse and is installed with ``--no-index``, so no etcher name can
ever be resolved against the index.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "etcher_core"
EXAMPLE = ROOT / "examples" / "etcher-dictstore"
DBM_EXAMPLE = ROOT / "examples" / "etcher-dbmstore"


def run(command: list[str | Path], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run a command, failing the test with its output when it fails."""
    result = subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        env=clean_env(),
        **kwargs,  # type: ignore[call-overload]
    )
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, command))} exited {result.returncode}\n"
            f"--- stdout ---\n{result.stdout[-6000:]}\n--- stderr ---\n{result.stderr[-6000:]}",
            pytrace=False,
        )
    return result


def clean_env() -> dict[str, str]:
    # Nothing from this checkout or this test run may leak into the fresh environment.
    dropped = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTEST_ADDOPTS", "PYTEST_PLUGINS")
    return {k: v for k, v in os.environ.items() if k not in dropped and not k.startswith("ETCHER_")}


def build_wheel(project: Path, out: Path) -> Path:
    """Build ``project``'s wheel with hatchling's PEP 517 hook (works offline)."""
    code = "import sys; from hatchling.build import build_wheel; print(build_wheel(sys.argv[1]))"
    name = run([sys.executable, "-c", code, out], cwd=project).stdout.strip().splitlines()[-1]
    return out / name


def third_party_requirements() -> list[str]:
    """What etcher-core[testing] needs from the index, read from its pyproject (written once)."""
    with open(CORE / "pyproject.toml", "rb") as f:
        meta = tomllib.load(f)["project"]
    wanted = [*meta["dependencies"], *meta["optional-dependencies"]["testing"]]
    assert not [r for r in wanted if r.lower().startswith("etcher")]
    return wanted


@pytest.fixture(scope="session")
def fresh_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The interpreter of a new virtualenv holding nothing but pip."""
    folder = tmp_path_factory.mktemp("venv") / "env"
    # Deliberately without --system-site-packages: only what we install is there.
    run([sys.executable, "-m", "venv", folder])
    return folder / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory, fresh_python: Path) -> Path:
    """etcher-core and etcher-dictstore built here, their third-party dependencies downloaded."""
    pytest.importorskip("hatchling", reason="the test dependency group installs hatchling")
    house = tmp_path_factory.mktemp("wheelhouse")
    build_wheel(CORE, house)
    build_wheel(EXAMPLE, house)
    build_wheel(DBM_EXAMPLE, house)
    run(
        [fresh_python, "-m", "pip", "download", "--quiet", "--only-binary=:all:",
         "--dest", house, *third_party_requirements()]
    )  # fmt: skip
    return house


@pytest.fixture(scope="session")
def venv_python(fresh_python: Path, wheelhouse: Path) -> Path:
    """The fresh virtualenv with etcher-dictstore and etcher-core[testing] from the wheelhouse."""
    run(
        [fresh_python, "-m", "pip", "install", "--quiet", "--no-index", "--find-links", wheelhouse,
         "etcher-dictstore", "etcher-dbmstore", "etcher-core[testing]"]
    )  # fmt: skip
    return fresh_python


def test_entry_point_makes_the_backend_available(venv_python: Path) -> None:
    code = "import etcher, json; print(json.dumps(etcher.available_backends()))"
    out = run([venv_python, "-c", code], cwd=venv_python.parent).stdout
    assert out.strip() == '["dbmstore", "dictstore"]'
    where = run(
        [venv_python, "-c", "import etcher, etcher_dictstore; print(etcher.__file__)"],
        cwd=venv_python.parent,
    ).stdout
    assert str(ROOT) not in where  # the wheel, not this checkout


def copy_tests(example: Path, into: Path) -> Path:
    """The example's tests and config without its sources, so only the wheel can be imported."""
    project = into / example.name
    shutil.copytree(example / "tests", project / "tests")
    shutil.copy2(example / "pyproject.toml", project / "pyproject.toml")
    return project


def test_example_passes_the_conformance_kit_in_the_fresh_environment(
    venv_python: Path, tmp_path: Path
) -> None:
    project = copy_tests(EXAMPLE, tmp_path)
    result = run(
        [venv_python, "-m", "pytest", "-p", "no:cacheprovider", "-q", "tests"], cwd=project
    )
    assert " passed" in result.stdout
    assert " failed" not in result.stdout


def test_dbm_example_passes_the_conformance_kit_in_the_fresh_environment(
    venv_python: Path, tmp_path: Path
) -> None:
    project = copy_tests(DBM_EXAMPLE, tmp_path)
    # The whole storage kit and the example's own tests; of the multi-process part only the
    # quickest test (each spawned child imports etcher, which a CI budget notices).
    selection = "not TestDbmConcurrency or test_plain_write_from_other_process_conflicts"
    result = run(
        [venv_python, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", "tests",
         "-k", selection],
        cwd=project,
    )  # fmt: skip
    assert " passed" in result.stdout
    assert " failed" not in result.stdout
    # The optional interleaving hook is offered, so the commit-race test ran rather than skipped.
    assert "etcher_after_watch_check" not in result.stdout


def test_zero_code_route_runs_the_kit_by_url(venv_python: Path, tmp_path: Path) -> None:
    # What docs/writing-a-backend.md promises: no test code at all, just a URL.
    result = run(
        [venv_python, "-m", "pytest", "-p", "etcher.testing", "--pyargs", "etcher.testing",
         "--etcher-url", "dictstore://zero-code", "-p", "no:cacheprovider", "-q"],
        cwd=tmp_path,
    )  # fmt: skip
    assert " passed" in result.stdout
    assert " failed" not in result.stdout
