"""``python -m etcher_contrib``: the ``etcher`` command line tool."""

from __future__ import annotations

from etcher_contrib.cli import main

raise SystemExit(main())
