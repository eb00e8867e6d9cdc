"""Fixtures: the loopback HTTP server, real BITS with cleanup, and the COM test double.

Tests that need Windows (real BITS or the double) are skipped elsewhere; on Linux they
run under Wine through tools/wine.py test.
"""

from __future__ import annotations

import ctypes
import faulthandler
import gc
import importlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import rangeserver

windows_only = pytest.mark.skipif(sys.platform != "win32", reason="needs Windows (or Wine)")

ERROR_NOT_LOGGED_ON = 0x800704DD


def skip_if_not_logged_on(evidence: object) -> None:
    """BITS transfers only while the job's owner is logged on; a CI runner's service
    session is not, and BITS says ERROR_NOT_LOGGED_ON. Such a run skips the transfer
    tests with that reason rather than fail."""
    hresult = getattr(evidence, "hresult", None)
    text = str(evidence)
    if hresult == ERROR_NOT_LOGGED_ON or f"0x{ERROR_NOT_LOGGED_ON:08X}" in text:
        pytest.skip("BITS does not transfer here: the job owner is not logged on (0x800704DD)")


def _load_double():
    """The C++ test double: cross-built by tools/wine.py under Wine, else built here with
    this Python's compiler (Windows). WINBITS_REQUIRE_DOUBLE=1 (the wheel workflow) makes
    a failure to build it an error rather than a skip."""
    try:
        import _bitsdouble
    except ImportError:
        import tempfile

        sys.path.insert(0, os.path.join(os.path.dirname(__file__), "double"))
        try:
            double_build = importlib.import_module("build")  # tests/double/build.py

            out = double_build.build(Path(tempfile.mkdtemp("-bitsdouble")))
            sys.path.insert(0, str(out))
            import _bitsdouble
        except Exception as e:
            if os.environ.get("WINBITS_REQUIRE_DOUBLE") == "1":
                raise
            pytest.skip(f"the COM test double could not be built here: {e}")
    return _bitsdouble


