"""winbits side by side with pywin32, comtypes and ctypes, in one run, as ratios.

Run under Windows Python (on Linux: python3 tools/wine.py bench). Needs the test
double (_bitsdouble) importable for the per-call and memory parts, pywin32 and
comtypes installed. Timings are medians of repeated runs; the machine's noise is
part of them, so compare ratios from one run, not figures across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import statistics
import sys
import tempfile
import threading
import time
import timeit
from ctypes import POINTER, byref, c_ulonglong, wintypes
from pathlib import Path
from typing import Any

sys.coinit_flags = 0  # type: ignore[attr-defined]  # pythoncom and comtypes join the MTA instead of making this an STA

import _bitsdouble
import pythoncom
from comtypes import COMMETHOD, GUID, HRESULT, IUnknown
from win32com.bits import bits as pwbits

import winbits

# --- helpers ------------------------------------------------------------------------------


def per_call_ns(fn, number: int, repeat: int = 7) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e9


def median_s(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def table(title: str, rows: list[tuple[str, float, str]], base: str) -> None:
    """rows: (name, value, unit); ratios are value / value of `base`."""
    ref = {n: v for n, v, _ in rows}[base]
    print(f"\n{title}")
    width = max(len(n) for n, _, _ in rows)
    for name, value, unit in rows:
        print(f"  {name:<{width}}  {value:10.1f} {unit:<3}  {value / ref:6.2f}x of {base}")


# --- per call, against the in-process double -----------------------------------------------


class IBackgroundCopyFile4(IUnknown):  # type: ignore[misc]  # hand-declared for comtypes: slots 3-12 (docs/bits.md)
    _iid_ = GUID("{ef7e0655-7888-4960-b0e5-730846e03492}")
    _methods_ = [  # noqa: RUF012 (comtypes reads the class attribute)
        COMMETHOD([], HRESULT, "GetRemoteName", (["out"], POINTER(wintypes.LPWSTR))),
        COMMETHOD([], HRESULT, "GetLocalName", (["out"], POINTER(wintypes.LPWSTR))),
        COMMETHOD([], HRESULT, "GetProgress", (["in"], ctypes.c_void_p)),
        COMMETHOD(
            [], HRESULT, "GetFileRanges", (["in"], ctypes.c_void_p), (["in"], ctypes.c_void_p)
        ),
        COMMETHOD([], HRESULT, "SetRemoteName", (["in"], wintypes.LPCWSTR)),
        COMMETHOD([], HRESULT, "GetTemporaryName", (["in"], ctypes.c_void_p)),
        COMMETHOD([], HRESULT, "SetValidationState", (["in"], wintypes.BOOL)),
        COMMETHOD([], HRESULT, "GetValidationState", (["in"], ctypes.c_void_p)),
        COMMETHOD([], HRESULT, "IsDownloadedFromPeer", (["in"], ctypes.c_void_p)),
        COMMETHOD(
            [],
            HRESULT,
            "GetPeerDownloadStats",
            (["out"], POINTER(c_ulonglong), "pFromOrigin"),
            (["out"], POINTER(c_ulonglong), "pFromPeers"),
        ),
    ]


# ctypes: slot 12 of the vtable, called by hand.
_GetPeerDownloadStats = ctypes.WINFUNCTYPE(
    ctypes.HRESULT, POINTER(c_ulonglong), POINTER(c_ulonglong)
)(12, "GetPeerDownloadStats")


def bench_per_call(number: int) -> None:
    _bitsdouble.register()
    _bitsdouble.reset()
    job = _bitsdouble.add_job("bench")
    _bitsdouble.add_file(job, "http://h/f", "C:\\f", from_origin=1234567, from_peers=89)
    with winbits.connect(_bitsdouble.clsid()) as bits:
        (f,) = bits.jobs()[0].files()
        native_file = f._native
        assert f.peer_download_stats() == (1234567, 89)
        address = _bitsdouble.file4_pointer(job, 0)
        try:
            ct: Any = ctypes.cast(ctypes.c_void_p(address), POINTER(IBackgroundCopyFile4))
            ct.AddRef()  # comtypes releases its pointer when collected; cast did not AddRef
            raw = ctypes.c_void_p(address)

            def via_ctypes():
                a, b = c_ulonglong(), c_ulonglong()
                _GetPeerDownloadStats(raw, byref(a), byref(b))
                return (a.value, b.value)

            assert tuple(ct.GetPeerDownloadStats()) == (1234567, 89) == via_ctypes()
            floor = _bitsdouble.peer_stats_floor
            PeerStats = winbits.PeerStats
            rows = [
                ("floor: the tuple, no COM call", per_call_ns(floor, number), "ns"),
                (
                    "winbits native File.peer_stats()",
                    per_call_ns(native_file.peer_stats, number),
                    "ns",
                ),
                (
                    "floor: PeerStats, no COM call",
                    per_call_ns(lambda: PeerStats(*floor()), number),
                    "ns",
                ),
                (
                    "winbits file.peer_download_stats()",
                    per_call_ns(f.peer_download_stats, number),
                    "ns",
                ),
                (
                    "comtypes GetPeerDownloadStats()",
                    per_call_ns(ct.GetPeerDownloadStats, number),
                    "ns",
                ),
                ("ctypes vtable call", per_call_ns(via_ctypes, number), "ns"),
            ]
        finally:
            del ct
            gc.collect()
            _bitsdouble.release_pointer(address)
    table(
        "Per call, IBackgroundCopyFile4::GetPeerDownloadStats on the in-process double",
        rows,
        "winbits native File.peer_stats()",
    )


# --- against Wine's (or Windows') real BITS ---------------------------------------------


def object_walk(bits) -> list[Any]:
    """winbits' object API, property by property: what a caller without snapshot() does."""
    out = []
    for job in bits.jobs():
        files = [
            (f.remote_name, f.local_name, f.progress, f.peer_download_stats()) for f in job.files()
        ]
        out.append((job.id, job.name, job.state, job.progress, files))
    return out


