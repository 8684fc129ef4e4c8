"""Conformance tests for RD/RL/DB behaviour on top of a storage backend.

:mod:`etcher.testing.storage` proves a backend implements the storage
Protocol; the classes here prove that etcher *as a whole* behaves correctly
on it: dicts behave like ``dict``, lists like ``list``, writes keep the
shape of the data (sharing, cycles, links), garbage collection is exact,
every JSON-style value round-trips, bad input is refused without writing
anything, summaries print as documented and every example of the user guide
works. Each family is its own class, in a module of its own;
:class:`ContainerConformance` combines them all. Combine it with a fixture
provider that supplies ``backend`` and ``make_backend`` (e.g. a subclass of
:class:`etcher.testing.fixtures.BackendFixtures`)::

    class TestMyKVContainers(ContainerConformance, MyKVFixtures):
        pass

=================  =========================================================
module             families
=================  =========================================================
``dicts``          :class:`DictConformance`
``lists``          :class:`ListConformance`
``graph``          :class:`ShapeAndGCConformance`
``codec``          :class:`CodecConformance`
``printing``       :class:`PrintingConformance`
``guide``          :class:`UserGuideConformance`
``namespaces``     :class:`NamespaceConformance`, :class:`DBConformance`
``transactions``   :class:`TransactionSafetyConformance`
``usercode``       :class:`UserCodeConformance`
``machine``        :class:`StateMachineConformance`
``lifetime``       :class:`HandleLifetimeConformance`
(``etcher.testing.containers.edges``)  :class:`EdgeConformance`
=================  =========================================================

The fixtures every family uses (:class:`ContainerFixtures`, :class:`DBFactory`)
and the namespace helpers are importable from here.

Every test works in namespaces of its own, named with glob and separator
characters (``t-*?[]:x-<uuid>``), and deletes them afterwards, so the kit
can run against a store that holds other data.

Reference behaviour is always computed by running the same operation on a
plain ``dict``/``list``; comparisons are exact (see
:func:`etcher.testing.models.assert_same_shape`), and "nothing was written"
means the namespace's raw keys and values are byte-for-byte unchanged.
"""

from __future__ import annotations

from etcher.testing.containers._common import (
    LONG_GRACE,
    ContainerFixtures,
    DBFactory,
    assert_same_outcome,
    dump_namespace,
    namespace_keys,
    purge_namespace,
    unique_prefix,
)
from etcher.testing.containers.codec import UNSUPPORTED_KEYS, UNSUPPORTED_VALUES, CodecConformance
from etcher.testing.containers.dicts import DictConformance
from etcher.testing.containers.edges import EdgeConformance
from etcher.testing.containers.graph import ShapeAndGCConformance
from etcher.testing.containers.guide import UserGuideConformance
from etcher.testing.containers.lifetime import HandleLifetimeConformance
from etcher.testing.containers.lists import BASE, INDEXES, STEPS, ListConformance
from etcher.testing.containers.machine import StateMachineConformance
from etcher.testing.containers.namespaces import DBConformance, NamespaceConformance
from etcher.testing.containers.printing import PrintingConformance
from etcher.testing.containers.transactions import TransactionSafetyConformance
from etcher.testing.containers.usercode import UserCodeConformance


class ContainerConformance(
    DictConformance,
    ListConformance,
    ShapeAndGCConformance,
    CodecConformance,
    PrintingConformance,
    UserGuideConformance,
    NamespaceConformance,
    DBConformance,
    StateMachineConformance,
    EdgeConformance,
    TransactionSafetyConformance,
    UserCodeConformance,
    HandleLifetimeConformance,
):
    """The whole RD/RL/DB suite. Combine it with a fixture provider::

    class TestMyKVContainers(ContainerConformance, MyKVFixtures):
        pass
    """


__all__ = [
    "BASE",
    "INDEXES",
    "LONG_GRACE",
    "STEPS",
    "UNSUPPORTED_KEYS",
    "UNSUPPORTED_VALUES",
    "CodecConformance",
    "ContainerConformance",
    "ContainerFixtures",
    "DBConformance",
    "DBFactory",
    "DictConformance",
    "EdgeConformance",
    "HandleLifetimeConformance",
    "ListConformance",
    "NamespaceConformance",
    "PrintingConformance",
    "ShapeAndGCConformance",
    "StateMachineConformance",
    "TransactionSafetyConformance",
    "UserCodeConformance",
    "UserGuideConformance",
    "assert_same_outcome",
    "dump_namespace",
    "namespace_keys",
    "purge_namespace",
    "unique_prefix",
]