def run_winbits(
    *argv: str, timeout: float = 180, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m winbits ARGV` in a process of its own, no standard input, its output
    kept apart."""
    return subprocess.run(
        [sys.executable, "-m", "winbits", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )


def running_on_wine() -> bool:
    if sys.platform != "win32":
        return False
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


# --- one suite across fresh Wine sessions -------------------------------------------------
#
# Wine's BITS service can crash, and then stays unreachable until Wine itself restarts
# (docs/testbed.md): every later test that needs it would fail. So after a failed test,
# under Wine, BITS is asked whether it still answers; when it does not, the session ends
# with EXIT_BITS_GONE and tools/wine.py goes on in a fresh Wine. With WINBITS_TESTS_DONE
# naming a file, every test that passes is added to it, and the tests found there are not
# run again.

EXIT_BITS_GONE = 75
_DONE = os.environ.get("WINBITS_TESTS_DONE")
_failed: set[str] = set()


# A test that hangs would hold up the whole session until tools/wine.py's limit: after this
# many seconds its threads' stacks are printed and the process ends (exit code 1), and
# the run goes on in a fresh session as for any other failure.
TEST_DEADLINE = 420
_stderr: list[Any] = []  # the real standard error, not the one pytest captures


def pytest_configure(config: pytest.Config) -> None:
    _stderr.append(os.fdopen(os.dup(2), "w"))  # capture is off here


def pytest_unconfigure(config: pytest.Config) -> None:
    while _stderr:
        _stderr.pop().close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    faulthandler.dump_traceback_later(TEST_DEADLINE, exit=True, file=_stderr[0])
    try:
        return (yield)
    finally:
        faulthandler.cancel_dump_traceback_later()


def pytest_sessionstart(session: pytest.Session) -> None:
    # Under Wine, the process that first makes BITS start hands its standard handles on
    # to the service, which outlives it: a test that reads a child's output through a
    # pipe would then wait forever if that child were the first (seen here). So this
    # process starts BITS before any test does. The same holds for Wine's desktop
    # process (explorer.exe /desktop), started by the first process that needs a window
    # or its messages: a child that pumps messages while it waits would start it.
    if running_on_wine():
        _bits_answers()
        ctypes.windll.user32.GetDesktopWindow()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not _DONE or not os.path.exists(_DONE):
        return
    with open(_DONE, encoding="utf-8") as f:
        done = set(f.read().splitlines())
    if any(item.nodeid in done for item in items):
        config.hook.pytest_deselected(items=[i for i in items if i.nodeid in done])
        items[:] = [item for item in items if item.nodeid not in done]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.failed:
        _failed.add(report.nodeid)
        if running_on_wine() and not _bits_answers():
            pytest.exit(f"Wine's BITS service is gone after {report.nodeid}", EXIT_BITS_GONE)
    elif _DONE and report.when == "teardown" and report.nodeid not in _failed:
        with open(_DONE, "a", encoding="utf-8") as f:
            f.write(report.nodeid + "\n")


def _bits_answers() -> bool:
    """Whether BITS takes a connection, asked twice three seconds apart."""
    import winbits

    for wait in (0, 3):
        time.sleep(wait)
        try:
            winbits.connect().close()
            return True
        except winbits.ServiceUnavailableError:
            pass
    return False


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


def leftovers(name: str) -> list[object]:
    """Jobs with this name still in the queue and not finished (Wine keeps finished ones)."""
    import winbits

    with winbits.connect() as manager:
        return [
            j
            for j in manager.snapshot().jobs
            if j.name == name and not winbits.JobState(j.state).is_final
        ]


class _Tracked:
    """The manager with create_job recorded for cleanup; everything else passes through."""

    def __init__(self, manager: object, create_job: Callable[..., object]) -> None:
        self._manager = manager
        self.create_job = create_job

    def __getattr__(self, name: str) -> object:
        return getattr(self._manager, name)


def wait_for_state(job: object, states: Collection[int], timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        state = job.state  # type: ignore[attr-defined]
        if state in (4, 5):  # ERROR, TRANSIENT_ERROR
            skip_if_not_logged_on(job.error)  # type: ignore[attr-defined]
        if state in states:
            return int(state)
        if time.monotonic() > deadline:
            raise AssertionError(f"job stayed {state!r}, wanted one of {states}")
        time.sleep(0.1)


def wait_until(check: Callable[[], Any], what: str, deadline: float = 60.0, retry_on=()) -> Any:
    """check()'s first true result, asked every 0.2 s; AssertionError naming `what` after
    `deadline` seconds. Exceptions in `retry_on` (a server not up yet) count as false."""
    end = time.monotonic() + deadline
    last: object = None
    while time.monotonic() < end:
        try:
            last = check()
            if last:
                return last
        except retry_on as e:
            last = e
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {deadline:g} s (last: {last!r})")


def prom_samples(path: object) -> list[Any]:
    """The samples of a Prometheus text file; none while the file is not there yet."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = Path(str(path)).read_text(encoding="utf-8")
    except OSError:
        return []
    return [s for f in text_string_to_metric_families(text) for s in f.samples]


def prom_values(path: object) -> dict[str, float]:
    """{metric: value} of a Prometheus text file (the last sample of each name)."""
    return {s.name: s.value for s in prom_samples(path)}


def by_server(path: object) -> dict[tuple[str, str], float]:
    """{(metric, server): value} of the per-server counters in a Prometheus text file."""
    return {
        (s.name, s.labels["server"]): s.value for s in prom_samples(path) if "server" in s.labels
    }


@pytest.fixture
def double() -> Iterator[object]:
    """The in-process BITS test double, reset; after the test every COM object it made
    must be gone (no reference leaked by winbits), and every string it handed out freed
    with CoTaskMemFree (seen by its IMallocSpy)."""
    _bitsdouble = _load_double()
    _bitsdouble.register()
    _bitsdouble.reset()
    yield _bitsdouble
    gc.collect()
    assert _bitsdouble.live() == 0, "COM objects of the double still alive after the test"
    handed_out, not_freed = _bitsdouble.strings()
    assert not_freed == 0, f"{not_freed} of {handed_out} strings from BITS never freed"
    from winbits import _native

    _bitsdouble.reset()  # lets go of the callbacks it kept for fire(late=True)
    assert _native._live_notifiers() == 0, "wait()'s callback objects still alive"


def when_queued(double, *actions: Callable[[Any], object]) -> threading.Thread:
    """Another program meanwhile: a started thread that runs each action(job) in turn on
    the first job of the double's queue once it is QUEUED (made, set, its files added,
    resumed)."""

    def watch() -> None:
        import winbits

        with winbits.connect(double.clsid()) as bits:
            for _ in range(500):
                jobs = bits.jobs()
                if jobs and jobs[0].state == winbits.JobState.QUEUED:
                    for action in actions:
                        action(jobs[0])
                    return
                time.sleep(0.01)

    thread = threading.Thread(target=watch)
    thread.start()
    return thread


def finish(double, job, from_origin: int = 3, from_peers: int = 1) -> None:
    """BITS transferring job's first file (from_origin + from_peers bytes) and calling
    back: TRANSFERRED."""
    key, size = f"{{{job.id}}}", from_origin + from_peers
    double.set_file(
        key, 0, size, completed=True, total=size, from_origin=from_origin, from_peers=from_peers
    )
    double.set_state(key, 6)  # TRANSFERRED
    double.fire(key, "transferred")


def fill(double, jobs=20, files=5):
    """jobs x files, each job TRANSFERRING, its last file complete."""
    ids = []
    for j in range(jobs):
        job = double.add_job(f"job{j}", state=2, owner=f"S-1-5-21-{j}")
        for i in range(files):
            double.add_file(
                job,
                f"http://h/{j}/{i}",
                f"C:\\{j}_{i}",
                total=100,
                transferred=100 if i == files - 1 else 10 * i,
                completed=i == files - 1,
                from_origin=60 + i,
                from_peers=i,
            )
        ids.append(job)
    return ids
