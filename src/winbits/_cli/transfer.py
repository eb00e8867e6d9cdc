"""The commands that move files: download and upload, each one BITS job followed to its
end with the progress line."""

from __future__ import annotations

import argparse
import json
import ntpath
import os
import time
from typing import TextIO

from .. import _downloads
from .._manager import Manager
from .._types import (
    DownloadResult,
    JobType,
    peer_share,
    redact_url,
)
from .commands import connect_for
from .loops import Stopper
from .progress import follow
from .render import format_bytes, format_duration, format_percent, transfer_json
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
        shown = ", ".join(map(redact_url, urls))
        result, elapsed = _run(bits, args, targets, JobType.DOWNLOAD, shown)
    if args.json:
        out.write(json.dumps(transfer_json("download", result, elapsed)) + "\n")
        return 0
    files = result.files
    out.write(
        f"Downloaded {len(files)} file(s), {format_bytes(result.bytes)} in "
        f"{format_duration(elapsed)}\n"
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


def cmd_upload(args: argparse.Namespace, out: TextIO) -> int:
    path = os.path.abspath(args.file)
    if not os.path.isfile(path):
        raise Failure(f"{path} is not a file: upload sends an existing file")
    args.password = password_for(args)
    headers_from_env(args)
    with connect_for(args) as bits:
        shown = redact_url(args.url)
        result, elapsed = _run(bits, args, [(args.url, path)], JobType.UPLOAD, shown)
    if args.json:
        out.write(json.dumps(transfer_json("upload", result, elapsed)) + "\n")
        return 0
    out.write(
        f"Uploaded {path} to {shown}, {format_bytes(result.bytes)} in {format_duration(elapsed)}\n"
    )
    return 0
