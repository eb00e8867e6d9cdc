"""The winbits command: list, watch, download, cancel/complete/resume/suspend, export.

Everything shown comes from the poller's records (one walk of the queue, the fewest
round trips), turned into one JSON-ready shape (``job_json``) that the table, the
JSON output and the Prometheus export all read. The pure parts (shapes, formatting,
argument parsing) are tested on any OS.

Exit codes: 0 success, 1 a BITS or usage error (one line on stderr), 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import datetime as dt
import enum
import getpass
import json
import math
import ntpath
import os
import shutil
import signal
import sys
import threading
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TextIO
from urllib.parse import unquote, urlsplit

from . import __version__, _counters
from ._api import MAX_NAME_LENGTH, Job, Manager, connect, format_headers
from ._errors import (
    AccessDeniedError,
    BitsError,
    InvalidStateError,
    JobFailedError,
    JobNotFoundError,
)
from ._types import (
    AuthScheme,
    ClientCertificate,
    CostFlags,
    FileProgress,
    FileRecord,
    JobError,
    JobPriority,
    JobProgress,
    JobProperties,
    JobRecord,
    JobState,
    JobTimes,
    JobType,
    PeerCaching,
    ProxySettings,
    ProxyUsage,
    SecurityFlags,
    Snapshot,
    peer_share,
    percent,
    visible,
)

COMMANDS = (
    "list",
    "watch",
    "download",
    "upload",
    "show",
    "set",
    "cancel",
    "complete",
    "resume",
    "suspend",
    "export",
)
VERBS = {
    "cancel": "cancelled",
    "complete": "completed",
    "resume": "resumed",
    "suspend": "suspended",
}


# Without a byte moving for this long, `download` gives up (BITS itself would wait for its
# no-progress timeout: 14 days by default on Windows).
DEFAULT_STALL_TIMEOUT = 300.0


class UsageError(Exception):
    """A mistake in the command line: one line on stderr, exit code 1."""


# --- the one shape: records as JSON-ready dicts -------------------------------------------


def iso(moment: dt.datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z, or None."""
    if moment is None:
        return None
    return moment.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def job_json(job: JobRecord) -> dict[str, Any]:
    """A job as the documented JSON object (README: "JSON output")."""
    p = job.progress
    state = job.state
    return {
        "id": str(job.id),
        "name": job.name,
        "owner": job.owner,
        "state": str(state),  # the name (JobState prints it), or the number BITS gave
        "bytes_total": p.bytes_total,
        "bytes_transferred": p.bytes_transferred,
        "percent": percent(p.bytes_transferred, p.bytes_total),
        "files_total": p.files_total,
        "files_transferred": p.files_transferred,
        "created": iso(job.times.created) if job.times else None,
        "modified": iso(job.times.modified) if job.times else None,
        "transfer_completed": iso(job.times.transfer_completed) if job.times else None,
        "files": [file_json(f) for f in job.files],
    }


def file_json(f: FileRecord) -> dict[str, Any]:
    return {
        "remote_name": f.remote_name,
        "local_name": f.local_name,
        "bytes_total": f.progress.bytes_total,
        "bytes_transferred": f.progress.bytes_transferred,
        "completed": f.progress.completed,
        "from_origin": None if f.peer_stats is None else f.peer_stats.from_origin,
        "from_peers": None if f.peer_stats is None else f.peer_stats.from_peers,
        "peer_percent": None if f.peer_stats is None else f.peer_stats.peer_share,
    }


def file_records(job: Job) -> list[FileRecord]:
    """The job's files as records, read live (a file whose progress BITS does not give
    reads as nothing moved)."""
    records = []
    for f in job.files():
        progress = f.progress or FileProgress(None, 0, False)
        records.append(FileRecord(f.remote_name, f.local_name, progress, f.peer_download_stats()))
    return records


def flag_names(value: enum.IntFlag) -> list[str]:
    """The names of the flags set in value."""
    return [m.name or "" for m in type(value) if m in value]


def properties_json(props: JobProperties, files: list[FileRecord]) -> dict[str, Any]:
    """`show --json`: every property of one job, its files as in list --json. Custom
    headers by name only."""
    out: dict[str, Any] = {}
    for name, value in props._asdict().items():
        if name == "id" or isinstance(value, uuid.UUID):
            value = str(value)
        elif isinstance(value, (JobProgress, JobError)):
            value = value._asdict()
        elif isinstance(value, JobTimes):
            value = {k: iso(v) for k, v in value._asdict().items()}
        elif isinstance(value, ProxySettings):
            value = {"usage": str(value.usage), "proxies": value.proxies, "bypass": value.bypass}
        elif isinstance(value, CostFlags):
            value = int(value)  # its members overlap: the number says it exactly
        elif isinstance(value, (PeerCaching, SecurityFlags)):
            value = flag_names(value)
        elif isinstance(value, ClientCertificate):
            sha1 = None if value.sha1 is None else value.sha1.hex()
            value = {**value._asdict(), "location": str(value.location), "sha1": sha1}
        elif isinstance(value, enum.Enum):
            value = str(value)
        out[name] = value
    if props.error is not None:
        out["error"]["context"] = str(props.error.context)
    out["files"] = [file_json(f) for f in files]
    return out


def snapshot_json(snap: Snapshot, now: dt.datetime) -> dict[str, Any]:
    return {"time": iso(now), "jobs": [job_json(j) for j in snap.jobs]}


