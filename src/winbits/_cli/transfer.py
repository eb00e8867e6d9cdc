"""The commands that move files: download and upload, each one BITS job followed to its
end with the progress line, or left to BITS (--detach) for `winbits wait` to follow and
complete later."""

from __future__ import annotations

import argparse
import json
import ntpath
import os
import time
import uuid
from typing import TextIO

from .. import _downloads
from .._manager import Manager
from .._types import (
    DownloadResult,
    JobType,
    peer_share,
    redact_url,
)
from .commands import connect_for, find_job
from .loops import Stopper
from .progress import follow
from .render import format_bytes, format_duration, format_percent, result_json, transfer_json
from .settings import apply_settings, headers_from_env, password_for
from .targets import plan_targets
from .usage import Failure


def _run(
    bits: Manager,
    args: argparse.Namespace,
    files: list[tuple[str, str]],
    job_type: JobType,
    shown: str,
) -> tuple[DownloadResult, float]:
    """One transfer through the library's path (create, set, add, resume, wait, complete,
    check what landed; cancelled on any failure), the wait drawn as the progress line;
    -> what it moved, and how long it took. The password (asked for before connecting)
    is let go once it is set."""
    secret = [args.password]
    args.password = None
    verb = "download" if job_type == JobType.DOWNLOAD else "upload"
    name = args.name or f"winbits {verb} {ntpath.basename(files[0][1])}"
    start = time.monotonic()
    with Stopper(interrupts=True):  # Ctrl-Break, SIGTERM, console close: the job ends too
        result = _downloads.transfer(
            bits,
            files,
            lambda job: follow(job, args, shown, verb),
            name=name,
            overwrite=getattr(args, "force", False),
            job_type=job_type,
            setup=lambda job: apply_settings(job, args, secret.pop()),
            limits=(args.timeout, args.stall_timeout or None),
        )
    return result, time.monotonic() - start


def _detach(
    bits: Manager, args: argparse.Namespace, files: list[tuple[str, str]], job_type: JobType
) -> uuid.UUID:
    """--detach: the job made, set (BITS' own limits from --timeout and --stall-timeout
    too, so that it ends by itself) and resumed, then left to BITS; cancelled if any of
    that fails. -> its id, for `winbits wait`."""
    secret = [args.password]
    args.password = None
    verb = "download" if job_type == JobType.DOWNLOAD else "upload"
    with Stopper(interrupts=True):
        job = _downloads.start(
            bits,
            files,
            args.name or f"winbits {verb} {ntpath.basename(files[0][1])}",
            getattr(args, "force", False),
            {},
            job_type=job_type,
            setup=lambda job: apply_settings(job, args, secret.pop()),
            limits=(args.timeout, args.stall_timeout or None),
        )
    return job.id


def detached(
    args: argparse.Namespace, out: TextIO, job_id: uuid.UUID, files: list[tuple[str, str]]
) -> int:
    """What --detach prints: the job id, for `winbits wait`, or one JSON object."""
    if args.json:
        shown = [{"url": redact_url(url), "path": path} for url, path in files]
        done = result_json(args.command, job_id=str(job_id), detached=True, files=shown)
        out.write(json.dumps(done) + "\n")
    else:
        out.write(f"{job_id}\n")
    return 0


def report_download(args: argparse.Namespace, out: TextIO, result: DownloadResult, s: float) -> int:
    if args.json:
        out.write(json.dumps(transfer_json("download", result, s)) + "\n")
        return 0
    files = result.files
    out.write(
        f"Downloaded {len(files)} file(s), {format_bytes(result.bytes)} in {format_duration(s)}\n"
    )
    for f in files:
        out.write(f"  {f.path}  {format_bytes(f.bytes)}\n")
    stats = result.peer_stats
    if stats is None:
        out.write(
            "Bytes from origin / peers: not reported by this BITS (no IBackgroundCopyFile4)\n"
        )
    else:
        share = peer_share(stats.from_origin, stats.from_peers)
        out.write(
            f"Bytes from origin: {format_bytes(stats.from_origin)}, from peers: "
            f"{format_bytes(stats.from_peers)} (peer share {format_percent(share) or '0.0%'})\n"
        )
    return 0


def report_upload(args: argparse.Namespace, out: TextIO, result: DownloadResult, s: float) -> int:
    if args.json:
        out.write(json.dumps(transfer_json("upload", result, s)) + "\n")
        return 0
    f = result.files[0]
    out.write(
        f"Uploaded {f.path} to {redact_url(f.url)}, {format_bytes(result.bytes)} in "
        f"{format_duration(s)}\n"
    )
    return 0


def cmd_download(args: argparse.Namespace, out: TextIO) -> int:
    urls, dest = args.urls, args.dest
    targets = plan_targets(urls, dest, os.path.isdir, os.path.abspath)
    if not args.force:
        for _, path in targets:
            if os.path.exists(path):
                raise Failure(f"{path} exists; pass --force to overwrite it")
    for _, path in targets:  # BITS would transfer, then fail to move the file into place
        if not os.path.isdir(os.path.dirname(path)):
            raise Failure(f"the folder {os.path.dirname(path)} does not exist")
    args.password = password_for(args)
    headers_from_env(args)
    with connect_for(args) as bits:  # failures name the URLs
        if args.detach:
            return detached(args, out, _detach(bits, args, targets, JobType.DOWNLOAD), targets)
        shown = ", ".join(map(redact_url, urls))
        result, elapsed = _run(bits, args, targets, JobType.DOWNLOAD, shown)
    return report_download(args, out, result, elapsed)


def cmd_upload(args: argparse.Namespace, out: TextIO) -> int:
    path = os.path.abspath(args.file)
    if not os.path.isfile(path):
        raise Failure(f"{path} is not a file: upload sends an existing file")
    args.password = password_for(args)
    headers_from_env(args)
    with connect_for(args) as bits:
        files = [(args.url, path)]
        if args.detach:
            return detached(args, out, _detach(bits, args, files, JobType.UPLOAD), files)
        result, elapsed = _run(bits, args, files, JobType.UPLOAD, redact_url(args.url))
    return report_upload(args, out, result, elapsed)


def cmd_wait(args: argparse.Namespace, out: TextIO) -> int:
    """Follows an existing job (one --detach made, or any) with the same progress line
    until BITS has transferred it, then completes it with download's landing checks
    (unless --no-complete). Exit codes as download's; the job is never cancelled: a
    failure or a timeout leaves it in the queue to look at, wait for again, or cancel."""
    with connect_for(args) as bits:
        job = find_job(bits, args.id, args.all_users)
        upload = job._job_type() != JobType.DOWNLOAD
        verb = "upload" if upload else "download"
        shown = ", ".join(redact_url(f.remote_name) for f in job.files())
        start = time.monotonic()
        follow(job, args, shown, verb, then=f"the job is left in the queue ({job.id})")
        if args.no_complete:
            if args.json:
                out.write(json.dumps(result_json("wait", job_id=str(job.id), completed=False)))
                out.write("\n")
            else:
                out.write(f"{job.id} is TRANSFERRED (not completed: --no-complete)\n")
            return 0
        result = _downloads.finish(job, overwrite=args.force)
    report = report_upload if upload else report_download
    return report(args, out, result, time.monotonic() - start)
