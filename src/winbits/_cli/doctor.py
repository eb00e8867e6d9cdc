"""`winbits doctor`: whether BITS will work for this account and, where it will not, why
and what to do. Each check is a pure function of what was read (tested on any OS); a read
that cannot be made is a check whose answer is "unknown", with the reason, never a
traceback."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import struct
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, TextIO, TypeVar

from .. import _history
from .._errors import ADVICE, BitsError
from .._types import JobRecord, JobState
from .render import SCHEMA_VERSION, format_duration
from .usage import Exit

T = TypeVar("T")

# SERVICE_STOPPED ... SERVICE_PAUSED, and the start types.
SERVICE_STATES = {
    1: "stopped",
    2: "starting",
    3: "stopping",
    4: "running",
    5: "continuing",
    6: "pausing",
    7: "paused",
}
START_TYPES = {0: "boot", 1: "system", 2: "automatic", 3: "manual", 4: "disabled"}
# SECURITY_LOGON_TYPE: the ones BITS transfers for, and the ones it does not.
LOGON_TYPES = {
    2: "interactive",
    3: "network",
    4: "batch",
    5: "service",
    7: "unlock",
    8: "network (cleartext)",
    9: "new credentials",
    10: "remote interactive",
    11: "cached interactive",
}
NO_SESSION = {3, 4, 8}  # a network logon, or a batch job: BITS answers ERROR_NOT_LOGGED_ON
SERVICE_ACCOUNTS = {"S-1-5-18", "S-1-5-19", "S-1-5-20"}  # LocalSystem, LocalService, NetworkService
# What each interface winbits uses needs of BITS (major, minor).
INTERFACES = {
    "HTTP options (custom headers, certificates)": (2, 5),
    "peer statistics (IBackgroundCopyFile4)": (4, 0),
    "helper tokens (IBitsTokenOptions)": (4, 0),
    "Job5 (transfer policy, dynamic content, on-demand)": (5, 0),
    "on-demand ranges (IBackgroundCopyFile6)": (10, 1),
    "HTTP method (HttpOptions2)": (10, 2),
    "write-only headers (HttpOptions3)": (10, 3),
}
STALLED_FOR = 24 * 3600.0  # no progress for a day: worth a look
SUSPENDED_FOR = 30 * 24 * 3600.0  # a suspended job this old is likely forgotten


@dataclass(frozen=True)
class Check:
    """One answer: ``status`` is "ok", "problem" or "unknown"; ``fix`` what to do."""

    name: str
    status: str
    text: str
    fix: str | None = None


def _read(fn: Callable[[], T]) -> T | OSError:
    try:
        return fn()
    except OSError as e:  # BitsError is one too
        return e


def _why(e: OSError) -> str:
    return e.strerror or str(e)


def service_check(status: tuple[int, int] | OSError) -> Check:
    if isinstance(status, OSError):
        return Check("service", "unknown", f"the BITS service cannot be read: {_why(status)}")
    state, start = SERVICE_STATES.get(status[0], str(status[0])), START_TYPES.get(status[1], "?")
    text = f"the BITS service is {state}, start type {start}"
    if start == "disabled":
        return Check(
            "service", "problem", text, "enable it: sc config bits start= delayed-auto (admin)"
        )
    if state != "running":
        text += " (it starts when a program asks for it)"
    return Check("service", "ok", text)


def version_check(version: tuple[int, int] | OSError) -> Check:
    if isinstance(version, OSError):
        return Check("version", "problem", f"BITS cannot be reached: {_why(version)}")
    have = [name for name, need in INTERFACES.items() if version >= need]
    lacks = [f"{name} (BITS {a}.{b})" for name, (a, b) in INTERFACES.items() if version < (a, b)]
    text = f"BITS {version[0]}.{version[1]} (the newest manager class it registers)"
    text += "; by that version it has " + (", ".join(have) or "none of the newer interfaces")
    if lacks:
        text += "; these need a newer BITS: " + ", ".join(lacks)
    return Check("version", "ok", text)


def logon_check(identity: tuple[str | None, str, bool | None, int | None] | OSError) -> Check:
    if isinstance(identity, OSError):
        return Check("account", "unknown", f"this process's token cannot be read: {_why(identity)}")
    account, sid, elevated, logon = identity
    who = f"{account or sid}" + {True: ", elevated", False: ", not elevated", None: ""}[elevated]
    if sid in SERVICE_ACCOUNTS:
        return Check("account", "ok", f"{who}: a service account, which BITS transfers for")
    if not logon or logon not in LOGON_TYPES:
        return Check("account", "unknown", f"{who}; its logon type cannot be read here")
    kind = LOGON_TYPES[logon]
    if logon in NO_SESSION:
        return Check(
            "account",
            "problem",
            f"{who}, a {kind} logon: BITS transfers a job only while its owner is logged on "
            "interactively, so its jobs fail with ERROR_NOT_LOGGED_ON (0x800704DD)",
            "run it as a scheduled task in the user's session, under a service account "
            "(LocalSystem, NetworkService), or give the job a helper token",
        )
    return Check("account", "ok", f"{who}, a {kind} logon, which BITS transfers for")


Proxy = tuple[bool, str | None, str | None, str | None]  # detect, script, server, bypass
# The accounts services run BITS jobs as, whose proxy settings are their own (their
# registry hive), not this user's.
SERVICE_ACCOUNTS_PROXY = {"LocalSystem": "S-1-5-18", "NetworkService": "S-1-5-20"}
CONNECTIONS = r"Software\Microsoft\Windows\CurrentVersion\Internet Settings\Connections"


def parse_connection_settings(blob: bytes) -> Proxy:
    """An account's Internet settings from its DefaultConnectionSettings value: three
    little-endian DWORDs (a version, a change counter, the flags: 2 a proxy, 4 a script,
    8 detect automatically), then the proxy, the bypass list and the script's URL, each
    a DWORD length and that many ANSI bytes. ValueError where it is cut short."""
    if len(blob) < 12:
        raise ValueError("the connection settings are cut short")
    flags = struct.unpack_from("<I", blob, 8)[0]
    texts, at = [], 12
    for _ in range(3):
        if at + 4 > len(blob):
            raise ValueError("the connection settings are cut short")
        (n,) = struct.unpack_from("<I", blob, at)
        if at + 4 + n > len(blob):
            raise ValueError("the connection settings are cut short")
        texts.append(blob[at + 4 : at + 4 + n].decode("ascii", "replace") or None)
        at += 4 + n
    server, bypass, script = texts
    return (
        bool(flags & 8),
        script if flags & 4 else None,
        server if flags & 2 else None,
        bypass if flags & 2 else None,
    )


def service_account_proxy(sid: str) -> Proxy | OSError:
    """A service account's own proxy settings, from its hive under HKEY_USERS (readable
    by an administrator); the OSError where they cannot be read."""
    if sys.platform != "win32":
        return OSError(0, "no registry: not Windows")
    try:
        import winreg

        with winreg.OpenKey(winreg.HKEY_USERS, f"{sid}\\{CONNECTIONS}") as key:
            blob, _ = winreg.QueryValueEx(key, "DefaultConnectionSettings")
        return parse_connection_settings(bytes(blob))
    except ValueError as e:
        return OSError(0, str(e))
    except OSError as e:
        return e


def _proxy_text(proxy: Proxy) -> str:
    detect, script, server, bypass = proxy
    parts = []
    if detect:
        parts.append("detected automatically (WPAD)")
    if script:
        parts.append(f"from the script {script}")
    if server:
        parts.append(f"{server}" + (f" (bypass: {bypass})" if bypass else ""))
    return "; ".join(parts) or "none: direct connections"


def proxy_check(proxy: Proxy | OSError, services: dict[str, Proxy | OSError]) -> Check:
    """This user's proxy, which jobs follow by default, and the service accounts' own."""
    others = "; ".join(
        f"{name}'s: "
        + (f"not readable here ({_why(p)})" if isinstance(p, OSError) else _proxy_text(p))
        for name, p in services.items()
    )
    if isinstance(proxy, OSError):
        return Check("proxy", "unknown", f"this user's proxy settings: {_why(proxy)}; {others}")
    return Check(
        "proxy",
        "ok",
        f"this user's proxy, which jobs follow by default (PRECONFIG): {_proxy_text(proxy)}; "
        + others,
    )


# BranchCache's client modes (CurrentClientMode), by number and by the name some
# Windows give instead; the first two ask no peer.
BRANCHCACHE_MODES = {0: "disabled", 1: "local cache", 2: "distributed cache", 3: "hosted cache"}
BRANCHCACHE_MODE_NAMES = {
    "disabled": 0,
    "localcache": 1,
    "distributedcache": 2,
    "distributed": 2,
    "hostedcache": 3,
    "hostedcacheclient": 3,
}


def branchcache_mode_name(mode: int | str | None) -> tuple[str, bool | None]:
    """(the mode's name, whether it asks peers: None where not known)."""
    number = (
        BRANCHCACHE_MODE_NAMES.get(mode.lower().replace(" ", "")) if isinstance(mode, str) else mode
    )
    if number is None or number not in BRANCHCACHE_MODES:
        return str(mode), None
    return BRANCHCACHE_MODES[number], number >= 2


def branchcache_check(
    service: tuple[int, int] | OSError,
    version: tuple[int, int] | OSError,
    mode: int | str | OSError | None = None,
) -> Check:
    reports = not isinstance(version, OSError) and version >= (4, 0)
    if not reports:
        return Check(
            "branchcache",
            "problem",
            "this BITS does not report peer statistics (IBackgroundCopyFile4, BITS 4.0): "
            "bytes from peers can never show up here",
        )
    if isinstance(service, OSError):
        return Check(
            "branchcache",
            "problem",
            f"BranchCache (PeerDistSvc) is not there: {_why(service)}; every byte comes "
            "from the origin server",
            "install and enable BranchCache (distributed or hosted cache mode)",
        )
    state = SERVICE_STATES.get(service[0], str(service[0]))
    text = f"BranchCache (PeerDistSvc) is {state}, start type {START_TYPES.get(service[1], '?')}"
    if START_TYPES.get(service[1]) == "disabled":
        return Check("branchcache", "problem", text, "enable BranchCache (netsh branchcache)")
    if isinstance(mode, OSError) or mode is None:
        why = "not given" if mode is None else _why(mode)
        return Check("branchcache", "ok", f"{text}; its mode cannot be read ({why}): "
                     "netsh branchcache show status")  # fmt: skip
    name, asks_peers = branchcache_mode_name(mode)
    text += f", in {name} mode"
    if asks_peers is False:
        return Check(
            "branchcache",
            "problem",
            text + ": it asks no peer, so every byte comes from the origin server",
            "netsh branchcache set service mode=distributed (or hostedclient), as an "
            "administrator, or by Group Policy",
        )
    return Check("branchcache", "ok", text)


def event_log_check(enabled: bool | OSError) -> Check:
    """Whether the Bits-Client event log records transfers (winbits history, and the
    exporter's count of jobs no poll saw, read it)."""
    if isinstance(enabled, OSError):
        return Check("event log", "unknown", f"it cannot be read: {_why(enabled)}")
    if not enabled:
        return Check(
            "event log",
            "problem",
            f"the {_history.CHANNEL} log is turned off: no transfer is recorded, and winbits "
            "history and export see only the jobs still in the queue",
            f"{_history.TURN_ON} (as an administrator)",
        )
    return Check("event log", "ok", f"{_history.CHANNEL} records every transfer")


def queue_checks(
    jobs: list[JobRecord] | OSError, errors: dict[str, str], now: dt.datetime
) -> list[Check]:
    """The queue: jobs in ERROR or TRANSIENT_ERROR with their explained errors (``errors``:
    job id -> the error's line), jobs without progress for a day, SUSPENDED jobs."""
    if isinstance(jobs, OSError):
        return [Check("queue", "unknown", f"the queue cannot be read: {_why(jobs)}")]
    out = []
    for job in jobs:
        if job.state in (JobState.ERROR, JobState.TRANSIENT_ERROR):
            why = errors.get(str(job.id), "no error information")
            fix = "winbits show ID; cancel it or fix the cause and resume it"
            out.append(Check("queue", "problem", f"{job.id} {job.name}: {job.state}: {why}", fix))
    modified = {j.id: j.times.modified for j in jobs if j.times and j.times.modified}
    if len(modified) < len(jobs):
        out.append(Check("queue", "unknown", "this BITS gives no job times: ages are unknown"))
    moving = (JobState.QUEUED, JobState.CONNECTING, JobState.TRANSFERRING)
    for job in (j for j in jobs if j.id in modified):
        idle = (now - modified[job.id]).total_seconds()
        if job.state in moving and idle > STALLED_FOR:
            text = f"{job.id} {job.name}: {job.state}, no progress for {format_duration(idle)}"
            out.append(Check("queue", "problem", text, "winbits show ID"))
    suspended = [j for j in jobs if j.state == JobState.SUSPENDED]
    if suspended:
        ages = [
            (now - j.times.created).total_seconds()
            for j in suspended
            if j.times and j.times.created
        ]
        oldest = max(ages, default=None)
        text = f"{len(suspended)} SUSPENDED job(s)"
        if oldest is not None:
            text += f", the oldest {format_duration(oldest)} old"
        if oldest is not None and oldest > SUSPENDED_FOR:
            fix = "winbits prune --state SUSPENDED --older-than 30d --dry-run, then without it"
            out.append(Check("queue", "problem", text + ": likely forgotten", fix))
        else:
            out.append(Check("queue", "ok", text))
    if not out:
        out.append(Check("queue", "ok", f"{len(jobs)} job(s), none in trouble"))
    return out


def cmd_doctor(args: argparse.Namespace, out: TextIO) -> int:
    """Runs every check; prints a line each (or one JSON object); exit 1 when one found a
    problem."""
    from .commands import connect_for

    if sys.platform != "win32":
        from .usage import Failure

        raise Failure(
            "needs Windows (BITS is a Windows service); this is " + sys.platform, Exit.UNAVAILABLE
        )
    from .. import _native

    def bits_version() -> tuple[int, int]:
        major, minor = _native.bits_version()
        return major, minor

    version = _read(bits_version)
    checks = [
        service_check(_read(lambda: _native.service_status("BITS"))),
        version_check(version),
        logon_check(_read(_native.process_identity)),
        proxy_check(
            _read(_native.ie_proxy),
            {name: service_account_proxy(sid) for name, sid in SERVICE_ACCOUNTS_PROXY.items()},
        ),
        branchcache_check(
            _read(lambda: _native.service_status("PeerDistSvc")),
            version,
            _read(_native.branchcache_mode),
        ),
        event_log_check(_read(_history.enabled)),
    ]
    errors: dict[str, str] = {}
    jobs: list[JobRecord] | OSError
    try:
        with connect_for(args) as bits:
            jobs = list(bits.snapshot(args.all_users).jobs)
            for job in jobs:
                if job.state in (JobState.ERROR, JobState.TRANSIENT_ERROR):
                    errors[str(job.id)] = _explained(bits, job)
    except BitsError as e:
        jobs = e
    checks += queue_checks(jobs, errors, dt.datetime.now(dt.timezone.utc))
    problems = [c for c in checks if c.status == "problem"]
    if args.json:
        report: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "command": "doctor",
            "ok": not problems,
            "checks": [asdict(c) for c in checks],
        }
        out.write(json.dumps(report) + "\n")
    else:
        for c in checks:
            out.write(f"{c.status:<8} {c.name:<12} {c.text}\n")
            if c.fix and c.status == "problem":
                out.write(f"{'':<22}fix: {c.fix}\n")
        out.write(f"{len(problems)} problem(s) found\n" if problems else "nothing wrong found\n")
    return Exit.FAILED if problems else Exit.OK


def _explained(bits: Any, job: JobRecord) -> str:
    """A job's error, with what it means where winbits knows."""
    try:
        err = bits.get_job(job.id).error
    except BitsError as e:
        return f"its error cannot be read: {e}"
    if err is None:
        return "BITS gives no error"
    advice = ADVICE.get(err.hresult)
    line = f"{err.message} (HRESULT 0x{err.hresult:08X})"
    return f"{line}: {advice}" if advice else line