def changes_json(snap: Snapshot, now: dt.datetime) -> dict[str, Any]:
    """One line of `watch --json`: what was added, changed and removed, with the
    added and changed jobs in full."""
    moved = snap.added | snap.changed
    return {
        "time": iso(now),
        "added": sorted(str(i) for i in snap.added),
        "changed": sorted(str(i) for i in snap.changed),
        "removed": sorted(str(i) for i in snap.removed),
        "jobs": [job_json(j) for j in snap.jobs if j.id in moved],
    }


# --- the table ----------------------------------------------------------------------------


def format_bytes(n: int | None) -> str:
    """1536 -> '1.5 KiB'; None (unknown) -> '?'."""
    if n is None:
        return "?"
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        value /= 1024
        if value < 1024 or unit == "PiB":
            break
    return f"{value:.1f} {unit}"


def format_percent(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}%"


HEADERS = (
    "NAME",
    "ID",
    "STATE",
    "OWNER",
    "BYTES",
    "%",
    "FILES",
    "FROM ORIGIN",
    "FROM PEERS",
    "PEER %",
)
RIGHT = {"BYTES", "%", "FILES", "FROM ORIGIN", "FROM PEERS", "PEER %"}


def _share_cell(done: int, total: int | None, finished: bool) -> str:
    """The % column: nothing where there is nothing to count (an empty job, a file of
    size 0 that did not finish), else the share done."""
    if total == 0:
        return format_percent(100.0) if finished else ""
    return format_percent(percent(done, total))


def table_rows(jobs: Sequence[dict[str, Any]]) -> list[tuple[str, ...]]:
    """A row per job, then a row per file under it (its name indented)."""
    rows: list[tuple[str, ...]] = []
    for j in jobs:
        done, total = j["bytes_transferred"], j["bytes_total"]
        n, n_done = j["files_total"], j["files_transferred"]
        rows.append(
            (
                visible(j["name"]),
                j["id"][:8],
                j["state"],
                visible(j["owner"] or ""),
                f"{format_bytes(done)} / {format_bytes(total)}" if n else "",
                _share_cell(done, total, 0 < n == n_done),
                f"{n_done}/{n}",
                "",
                "",
                "",
            )
        )
        for f in j["files"]:
            origin, peers = f["from_origin"], f["from_peers"]
            rows.append(
                (
                    "  " + visible(f["local_name"]),
                    "",
                    "",
                    "",
                    f"{format_bytes(f['bytes_transferred'])} / {format_bytes(f['bytes_total'])}",
                    _share_cell(f["bytes_transferred"], f["bytes_total"], f["completed"]),
                    "done" if f["completed"] else "",
                    "" if origin is None else format_bytes(origin),
                    "" if peers is None else format_bytes(peers),
                    format_percent(peer_share(origin, peers)),
                )
            )
    return rows


def display_width(text: str) -> int:
    """Columns `text` takes on a terminal: 2 for wide (CJK, most emoji), 0 for
    combining marks and zero-width characters, 1 for the rest."""
    width = 0
    for c in text:
        if unicodedata.combining(c) or unicodedata.category(c) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(c) in ("W", "F") else 1
    return width


def cut(text: str, width: int) -> str:
    """`text` in at most `width` columns, its end replaced by an ellipsis if cut."""
    if display_width(text) <= width:
        return text
    kept, used = [], 0
    for c in text:
        w = display_width(c)
        if used + w > width - 1:
            break
        kept.append(c)
        used += w
    return "".join(kept) + "\u2026"


def format_table(jobs: Sequence[dict[str, Any]], width: int | None = None) -> str:
    """The table; with `width` (a terminal's), the NAME column is cut to fit it (the
    full names are in --json)."""
    if not jobs:
        return "No BITS jobs."
    rows = [HEADERS, *table_rows(jobs)]
    widths = [max(display_width(r[i]) for r in rows) for i in range(len(HEADERS))]
    if width is not None:
        others = sum(widths[1:]) + 2 * (len(widths) - 1)
        widths[0] = max(len(HEADERS[0]), min(widths[0], width - others))
    lines = []
    for r in rows:
        cells = []
        for c, w, h in zip(r, widths, HEADERS, strict=True):
            c = cut(c, w)
            fill = " " * (w - display_width(c))
            cells.append(fill + c if h in RIGHT else c + fill)
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _terminal_width(out: TextIO) -> int | None:
    return shutil.get_terminal_size().columns if out.isatty() else None


# --- download progress --------------------------------------------------------------------


def format_duration(seconds: float | None) -> str:
    if seconds is None or math.isinf(seconds) or math.isnan(seconds) or seconds < 0:
        return "--:--"
    s = round(seconds)
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02}:{s:02}" if h else f"{m}:{s:02}"


class RateMeter:
    """Bytes per second over the last `window` seconds; None until half a second of
    samples exists (a rate from the first milliseconds says nothing)."""

    def __init__(self, window: float = 5.0) -> None:
        self.window = window
        self.samples: list[tuple[float, int]] = []

    def add(self, now: float, done: int) -> float | None:
        self.samples.append((now, done))
        while len(self.samples) > 2 and now - self.samples[1][0] >= self.window:
            self.samples.pop(0)
        t0, d0 = self.samples[0]
        return (done - d0) / (now - t0) if now - t0 >= 0.5 else None


