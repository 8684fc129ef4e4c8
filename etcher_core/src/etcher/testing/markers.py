"""The ``etcher_requires`` marker: a test needs capabilities the backend may lack.

``@pytest.mark.etcher_requires("atomic_batches", "persistent")`` skips the test
unless the backend under test declares every named capability, with a reason
such as ``"SQLiteBackend.capabilities.atomic_batches is False"`` so a skip
always says *which* backend lacks *what*.
"""

from __future__ import annotations

import pytest

from etcher.spec import Capabilities

MARKER = "etcher_requires"
MARKER_HELP = (
    f"{MARKER}(capability, ...): skip unless the backend under test declares every named "
    "capability (etcher.spec.Capabilities) True"
)


def required_capabilities(item: pytest.Item) -> list[str]:
    """Every capability named by ``etcher_requires`` marks on ``item`` (class marks too)."""
    names: list[str] = []
    for mark in item.iter_markers(MARKER):
        if not mark.args:
            raise pytest.UsageError(
                f"{item.nodeid}: @{MARKER}() needs at least one capability name"
            )
        for name in mark.args:
            if not isinstance(name, str):
                raise pytest.UsageError(
                    f"{item.nodeid}: @{MARKER} takes capability names, got {name!r}"
                )
            names.append(name)
    return names


def missing_capability(backend: object, names: list[str]) -> str | None:
    """The skip reason for the first capability ``backend`` lacks, or ``None`` if it has all.

    The instance attribute is read (falling back to the class attribute) so a
    backend can declare less for one store than its class does, e.g. an
    in-memory database opened by a file-based backend.
    """
    owner = type(backend).__name__
    caps = getattr(backend, "capabilities", None)
    if caps is None:
        return f"{owner} declares no capabilities (the `capabilities` class attribute is missing)"
    for name in names:
        if not hasattr(caps, name):
            known = ", ".join(Capabilities.__dataclass_fields__)
            return f"{owner}.capabilities has no {name!r} (etcher knows: {known})"
        if not getattr(caps, name):
            return f"{owner}.capabilities.{name} is False"
    return None


def check_requirements(request: pytest.FixtureRequest) -> None:
    """Skip the requesting test if its ``etcher_requires`` marks are not met by ``backend``."""
    names = required_capabilities(request.node) if isinstance(request.node, pytest.Item) else []
    if not names:
        return
    try:
        backend = request.getfixturevalue("backend")
    except pytest.FixtureLookupError:
        pytest.fail(
            f"@{MARKER} needs a `backend` fixture; combine the test class with "
            "etcher.testing.BackendFixtures (or define `backend`)",
            pytrace=False,
        )
    reason = missing_capability(backend, names)
    if reason is not None:
        pytest.skip(reason)
