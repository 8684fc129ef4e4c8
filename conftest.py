"""Repository-wide pytest setup (loaded for every test run started in this checkout).

Each distribution folder has the same name as the package it ships
(``etcher_redis/`` holds ``src/etcher_redis``). Under ``--import-mode=importlib``
pytest names a test module after its path (``etcher_redis.tests.test_x``) and
would import the *folder* ``etcher_redis/`` as a namespace package in place of
the installed package. Importing the installed packages first makes pytest
find them in ``sys.modules`` and hang the test modules under them instead.
"""

from __future__ import annotations

import contextlib
import importlib

for _name in ("etcher", "etcher_sqlite", "etcher_redis", "etcher_redislite", "etcher_contrib"):
    with contextlib.suppress(ImportError):  # that distribution is not installed here
        importlib.import_module(_name)