def progress_line(done: int, total: int | None, rate: float | None, width: int = 24) -> str:
    """'[#######.........]  31.0%  1.2 MiB / 3.9 MiB  620.0 KiB/s  ETA 0:04'"""
    if total:
        filled = min(width, int(width * done / total))
        bar = "#" * filled + "." * (width - filled)
        eta = (total - done) / rate if rate else (0.0 if done >= total else None)
        pct = f"{100.0 * done / total:5.1f}%"
    else:
        bar, eta, pct = "?" * width, None, "    ?%"
    speed = "?" if rate is None else format_bytes(int(rate))
    return (
        f"[{bar}] {pct}  {format_bytes(done)} / {format_bytes(total)}  "
        f"{speed}/s  ETA {format_duration(eta)}"
    )


class ProgressDisplay:
    """On a terminal, one line redrawn in place; elsewhere (a pipe, a log), a line at
    most every `every` seconds."""

    def __init__(self, stream: TextIO, every: float = 1.0) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.every = every
        self.last = -math.inf

    def show(self, line: str, now: float, final: bool = False, news: bool = False) -> None:
        """``news``: the line says something new (the job's state), shown at once."""
        if self.tty:
            self.stream.write("\r" + line + ("\n" if final else ""))
        elif final or news or now - self.last >= self.every:
            self.stream.write(line + "\n")
            self.last = now
        self.stream.flush()


# --- download targets ---------------------------------------------------------------------


# Names Windows gives to devices in every folder, with or without an extension.
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"{d}{i}" for d in ("COM", "LPT") for i in range(1, 10))}


def unsafe_name_reason(name: str) -> str | None:
    """Why `name` (decoded from a URL) is not one plain file name that stays inside the
    folder it is joined to; None when it is."""
    if not name:
        return "it names no file"
    if "/" in name or "\\" in name:
        return "it holds a path separator"
    if name in (".", ".."):
        return "it names a folder"
    if ":" in name:
        return "it holds a drive or stream separator (:)"
    if visible(name) != name:
        return "it holds control characters"
    if name.endswith((".", " ")):
        return "it ends in a dot or space, which Windows drops"
    if name.split(".")[0].rstrip(" ").upper() in _RESERVED:
        return "it is a device name on Windows"
    return None


def _url_basename(url: str) -> str:
    """The file name at the end of a URL's path, decoded; refused unless it is one plain
    file name (no separators, no drive, no device, no control characters)."""
    raw = urlsplit(url).path.rsplit("/", 1)[-1]
    name = unquote(raw)
    why = unsafe_name_reason(name)
    if why:
        raise UsageError(f"cannot take a file name from {url}: {why}; give a file as DEST")
    return name


def plan_targets(
    urls: Sequence[str], dest: str, isdir: Callable[[str], bool], abspath: Callable[[str], str]
) -> list[tuple[str, str]]:
    """(url, absolute local path) for each URL: one URL to DEST, or into DEST when it is
    a directory; several URLs need DEST to be a directory."""
    if len(urls) > 1 and not isdir(dest):
        raise UsageError(f"several URLs need DEST to be an existing directory: {dest}")
    if isdir(dest):
        folder = abspath(dest)
        targets = [(u, abspath(ntpath.join(folder, _url_basename(u)))) for u in urls]
        for u, path in targets:  # the last guard: nothing lands outside DEST
            if ntpath.dirname(path).rstrip("\\/").lower() != folder.rstrip("\\/").lower():
                raise UsageError(f"{u} would land outside {dest}; give a file as DEST")
    elif dest.endswith(("\\", "/")):
        raise UsageError(f"{dest} is not an existing folder")
    else:
        targets = [(urls[0], abspath(dest))]
    names = [p.lower() for _, p in targets]
    if len(set(names)) != len(names):
        raise UsageError("two URLs would land in the same file")
    return targets


# --- commands -----------------------------------------------------------------------------


def _connect(args: argparse.Namespace) -> Manager:
    if sys.platform != "win32":
        raise UsageError(f"needs Windows (BITS is a Windows service); this is {sys.platform}")
    return connect(args.clsid)


def cmd_list(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args) as bits:
        snap = bits.snapshot(args.all_users)
    now = dt.datetime.now(dt.timezone.utc)
    if args.json:
        json.dump(snapshot_json(snap, now), out, indent=2)
        out.write("\n")
    else:
        out.write(format_table([job_json(j) for j in snap.jobs], _terminal_width(out)) + "\n")
    return 0


class Outage:
    """For loops that must outlive failures (watch, export --interval): one line on
    stderr when trouble starts, one when it ends, nothing per poll in between."""

    def __init__(self) -> None:
        self.since: float | None = None

    def failed(self, problem: str) -> None:
        if self.since is None:
            self.since = time.monotonic()
            _say(f"{problem}; retrying")

    def ok(self, what: str) -> None:
        if self.since is not None:
            _say(f"{what} again after {format_duration(time.monotonic() - self.since)}")
            self.since = None


class Stopper:
    """SIGTERM, CTRL_BREAK (SIGBREAK) and, on Windows, closing the console, logging off
    and shutting down ask a long loop to end, with exit code 0, after the write it is
    doing; the loop's sleep wakes for them. (Ctrl-C stays KeyboardInterrupt: exit 130.)
    Handlers are set only on the main thread, and the ones found are put back."""

    def __init__(self) -> None:
        self.asked = False
        self._old: dict[int, Any] = {}
        self._console = False

    def __enter__(self) -> Stopper:
        if threading.current_thread() is threading.main_thread():
            for name in ("SIGTERM", "SIGBREAK"):
                number = getattr(signal, name, None)
                if number is not None:
                    self._old[number] = signal.signal(number, self._ask)
            if sys.platform == "win32":  # console close becomes SIGBREAK, and waits for us
                from . import _native

                _native.hold_console_close(True)
                self._console = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._console:
            from . import _native

            _native.hold_console_close(False)
        for number, handler in self._old.items():
            signal.signal(number, handler)

    def _ask(self, signum: int, frame: object) -> None:
        self.asked = True

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