def pywin32_walk(manager) -> list[Any]:
    """pywin32 reading what it can of the same jobs: ids, names, states, progress, and
    each file's names and progress (it has no IBackgroundCopyFile4)."""
    out = []
    for job in manager.EnumJobs(0):
        files = [(f.GetRemoteName(), f.GetLocalName(), f.GetProgress()) for f in job.EnumFiles()]
        out.append((job.GetId(), job.GetDisplayName(), job.GetState(), job.GetProgress(), files))
    return out


def bench_real(jobs: int, files: int, repeat: int) -> None:
    pw = pythoncom.CoCreateInstance(
        pwbits.CLSID_BackgroundCopyManager,
        None,
        pythoncom.CLSCTX_LOCAL_SERVER,
        pwbits.IID_IBackgroundCopyManager,
    )
    with winbits.connect() as bits:
        made = []
        try:
            for j in range(jobs):
                job = bits.create_job(f"winbits-bench {j}")
                made.append(job)
                for i in range(files):
                    job.add_file(f"http://127.0.0.1:9/{j}/{i}", f"C:\\winbits-bench\\{j}_{i}.bin")
            mine = {job.id for job in made}
            assert len([j for j in bits.snapshot().jobs if j.id in mine]) == jobs
            cold = [
                ("pywin32 walk", median_s(lambda: pywin32_walk(pw), repeat), "s"),
                ("winbits object API walk", median_s(lambda: object_walk(bits), repeat), "s"),
            ]
            for threads in (1, 2, 4, 8):
                cold.append(
                    (
                        f"winbits snapshot(threads={threads})",
                        median_s(lambda t=threads: bits.snapshot(threads=t), repeat),
                        "s",
                    )
                )
            cold = [(n, v * 1000, "ms") for n, v, _ in cold]
            total = len(bits.jobs())
            table(
                f"Cold read of the queue: {jobs} jobs x {files} files made here "
                f"({total} jobs in the queue in all), real BITS",
                cold,
                "pywin32 walk",
            )

            repeat_rows = [
                ("pywin32 walk", median_s(lambda: pywin32_walk(pw), repeat), "s"),
                ("winbits object API walk", median_s(lambda: object_walk(bits), repeat), "s"),
            ]
            for threads in (1, 4):
                poller = bits.poller(threads=threads)
                poller.poll()
                repeat_rows.append(
                    (f"winbits poller.poll(threads={threads})", median_s(poller.poll, repeat), "s")
                )
            repeat_rows = [(n, v * 1000, "ms") for n, v, _ in repeat_rows]
            table("Repeat read where nothing moved, real BITS", repeat_rows, "pywin32 walk")
        finally:
            for job in made:
                job.cancel()


# --- memory -------------------------------------------------------------------------------


class PROCESS_MEMORY_COUNTERS(ctypes.Structure):
    _fields_ = [("cb", wintypes.DWORD), ("PageFaultCount", wintypes.DWORD)] + [
        (name, ctypes.c_size_t)
        for name in (
            "PeakWorkingSetSize",
            "WorkingSetSize",
            "QuotaPeakPagedPoolUsage",
            "QuotaPagedPoolUsage",
            "QuotaPeakNonPagedPoolUsage",
            "QuotaNonPagedPoolUsage",
            "PagefileUsage",
            "PeakPagefileUsage",
        )
    ]


def working_set() -> int:
    counters = PROCESS_MEMORY_COUNTERS()
    counters.cb = ctypes.sizeof(counters)
    get = ctypes.WinDLL("psapi").GetProcessMemoryInfo
    get.argtypes = [wintypes.HANDLE, POINTER(PROCESS_MEMORY_COUNTERS), wintypes.DWORD]
    get.restype = wintypes.BOOL
    current = wintypes.HANDLE(-1)  # GetCurrentProcess()'s pseudo-handle, at full width
    if not get(current, byref(counters), counters.cb):
        raise ctypes.WinError()
    return int(counters.WorkingSetSize)


