"""Arguments a real backend refuses reach the user as etcher errors, and create nothing.

Moved from etcher-core's tests (which run on the reference backend only): it needs the
SQLite and memory backends, both installed in etcher-contrib's environment.
"""

from __future__ import annotations

from typing import Any

import pytest

from etcher import DB
from etcher.errors import EtcherError


@pytest.mark.parametrize(
    ("args", "options", "builtin"),
    [
        (("sqlite://host/x.db",), {}, ValueError),
        (("memory://a?b=1",), {}, ValueError),
        (("x.db",), {"bogus": 1}, TypeError),
        (("x.db",), {"timeout": "soon"}, ValueError),
    ],
)
def test_a_backend_refusing_its_arguments_raises_etcher_errors(
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str],
    options: dict[str, Any],
    builtin: type[BaseException],
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(builtin) as info:
        DB(*args, **options)
    assert isinstance(info.value, EtcherError)
    assert list(tmp_path.iterdir()) == []