def cmd_watch(args: argparse.Namespace, out: TextIO) -> int:
    clear = out.isatty() and not args.json
    outage = Outage()
    with _connect(args) as bits, Stopper() as stop:
        poller = bits.poller(args.all_users)
        for polls in stop.rounds(args.count, args.interval):
            try:
                snap = poller.poll()
            except BitsError as e:  # the service stopped or restarted: go on polling
                outage.failed(f"cannot read BITS: {e}")
            else:
                outage.ok("reading BITS")
                now = dt.datetime.now(dt.timezone.utc)
                if polls == 0 or snap.added or snap.changed or snap.removed:
                    if args.json:
                        out.write(json.dumps(changes_json(snap, now)) + "\n")
                    else:
                        if clear:
                            out.write("\x1b[H\x1b[2J")
                        out.write(f"{iso(now)}  every {args.interval:g} s, Ctrl-C to stop\n")
                        table = format_table([job_json(j) for j in snap.jobs], _terminal_width(out))
                        out.write(table + "\n\n")
                    out.flush()
    return 0


def _job_failure(job: Job, urls: str, verb: str = "download") -> str:
    """One line: which URL, what BITS said (or winbits' text for the code), or, where
    BITS gave no error at all, the state the job ended in."""
    err = job.error
    if err is None:
        return f"{verb} of {urls} failed: BITS gave no reason (the job is {job.state})"
    return (
        f"{verb} of {err.remote_name or urls} failed: {err.message} (HRESULT 0x{err.hresult:08X})"
    )


def _waiting_for(job: Job, state: JobState | int) -> str:
    """What the progress line adds while no byte moves: the state, and BITS' reason for
    a transient error (BITS retries it until the job's no-progress timeout)."""
    if state == JobState.TRANSIENT_ERROR:
        err = job.error
        return f"retrying: {err.message}" if err else "retrying"
    return str(state)


def _password(args: argparse.Namespace) -> str | None:
    """The password for --user: from the environment variable --password-env names, or
    typed at a terminal; never from the command line, where other users can read it."""
    if args.user is None:
        if args.password_env:
            raise UsageError("--password-env goes with --user")
        return None
    if args.password_env:
        password = os.environ.get(args.password_env)
        if password is None:
            raise UsageError(f"the environment variable {args.password_env} is not set")
        return password
    if _can_prompt():
        return getpass.getpass(f"password for {args.user}: ")
    raise UsageError(
        "--user needs a password: type it at a terminal, or name an environment "
        "variable that holds it with --password-env VAR"
    )


def _can_prompt() -> bool:
    """Whether someone can type at standard input (on Windows, a console: isatty() is
    true for NUL too)."""
    if sys.stdin is None or not sys.stdin.isatty():
        return False
    if sys.platform == "win32":
        from . import _native

        return _native.stdin_is_console()
    return True


def job_settings(args: argparse.Namespace) -> list[tuple[str, object]]:
    """(property, value) for each job setting the options give (download and set)."""
    changes: list[tuple[str, object]] = []
    if args.priority is not None:
        changes.append(("priority", JobPriority[args.priority.upper()]))
    if getattr(args, "description", None) is not None:
        changes.append(("description", args.description))
    for name in ("minimum_retry_delay", "no_progress_timeout", "maximum_download_time"):
        if getattr(args, name) is not None:
            changes.append((name, getattr(args, name)))
    proxy = _proxy_setting(args)
    if proxy is not None:
        changes.append(("proxy", proxy))
    if args.transfer_policy is not None:
        policy = CostFlags["TRANSFER_" + args.transfer_policy.upper().replace("-", "_")]
        changes.append(("transfer_policy", policy))
    if getattr(args, "dynamic", False):
        changes.append(("dynamic_content", True))
    return changes


def apply_settings(
    job: Job,
    args: argparse.Namespace,
    password: str | None,
    changes: list[tuple[str, object]] | None = None,
) -> list[str]:
    """The job settings of the options (job_settings(args) unless given), before any
    file is added; -> what was set."""
    done = []
    for name, value in job_settings(args) if changes is None else changes:
        setattr(job, name, value)
        done.append(name)
    if args.branchcache is not None:
        flags = job.peer_caching or PeerCaching(0)
        off = PeerCaching.DISABLE_BRANCH_CACHE
        job.peer_caching = (flags & ~off) if args.branchcache else (flags | off)
        done.append("peer_caching")
    if getattr(args, "headers", None):
        job.custom_headers = dict(args.headers)
        done.append("custom_headers")
    if getattr(args, "user", None) is not None and password is not None:
        job.set_credentials(args.user, password, scheme=AuthScheme[args.auth_scheme.upper()])
        done.append("credentials")
    return done


def _header(text: str) -> tuple[str, str]:
    """--header "Name: value". A refusal names the header, never its value."""
    name, sep, value = text.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError("give a header as 'Name: value' (no ':' found)")
    name, value = name.strip(), value.strip()
    try:
        format_headers({name: value})
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return name, value


