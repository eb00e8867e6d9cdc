"""The winbits command: a table of the current user's BITS jobs and their files.

Reading BITS (``read_jobs``) and formatting (``format_table``) are apart, so the
formatting is tested on any OS with plain data.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from ._api import Job, Manager, connect
from ._errors import BitsError, JobNotFoundError
from ._types import percent


def read_jobs(manager: Manager, all_users: bool = False) -> list[dict[str, Any]]:
    """Every job and file as plain data. A job that leaves the queue while it is being
    read (BG_E_NOT_FOUND) is skipped: the listing is a snapshot of a moving queue."""
    rows = []
    for job in manager.jobs(all_users):
        try:
            rows.append(_read_job(job))
        except JobNotFoundError:
            continue
    return rows


def _read_job(job: Job) -> dict[str, Any]:
    progress = job.progress
    state = job.state
    files = []
    for f in job.files():
        fp = f.progress
        stats = f.peer_download_stats()
        files.append({
            "remote_name": f.remote_name,
            "local_name": f.local_name,
            "bytes_total": fp.bytes_total,
            "bytes_transferred": fp.bytes_transferred,
            "completed": fp.completed,
            "from_origin": None if stats is None else stats.from_origin,
            "from_peers": None if stats is None else stats.from_peers,
        })
    return {
        "id": str(job.id),
        "name": job.name,
        "state": getattr(state, "name", str(state)),
        "owner": job.owner,
        "bytes_total": None if progress is None else progress.bytes_total,
        "bytes_transferred": None if progress is None else progress.bytes_transferred,
        "files_total": None if progress is None else progress.files_total,
        "files_transferred": None if progress is None else progress.files_transferred,
        "files": files,
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


def _peer_share(origin: int | None, peers: int | None) -> float | None:
    if origin is None or peers is None or origin + peers == 0:
        return None
    return 100.0 * peers / (origin + peers)


HEADERS = ("NAME", "ID", "STATE", "OWNER", "BYTES", "%", "FILES", "FROM ORIGIN", "FROM PEERS",
           "PEER %")
RIGHT = {"BYTES", "%", "FILES", "FROM ORIGIN", "FROM PEERS", "PEER %"}


def table_rows(jobs: Sequence[dict[str, Any]]) -> list[tuple[str, ...]]:
    """A row per job, then a row per file under it (its name indented)."""
    rows: list[tuple[str, ...]] = []
    for j in jobs:
        done, total = j["bytes_transferred"], j["bytes_total"]
        rows.append((
            j["name"],
            j["id"][:8],
            j["state"],
            j["owner"] or "",
            f"{format_bytes(done)} / {format_bytes(total)}" if done is not None else "?",
            format_percent(percent(done, total)) if done is not None else "",
            f"{j['files_transferred']}/{j['files_total']}" if j["files_total"] is not None else "",
            "", "", "",
        ))
        for f in j["files"]:
            origin, peers = f["from_origin"], f["from_peers"]
            rows.append((
                "  " + f["local_name"],
                "", "", "",
                f"{format_bytes(f['bytes_transferred'])} / {format_bytes(f['bytes_total'])}",
                format_percent(percent(f["bytes_transferred"], f["bytes_total"])),
                "done" if f["completed"] else "",
                "" if origin is None else format_bytes(origin),
                "" if peers is None else format_bytes(peers),
                format_percent(_peer_share(origin, peers)),
            ))
    return rows


def format_table(jobs: Sequence[dict[str, Any]]) -> str:
    if not jobs:
        return "No BITS jobs."
    rows = [HEADERS, *table_rows(jobs)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADERS))]
    lines = []
    for r in rows:
        cells = [c.rjust(w) if h in RIGHT else c.ljust(w) for c, w, h in zip(r, widths, HEADERS)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="winbits",
        description="List BITS jobs and their files, with bytes from origin and from peers.")
    parser.add_argument("--all-users", action="store_true",
                        help="every user's jobs (needs an administrator)")
    args = parser.parse_args(argv)
    try:
        with connect() as bits:
            jobs = read_jobs(bits, args.all_users)
    except BitsError as e:
        print(f"winbits: {e}", file=sys.stderr)
        return 1
    print(format_table(jobs))
    return 0
