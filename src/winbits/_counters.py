"""Counters a fleet can sum: bytes and files BITS transferred, per content server, that
only grow for the life of the machine, although jobs leave the queue and the exporter
restarts.

Each file's counters are counted once: the state remembers, per job id and file, the
values already counted, keeps a job's last values after it leaves the queue (for a day,
then forgets it), and is saved beside the metrics file so that a restarted exporter
neither loses nor double-counts a byte. A value in BITS that goes backwards (a job
restarted, a file replaced) adds nothing and subtracts nothing. Pure Python, no COM.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any
from urllib.parse import urlsplit

from ._types import Snapshot

STATE_VERSION = 1
MAX_SERVERS = 100  # a machine's content servers; more go to server="other"
FORGET_AFTER = 24 * 3600.0  # seconds a job stays remembered after it left the queue
# What is counted per server, in this order in the state file.
KINDS = ("transferred_bytes", "origin_bytes", "peer_bytes", "files_transferred")


class StateError(Exception):
    """The state file cannot be used as it is (written by a newer winbits)."""


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
        self.totals: dict[str, list[int]] = {}  # server -> a value per KINDS
        # job id -> {"seen": time last in the queue, "files": {remote\nlocal: values}}
        self.jobs: dict[str, dict[str, Any]] = {}

    def _server(self, host: str) -> str:
        named = len(self.totals) - ("other" in self.totals)
        return host if host in self.totals or named < MAX_SERVERS else "other"

    def update(self, snap: Snapshot, now: float) -> None:
        """Adds what moved since the values last counted."""
        for job in snap.jobs:
            entry = self.jobs.setdefault(str(job.id), {"seen": now, "files": {}})
            entry["seen"] = now
            for f in job.files:
                key = f"{f.remote_name}\n{f.local_name}"
                old = entry["files"].get(key, [0, 0, 0, 0])
                stats = f.peer_stats
                new = [
                    f.progress.bytes_transferred,
                    old[1] if stats is None else stats.from_origin,
                    old[2] if stats is None else stats.from_peers,
                    int(f.progress.completed),
                ]
                total = self.totals.setdefault(self._server(server_of(f.remote_name)), [0] * 4)
                for i, (was, now_value) in enumerate(zip(old, new, strict=True)):
                    total[i] += max(0, now_value - was)
                entry["files"][key] = new
        for job_id, entry in list(self.jobs.items()):
            if now - entry["seen"] > FORGET_AFTER:
                del self.jobs[job_id]

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "kinds": list(KINDS),
            "totals": self.totals,
            "jobs": self.jobs,
        }

    @classmethod
    def from_json(cls, data: Any) -> Counters:
        """Counters from a state file's content; StateError for a newer version,
        ValueError (or KeyError, TypeError) for anything else that is not a state."""
        version = data["version"]
        if not isinstance(version, int):
            raise ValueError("no version")
        if version > STATE_VERSION:
            raise StateError(
                f"it was written by a newer winbits (state version {version}; this one "
                f"reads {STATE_VERSION}): upgrade winbits, or delete it to count from zero"
            )
        c = cls()
        for server, values in data["totals"].items():
            if len(values) != len(KINDS) or not all(type(v) is int and v >= 0 for v in values):
                raise ValueError("bad totals")
            c.totals[str(server)] = list(values)
        for job_id, entry in data["jobs"].items():
            files = {str(k): [int(v) for v in vs] for k, vs in entry["files"].items()}
            if not all(len(vs) == len(KINDS) for vs in files.values()):
                raise ValueError("bad file values")
            c.jobs[str(job_id)] = {"seen": float(entry["seen"]), "files": files}
        return c


def state_path(metrics_path: str) -> str:
    """Where the state lives: beside the metrics file, not a *.prom the collector reads."""
    return os.path.splitext(metrics_path)[0] + ".winbits-state.json"


def load(path: str) -> tuple[Counters, str | None]:
    """(counters, a warning or None). A missing or unreadable state starts from zero
    with a warning; one from a newer winbits raises StateError."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return Counters(), f"no state file {path} was found: counting from zero"
    except (OSError, ValueError) as e:
        return Counters(), f"cannot read the state file {path} ({e}): counting from zero"
    try:
        return Counters.from_json(data), None
    except StateError as e:
        raise StateError(f"cannot use the state file {path}: {e}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        return Counters(), f"the state file {path} is damaged ({e!r}): counting from zero"


def save(counters: Counters, path: str) -> None:
    """Writes the state atomically: a temporary file beside it, then a rename."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".winbits-state-", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(counters.to_json(), f, separators=(",", ":"))
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