def _follow(job: Job, args: argparse.Namespace, shown: str, verb: str) -> float:
    """Resumes the job and waits for it (Job.wait), showing its progress on stderr from
    wait()'s on_progress until BITS has transferred it; -> when it started
    (time.monotonic). A UsageError when it fails, or --timeout or --stall-timeout
    passes; the caller cancels the job (Manager.transfer)."""
    display = ProgressDisplay(sys.stderr)
    meter = RateMeter()
    job.resume()
    handles = job.files()
    said = ""  # the state part of the line last shown

    def totals(p: JobProgress | None) -> tuple[int, int | None]:
        done = p.bytes_transferred if p else 0
        total = p.bytes_total if p else None
        if total is None:  # some BITS (Wine) never total a job: its files know
            sizes = [None if fp is None else fp.bytes_total for fp in (f.progress for f in handles)]
            total = None if None in sizes else sum(s for s in sizes if s is not None)
        return done, total

    def show(p: JobProgress) -> None:  # called while bytes move and when the state changes
        nonlocal said
        now = time.monotonic()
        done, total = totals(p)
        state = job.state
        moving = state in (JobState.TRANSFERRING, JobState.TRANSFERRED)
        waiting = "" if moving else _waiting_for(job, state)
        line = progress_line(done, total, meter.add(now, done))
        display.show(line + ("  " + waiting if waiting else ""), now, news=waiting != said)
        said = waiting

    start = time.monotonic()
    try:
        job.wait(
            args.timeout,
            on_progress=show,
            progress_interval=0.2,
            stall_timeout=args.stall_timeout or None,
        )
    except JobFailedError:
        raise UsageError(_job_failure(job, shown, verb)) from None
    except TimeoutError:
        state = job.state
        if args.timeout is not None and time.monotonic() - start >= args.timeout:
            raise UsageError(
                f"{verb} of {shown} did not finish in {args.timeout:g} s "
                f"(the job is {state}); cancelled"
            ) from None
        raise UsageError(
            f"{verb} of {shown}: no byte moved for "
            f"{args.stall_timeout:g} s ({_waiting_for(job, state)}); cancelled"
        ) from None
    now = time.monotonic()
    done, total = totals(job.progress)  # the last line: the whole transfer's rate
    display.show(
        progress_line(done, total, done / (now - start) if now > start else None), now, final=True
    )
    return start


def cmd_download(args: argparse.Namespace, out: TextIO) -> int:
    urls, dest = args.urls, args.dest
    targets = plan_targets(urls, dest, os.path.isdir, os.path.abspath)
    if not args.force:
        for _, path in targets:
            if os.path.exists(path):
                raise UsageError(f"{path} exists; pass --force to overwrite it")
    for _, path in targets:  # BITS would transfer, then fail to move the file into place
        if not os.path.isdir(os.path.dirname(path)):
            raise UsageError(f"the folder {os.path.dirname(path)} does not exist")
    password = _password(args)
    name = args.name or f"winbits download {ntpath.basename(targets[0][1])}"
    with (
        _connect(args) as bits,
        bits.transfer(name[:MAX_NAME_LENGTH]) as job,
    ):
        apply_settings(job, args, password)
        password = None
        for url, path in targets:
            job.add_file(url, path, overwrite=args.force)
        start = _follow(job, args, ", ".join(urls), "download")  # the URLs, as failures name them
        files = []
        for f in job.files():
            fp = f.progress
            files.append(
                (
                    f.local_name,
                    0 if fp is None else fp.bytes_transferred,
                    f.peer_download_stats(),
                )
            )
        job.complete()
        for path, size, _ in files:  # say "downloaded" only of what is there
            if not os.path.isfile(path) or os.path.getsize(path) != size:
                raise UsageError(f"BITS completed the job, but {path} did not land")
    elapsed = time.monotonic() - start
    origin = sum(s.from_origin for _, _, s in files if s is not None)
    peers = sum(s.from_peers for _, _, s in files if s is not None)
    total_bytes = sum(n for _, n, _ in files)
    out.write(
        f"Downloaded {len(files)} file(s), {format_bytes(total_bytes)} in "
        f"{format_duration(elapsed)}\n"
    )
    for name, size, _ in files:
        out.write(f"  {visible(name)}  {format_bytes(size)}\n")
    if any(s is None for _, _, s in files):
        out.write(
            "Bytes from origin / peers: not reported by this BITS (no IBackgroundCopyFile4)\n"
        )
    else:
        share = peer_share(origin, peers)
        out.write(
            f"Bytes from origin: {format_bytes(origin)}, from peers: "
            f"{format_bytes(peers)} (peer share {format_percent(share) or '0.0%'})\n"
        )
    return 0


def cmd_upload(args: argparse.Namespace, out: TextIO) -> int:
    path = os.path.abspath(args.file)
    if not os.path.isfile(path):
        raise UsageError(f"{path} is not a file: upload sends an existing file")
    password = _password(args)
    name = args.name or f"winbits upload {ntpath.basename(path)}"
    with (
        _connect(args) as bits,
        bits.transfer(name[:MAX_NAME_LENGTH], JobType.UPLOAD) as job,
    ):
        apply_settings(job, args, password)
        password = None
        job.add_file(args.url, path)
        start = _follow(job, args, args.url, "upload")
        p = job.progress
        sent = p.bytes_transferred if p else 0
        job.complete()
    out.write(
        f"Uploaded {visible(path)} to {visible(args.url)}, {format_bytes(sent)} in "
        f"{format_duration(time.monotonic() - start)}\n"
    )
    return 0