def bench_memory(polls: int) -> None:
    _bitsdouble.register()
    _bitsdouble.reset()
    for j in range(2):
        job = _bitsdouble.add_job(f"mem{j}", state=2)
        _bitsdouble.add_file(
            job, "http://h/f", "C:\\f", total=10, transferred=5, from_origin=3, from_peers=2
        )
    with winbits.connect(_bitsdouble.clsid()) as bits:
        poller = bits.poller()
        for _ in range(1000):  # warm up caches and free lists
            poller.poll()
        gc.collect()
        rss0, blocks0 = working_set(), sys.getallocatedblocks()
        t = time.perf_counter()
        for _ in range(polls):
            poller.poll()
        elapsed = time.perf_counter() - t
        gc.collect()
        rss1, blocks1 = working_set(), sys.getallocatedblocks()
    per_poll = elapsed / polls * 1e6
    print(f"\nMemory over {polls:,} polls (2 jobs x 1 file, the double; {per_poll:.1f} us a poll)")
    print(
        f"  working set: {rss0 / 2**20:.1f} MiB -> {rss1 / 2**20:.1f} MiB "
        f"({(rss1 - rss0) / 2**10:+.0f} KiB)"
    )
    print(f"  Python allocated blocks: {blocks0} -> {blocks1} ({blocks1 - blocks0:+d})")


def bench_wait(repeat: int, rate: int) -> None:
    """From the end of a transfer (the loopback server's last byte) to the waiter
    knowing, and the calls into BITS meanwhile: Job.wait() woken by BITS' notification
    and Job.wait_async() against the loop the command line used to run (a state read
    every 0.2 s)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    import rangeserver

    payload = rangeserver.make_payload(3_000_000, seed=5)
    server = rangeserver.start({"/wait.bin": payload})
    server.rate["/wait.bin"] = rate  # bytes per second: a transfer of known length
    threading.Thread(target=server.serve_forever, daemon=True).start()
    folder = Path(tempfile.mkdtemp(prefix="winbits-bench-"))
    # COM calls per native call: listen() asks GetNotifyFlags, SetNotifyInterface and
    # SetNotifyFlags; unlisten() puts back the last two; state() is one GetState.
    com = {"listen": 3, "unlisten": 2, "state": 1, "notified": 0}

    class Counting:
        def __init__(self, native: Any) -> None:
            self.native, self.calls = native, 0

        def __getattr__(self, name: str) -> Any:
            method = getattr(self.native, name)

            def call(*a: Any) -> Any:
                self.calls += com.get(name, 1)
                return method(*a)

            return call

    def poll(job: winbits.Job) -> None:
        while job.state != winbits.JobState.TRANSFERRED:
            time.sleep(0.2)

    def event(job: winbits.Job) -> None:
        job.wait(timeout=120, poll_interval=30)

    def event_async(job: winbits.Job) -> None:
        asyncio.run(job.wait_async(timeout=120, poll_interval=30))

    waiters = {
        "wait() (event)": event,
        "wait_async() (event)": event_async,
        "poll every 0.2 s": poll,
    }
    results: dict[str, list[tuple[float, int]]] = {name: [] for name in waiters}
    try:
        with winbits.connect() as bits:
            for i in range(repeat):
                for name, waiter in waiters.items():
                    dest = folder / f"{i}-{len(results[name])}.bin"
                    job = bits.create_job("winbits bench wait")
                    try:
                        job.add_file(f"{server.base_url}/wait.bin", str(dest))
                        counter = Counting(job._native)
                        job._native = counter  # type: ignore[assignment]
                        server.sent_at.clear()
                        job.resume()
                        waiter(job)
                        knew = time.monotonic()
                        late = knew - server.sent_at["/wait.bin"]
                        results[name].append((late * 1000, counter.calls))
                    finally:
                        job.cancel()
    finally:
        server.shutdown()
    seconds = len(payload) / rate
    print(
        f"\nwait for a 3 MB transfer from 127.0.0.1 in about {seconds:.0f} s (median of {repeat})"
    )
    rows = [(n, statistics.median(ms for ms, _ in r), "ms") for n, r in results.items()]
    table("  from the last byte sent to the waiter returning", rows, "wait() (event)")
    calls = [(n, float(statistics.median(c for _, c in r)), "") for n, r in results.items()]
    table("  COM calls into BITS while waiting", calls, "wait() (event)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=200_000, help="calls per timing (per call)")
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--files", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=5, help="runs per timing (real BITS)")
    parser.add_argument("--polls", type=int, default=1_000_000, help="polls for the memory check")
    parser.add_argument("--only", choices=["call", "real", "memory", "wait"])
    parser.add_argument(
        "--rate", type=int, default=1_000_000, help="bytes per second the server sends (wait)"
    )
    args = parser.parse_args()
    print(
        f"Python {sys.version.split()[0]}, winbits {winbits.__version__}, "
        f"BITS {'.'.join(map(str, winbits.bits_version()))}"
    )
    if args.only in (None, "call"):
        bench_per_call(args.calls)
    if args.only in (None, "real"):
        bench_real(args.jobs, args.files, args.repeat)
    if args.only in (None, "memory"):
        bench_memory(args.polls)
    if args.only in (None, "wait"):
        bench_wait(args.repeat, args.rate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
