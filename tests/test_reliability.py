"""Reliability inside other programs: any thread and apartment, the GIL released while
BITS works, sub-interpreters, a dying service, bad input, and no leaks."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib.util
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import fill, wait_until, windows_only

import winbits

pytestmark = windows_only

RPC_E_DISCONNECTED = 0x80010108
CO_E_NOTINITIALIZED = 0x800401F0 - 2**32
APTTYPE = {0: "STA", 1: "MTA", 2: "NA", 3: "MAINSTA"}


# --- apartments ---------------------------------------------------------------------------


def apartment() -> str:
    """This thread's COM apartment, as COM itself reports it."""
    kind, qualifier = ctypes.c_int(), ctypes.c_int()
    hr = ctypes.windll.ole32.CoGetApartmentType(ctypes.byref(kind), ctypes.byref(qualifier))
    if hr == CO_E_NOTINITIALIZED:
        return "none"
    assert hr == 0, hex(hr)
    return APTTYPE.get(kind.value, str(kind.value)) + ("/implicit" if qualifier.value == 1 else "")


def in_thread(fn, init=None):
    """Runs fn() on a new thread, first entering the apartment `init` (COINIT flags) the
    way an application would; returns (result, apartment before, apartment after)."""
    out: dict[str, Any] = {}

    def body():
        if init is not None:
            assert ctypes.windll.ole32.CoInitializeEx(None, init) in (0, 1)
        try:
            before = apartment()
            result = fn()
            gc.collect()
            out["value"] = (result, before, apartment())
        except BaseException as e:  # handed to the caller
            out["error"] = e
        finally:
            if init is not None:
                ctypes.windll.ole32.CoUninitialize()

    t = threading.Thread(target=body)
    t.start()
    t.join(120)
    assert not t.is_alive(), "the thread hung"
    if "error" in out:
        raise out["error"]
    return out["value"]


