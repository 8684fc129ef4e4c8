"""Node ids after fork(): every live UidFactory draws a new token in the child."""

from __future__ import annotations

import gc
import os
import weakref

from etcher._layout import _FACTORIES, UidFactory


def test_child_factory_has_a_new_token_and_parent_keeps_its_own() -> None:
    factory = UidFactory()
    before = factory.new("D")
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.write(write_fd, factory.new("D").encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    child_uid = os.read(read_fd, 100).decode()
    os.close(read_fd)
    os.waitpid(pid, 0)
    parent_uid = factory.new("D")
    assert child_uid[1:17] != parent_uid[1:17] == before[1:17]
    assert child_uid != parent_uid


def test_factories_are_tracked_weakly() -> None:
    factory = UidFactory()
    assert factory in _FACTORIES
    ref = weakref.ref(factory)
    del factory
    gc.collect()
    assert ref() is None
