"""The concurrency conformance tests on a named in-memory store (threads only).

``memory://name`` is shared by every DB of one process, so the thread tests
run as written. A memory store cannot be opened from another process
(``MemoryBackend.capabilities.multiprocess`` is False), so the tests that
spawn processes are skipped through that capability, with its reason.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from etcher.testing.concurrency import ConcurrencyConformance
from etcher_contrib.memory import MemoryBackend

needs_processes = pytest.mark.etcher_requires("multiprocess")


class TestMemoryConcurrency(ConcurrencyConformance):
    @pytest.fixture
    def store_url(self) -> Iterator[str]:
        name = f"concurrency-{uuid.uuid4().hex}"
        yield f"memory://{name}"
        MemoryBackend.drop_store(name)

    @pytest.fixture
    def backend(self, store_url: str) -> Iterator[MemoryBackend]:
        """The store under test, for the ``etcher_requires`` capability checks."""
        opened = MemoryBackend.from_url(store_url)
        yield opened
        opened.close()

    # Every test below starts other processes, which cannot see this process's memory.

    @needs_processes
    def test_processes_transact_one_counter_exactly(self, store_url: str, ns: str) -> None:
        super().test_processes_transact_one_counter_exactly(store_url, ns)

    @needs_processes
    def test_processes_published_transact_exactly(self, store_url: str, ns: str) -> None:
        super().test_processes_published_transact_exactly(store_url, ns)

    @needs_processes
    def test_processes_incr_exactly(self, store_url: str, ns: str) -> None:
        super().test_processes_incr_exactly(store_url, ns)

    @needs_processes
    def test_plain_write_from_other_process_conflicts(self, store_url: str, ns: str) -> None:
        super().test_plain_write_from_other_process_conflicts(store_url, ns)

    @needs_processes
    def test_reader_never_sees_a_torn_overwrite(
        self, store_url: str, ns: str, tmp_path: Any
    ) -> None:
        super().test_reader_never_sees_a_torn_overwrite(store_url, ns, tmp_path)

    # A forked child gets a private copy of a memory store (see the test module
    # test_fork_memory.py), so children cannot write into the parent's store.

    @needs_processes
    def test_db_opened_before_os_fork_is_safe_in_children(self, store_url: str, ns: str) -> None:
        super().test_db_opened_before_os_fork_is_safe_in_children(store_url, ns)

    @needs_processes
    def test_db_opened_before_fork_pool_is_safe_in_workers(self, store_url: str, ns: str) -> None:
        super().test_db_opened_before_fork_pool_is_safe_in_workers(store_url, ns)

    @needs_processes
    def test_forked_child_dropping_an_inherited_pinned_handle_keeps_it(
        self, store_url: str, ns: str
    ) -> None:
        super().test_forked_child_dropping_an_inherited_pinned_handle_keeps_it(store_url, ns)

    @needs_processes
    def test_processes_rd_incr_exactly(self, store_url: str, ns: str) -> None:
        super().test_processes_rd_incr_exactly(store_url, ns)

    @needs_processes
    def test_forked_processes_rd_incr_exactly(self, store_url: str, ns: str) -> None:
        super().test_forked_processes_rd_incr_exactly(store_url, ns)

    @needs_processes
    def test_processes_pop_from_the_middle_exactly(
        self, store_url: str, ns: str, tmp_path: Any
    ) -> None:
        super().test_processes_pop_from_the_middle_exactly(store_url, ns, tmp_path)

    @needs_processes
    def test_processes_popitem_each_item_exactly_once(
        self, store_url: str, ns: str, tmp_path: Any
    ) -> None:
        super().test_processes_popitem_each_item_exactly_once(store_url, ns, tmp_path)

    @needs_processes
    def test_db_opened_before_a_fork_pool_is_safe_in_its_tasks(
        self, store_url: str, ns: str
    ) -> None:
        super().test_db_opened_before_a_fork_pool_is_safe_in_its_tasks(store_url, ns)