def find_job(bits: Manager, text: str, all_users: bool = False) -> Job:
    """A job by its id, or by a unique prefix of it (4 hex digits at least), as the
    table shows them."""
    try:
        return bits.get_job(uuid.UUID(text))
    except ValueError:
        pass
    prefix = text.strip("{}").lower()
    if any(c not in "0123456789abcdef-" for c in prefix):
        raise UsageError(f"not a job id: {text!r}")
    if len(prefix.replace("-", "")) < 4:
        raise UsageError(f"{text!r} is too short: give a job id or its first 4 hex digits or more")
    matches = [j for j in bits.jobs(all_users) if str(j.id).startswith(prefix)]
    if not matches:
        raise UsageError(f"no job's id starts with {prefix}")
    if len(matches) > 1:
        listed = "; ".join(f"{j.id} {j.name!r} {j.state}" for j in matches)
        raise UsageError(f"{len(matches)} jobs' ids start with {prefix}: {listed}")
    return matches[0]


def cmd_verb(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args) as bits:
        job = find_job(bits, args.id, args.all_users)
        name = job.name
        try:
            getattr(job, args.command)()
        except InvalidStateError:
            state = job.state
            raise UsageError(
                f"job {job.id} is {state}: it cannot be {VERBS[args.command]}"
            ) from None
    out.write(f"{VERBS[args.command]} {job.id} {visible(name)}\n")
    return 0


