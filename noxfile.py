"""Everything that is not a pytest run: lint, types, wheels, the demo, benchmarks.

(tox owns the tests: ``tox run -m ci``.) Tool lists come from the
``[dependency-groups]`` of the root ``pyproject.toml``, written once.

    nox -s lint types          # the quick checks
    nox -s wheels              # build all six wheels, smoke-install every extra offline
    nox -s demo                # run examples/quickstart.py
    nox -s bench               # benchmarks/, when they exist
"""

from __future__ import annotations

import json
import shutil
import tempfile
import tomllib
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")
WHEELHOUSE = ROOT / "wheelhouse"
DISTRIBUTIONS = {
    "etcher": ROOT,
    "etcher-core": ROOT / "etcher_core",
    "etcher-sqlite": ROOT / "etcher_sqlite",
    "etcher-redis": ROOT / "etcher_redis",
    "etcher-redislite": ROOT / "etcher_redislite",
    "etcher-contrib": ROOT / "etcher_contrib",
}
SIBLINGS = [str(path) for name, path in DISTRIBUTIONS.items() if name != "etcher"]

# What each install of the umbrella must make available (checked in a fresh virtualenv).
SMOKE_INSTALLS = {
    "etcher": ["sqlite"],
    "etcher[sqlite]": ["sqlite"],
    "etcher[redis]": ["redis", "sqlite"],
    "etcher[redislite]": ["redis", "redislite", "sqlite"],
    "etcher[contrib]": ["memory", "redis", "sqlite"],
    "etcher[all]": ["memory", "redis", "redislite", "sqlite"],
}

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["lint", "types"]
nox.options.reuse_existing_virtualenvs = True


def group(name: str) -> list[str]:
    """A dependency group of the root pyproject.toml."""
    return list(nox.project.dependency_groups(PYPROJECT, name))


