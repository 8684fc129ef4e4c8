"""Container conformance: the stateful model test (:class:`StateMachineConformance`)."""

from __future__ import annotations

import functools

from etcher.testing.containers._common import (
    LONG_GRACE,
    ContainerFixtures,
    DBFactory,
)
from etcher.testing.state_machine import machine_settings, run_container_machine

# --------------------------------------------------------------------------- state machine


class StateMachineConformance(ContainerFixtures):
    """Random RD/RL/DB operations against a plain-Python model.

    See :mod:`etcher.testing.state_machine`.
    """

    machine_examples = 30
    machine_steps = 25

    def test_random_operations_match_plain_python(self, db_factory: DBFactory) -> None:
        # A third of the examples reclaim at once, the rest keep a grace period no example
        # outlives, so both handle lifetime rules meet every kind of operation.
        share = {0.0: 1 / 3, LONG_GRACE: 2 / 3}
        for grace, part in share.items():
            run_container_machine(
                functools.partial(db_factory, grace=grace),
                db_factory.discard,
                config=machine_settings(
                    max(1, round(self.machine_examples * part)), self.machine_steps
                ),
            )
