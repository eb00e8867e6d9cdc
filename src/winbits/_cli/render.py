"""What the commands print: one JSON-ready shape per job (``job_json``) that the table,
the JSON output and the Prometheus export all read; the table; `show`'s values; sizes
and durations. Pure: tested on any OS."""

from __future__ import annotations

import datetime as dt
import enum
import math
import shutil
import unicodedata
import uuid
from collections.abc import Sequence
from typing import Any, TextIO

from .._job import Job
from .._types import (
    ClientCertificate,
    CostFlags,
    DownloadResult,
    FileAclFlags,
    FileProgress,
    FileRecord,
    HelperTokenFlags,
    JobError,
    JobProgress,
    JobProperties,
    JobRecord,
    JobTimes,
    PeerCaching,
    ProxySettings,
    SecurityFlags,
    Snapshot,
    peer_share,
    percent,
    redact_url,
    visible,
)

# The version of every JSON object the command line prints ("schema_version"): it grows
# when a key changes meaning or goes away; new keys may come without it.
SCHEMA_VERSION = 1


def result_json(command: str, **fields: Any) -> dict[str, Any]:
    """The one JSON object of a one-shot command (--json): what was done."""
    return {"schema_version": SCHEMA_VERSION, "command": command, "ok": True, **fields}


def failure_json(command: str, message: str, code: int, hresult: int | None) -> dict[str, Any]:
    """The one JSON object of a one-shot command that failed (--json)."""
    error = {"message": message, "hresult": hresult, "exit_code": code}
    return {"schema_version": SCHEMA_VERSION, "command": command, "ok": False, "error": error}


def transfer_json(command: str, result: DownloadResult, seconds: float) -> dict[str, Any]:
    """What download or upload moved (--json): the job, each file, the bytes from origin
    and from peers (null where this BITS does not report them)."""
    stats = result.peer_stats
    return result_json(
        command,
        job_id=str(result.job_id),
        seconds=round(seconds, 3),
        bytes=result.bytes,
        from_origin=None if stats is None else stats.from_origin,
        from_peers=None if stats is None else stats.from_peers,
        peer_percent=None if stats is None else stats.peer_share,
        files=[
            {
                "url": redact_url(f.url),
                "path": f.path,
                "bytes": f.bytes,
                "from_origin": None if f.peer_stats is None else f.peer_stats.from_origin,
                "from_peers": None if f.peer_stats is None else f.peer_stats.from_peers,
            }
            for f in result.files
        ],
    )


def iso(moment: dt.datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z, or None."""
    if moment is None:
        return None
    return moment.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def progress_json(p: JobProgress) -> dict[str, Any]:
    """A job's progress, the same in list, watch and show."""
    return {**p._asdict(), "percent": percent(p.bytes_transferred, p.bytes_total)}


def times_json(t: JobTimes | None) -> dict[str, Any] | None:
    """A job's times, the same in list, watch and show; None where BITS gives none."""
    return None if t is None else {k: iso(v) for k, v in t._asdict().items()}


def job_json(job: JobRecord) -> dict[str, Any]:
    """A job as the documented JSON object (docs/json.md): the keys show --json has too,
    with the same shapes."""
    return {
        "id": str(job.id),
        "name": job.name,
        "owner": job.owner,
        "state": str(job.state),  # the name (JobState prints it), or the number BITS gave
        "type": str(job.type),
        "progress": progress_json(job.progress),
        "times": times_json(job.times),
        "files": [file_json(f) for f in job.files],
    }


def file_json(f: FileRecord) -> dict[str, Any]:
    return {
        "remote_name": redact_url(f.remote_name),  # no password, no signed query
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
    out: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
    for name, value in props._asdict().items():
        if name == "id" or isinstance(value, uuid.UUID):
            value = str(value)
        elif isinstance(value, JobProgress):
            value = progress_json(value)
        elif isinstance(value, JobError):
            value = value._asdict()
        elif isinstance(value, JobTimes):
            value = times_json(value)
        elif isinstance(value, ProxySettings):
            value = {"usage": str(value.usage), "proxies": value.proxies, "bypass": value.bypass}
        elif isinstance(value, CostFlags):
            value = int(value)  # its members overlap: the number says it exactly
        elif isinstance(value, (PeerCaching, SecurityFlags, FileAclFlags, HelperTokenFlags)):
            value = flag_names(value)
        elif isinstance(value, ClientCertificate):
            sha1 = None if value.sha1 is None else value.sha1.hex()
            value = {**value._asdict(), "location": str(value.location), "sha1": sha1}
        elif isinstance(value, enum.Enum):
            value = str(value)
        out[name] = value
    if props.error is not None:
        out["error"]["context"] = str(props.error.context)
        if props.error.remote_name:
            out["error"]["remote_name"] = redact_url(props.error.remote_name)
    out["files"] = [file_json(f) for f in files]
    return out


def snapshot_json(snap: Snapshot, now: dt.datetime) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "time": iso(now),
        "jobs": [job_json(j) for j in snap.jobs],
    }


def changes_json(snap: Snapshot, now: dt.datetime) -> dict[str, Any]:
    """One line of `watch --json`: what was added, changed and removed, with the
    added and changed jobs in full."""
    moved = snap.added | snap.changed
    return {
        "schema_version": SCHEMA_VERSION,
        "time": iso(now),
        "added": sorted(str(i) for i in snap.added),
        "changed": sorted(str(i) for i in snap.changed),
        "removed": sorted(str(i) for i in snap.removed),
        "jobs": [job_json(j) for j in snap.jobs if j.id in moved],
    }


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
        p = j["progress"]
        done, total = p["bytes_transferred"], p["bytes_total"]
        n, n_done = p["files_total"], p["files_transferred"]
        rows.append(
            (
                visible(j["name"]),  # escaped here too, to measure the columns as shown
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


def terminal_width(out: TextIO) -> int | None:
    return shutil.get_terminal_size().columns if out.isatty() else None


def format_duration(seconds: float | None) -> str:
    if seconds is None or math.isinf(seconds) or math.isnan(seconds) or seconds < 0:
        return "--:--"
    s = round(seconds)
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02}:{s:02}" if h else f"{m}:{s:02}"


def show_value(value: object) -> str:
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
        return f"{value.message} (HRESULT 0x{value.hresult:08X}, {value.context})"
    if isinstance(value, ProxySettings):
        text = str(value.usage)
        if value.proxies:
            text += " " + " ".join(value.proxies)
        if value.bypass:
            text += " (bypass: " + " ".join(value.bypass) + ")"
        return text
    if isinstance(value, CostFlags):
        return f"0x{int(value):08X}"
    if isinstance(value, (PeerCaching, SecurityFlags, FileAclFlags, HelperTokenFlags)):
        return "|".join(flag_names(value)) or "0"
    if isinstance(value, ClientCertificate):
        return f"{value.subject} in {value.location} {value.store}"
    if isinstance(value, tuple):
        return " ".join(str(v) for v in value) if value else "-"
    return str(value)
