"""mypy catches misuse of etcher's public API (py.typed is only worth shipping if it does).

``typing/good.py`` is a small user script written as the docs show; ``typing/bad.py``
holds wrong calls, each marked ``# E``. mypy (``--strict``) must accept the first and
report an error on exactly the marked lines of the second.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

api = pytest.importorskip("mypy.api", reason="mypy is not installed")

HERE = Path(__file__).parent / "typing"


def _mypy(tmp_path: Path, *files: Path) -> dict[str, dict[int, list[str]]]:
    """Run mypy once; ``{file name: {line: [messages]}}`` of its errors."""
    out, err, _status = api.run(
        [
            "--strict",
            "--no-error-summary",
            "--show-error-codes",
            "--config-file",
            str(tmp_path / "empty.ini"),
            "--cache-dir",
            str(tmp_path / "cache"),
            *map(str, files),
        ]
    )
    assert not err.strip(), err
    found: dict[str, dict[int, list[str]]] = {}
    for line in out.splitlines():
        match = re.match(r"(.+?):(\d+): error: (.*)", line)
        if match:
            name = Path(match.group(1)).name
            found.setdefault(name, {}).setdefault(int(match.group(2)), []).append(match.group(3))
    return found


def test_mypy_accepts_documented_use_and_catches_each_wrong_call(tmp_path: Path) -> None:
    (tmp_path / "empty.ini").write_text("[mypy]\n")
    good, bad = HERE / "good.py", HERE / "bad.py"
    errors = _mypy(tmp_path, good, bad)
    assert errors.get("good.py", {}) == {}, errors.get("good.py")
    expected = {
        number
        for number, text in enumerate(bad.read_text().splitlines(), start=1)
        if text.rstrip().endswith("# E")
    }
    reported = set(errors.get("bad.py", {}))
    assert expected - reported == set(), f"not caught: lines {sorted(expected - reported)}"
    assert reported - expected == set(), {n: errors["bad.py"][n] for n in reported - expected}
