"""Counters a fleet can sum: bytes and files BITS transferred, per content server, that
only grow for the life of the machine, although jobs leave the queue and the exporter
restarts. Downloads and uploads are counted apart (the metrics' direction label).

Each file's counters are counted once: the state remembers, per job id and the file's
local name, the values already counted (never the file's URL, which can carry a password
or a signature, nor anything of it but the server's label in the totals), keeps a job's
last values after it leaves the queue (for a day, then forgets it), and is saved beside
the metrics file, synced to disk before it replaces the last one, so that a restarted
exporter neither loses nor double-counts a byte. A URL that changes while a file
transfers (a mirror) does not count it again. A value in BITS that goes backwards (a job
restarted, a file replaced) adds nothing and subtracts nothing. One exporter per state
file: a second one is refused. A new series is shown at 0 once before its first value, so
that Prometheus' increase() sees even a job that came and went between two writes.
The files of jobs that came and went between two polls are counted from the Bits-Client
event log (add_transfers), whose bookmark the state keeps with the counts, so that a
restart neither misses nor repeats an event. Pure Python, no COM.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from collections.abc import Iterable
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ._types import JobType, Snapshot

if TYPE_CHECKING:
    from ._history import Transfer

# 1 keyed files by URL and local name; 2 by local name alone; 3 counts uploads apart and
# remembers the series not yet shown at 0; 4 keeps the event log's bookmark.
STATE_VERSION = 4
MAX_STATE_BYTES = 64 * 1024 * 1024  # far past what 100 servers and a day of jobs need
MAX_SERVERS = 100  # a machine's content servers; more go to server="(other)"
# The label of the servers past MAX_SERVERS: no host name can hold parentheses, so a
# real host named "other" keeps its own series.
OTHER = "(other)"
IDLE_FOR = 30 * 24 * 3600.0  # seconds without a byte after which a server's slot is freed
FORGET_AFTER = 24 * 3600.0  # seconds a job stays remembered after it left the queue
# What is counted per server, in this order in the state file.
KINDS = ("transferred_bytes", "origin_bytes", "peer_bytes", "files_transferred")
# The direction label, and the state's table of each.
DIRECTIONS = {"download": "totals", "upload": "uploads"}


class StateError(Exception):
    """The state file cannot be used as it is (written by a newer winbits, or in use by
    another exporter)."""


def server_of(url: str) -> str:
    """The host of a file's URL, lower-cased, without port or path; a UNC path's server."""
    if url.startswith("\\\\"):
        host = url[2:].split("\\", 1)[0]
    else:
        try:
            host = urlsplit(url).hostname or ""
        except ValueError:
            host = ""
    return host.lower() or "unknown"


class Counters:
    def __init__(self) -> None:
        self.totals: dict[str, list[int]] = {}  # server -> a value per KINDS, downloads
        self.uploads: dict[str, list[int]] = {}  # the same for uploads
        # (direction, server, kind) of the series to show at 0 the next time the metrics
        # are written, before their first value (take_fresh)
        self.fresh: set[tuple[str, str, str]] = set()
        # server -> when bytes last moved from it (None: not known yet, as after loading
        # an older state: counted as now at the next update)
        self.active: dict[str, float | None] = {}
        # job id -> {"seen": time last in the queue, "files": {local name: values}}
        self.jobs: dict[str, dict[str, Any]] = {}
        # Whether this BITS reports peer statistics (IBackgroundCopyFile4), as last seen
        # on a file: kept while the queue is empty. None until a file was seen.
        self.peer_stats: bool | None = None
        # The record id of the last Bits-Client event counted (the event log's bookmark),
        # None until the event log was first read.
        self.event_log: int | None = None

    def table(self, direction: str) -> dict[str, list[int]]:
        """The totals of one direction ("download" or "upload"), by server."""
        return self.uploads if direction == "upload" else self.totals

    def _server(self, host: str) -> str:
        servers = self.totals.keys() | self.uploads.keys()
        named = len(servers) - (OTHER in servers)
        return host if host in servers or named < MAX_SERVERS else OTHER

    def _add(self, direction: str, server: str, moved: list[int]) -> None:
        total = self.table(direction).get(server)
        if total is None:  # a new series: shown at 0 once, then counting
            total = self.table(direction)[server] = [0] * len(KINDS)
            self.fresh.update((direction, server, kind) for kind in KINDS)
        elif not total[1] + total[2] and moved[1] + moved[2]:  # peer statistics, first
            self.fresh.update((direction, server, kind) for kind in KINDS[1:3])
        for i, n in enumerate(moved):
            total[i] += n

    def take_fresh(self) -> set[tuple[str, str, str]]:
        """The series to write at 0 this time, forgotten here: the next write shows
        their values."""
        fresh, self.fresh = self.fresh, set()
        return fresh

    def update(self, snap: Snapshot, now: float) -> None:
        """Adds what moved since the values last counted."""
        for job in snap.jobs:
            direction = "download" if job.type == JobType.DOWNLOAD else "upload"
            entry = self.jobs.setdefault(str(job.id), {"seen": now, "files": {}})
            entry["seen"] = now
            for f in job.files:
                key = f.local_name  # a job's files are told apart by where they land
                old = entry["files"].get(key, [0, 0, 0, 0])
                stats = f.peer_stats
                new = [
                    f.progress.bytes_transferred,
                    old[1] if stats is None else stats.from_origin,
                    old[2] if stats is None else stats.from_peers,
                    int(f.progress.completed),
                ]
                moved = [max(0, n - o) for o, n in zip(old, new, strict=True)]
                entry["files"][key] = new
                self.peer_stats = stats is not None
                if any(moved):  # a server gets its slot once bytes move from it
                    server = self._server(server_of(f.remote_name))
                    self._add(direction, server, moved)
                    self.active[server] = now
        for job_id, entry in list(self.jobs.items()):
            if now - entry["seen"] > FORGET_AFTER:
                del self.jobs[job_id]
        for server in self.totals.keys() | self.uploads.keys():  # idle for a month: its
            last = self.active.get(server)  # slot goes to another
            if last is None:
                self.active[server] = now
            elif now - last > IDLE_FOR:
                self.totals.pop(server, None)
                self.uploads.pop(server, None)
                del self.active[server]
                self.fresh = {f for f in self.fresh if f[1] != server}

    def add_transfers(
        self, transfers: Iterable[Transfer], now: float, owner: str | None = None
    ) -> None:
        """Adds the file transfers the event log recorded for jobs no poll saw (the polls
        stay authoritative for every job they saw). `owner`: only the events of this
        user (SID), as a poller of one user's jobs sees. The event does not say the
        direction: they are counted as downloads."""
        for t in transfers:
            if t.job_id is None or str(t.job_id) in self.jobs:
                continue
            if owner is not None and t.owner_sid != owner:
                continue
            peers = t.bytes_from_peers or 0
            origin = t.bytes_from_origin or 0
            moved = [t.bytes_transferred, origin, peers, int(t.completed)]
            if any(moved):
                server = self._server(server_of(t.url))
                self._add("download", server, moved)
                self.active[server] = now

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "kinds": list(KINDS),
            "totals": self.totals,
            "uploads": self.uploads,
            "fresh": sorted(self.fresh),
            "active": self.active,
            "jobs": self.jobs,
            "peer_stats": self.peer_stats,
            "event_log": self.event_log,
        }

    @classmethod
    def from_json(cls, data: Any) -> Counters:
        """Counters from a state file's content; StateError for a newer version,
        ValueError (or KeyError, TypeError) for anything else that is not a state: every
        value is checked (whole numbers of 0 or more, finite times)."""
        version = data["version"]
        if type(version) is not int or version < 1:
            raise ValueError("no version")
        if version > STATE_VERSION:
            raise StateError(
                f"it was written by a newer winbits (state version {version}; this one "
                f"reads {STATE_VERSION}): upgrade winbits, or delete it to count from zero"
            )
        c = cls()
        for server, values in data["totals"].items():
            # Version 1 called the servers past the hundredth "other".
            name = OTHER if version == 1 and server == "other" else str(server)
            c.totals[name] = _counts(values)
        for server, values in data.get("uploads", {}).items():
            c.uploads[str(server)] = _counts(values)
        for series in data.get("fresh", []):
            if type(series) is not list or len(series) != 3 or series[0] not in DIRECTIONS:
                raise ValueError("a fresh series is not [direction, server, kind]")
            if series[2] not in KINDS:
                raise ValueError("a fresh series of no known kind")
            c.fresh.add((series[0], str(series[1]), series[2]))
        for server, last in data.get("active", {}).items():
            if last is not None and (type(last) not in (int, float) or not math.isfinite(last)):
                raise ValueError("a server's time is not a number")
            c.active[str(server)] = None if last is None else float(last)
        peer_stats = data.get("peer_stats")
        if peer_stats is not None and type(peer_stats) is not bool:
            raise ValueError("peer_stats is not true, false or null")
        c.peer_stats = peer_stats
        bookmark = data.get("event_log")
        if bookmark is not None and (type(bookmark) is not int or bookmark < 0):
            raise ValueError("the event log's bookmark is not a record id")
        c.event_log = bookmark
        for job_id, entry in data["jobs"].items():
            seen = entry["seen"]
            if type(seen) not in (int, float) or not math.isfinite(seen):
                raise ValueError("a job's time is not a number")
            files = {}
            for key, values in entry["files"].items():
                # Version 1 keyed a file by "URL\nlocal name": the URL is dropped here.
                files[str(key).rpartition("\n")[2] if version == 1 else str(key)] = _counts(values)
            c.jobs[str(job_id)] = {"seen": float(seen), "files": files}
        return c


def _counts(values: Any) -> list[int]:
    """One file's or server's values, as the state holds them: len(KINDS) whole numbers,
    none negative."""
    if type(values) is not list or len(values) != len(KINDS):
        raise ValueError("not a list of counts")
    if not all(type(v) is int and v >= 0 for v in values):
        raise ValueError("a count that is not a whole number of 0 or more")
    return list(values)


def state_path(metrics_path: str) -> str:
    """Where the state lives: beside the metrics file, not a *.prom the collector reads."""
    return os.path.splitext(metrics_path)[0] + ".winbits-state.json"


def load(path: str) -> tuple[Counters, str | None]:
    """(counters, a warning or None). A missing state starts from zero with a warning;
    an unreadable or damaged one is set aside as PATH.bad (for a person to look at) and
    counting starts from zero, with a warning that says so; one from a newer winbits
    raises StateError."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_STATE_BYTES + 1)
    except FileNotFoundError:
        return Counters(), f"no state file {path} was found: counting from zero"
    except OSError as e:
        return Counters(), f"cannot read the state file {path} ({e}): counting from zero"
    try:
        if len(raw) > MAX_STATE_BYTES:
            raise ValueError(f"it is over {MAX_STATE_BYTES} bytes")
        data = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
        return Counters.from_json(data), None
    except StateError as e:
        raise StateError(f"cannot use the state file {path}: {e}") from None
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as e:
        why = "it is nested too deeply" if isinstance(e, RecursionError) else repr(e)
        bad = path + ".bad"
        try:
            os.replace(path, bad)
        except OSError:
            bad = "where it is"
        return Counters(), (
            f"the state file {path} is damaged ({why}); it is kept as {bad}: counting from zero"
        )


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a count")


