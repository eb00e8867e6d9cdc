"""Fixtures: the loopback HTTP server, real BITS with cleanup, and the COM test double.

Tests that need Windows (real BITS or the double) are skipped elsewhere; on Linux they
run under Wine through tools/wine.py test.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import rangeserver  # noqa: E402

windows_only = pytest.mark.skipif(sys.platform != "win32", reason="needs Windows (or Wine)")


def running_on_wine() -> bool:
    if sys.platform != "win32":
        return False
    import ctypes  # test code only: asks ntdll whether it is Wine's

    return hasattr(ctypes.WinDLL("ntdll"), "wine_get_version")


@pytest.fixture(scope="session")
def server() -> Iterator[rangeserver.RangeServer]:
    srv = rangeserver.start({})
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()


@pytest.fixture
def serve(server: rangeserver.RangeServer) -> Callable[..., str]:
    """serve(name, payload) -> the URL at which the server gives payload."""

    def add(name: str, payload: bytes) -> str:
        server.files["/" + name] = payload
        return f"{server.base_url}/{name}"

    return add


@pytest.fixture
def bits() -> Iterator[object]:
    """A connection to the real BITS (Wine's, under Wine). Jobs the test made with
    bits.create_job and left unfinished are cancelled: nothing stays in the queue."""
    import winbits

    made: list[winbits.Job] = []
    with winbits.connect() as manager:
        create = manager.create_job

        def tracked(*a: object, **kw: object) -> winbits.Job:
            job = create(*a, **kw)  # type: ignore[arg-type]
            made.append(job)
            return job

        yield _Tracked(manager, tracked)
        for job in made:
            try:
                if not winbits.JobState(job.state).is_final:
                    job.cancel()
            except winbits.BitsError:
                pass


class _Tracked:
    """The manager with create_job recorded for cleanup; everything else passes through."""

    def __init__(self, manager: object, create_job: Callable[..., object]) -> None:
        self._manager = manager
        self.create_job = create_job

    def __getattr__(self, name: str) -> object:
        return getattr(self._manager, name)


def wait_for_state(job: object, states: set[int], timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        state = job.state  # type: ignore[attr-defined]
        if state in states:
            return int(state)
        if time.monotonic() > deadline:
            raise AssertionError(f"job stayed {state!r}, wanted one of {states}")
        time.sleep(0.1)


@pytest.fixture
def double() -> Iterator[object]:
    """The in-process BITS test double, reset; after the test every COM object it made
    must be gone (no reference leaked by winbits)."""
    import _bitsdouble

    _bitsdouble.register()
    _bitsdouble.reset()
    yield _bitsdouble
    gc.collect()
    assert _bitsdouble.live() == 0, "COM objects of the double still alive after the test"