def install_siblings(session: nox.Session, *paths: str) -> None:
    """Install etcher distributions from their folders, all in one resolver call."""
    args: list[str] = []
    for path in paths:
        args += ["-e", path]
    session.install(*args)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (lint rules, formatting) for the repository; import-linter for etcher-core's layers."""
    session.install(*group("lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    # The contract is in pyproject.toml; the sources are read in place (nothing installed).
    session.run("lint-imports", env={"PYTHONPATH": str(ROOT / "etcher_core" / "src")})


@nox.session
def types(session: nox.Session) -> None:
    """mypy (strict) on etcher-core's sources."""
    session.install(*group("types"))
    install_siblings(session, str(DISTRIBUTIONS["etcher-core"]))
    session.run("mypy")


def third_party_requirements() -> list[str]:
    """Every requirement of every distribution that is not an etcher sibling."""
    found: set[str] = set()
    for path in DISTRIBUTIONS.values():
        with open(path / "pyproject.toml", "rb") as f:
            meta = tomllib.load(f)["project"]
        requirements = list(meta.get("dependencies", []))
        for extra in meta.get("optional-dependencies", {}).values():
            requirements += extra
        found |= {r for r in requirements if not r.lower().startswith("etcher")}
    return sorted(found)


@nox.session
def wheels(session: nox.Session) -> None:
    """Build all six wheels into ./wheelhouse and install every extra from it with no index.

    Third-party dependencies are fetched into the wheelhouse first; then each
    install runs with ``--no-index``, proving that the umbrella's pins resolve
    to the freshly built siblings and never to a release on the index.
    """
    session.install(*group("release"))
    if WHEELHOUSE.exists():
        shutil.rmtree(WHEELHOUSE)
    WHEELHOUSE.mkdir()
    for path in DISTRIBUTIONS.values():
        session.run("python", "-m", "build", "--wheel", "--outdir", str(WHEELHOUSE), str(path))
    built = sorted(p.name for p in WHEELHOUSE.glob("*.whl"))
    session.log(f"built: {', '.join(built)}")
    if len(built) != len(DISTRIBUTIONS):
        session.error(f"expected {len(DISTRIBUTIONS)} wheels, got {built}")

    with tempfile.TemporaryDirectory(prefix="etcher-wheels-") as tmp:
        fetcher = Path(tmp) / "fetch"
        session.run("python", "-m", "venv", str(fetcher))
        pip = [str(fetcher / "bin" / "python"), "-m", "pip"]
        session.run(*pip, "wheel", "--quiet", "--wheel-dir", str(WHEELHOUSE),
                    *third_party_requirements(), external=True)  # fmt: skip
        for target, expected in SMOKE_INSTALLS.items():
            env = Path(tmp) / target.replace("[", "-").replace("]", "")
            session.run("python", "-m", "venv", str(env))
            python = str(env / "bin" / "python")
            session.run(python, "-m", "pip", "install", "--quiet", "--no-index",
                        "--find-links", str(WHEELHOUSE), target, external=True)  # fmt: skip
            out = session.run(
                python, "-c", "import etcher, json; print(json.dumps(etcher.available_backends()))",
                external=True, silent=True,
            )  # fmt: skip
            backends = json.loads(str(out).strip().splitlines()[-1])
            if backends != expected:
                session.error(f"{target}: expected backends {expected}, found {backends}")
            session.log(f"{target}: {backends}")


@nox.session
def demo(session: nox.Session) -> None:
    """Run the README's quick start (examples/quickstart.py) on SQLite."""
    install_siblings(
        session, str(DISTRIBUTIONS["etcher-core"]), str(DISTRIBUTIONS["etcher-sqlite"])
    )
    with tempfile.TemporaryDirectory(prefix="etcher-demo-") as tmp, session.chdir(tmp):
        session.run("python", str(ROOT / "examples" / "quickstart.py"))


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks in benchmarks/ (run on demand; never part of the tests).

    Runs ``benchmarks/run.py`` when it exists, else every ``benchmarks/*.py``
    script in turn; arguments after ``--`` go to each script. Without arguments,
    run.py does the full default run (every workload against 0.2.3, diskcache,
    sqlitedict and the floor on sqlite and redis) and rewrites docs/benchmarks.md,
    its JSON and its chart; etcher 0.2.3 gets its own venv (benchmarks/.venv-0.2.3).
    """
    folder = ROOT / "benchmarks"
    runner = folder / "run.py"
    scripts = [runner] if runner.exists() else sorted(folder.glob("[!_]*.py"))
    if not scripts:
        session.skip("no benchmarks yet: add scripts under benchmarks/ (see DESIGN.md, §13)")
    session.install(*group("bench"))
    install_siblings(session, *SIBLINGS)
    for script in scripts:
        args = session.posargs or (["--docs"] if script == runner else [])
        session.run("python", str(script), *args)


SOAK_KNOBS = {
    "--seconds": "ETCHER_SOAK_SECONDS",
    "--kills": "ETCHER_CRASH_KILLS",
    "--examples": "ETCHER_FUZZ_EXAMPLES",
    "--processes": "ETCHER_SOAK_PROCESSES",
    "--seed": "ETCHER_CRASH_SEED",
}


@nox.session
def soak(session: nox.Session) -> None:
    """Long reliability runs of tests/reliability (CI runs short ones through tox).

    nox -s soak -- --seconds 600 --kills 5000 --examples 2000 [other pytest arguments]
    """
    install_siblings(session, *SIBLINGS)
    session.install(*group("test"))
    env = {
        "ETCHER_SOAK_SECONDS": "300",
        "ETCHER_CRASH_KILLS": "2000",
        "ETCHER_FUZZ_EXAMPLES": "1000",
        "ETCHER_CRASH_SEED": "random",
        "ETCHER_REQUIRE_REDIS": "1",
    }
    args, rest = list(session.posargs), []
    while args:
        arg = args.pop(0)
        if arg in SOAK_KNOBS and args:
            env[SOAK_KNOBS[arg]] = args.pop(0)
        else:
            rest.append(arg)
    with session.chdir(ROOT):
        session.run("pytest", "tests/reliability", *rest, env=env)