def _show_value(value: object) -> str:
    """One property's value as `show` prints it."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, JobProgress):
        return (
            f"{format_bytes(value.bytes_transferred)} of {format_bytes(value.bytes_total)}, "
            f"{value.files_transferred} of {value.files_total} file(s)"
        )
    if isinstance(value, JobTimes):
        return ", ".join(f"{k} {iso(v) or '-'}" for k, v in value._asdict().items())
    if isinstance(value, JobError):
        return f"{visible(value.message)} (HRESULT 0x{value.hresult:08X}, {value.context})"
    if isinstance(value, ProxySettings):
        text = str(value.usage)
        if value.proxies:
            text += " " + " ".join(value.proxies)
        if value.bypass:
            text += " (bypass: " + " ".join(value.bypass) + ")"
        return text
    if isinstance(value, CostFlags):
        return f"0x{int(value):08X}"
    if isinstance(value, (PeerCaching, SecurityFlags)):
        return "|".join(flag_names(value)) or "0"
    if isinstance(value, ClientCertificate):
        return f"{visible(value.subject)} in {value.location} {visible(value.store)}"
    if isinstance(value, tuple):
        return " ".join(visible(str(v)) for v in value) if value else "-"
    return visible(str(value))


def cmd_show(args: argparse.Namespace, out: TextIO) -> int:
    with _connect(args) as bits:
        job = find_job(bits, args.id, args.all_users)
        props = job.properties()
        files = file_records(job)
    if args.json:
        out.write(json.dumps(properties_json(props, files), indent=2) + "\n")
        return 0
    seconds = {"minimum_retry_delay", "no_progress_timeout", "maximum_download_time"}
    rows = [
        (
            name.replace("_", " ").capitalize().replace("Http ", "HTTP "),
            _show_value(v) + (" s" if name in seconds and v is not None else ""),
        )
        for name, v in props._asdict().items()
    ]
    width = max(len(label) for label, _ in rows) + 1
    for label, value in rows:
        out.write(f"{label + ':':<{width}} {value}\n")
    out.write(f"Files ({len(files)}):\n")
    for f in files:
        p = f.progress
        peers = (
            ""
            if f.peer_stats is None
            else (
                f", {format_bytes(f.peer_stats.from_origin)} from origin, "
                f"{format_bytes(f.peer_stats.from_peers)} from peers"
            )
        )
        out.write(
            f"  {visible(f.remote_name)} -> {visible(f.local_name)}: "
            f"{format_bytes(p.bytes_transferred)} of {format_bytes(p.bytes_total)}"
            f"{' (complete)' if p.completed else ''}{peers}\n"
        )
    return 0


def cmd_set(args: argparse.Namespace, out: TextIO) -> int:
    changes = job_settings(args)
    if not changes and args.branchcache is None:
        raise UsageError("nothing to set: give at least one option (see winbits set --help)")
    with _connect(args) as bits:
        job = find_job(bits, args.id, args.all_users)
        done = apply_settings(job, args, None, changes)
        out.write(f"set {', '.join(done)} of {job.id} {visible(job.name)}\n")
    return 0


def _proxy_setting(args: argparse.Namespace) -> ProxySettings | None:
    if args.no_proxy and (args.proxy or args.proxy_bypass):
        raise UsageError("--no-proxy goes alone, without --proxy or --proxy-bypass")
    if args.no_proxy:
        return ProxySettings(ProxyUsage.NO_PROXY)
    if args.proxy_bypass and not args.proxy:
        raise UsageError("--proxy-bypass goes with --proxy")
    if args.proxy:
        return ProxySettings(ProxyUsage.OVERRIDE, tuple(args.proxy), tuple(args.proxy_bypass or ()))
    return None


def cmd_export(args: argparse.Namespace, out: TextIO) -> int:
    try:
        from ._prometheus import Health, write_textfile
    except ImportError:
        raise UsageError(
            "export needs prometheus_client: pip install winbits[prometheus]"
        ) from None

    state = _counters.state_path(args.prometheus)
    try:
        counters, warning = _counters.load(state)
    except _counters.StateError as e:
        raise UsageError(str(e)) from None
    with _connect(args) as bits, Stopper() as stop:
        poller = bits.poller(args.all_users)
        outage, health = Outage(), Health()
        for _ in stop.rounds(args.count, args.interval):
            problem = None
            try:
                snap = poller.poll()
                health.up, health.last_success = True, time.time()
                counters.update(snap, health.last_success)
            except BitsError as e:  # the file still says so: bits_up 0, counters kept
                problem = f"cannot read BITS: {e}"
                snap, health.up = None, False
                health.poll_errors += 1
            if problem and args.interval is None:
                raise UsageError(problem)  # a one-shot export: one line, exit 1
            try:  # the state first: a crash between the two never counts a byte twice
                _counters.save(counters, state)
                write_textfile(snap, args.prometheus, health, counters, per_job=args.per_job)
            except OSError as e:  # a folder that is not there, a directory, read-only
                problem = f"cannot write {args.prometheus}: {e.strerror or e}"
                if args.interval is None:
                    raise UsageError(problem) from None
            else:  # said once there is a state, so that a failed export stays one line
                if warning:
                    _say(warning)
                warning = None
            if problem:
                outage.failed(problem)
            else:
                outage.ok(f"reading BITS and writing {args.prometheus}")
    return 0


# --- argument parsing ---------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse exits 2; ours is a usage error: 1
        raise UsageError(f"{self.prog}: {message}")


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more: {text!r}")
    return value


def _seconds_or_zero(text: str) -> float:
    return 0.0 if text.strip() in ("0", "0.0") else _positive(text)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
    return value


def _ulong_seconds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of seconds: {text!r}") from None
    if not 0 <= value <= 0xFFFFFFFF:
        raise argparse.ArgumentTypeError(f"must be 0 to 4294967295 seconds: {text!r}")
    return value


def _settings_parser() -> _Parser:
    """The job settings that download and set share."""
    p = _Parser(add_help=False)
    p.add_argument(
        "--priority",
        choices=[m.name.lower() for m in JobPriority],
        help="how BITS ranks the job against others (default: normal)",
    )
    p.add_argument(
        "--retry-delay",
        dest="minimum_retry_delay",
        type=_ulong_seconds,
        metavar="SECONDS",
        help="wait this long after a transient error before trying again",
    )
    p.add_argument(
        "--no-progress-timeout",
        type=_ulong_seconds,
        metavar="SECONDS",
        help="BITS gives up after this long without progress (the job goes to ERROR)",
    )
    p.add_argument(
        "--max-time",
        dest="maximum_download_time",
        type=_ulong_seconds,
        metavar="SECONDS",
        help="the most the whole job may take (BITS 3.0; 0: no limit)",
    )
    p.add_argument(
        "--proxy",
        action="append",
        metavar="PROXY",
        help="use this proxy (repeatable), e.g. http://proxy:8080",
    )
    p.add_argument(
        "--proxy-bypass",
        action="append",
        metavar="HOST",
        help="hosts reached without --proxy (repeatable; '<local>' for local names)",
    )
    p.add_argument("--no-proxy", action="store_true", help="connect directly, never by proxy")
    p.add_argument(
        "--transfer-policy",
        choices=["always", "unrestricted", "standard", "no-surcharge", "not-roaming"],
        help="on which networks the job transfers, by cost (BITS 5.0): standard waits "
        "near a data cap and when roaming",
    )
    cache = p.add_mutually_exclusive_group()
    cache.add_argument(
        "--no-branchcache",
        dest="branchcache",
        action="store_false",
        default=None,
        help="take no bytes from BranchCache peers for this job (BITS 3.0)",
    )
    cache.add_argument(
        "--branchcache",
        dest="branchcache",
        action="store_true",
        default=None,
        help="let the job use BranchCache again",
    )
    return p


def _transfer_parser() -> _Parser:
    """The options download and upload share: limits, the job's name, authentication."""
    t = _Parser(add_help=False)
    t.add_argument(
        "--timeout",
        type=_positive,
        metavar="SECONDS",
        help="cancel if the transfer has not finished after SECONDS (default: no limit)",
    )
    t.add_argument(
        "--stall-timeout",
        type=_seconds_or_zero,
        default=DEFAULT_STALL_TIMEOUT,
        metavar="SECONDS",
        help=f"cancel when no byte has moved for SECONDS (default {DEFAULT_STALL_TIMEOUT:g}; "
        "0: wait as long as BITS does)",
    )
    t.add_argument("--name", help="the job's display name (default: winbits COMMAND FILE)")
    t.add_argument(
        "--header",
        dest="headers",
        action="append",
        type=_header,
        metavar="'NAME: VALUE'",
        help="an HTTP header sent with every request (repeatable; never printed)",
    )
    t.add_argument("--user", help="the user name the server (or proxy) asks for")
    t.add_argument(
        "--password-env",
        metavar="VAR",
        help="the environment variable that holds --user's password (else it is asked for "
        "at the terminal; never on the command line)",
    )
    t.add_argument(
        "--auth-scheme",
        choices=[m.name.lower() for m in AuthScheme],
        default="basic",
        help="how --user's credentials are sent (default: basic)",
    )
    return t


