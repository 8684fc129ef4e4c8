"""``import etcher`` shows exactly its public API: ``dir(etcher)`` is ``__all__``."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_dir_of_the_package_is_exactly_all_before_and_after_use() -> None:
    # A fresh interpreter: this test process has imported many submodules already.
    script = textwrap.dedent(
        """
        import json, etcher
        def public():
            return sorted(n for n in dir(etcher) if not n.startswith("_"))
        fresh = public()
        for name in etcher.__all__:
            getattr(etcher, name)  # every exported name resolves (lazy ones import here)
        import etcher.registry, etcher._layout, etcher._store
        print(json.dumps([fresh, public(), sorted(etcher.__all__), etcher.__version__]))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    import json

    fresh, used, exported, version = json.loads(done.stdout)
    assert fresh == exported
    assert used == exported  # imported submodules (etcher._db, etcher.registry ...) stay unlisted
    assert len(set(exported)) == len(exported)
    assert "Store" in exported and version


def test_star_import_gives_the_public_names() -> None:
    namespace: dict[str, object] = {}
    exec("from etcher import *", namespace)
    import etcher

    assert set(namespace) - {"__builtins__"} == set(etcher.__all__)
