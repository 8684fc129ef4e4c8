"""The kit's zero-code route (``--pyargs etcher.testing --etcher-url URL``) on memory://.

Found through real entry-point discovery, in a fresh pytest process. Moved from
etcher-core's kit tests, which run with no backend distribution installed.
"""

from __future__ import annotations

import uuid

import pytest

pytest_plugins = ["pytester"]


def test_zero_code_route_with_an_installed_backend(pytester: pytest.Pytester) -> None:
    """Through real entry-point discovery, when the in-memory backend is installed."""
    result = pytester.runpytest_subprocess(
        "-p", "etcher.testing",
        "-p", "no:cacheprovider",
        "--pyargs", "etcher.testing",
        "--etcher-url", f"memory://meta-{uuid.uuid4().hex}",
        "-k", "test_set_returns_true or test_literal_prefix or conflict_from_another_connection",
    )  # fmt: skip
    result.assert_outcomes(passed=3)