def run_together(targets):
    """Starts one thread per target, all at once, and waits for them all."""
    threads = [threading.Thread(target=t) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
        assert not t.is_alive(), "a thread hung"


def read_everything(bits):
    """The snapshot and the object API's view of the same queue."""
    snap = bits.snapshot()
    walk = [
        (
            j.id,
            j.name,
            j.owner,
            j.state,
            j.progress,
            [(f.remote_name, f.local_name, f.progress, f.peer_download_stats()) for f in j.files()],
        )
        for j in bits.jobs()
    ]
    return snap.jobs, walk


@pytest.mark.parametrize("init", [None, 0, 2], ids=["no COM", "MTA", "STA"])
def test_any_thread_reads_what_the_main_thread_reads_and_keeps_its_apartment(double, init):
    fill(double, jobs=6, files=3)
    with winbits.connect(double.clsid()) as bits:
        expected = read_everything(bits)

    def read():
        with winbits.connect(double.clsid()) as bits:
            return read_everything(bits)

    result, before, after = in_thread(read, init)
    assert result == expected
    assert before == after  # winbits left the thread's apartment as it found it


def test_an_sta_thread_can_use_objects_made_elsewhere(double):
    """Proxies live in the MTA; a single-threaded apartment's calls go through a helper
    thread, so objects made on one thread work from an STA thread."""
    fill(double, jobs=2, files=1)
    with winbits.connect(double.clsid()) as bits:
        (job, _) = bits.jobs()
        expected = (job.name, job.progress, [f.peer_download_stats() for f in job.files()])
        got, before, after = in_thread(
            lambda: (job.name, job.progress, [f.peer_download_stats() for f in job.files()]),
            init=2,
        )
    # The process's first single-threaded apartment is its main STA.
    assert got == expected and before == after and before in ("STA", "MAINSTA")


def test_eight_threads_on_one_manager_and_on_their_own(double):
    fill(double, jobs=6, files=3)
    with winbits.connect(double.clsid()) as shared:
        expected = read_everything(shared)
        results, errors = [], []

        def worker(own: bool):
            try:
                for _ in range(10):
                    if own:
                        with winbits.connect(double.clsid()) as bits:
                            results.append(read_everything(bits))
                    else:
                        results.append(read_everything(shared))
            except BaseException as e:
                errors.append(e)

        run_together([lambda i=i: worker(i % 2 == 0) for i in range(8)])
    assert not errors and len(results) == 80
    assert all(r == expected for r in results)


def test_eight_threads_against_the_real_service(bits, serve, tmp_path):
    for i in range(3):
        job = bits.create_job(f"winbits-threads {i}")
        job.add_file(serve(f"t{i}.bin", b"x"), str(tmp_path / f"t{i}.bin"))
    expected = {j.id: (j.name, j.state, j.progress) for j in bits.snapshot().jobs}
    results, errors = [], []

    def worker():
        try:
            with winbits.connect() as own:
                for _ in range(3):
                    snap = own.snapshot()
                    results.append({j.id: (j.name, j.state, j.progress) for j in snap.jobs})
        except BaseException as e:
            errors.append(e)

    run_together([worker] * 8)
    assert not errors and len(results) == 24
    assert all(r == expected for r in results)


def test_eight_threads_share_one_poller_while_the_real_queue_changes(bits, serve, tmp_path):
    """Against Wine's BITS: jobs come and go while 8 threads poll one poller; each job's
    arrival and departure is reported exactly once, by one of them."""
    poller = bits.poller()
    poller.poll()
    stop = threading.Event()
    snaps: list[winbits.Snapshot] = []
    errors: list[BaseException] = []

    def worker():
        try:
            while not stop.is_set():
                snaps.append(poller.poll())
        except BaseException as e:
            errors.append(e)

    def reported(kind: str, job_id: uuid.UUID) -> int:
        """Snapshots that reported the job's arrival, or its end: gone from the queue,
        or (Wine keeps cancelled jobs listed) changed to CANCELLED."""
        if kind == "added":
            return sum(job_id in s.added for s in list(snaps))
        cancelled = {
            j.id for s in list(snaps) for j in s.jobs if j.state == winbits.JobState.CANCELLED
        }
        return sum(
            job_id in s.removed or (job_id in s.changed and job_id in cancelled)
            for s in list(snaps)
        )

    def wait_reported(kind: str, job_id: uuid.UUID) -> None:
        deadline = time.monotonic() + 30
        while not reported(kind, job_id) and time.monotonic() < deadline and not errors:
            time.sleep(0.02)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    made = []
    try:
        for i in range(4):
            job = bits.create_job(f"winbits-shared-poller {i}")
            job.add_file(serve(f"p{i}.bin", b"x" * 1000), str(tmp_path / f"p{i}.bin"))
            made.append(job)
            wait_reported("added", job.id)
        for job in made:
            job.cancel()
            wait_reported("ended", job.id)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
        for job in made:
            with contextlib.suppress(winbits.BitsError):
                job.cancel()
    assert not errors and len(snaps) > 8
    assert [(reported("added", j.id), reported("ended", j.id)) for j in made] == [(1, 1)] * 4


def test_a_program_whose_main_thread_pythoncom_made_an_sta():
    # Checked, not imported: importing pythoncom here would make this thread an STA.
    if importlib.util.find_spec("pythoncom") is None:
        pytest.skip("no pywin32 here")
    code = (
        "import pythoncom, winbits, ctypes, sys\n"
        "from winbits import _cli\n"
        "code = _cli.main(['list'])\n"
        "t, q = ctypes.c_int(), ctypes.c_int()\n"
        "ctypes.windll.ole32.CoGetApartmentType(ctypes.byref(t), ctypes.byref(q))\n"
        "sys.exit(code if t.value == 3 else 99)\n"
    )  # still the main STA afterwards
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert r.returncode == 0, r.stderr


def test_a_gui_thread_dispatches_its_messages_while_its_batch_runs(double):
    # While the main STA's batch runs on winbits' MTA worker (each call of the double
    # blocks 0.4 s), another thread sends its window a message. The window procedure
    # runs during the batch, not after it; a winbits call made from there is refused
    # (the worker is busy with the batch it interrupted), and a Job, a listening Job and
    # a Poller whose last references it drops are released once that batch ends: their
    # COM objects, and the notifier of the listening one. unlisten() called there takes
    # the registration off at once and tells BITS once the batch ends.
    if importlib.util.find_spec("win32gui") is None:
        pytest.skip("no pywin32 here")
    code = """
import ctypes, sys, threading, time
sys.path.insert(0, sys.argv[1])
import pythoncom, win32con, win32gui, winbits, _bitsdouble
_bitsdouble.register()
_bitsdouble.reset()
_bitsdouble.add_job("one")
bits = winbits.connect(_bitsdouble.clsid())
mine = bits.create_job("mine")
assert mine._native.listen() > 0
poller = bits.poller()
poller.poll()
held = [bits.jobs()[0], mine, poller]
del mine, poller
_bitsdouble.reset(delay_us=400_000)
_bitsdouble.add_job("two")
other = bits.create_job("other")
assert other._native.listen() > 0
key = "{%s}" % other.id
seen = []

def on_message(hwnd, msg, wparam, lparam):
    seen.append(wparam)
    try:
        bits.jobs()
    except winbits.BitsError as e:
        seen.append(hex(e.hresult))
    held.clear()  # the last references to two Jobs and a Poller, dropped mid-batch
    other._native.unlisten()  # taken off now, BITS told once the batch ends
    return 0

wc = win32gui.WNDCLASS()
wc.lpszClassName = "winbits-test"
wc.lpfnWndProc = {win32con.WM_USER: on_message}
# A message-only window: Wine without a display refuses a top-level one (seen here).
hwnd = win32gui.CreateWindow(
    win32gui.RegisterClass(wc), "t", 0, 0, 0, 0, 0, win32con.HWND_MESSAGE, 0, 0, None
)
assert hwnd
go = threading.Event()

def send():
    go.wait()
    time.sleep(0.2)
    ctypes.windll.user32.SendMessageW(hwnd, win32con.WM_USER, 7, 0)

threading.Thread(target=send, daemon=True).start()
go.set()
n = len(bits.jobs())
during = list(seen)
unlistened = _bitsdouble.notify_flags(key)
other.cancel()
del other
bits.close()
del bits
_bitsdouble.reset()  # lets go of the last callback it keeps for fire(late=True)
print(n, during, unlistened, _bitsdouble.live(), winbits._native._live_notifiers())
"""
    r = subprocess.run(
        [sys.executable, "-c", code, os.path.dirname(double.__file__)],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert r.returncode == 0, r.stderr
    # ERROR_POSSIBLE_DEADLOCK; the unlistened job's flags back (3) and no notify interface
    # on it, while the job object itself lives on
    assert r.stdout.split("\n")[0] == "2 [7, '0x8007046b'] (3, False) 0 0"


# --- the GIL, sub-interpreters, process-wide state --------------------------------------


def test_the_gil_is_released_while_bits_works(double):
    double.reset(delay_us=300_000)  # every call blocks 0.3 s, as a slow service would
    job = double.add_job("slow")
    with winbits.connect(double.clsid()) as bits:
        count = [0]
        stop = threading.Event()

        def spin():
            while not stop.is_set():
                count[0] += 1

        spinner = threading.Thread(target=spin)
        spinner.start()
        try:
            before = count[0]
            bits.get_job(uuid.UUID(job))  # one blocking call
            during = count[0] - before
        finally:
            stop.set()
            spinner.join()
    assert during > 1000  # the other thread ran while BITS "worked"


@pytest.mark.skipif(sys.version_info < (3, 12), reason="per-interpreter GIL: 3.12+")
def test_a_sub_interpreter_with_its_own_gil_uses_winbits(tmp_path):
    try:
        import _interpreters as interpreters  # type: ignore[import-not-found]  # 3.13+
    except ImportError:
        import _xxsubinterpreters as interpreters  # type: ignore[import-not-found]  # 3.12
    out = tmp_path / "from-sub.txt"
    code = (
        "import winbits\n"
        "with winbits.connect() as bits:\n"
        "    n = len(bits.snapshot().jobs)\n"
        f"open({str(out)!r}, 'w').write(f'{{winbits.bits_version()}} {{n}}')\n"
    )
    if sys.version_info >= (3, 13):
        interp = interpreters.create("isolated")
        failure = interpreters.run_string(interp, code)
    else:
        interp = interpreters.create(isolated=True)
        failure = interpreters.run_string(interp, code)
    interpreters.destroy(interp)
    assert failure is None, failure
    version, jobs = out.read_text().split(") ")
    with winbits.connect() as bits:  # the main interpreter sees the same queue
        assert int(jobs) == len(bits.snapshot().jobs)
    assert version + ")" == str(winbits.bits_version())


def test_winbits_never_sets_process_wide_com_security():
    data = Path(winbits._native.__file__).read_bytes()
    assert b"CoInitializeSecurity" not in data


def test_winbits_never_sets_a_notification_interface(double, tmp_path):
    fill(double, jobs=2, files=1)
    with winbits.connect(double.clsid()) as bits:
        job = bits.create_job("mine")
        job.add_file("http://h/x", str(tmp_path / "x"))
        job.resume()
        read_everything(bits)
        poller = bits.poller()
        poller.poll()
        poller.poll()
        job.cancel()
    assert "Job.SetNotifyInterface" not in double.calls()


# --- a dying service -----------------------------------------------------------------------


def test_after_the_service_died_the_same_manager_reconnects(double):
    fill(double, jobs=1, files=1)
    with winbits.connect(double.clsid()) as bits:
        double.fail("Manager.EnumJobs", RPC_E_DISCONNECTED, times=1)
        with pytest.raises(winbits.ServiceUnavailableError) as info:
            bits.jobs()
        assert info.value.hresult == RPC_E_DISCONNECTED
        assert double.calls()["Factory.CreateInstance"] == 2  # connect, then the reconnect
        assert [j.name for j in bits.jobs()] == ["job0"]


def test_a_poller_recovers_after_the_service_died(double):
    fill(double, jobs=2, files=1)
    with winbits.connect(double.clsid()) as bits:
        poller = bits.poller()
        poller.poll()
        double.fail("Manager.EnumJobs", RPC_E_DISCONNECTED, times=1)
        with pytest.raises(winbits.ServiceUnavailableError):
            poller.poll()
        after = poller.poll()  # a new connection, a new walk: the same jobs, unmoved
        assert [j.name for j in after.jobs] == ["job0", "job1"]
        assert (after.added, after.changed, after.removed) == (frozenset(),) * 3
        assert double.calls()["Factory.CreateInstance"] == 2  # the connect, one reconnect


def test_calls_failing_together_in_one_outage_reconnect_once(double):
    fill(double, jobs=1, files=1)
    with winbits.connect(double.clsid()) as bits:
        double.clear_calls()
        double.hold("Manager.EnumJobs")  # eight calls in flight when the service dies
        failed = []

        def list_jobs():
            with contextlib.suppress(winbits.ServiceUnavailableError):
                bits.jobs()
                return
            failed.append(True)

        threads = [threading.Thread(target=list_jobs) for _ in range(8)]
        for t in threads:
            t.start()
        wait_until(lambda: double.calls().get("Manager.EnumJobs") == 8, "eight calls in flight")
        double.fail("Manager.EnumJobs", RPC_E_DISCONNECTED, times=8)
        double.release()
        for t in threads:
            t.join(30)
        assert len(failed) == 8
        assert double.calls()["Factory.CreateInstance"] == 1  # one reconnect for the outage
        assert [j.name for j in bits.jobs()] == ["job0"]


def test_a_poll_across_a_restart_of_bits_reconnects_once_and_reads_the_queue_anew(double):
    fill(double, jobs=2, files=2)
    with winbits.connect(double.clsid()) as bits:
        poller = bits.poller()
        poller.poll()
        double.restart()  # every proxy from before is dead; the jobs stay queued
        double.clear_calls()
        with pytest.raises(winbits.ServiceUnavailableError):
            poller.poll()  # through the manager from before
        (first, _) = [j.id for j in poller.poll().jobs]
        double.set_file(f"{{{first}}}", 0, 55, total=100)  # moves: its files are read again
        after = poller.poll()
        assert [j.name for j in after.jobs] == ["job0", "job1"]
        assert after.jobs[0].files[0].progress.bytes_transferred == 55
        assert double.calls()["Factory.CreateInstance"] == 1  # the one reconnect


def test_a_poll_whose_results_were_not_built_is_followed_by_one_that_reports_every_job(double):
    """Each allocation of a poll's results fails in turn (after the walk: the double's
    hook on the interpreter's allocator, as in the test above, on the native call so
    that the interpreter's own paths are spared): the next poll is cold and reports
    every job, where it would have found the walk moved on without its results."""
    fill(double, jobs=3, files=2)
    with winbits.connect(double.clsid()) as bits:
        failures = 0
        for n in range(5000):
            poller = bits.poller(threads=1)
            double.nomemory(n, n + 1)
            try:
                poller._native.poll(1)
                failed = False
            except MemoryError:
                failed = True
            finally:
                made = double.nomemory_off()
            if failed:  # the facade never saw the results: its next poll must see all
                failures += 1
                snap = poller.poll()
                assert [j.name for j in snap.jobs] == ["job0", "job1", "job2"], n
                assert len(snap.added) == 3, n
            if made <= n:
                break
        else:
            raise AssertionError("a poll made more than 5000 allocations")
        assert failures > 0


def test_a_poll_whose_results_the_facade_could_not_take_in_is_followed_by_a_cold_one(
    double, monkeypatch
):
    from winbits import _poller, _types

    fill(double, jobs=3, files=2)
    with winbits.connect(double.clsid()) as bits:
        poller = bits.poller()
        real = _types.job_record

        def no_memory(raw: Any) -> Any:
            raise MemoryError

        monkeypatch.setattr(_poller, "job_record", no_memory)
        with pytest.raises(MemoryError):
            poller.poll()
        monkeypatch.setattr(_poller, "job_record", real)
        snap = poller.poll()
        assert [j.name for j in snap.jobs] == ["job0", "job1", "job2"]
        assert len(snap.added) == 3


def test_a_new_manager_connects_while_another_failed(double):
    double.fail("Factory.CreateInstance", 0x800706BA, times=1)  # RPC_S_SERVER_UNAVAILABLE
    with pytest.raises(winbits.ServiceUnavailableError):
        winbits.connect(double.clsid())
    with winbits.connect(double.clsid()) as bits:
        assert bits.jobs() == []


# --- strings and leaks ----------------------------------------------------------------------


def test_the_double_notices_a_string_never_freed(double):
    """The check every test ends with can fail: a string taken through a hand-declared
    vtable call and not freed is seen as outstanding."""
    job = double.add_job("j")
    double.add_file(job, "http://h/a", "C:\\a")
    address = double.file4_pointer(job, 0)
    try:
        get_remote = ctypes.WINFUNCTYPE(ctypes.HRESULT, ctypes.POINTER(ctypes.c_void_p))(
            3, "GetRemoteName"
        )
        text = ctypes.c_void_p()
        get_remote(ctypes.c_void_p(address), ctypes.byref(text))
        assert double.strings() == (1, 1)
        ctypes.windll.ole32.CoTaskMemFree(text)
        assert double.strings() == (1, 0)
    finally:
        double.release_pointer(address)


# The leak tests make 100,000 calls of each kind on the newest Python and 10,000 on the
# others: a block kept per call shows either way, and the suite stays short on 2 cores.
ROUNDS = 100_000 if sys.version_info[:2] == (3, 13) else 10_000


def working_set() -> int:
    class Counters(ctypes.Structure):
        _fields_ = [("cb", ctypes.c_ulong), ("faults", ctypes.c_ulong)] + [
            (f"f{i}", ctypes.c_size_t) for i in range(8)
        ]

    c = Counters()
    c.cb = ctypes.sizeof(c)
    get = ctypes.WinDLL("psapi").GetProcessMemoryInfo
    get.argtypes = [ctypes.c_void_p, ctypes.POINTER(Counters), ctypes.c_ulong]
    assert get(ctypes.c_void_p(-1), ctypes.byref(c), c.cb)
    return int(c.f1)  # WorkingSetSize


def test_many_reads_of_each_kind_leave_memory_flat(double):
    fill(double, jobs=2, files=2)
    with winbits.connect(double.clsid()) as bits:
        job = bits.jobs()[0]
        f = job.files()[0]
        poller = bits.poller()
        reads: dict[str, Callable[[], object]] = {
            "job.name": lambda: job.name,
            "job.owner": lambda: job.owner,
            "job.state": lambda: job.state,
            "job.progress": lambda: job.progress,
            "job.times": lambda: job.times,
            "job.error": lambda: job.error,
            "job.files": job.files,
            "file.remote_name": lambda: f.remote_name,
            "file.progress": lambda: f.progress,
            "file.peer_download_stats": f.peer_download_stats,
            "file.downloaded_from_peer": lambda: f.downloaded_from_peer,
            "manager.jobs": bits.jobs,
            "snapshot": bits.snapshot,
            "poll": poller.poll,
        }
        for read in reads.values():  # warm up caches and free lists
            for _ in range(2000):
                read()
        gc.collect()
        blocks, memory = sys.getallocatedblocks(), working_set()
        for read in reads.values():
            for _ in range(ROUNDS):
                read()
        gc.collect()
        grown_blocks = sys.getallocatedblocks() - blocks
        grown_memory = working_set() - memory
    assert grown_blocks < 200, grown_blocks
    assert grown_memory < 2 * 2**20, grown_memory


def test_many_failing_calls_of_each_kind_leave_memory_flat(double, tmp_path):
    """The failure paths: each raises, and none may keep what it made (the enumeration
    that found jobs before failing, the exception's text, the reconnect)."""
    fill(double, jobs=2, files=2)
    E_ACCESSDENIED = 0x80070005
    with winbits.connect(double.clsid()) as bits:
        job = bits.jobs()[0]
        unknown = uuid.uuid4()
        failing: dict[str, tuple[type[BaseException], Callable[[], object]]] = {
            "unknown job id": (winbits.JobNotFoundError, lambda: bits.get_job(unknown)),
            "enumeration denied": (winbits.BitsError, bits.jobs),
            "files denied": (winbits.BitsError, job.files),
            "service gone": (winbits.ServiceUnavailableError, bits.snapshot),
            "bad id": (ValueError, lambda: bits.get_job("not a guid")),
            "bad name": (TypeError, lambda: bits.create_job(123)),  # type: ignore[arg-type]
            "bad url": (ValueError, lambda: job.add_file("ftp://h/x", str(tmp_path / "x"))),
            "NUL in a path": (ValueError, lambda: job.add_file("http://h/x", "C:\\a\0b")),
        }
        double.fail("Manager.EnumJobs", E_ACCESSDENIED)  # every call from now on
        double.fail("Job.EnumFiles", E_ACCESSDENIED)

        def run(n: int) -> None:
            for name, (error, call) in failing.items():
                if name == "service gone":  # the walk fails, then reconnects, each time
                    double.fail("Manager.EnumJobs", RPC_E_DISCONNECTED)
                for _ in range(n):
                    try:
                        call()
                    except error:
                        pass
                    else:
                        raise AssertionError(f"{name} did not fail")
                if name == "service gone":
                    double.fail("Manager.EnumJobs", E_ACCESSDENIED)

        run(2000)  # warm up caches and free lists
        gc.collect()
        blocks, memory = sys.getallocatedblocks(), working_set()
        run(ROUNDS)
        gc.collect()
        grown_blocks = sys.getallocatedblocks() - blocks
        grown_memory = working_set() - memory
        assert double.calls()["Factory.CreateInstance"] == 1 + 2000 + ROUNDS  # one reconnect each
    assert grown_blocks < 200, grown_blocks
    assert grown_memory < 2 * 2**20, grown_memory


def test_an_allocation_failing_anywhere_in_a_call_loses_nothing(double):
    """Each allocation a call makes fails in turn (the double's hook, like CPython's
    _testcapi.set_nomemory): the call raises MemoryError or succeeds, never crashes, and
    every COM object and string it held is released (the fixture checks both)."""
    fill(double, jobs=3, files=2)
    with winbits.connect(double.clsid()) as bits:
        expected = read_everything(bits)
        # The native calls themselves, so that the allocations failed are winbits' own
        # and as few as possible are the interpreter's (whose own paths may not survive).
        manager = bits._native
        job = manager.jobs(False)[0]
        job_id = job.id()
        poller = manager.poller(False)
        calls: dict[str, Callable[[], object]] = {
            "manager.jobs": lambda: manager.jobs(False),
            "job.files": job.files,
            "get_job": lambda: manager.get_job(job_id),
            "create_job": lambda: manager.create_job("oom", 0),
            "poll": lambda: poller.poll(2),
            "job.name": job.name,
            "file.peer_stats": lambda: job.files()[0].peer_stats(),
        }
        for name, call in calls.items():
            failed = 0
            for n in range(5000):
                double.nomemory(n, n + 1)
                try:
                    call()
                except MemoryError:
                    failed += 1
                finally:
                    made = double.nomemory_off()
                if made <= n:  # the call made fewer than n + 1 allocations: all were failed
                    break
            else:
                raise AssertionError(f"{name}: more than 5000 allocations")
            assert failed > 0, name  # the injection reached the call
        for j in bits.jobs():
            if j.name == "oom":
                j.cancel()
        gc.collect()
        assert read_everything(bits) == expected


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [-(2**31) - 1, 2**32, "0x80200001", None, 1.5])
def test_describe_refuses_what_is_not_a_32_bit_hresult(double, value):
    with winbits.connect(double.clsid()) as bits, pytest.raises(ValueError):
        bits.describe(value)


# Every job setting with a setter: each gets random values too.
SETTABLE = (
    "name", "description", "priority", "minimum_retry_delay", "no_progress_timeout",
    "maximum_download_time", "proxy", "custom_headers", "security_flags", "peer_caching",
    "notify_command_line", "reply_file_name", "http_method", "transfer_policy",
    "dynamic_content", "high_performance", "max_download_size", "use_stored_credentials",
    "on_demand", "minimum_notification_interval", "file_acl_flags", "helper_token_flags",
)  # fmt: skip


def test_every_settable_job_property_is_in_the_random_value_test():
    def settable(attr: object) -> bool:
        if isinstance(attr, property):
            return attr.fset is not None
        return getattr(attr, "check", None) is not None  # a _Setting with a setter

    assert {name for name, attr in vars(winbits.Job).items() if settable(attr)} == set(SETTABLE)


def test_random_values_at_every_entry_point_raise_only_documented_errors(double, tmp_path):
    pytest.importorskip("hypothesis")
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    anything = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.text(),
        st.binary(),
        st.uuids(),
        st.uuids().map(str),
        st.lists(st.integers(), max_size=3),
        st.text().map(lambda t: "C:\\" + t),
        st.text().map(lambda t: "http://h/" + t),
    )
    documented = (TypeError, ValueError, winbits.BitsError, FileExistsError)
    clsid = double.clsid()

    @settings(
        max_examples=300,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(st.data())
    def check(data):
        with winbits.connect(clsid) as bits:
            job = bits.create_job("fuzz")
            job.add_file("http://h/f", str(tmp_path / "f"))
            (file,) = job.files()
            calls = [
                lambda: winbits.connect(data.draw(anything)).close(),
                lambda: bits.get_job(data.draw(anything)),
                lambda: bits.create_job(data.draw(anything)).cancel(),
                lambda: bits.create_job("n", data.draw(anything)).cancel(),
                lambda: bits.jobs(data.draw(anything)),
                lambda: bits.snapshot(data.draw(anything)),
                lambda: bits.poller(threads=data.draw(anything)),
                lambda: bits.describe(data.draw(anything)),
                lambda: job.add_file(data.draw(anything), data.draw(anything)),
                lambda: job.add_file("http://h/r", str(tmp_path / "r"), ranges=data.draw(anything)),
                lambda: job.set_credentials(data.draw(anything), data.draw(anything)),
                lambda: job.set_credentials(
                    "u", "p", target=data.draw(anything), scheme=data.draw(anything)
                ),
                lambda: job.remove_credentials(
                    target=data.draw(anything), scheme=data.draw(anything)
                ),
                lambda: job.set_client_certificate(
                    data.draw(anything), store=data.draw(anything), location=data.draw(anything)
                ),
                lambda: setattr(job, "custom_headers", {data.draw(anything): data.draw(anything)}),
                lambda: setattr(file, "remote_name", data.draw(anything)),
                lambda: setattr(file, "validation_state", data.draw(anything)),
                *(lambda name=name: setattr(job, name, data.draw(anything)) for name in SETTABLE),
            ]
            for call in calls:
                try:
                    call()
                except documented:
                    pass
            job.cancel()

    check()  # and the fixture then checks that no COM object or string was leaked


def test_a_job_from_before_the_outage_reconnects_once_and_says_to_get_it_again(double):
    fill(double, jobs=1, files=1)
    with winbits.connect(double.clsid()) as bits:
        (job,) = bits.jobs()
        double.fail("Job.GetState", RPC_E_DISCONNECTED)  # every call: its proxy died
        for _ in range(3):
            with pytest.raises(winbits.ServiceUnavailableError, match="get the job again"):
                job.state  # noqa: B018
        assert double.calls()["Factory.CreateInstance"] == 2  # one reconnect for the outage
        assert [j.name for j in bits.jobs()] == ["job0"]  # the manager itself recovered
