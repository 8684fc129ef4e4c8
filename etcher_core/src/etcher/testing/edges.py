"""Old home of :class:`EdgeConformance`, now a family of :mod:`etcher.testing.containers`.

Kept so ``from etcher.testing.edges import EdgeConformance`` keeps working.
"""

from etcher.testing.containers.edges import EdgeConformance

__all__ = ["EdgeConformance"]
