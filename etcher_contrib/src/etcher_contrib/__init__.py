"""etcher-contrib: extras for etcher with heavier or less stable dependencies.

Currently the in-memory ``memory://`` backend (:mod:`etcher_contrib.memory`),
built on fakeredis. Installed with ``pip install 'etcher[contrib]'``.
"""

from __future__ import annotations

__version__ = "0.3.0"

__all__ = ["__version__"]
