"""Progress bars for long commands: on a terminal only, quiet when piped.

A :class:`Progress` is the :class:`etcher._jsonio.ProgressSink` the commands
hand to the library. Each phase ("reading", "writing" ...) gets its own tqdm
bar on stderr; a phase that is one blocking call (materializing, the final
atomic write) shows its elapsed time through a ticker thread, so a long wait
never looks like a hang.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any


def wanted(choice: bool | None) -> bool:
    """``--progress``/``--no-progress`` if given, else: is stderr a terminal?"""
    if choice is not None:
        return choice
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


class Progress:
    """Progress of one command; a no-op unless ``enabled``."""

    def __init__(self, enabled: bool, unit: str = "node") -> None:
        self.enabled = enabled
        self.unit = unit
        self._bar: Any = None
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def stage(self, name: str, total: int | None) -> None:
        """Start phase ``name`` (``total`` steps if known); closes the previous bar."""
        self._close_bar()
        if not self.enabled:
            return
        from tqdm import tqdm

        self._bar = tqdm(
            total=total,
            desc=name,
            unit=f" {self.unit}",
            file=sys.stderr,
            leave=False,
            dynamic_ncols=True,
            mininterval=0.2,
        )
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, args=(self._bar, self._stop))
        self._ticker.daemon = True  # never keeps the process alive on Ctrl-C
        self._ticker.start()

    def advance(self, n: int) -> None:
        """``n`` more steps of the current phase are done."""
        if self._bar is not None:
            self._bar.update(n)

    def _tick(self, bar: Any, stop: threading.Event) -> None:
        # tqdm redraws only on update(); a long single call would freeze the clock.
        while not stop.wait(0.5):
            with contextlib.suppress(Exception):
                bar.refresh()

    def _close_bar(self) -> None:
        if self._ticker is not None:
            self._stop.set()
            self._ticker.join()
            self._ticker = None
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def close(self) -> None:
        """Remove the bar from the terminal."""
        self._close_bar()

    def hook(self, label: str) -> Callable[[str, int, int | None], None]:
        """A ``progress=`` callback for ``db.check``/``db.gc``/``delete_prefix_*``.

        Each phase the library reports ("scan", "read", "verify" ...) gets its
        own bar, its total updated as the library learns it.
        """
        state: dict[str, Any] = {"phase": None, "done": 0}

        def report(phase: str, done: int, total: int | None) -> None:
            if phase != state["phase"]:
                self.stage(f"{label}: {phase}", total)
                state["phase"], state["done"] = phase, 0
            bar = self._bar
            if bar is not None:
                if total is not None and bar.total != total:
                    bar.total = total
                bar.update(done - state["done"])
            state["done"] = done

        return report

    @contextlib.contextmanager
    def busy(self, name: str) -> Iterator[None]:
        """A phase that is one blocking call: the bar shows the elapsed time."""
        self.stage(name, None)
        try:
            yield
        finally:
            self._close_bar()
