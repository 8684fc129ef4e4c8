"""The kit's zero-code route (``--pyargs etcher.testing --etcher-url URL``) on SQLite.

Found through real entry-point discovery, in a fresh pytest process. Moved from
etcher-core's kit tests, which run with no backend distribution installed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]


def test_zero_code_route_runs_concurrency_for_a_multiprocess_backend(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    """SQLite declares ``multiprocess``: its child processes open the same URL and run."""
    result = pytester.runpytest_subprocess(
        "-p", "etcher.testing",
        "-p", "no:cacheprovider",
        "--pyargs", "etcher.testing",
        "--etcher-url", f"sqlite:///{tmp_path}/zero-code.db",
        "-k", "TestConcurrencyFromURL and test_plain_write_from_other_process_conflicts",
    )  # fmt: skip
    result.assert_outcomes(passed=1)
