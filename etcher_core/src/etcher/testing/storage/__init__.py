"""Conformance tests for the storage Protocol (:mod:`etcher.spec`).

Each family of commands is its own class, in a module of its own, so an author can
run parts of the kit; :class:`StorageConformance` combines them all. The classes only
request fixtures (``backend``, ``raw``, ``second_backend``, ``key`` ...) and must be
combined with a fixture provider such as :class:`etcher.testing.BackendFixtures`.

=====================  ==================================================
module                 families
=====================  ==================================================
``strings``            :class:`StringConformance`
``hashes``             :class:`HashConformance`
``lists``              :class:`ListCommandConformance`
``keys``               :class:`KeyConformance`, :class:`WrongTypeConformance`,
                       :class:`EncodingConformance`, :class:`KeyTextConformance`
``scans``              :class:`ScanConformance`
``pipelines``          :class:`PipelineConformance`
``watch``              :class:`WatchConformance` (and :data:`INTERLEAVE_HOOK`)
``persistence``        :class:`PersistenceConformance`, :class:`PathOpeningConformance`
``scopes``             :class:`ScopeConformance`
``threads``            :class:`ThreadSafetyConformance`
``errors``             :class:`ErrorIsolationConformance`
``whole``              :class:`WholeHashConformance`
=====================  ==================================================

The names of etcher 0.2's kit (``StringCommands``, ``HashCommands`` ...) stay importable
from here and from :mod:`etcher.testing` as aliases of the ``*Conformance`` classes.

Conventions of the tests: every key comes from ``key(...)`` (the test's private,
glob-hostile prefix); ``raw`` double-checks that a write reached the medium; expected
values are spelled out literally, never computed by the backend under test.
"""

from __future__ import annotations

from etcher.testing.storage._common import (
    ALL_BYTES,
    FIVE,
    INT64_MAX,
    INT64_MIN,
    NOT_COUNTER_CASES,
    NOT_COUNTER_IDS,
    NOT_COUNTERS,
)
from etcher.testing.storage.errors import ErrorIsolationConformance
from etcher.testing.storage.hashes import HashConformance
from etcher.testing.storage.keys import (
    LONG,
    EncodingConformance,
    KeyConformance,
    KeyTextConformance,
    WrongTypeConformance,
)
from etcher.testing.storage.lists import ListCommandConformance
from etcher.testing.storage.persistence import PathOpeningConformance, PersistenceConformance
from etcher.testing.storage.pipelines import PipelineConformance
from etcher.testing.storage.scans import ScanConformance
from etcher.testing.storage.scopes import ScopeConformance
from etcher.testing.storage.strings import StringConformance
from etcher.testing.storage.threads import ThreadSafetyConformance
from etcher.testing.storage.watch import INTERLEAVE_HOOK, WatchConformance
from etcher.testing.storage.whole import WholeHashConformance


class StorageConformance(
    StringConformance,
    HashConformance,
    ListCommandConformance,
    KeyConformance,
    WrongTypeConformance,
    EncodingConformance,
    ScanConformance,
    PipelineConformance,
    PersistenceConformance,
    ThreadSafetyConformance,
    ScopeConformance,
    WholeHashConformance,
    ErrorIsolationConformance,
    WatchConformance,
    KeyTextConformance,
    PathOpeningConformance,
):
    """The whole storage-Protocol suite. Combine it with a fixture provider::

    class TestMyKV(StorageConformance, MyKVFixtures):
        pass
    """


# The 0.2 names, kept as aliases: backend test modules subclass them.
StringCommands = StringConformance
HashCommands = HashConformance
ListCommands = ListCommandConformance
KeyCommands = KeyConformance
WrongTypeErrors = WrongTypeConformance
ValueEncoding = EncodingConformance
ScanCommands = ScanConformance
PipelineCommands = PipelineConformance
Persistence = PersistenceConformance
ThreadSafety = ThreadSafetyConformance
UnitScopes = ScopeConformance
ErrorsChangeNothing = ErrorIsolationConformance
WatchRules = WatchConformance
KeyText = KeyTextConformance
PathOpening = PathOpeningConformance

__all__ = [
    "ALL_BYTES",
    "FIVE",
    "INT64_MAX",
    "INT64_MIN",
    "INTERLEAVE_HOOK",
    "LONG",
    "NOT_COUNTERS",
    "NOT_COUNTER_CASES",
    "NOT_COUNTER_IDS",
    "EncodingConformance",
    "ErrorIsolationConformance",
    "ErrorsChangeNothing",
    "HashCommands",
    "HashConformance",
    "KeyCommands",
    "KeyConformance",
    "KeyText",
    "KeyTextConformance",
    "ListCommandConformance",
    "ListCommands",
    "PathOpening",
    "PathOpeningConformance",
    "Persistence",
    "PersistenceConformance",
    "PipelineCommands",
    "PipelineConformance",
    "ScanCommands",
    "ScanConformance",
    "ScopeConformance",
    "StorageConformance",
    "StringCommands",
    "StringConformance",
    "ThreadSafety",
    "ThreadSafetyConformance",
    "UnitScopes",
    "ValueEncoding",
    "WatchConformance",
    "WatchRules",
    "WholeHashConformance",
    "WrongTypeConformance",
    "WrongTypeErrors",
]
