"""etcher's own test harness: crash and fault injection, differential runs, call counting.

**Private, no stability promise.** These modules serve etcher's test suites
(``tests/reliability``, ``tests/test_differential.py``, the cost tests) and a few
kit families that count calls; they change, move or vanish between any two
releases without notice. Backend authors use the conformance kit
(:mod:`etcher.testing`) and its documented modules instead.

* :mod:`._harness.crash` -- workloads, kill and tripwire campaigns, the soak workers;
* :mod:`._harness.faults` -- :class:`Tripwire`, :class:`FaultyBackend`, a tiny
  ``tmpfs`` for "disk full" (the driver-level hooks live with their backends:
  ``etcher_sqlite.testing`` and ``etcher_redis.testing.faults``);
* :mod:`._harness.differential` -- random programs run on several backends, traces compared;
* :mod:`._harness.instrument` -- :class:`CountingBackend`, which counts store calls.
"""
