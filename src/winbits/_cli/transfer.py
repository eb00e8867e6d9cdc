"""The commands that move files: download and upload, each one BITS job followed to its
end with the progress line."""

from __future__ import annotations

import argparse
import ntpath
import os
import time
from typing import TextIO

from .._checks import MAX_NAME_LENGTH
from .._types import (
    JobType,
    peer_share,
    visible,
)
from .commands import connect_for
from .progress import follow
from .render import format_bytes, format_duration, format_percent
from .settings import apply_settings, password_for
from .targets import plan_targets
from .usage import UsageError


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
    password = password_for(args)
    name = args.name or f"winbits download {ntpath.basename(targets[0][1])}"
    with (
        connect_for(args) as bits,
        bits.transfer(name[:MAX_NAME_LENGTH]) as job,
    ):
        apply_settings(job, args, password)
        password = None
        for url, path in targets:
            job.add_file(url, path, overwrite=args.force)
        start = follow(job, args, ", ".join(urls), "download")  # the URLs, as failures name them
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
    password = password_for(args)
    name = args.name or f"winbits upload {ntpath.basename(path)}"
    with (
        connect_for(args) as bits,
        bits.transfer(name[:MAX_NAME_LENGTH], JobType.UPLOAD) as job,
    ):
        apply_settings(job, args, password)
        password = None
        job.add_file(args.url, path)
        start = follow(job, args, args.url, "upload")
        p = job.progress
        sent = p.bytes_transferred if p else 0
        job.complete()
    out.write(
        f"Uploaded {visible(path)} to {visible(args.url)}, {format_bytes(sent)} in "
        f"{format_duration(time.monotonic() - start)}\n"
    )
    return 0