def build_parser() -> argparse.ArgumentParser:
    settings = _settings_parser()
    clsid = _Parser(add_help=False)
    clsid.add_argument("--clsid", help="connect to another COM class (a test double)")
    users = _Parser(add_help=False)
    users.add_argument(
        "--all-users", action="store_true", help="every user's jobs (needs an administrator)"
    )
    parser = _Parser(
        prog="winbits",
        description=(
            "Windows BITS jobs and files, with bytes from origin and from peers (BranchCache). "
            "Without a command: list."
        ),
    )
    parser.add_argument("--version", action="version", version=f"winbits {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("list", parents=[clsid, users], help="a table of jobs and their files")
    p.add_argument("--json", action="store_true", help="JSON (keys documented in the README)")
    p.set_defaults(run=cmd_list)

    p = sub.add_parser("watch", parents=[clsid, users], help="refresh the table until Ctrl-C")
    p.add_argument(
        "--interval",
        type=_positive,
        default=2.0,
        metavar="SECONDS",
        help="seconds between polls (default 2)",
    )
    p.add_argument("--json", action="store_true", help="one JSON line per change")
    p.add_argument(
        "--count", type=_count, default=0, metavar="N", help="stop after N polls (default: never)"
    )
    p.set_defaults(run=cmd_watch)

    transfer = _transfer_parser()
    p = sub.add_parser(
        "download",
        parents=[clsid, settings, transfer],
        help="download URLs through BITS",
        description="Creates a BITS job, shows its progress, completes it and "
        "prints the bytes from origin and from peers. Ctrl-C, an error, --timeout or "
        "--stall-timeout cancel the job.",
    )
    p.add_argument("urls", nargs="+", metavar="URL", help="http, https or \\\\server\\share")
    p.add_argument("dest", metavar="DEST", help="a file (one URL) or an existing folder")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.add_argument(
        "--dynamic",
        action="store_true",
        help="the server's content has no fixed size (a dynamic page): no ranges (BITS 5.0)",
    )
    p.set_defaults(run=cmd_download)

    p = sub.add_parser(
        "upload",
        parents=[clsid, settings, transfer],
        help="upload a file through BITS",
        description="Creates a BITS upload job for an existing file, shows its progress and "
        "completes it. The server must speak BITS' upload protocol (IIS with the BITS "
        "server extension). Ctrl-C, an error, --timeout or --stall-timeout cancel the job.",
    )
    p.add_argument("file", metavar="FILE", help="the file to send")
    p.add_argument("url", metavar="URL", help="where to send it: http or https")
    p.set_defaults(run=cmd_upload)

    p = sub.add_parser(
        "show",
        parents=[clsid, users],
        help="every property of one job and its files",
        description="Like bitsadmin /info /verbose: every setting BITS gives for the job, "
        "then its files. Custom headers are shown by name, never their values.",
    )
    p.add_argument("id", help="a job id, or its first 4 or more hex digits")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(run=cmd_show)

    p = sub.add_parser(
        "set",
        parents=[clsid, users, settings],
        help="change the settings of a job",
        description="Sets what the options give; BITS' own refusal (a job in the wrong "
        "state, a setting this BITS lacks) is one line and exit code 1.",
    )
    p.add_argument("id", help="a job id, or its first 4 or more hex digits")
    p.add_argument("--description", help="the job's description (at most 1,024 characters)")
    p.set_defaults(run=cmd_set)

    for verb in VERBS:
        p = sub.add_parser(verb, parents=[clsid, users], help=f"{verb} a job by id (or id prefix)")
        p.add_argument("id", help="a job id, or its first 4 or more hex digits")
        p.set_defaults(run=cmd_verb)

    p = sub.add_parser(
        "export",
        parents=[clsid, users],
        help="write metrics for Prometheus (windows_exporter textfile collector)",
    )
    p.add_argument(
        "--prometheus", required=True, metavar="FILE", help="the .prom file to write (atomically)"
    )
    p.add_argument(
        "--interval", type=_positive, metavar="SECONDS", help="keep rewriting it every SECONDS"
    )
    p.add_argument(
        "--count",
        type=_count,
        default=0,
        metavar="N",
        help="with --interval: stop after N writes (default: never)",
    )
    p.add_argument(
        "--per-job",
        action="store_true",
        help="also a series per job and per file (for small queues and debugging: "
        "every job is a new series)",
    )
    p.set_defaults(run=cmd_export)
    return parser


def parse(argv: Sequence[str]) -> argparse.Namespace:
    argv = list(argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        argv.insert(0, "list")  # no command, or options only: list
    elif argv[0] not in COMMANDS and not argv[0].startswith("-"):
        raise UsageError(f"unknown command {argv[0]!r}; the commands are: {', '.join(COMMANDS)}")
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        known = {
            option
            for action in parser._subparsers._group_actions  # type: ignore[union-attr]
            for command in action.choices.values()  # type: ignore[union-attr]
            for option in command._option_string_actions
        }
        name = extra[0].split("=", 1)[0]
        if name in known:
            raise UsageError(f"winbits {args.command}: {name} does not apply to {args.command}")
        raise UsageError(f"winbits {args.command}: unrecognized arguments: {' '.join(extra)}")
    return args


def _say(message: str) -> None:
    """One line on stderr, "winbits: " first (argparse's messages start with the
    command's own prog); control characters in names from BITS made visible. Every
    error message leaves through here."""
    text = visible(message)
    print(text if text.startswith("winbits") else "winbits: " + text, file=sys.stderr)


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    args = None
    try:
        args = parse(sys.argv[1:] if argv is None else argv)
        return int(args.run(args, out))
    except UsageError as e:
        _say(str(e))
        return 1
    except AccessDeniedError as e:
        if args is not None and getattr(args, "all_users", False):
            _say(
                "every user's jobs can be read by an administrator only: "
                "run from an elevated prompt"
            )
        else:
            _say(str(e))
        return 1
    except JobNotFoundError as e:
        _say(f"no such job: {e}")
        return 1
    except (BitsError, FileExistsError, ValueError) as e:
        _say(str(e))
        return 1
    except KeyboardInterrupt:
        _say("interrupted")
        return 130
    except SystemExit as e:  # --help and --version print, then end here
        return e.code if isinstance(e.code, int) else 0