def save(counters: Counters, path: str) -> None:
    """Writes the state atomically: a temporary file beside it, flushed to disk, then a
    rename (after a power loss the state is the old one or the new one, never empty)."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".winbits-state-", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(counters.to_json(), f, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class StateLock:
    """This exporter is the only one counting into a state: acquire() takes PATH.lock, or
    raises StateError when another exporter holds it (two would write over each other's
    counts), or OSError when its folder cannot hold it (not there yet). The system lets
    the lock go when the process ends, however it ends; release() lets it go before."""

    def __init__(self, path: str) -> None:
        self.path = path + ".lock"
        self._file: IO[bytes] | None = None

    @property
    def held(self) -> bool:
        return self._file is not None

    def acquire(self) -> None:
        f = open(self.path, "a+b")  # noqa: SIM115 (held until release)
        try:
            _lock(f)
        except OSError:
            f.close()
            raise StateError(
                f"another winbits export is writing {self.path[: -len('.lock')]}: "
                "one exporter per file (stop the other, or give this one another file)"
            ) from None
        self._file = f

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the handle lets the lock go
            self._file = None

    def __enter__(self) -> StateLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


if sys.platform == "win32":
    import msvcrt

    def _lock(f: IO[bytes]) -> None:
        f.seek(0)
        msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)

else:
    import fcntl

    def _lock(f: IO[bytes]) -> None:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
