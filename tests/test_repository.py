"""The README's promises hold: its commands are the ones CI runs, and the quick start runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def console_commands() -> list[str]:
    """The one-line commands of the README's ```console blocks."""
    blocks = re.findall(r"```console\n(.*?)```", README, flags=re.DOTALL)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_readme_has_the_two_fresh_machine_commands() -> None:
    commands = console_commands()
    assert (
        "python -m pip install ./etcher_core ./etcher_sqlite . && python examples/quickstart.py"
        in commands
    )
    assert "python -m pip install tox tox-uv && tox run -m ci" in commands


def test_readme_never_sends_a_newcomer_to_the_unrelated_etcher() -> None:
    install = README.split("## Install", 1)[1].split("\n## ", 1)[0]
    assert "installs an unrelated project" in install
    assert "python -m pip install ./etcher_core ./etcher_sqlite ." in install
    assert "python -m pip install ./etcher_redis ./etcher_redislite" in install
    assert "python -m pip install nox" in install
    # Any `pip install` naming etcher from an index pins this version.
    for line in README.splitlines():
        if "pip install" in line and "'etcher[" in line:
            assert "==0.3.0'" in line, line
    assert "pip install 'etcher[contrib]'" not in (ROOT / "docs" / "cli.md").read_text()


def test_ci_runs_exactly_the_readme_test_command() -> None:
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    lines = [line.strip() for line in script.splitlines()]
    assert "python -m pip install tox tox-uv && tox run -m ci" in lines
    assert "set -euo pipefail" in lines
    assert "export ETCHER_REQUIRE_REDIS=1" in lines
    assert os.access(ROOT / ".ci" / "run", os.X_OK)


def test_tox_ci_label_covers_every_distribution() -> None:
    tox_ini = (ROOT / "tox.ini").read_text(encoding="utf-8")
    label = re.search(r"^\s*ci = (.*)$", tox_ini, flags=re.MULTILINE)
    assert label is not None
    envs = {env.strip() for env in label.group(1).split(",")}
    assert envs == {"core", "sqlite", "redis", "redislite", "contrib", "integration"}


def test_license_is_mit() -> None:
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License")
    assert "Copyright (c) 2026 etcher developers" in text


def test_quick_start_runs(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py"), str(tmp_path / "state.db")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "quick start OK" in result.stdout
    assert (tmp_path / "state.db").exists()
