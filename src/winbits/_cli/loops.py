"""Loop control for the long commands (watch, export --interval): one line per outage,
and a stop asked by SIGTERM, Ctrl-Break or the console closing."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from .render import format_duration
from .usage import say


class Outage:
    """For loops that must outlive failures (watch, export --interval): one line on
    stderr when trouble starts, one when it ends, nothing per poll in between."""

    def __init__(self) -> None:
        self.since: float | None = None

    def failed(self, problem: str) -> None:
        if self.since is None:
            self.since = time.monotonic()
            say(f"{problem}; retrying")

    def ok(self, what: str) -> None:
        if self.since is not None:
            say(f"{what} again after {format_duration(time.monotonic() - self.since)}")
            self.since = None


class Stopper:
    """SIGTERM, CTRL_BREAK (SIGBREAK) and, on Windows, closing the console, logging off
    and shutting down ask a long loop to end, with exit code 0, after the write it is
    doing; the loop's sleep wakes for them. (Ctrl-C stays KeyboardInterrupt: exit 130.)
    With ``interrupts``, for a transfer, they raise KeyboardInterrupt as Ctrl-C does, so
    that its job is cancelled on the way out. Handlers are set only on the main thread,
    and the ones found are put back."""

    def __init__(self, interrupts: bool = False) -> None:
        self.asked = False
        self.interrupts = interrupts
        self._old: dict[int, Any] = {}
        self._console = False

    def __enter__(self) -> Stopper:
        if threading.current_thread() is threading.main_thread():
            for name in ("SIGTERM", "SIGBREAK"):
                number = getattr(signal, name, None)
                if number is not None:
                    self._old[number] = signal.signal(number, self._ask)
            if sys.platform == "win32":  # console close becomes SIGBREAK, and waits for us
                from .. import _native

                _native.hold_console_close(True)
                self._console = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._console:
            from .. import _native

            _native.hold_console_close(False)
        for number, handler in self._old.items():
            signal.signal(number, handler)

    def _ask(self, signum: int, frame: object) -> None:
        self.asked = True
        if self.interrupts:
            raise KeyboardInterrupt

    def sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self.asked and (left := end - time.monotonic()) > 0:
            time.sleep(min(left, 0.1))

    def rounds(self, count: int, interval: float | None) -> Iterator[int]:
        """0, 1, 2 … with `interval` seconds between them: one round without an
        interval, `count` rounds when count is not 0, and none after a stop was asked."""
        n = 0
        while True:
            yield n
            n += 1
            if interval is None or self.asked or (count and n >= count):
                return
            self.sleep(interval)
            if self.asked:
                return
