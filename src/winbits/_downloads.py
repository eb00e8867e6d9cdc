"""The one implementation under Manager's four downloads (sync and asyncio, one file or
several): make the job (created, set, files added, resumed), read what landed and
complete it, and cancel it on any failure."""

from __future__ import annotations

import contextlib
import ntpath
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from . import _checks as checks
from ._errors import BitsError
from ._job import Job
from ._types import DownloadedFile, DownloadResult

if TYPE_CHECKING:
    from ._manager import Manager


def cancel_quietly(job: Job) -> None:
    """Cancel a job of ours after a failure; one completed or gone meanwhile is left."""
    with contextlib.suppress(BitsError):
        job.cancel()


def start(
    bits: Manager,
    files: Iterable[tuple[str, str]],
    name: str | None,
    overwrite: bool,
    settings: Mapping[str, Any],
    made: list[Job] | None = None,
) -> Job:
    """The job of a download: created, set, its files added, resumed; cancelled if
    any of that fails. Appended to ``made`` once it is under way."""
    pairs = list(files)
    if not pairs or not all(isinstance(p, tuple) and len(p) == 2 for p in pairs):
        raise TypeError("files must be a non-empty sequence of (url, path) pairs")
    for key in settings:
        if not Job.settable(key):
            raise TypeError(f"{key!r} is not a job setting")
    title = name if name is not None else f"winbits download {ntpath.basename(pairs[0][1])}"
    with bits.transfer(title[: checks.MAX_NAME_LENGTH]) as job:
        for key, value in settings.items():
            setattr(job, key, value)
        for url, path in pairs:
            job.add_file(url, path, overwrite=overwrite)
        job.resume()
    if made is not None:
        made.append(job)
    return job


def finish(job: Job) -> DownloadResult:
    """What a transferred download job holds, read before complete() moves it into place
    (the job leaves the queue)."""
    got = []
    for f in job.files():
        p = f.progress
        done = 0 if p is None else p.bytes_transferred
        got.append(DownloadedFile(f.remote_name, f.local_name, done, f.peer_download_stats()))
    job_id = job.id
    job.complete()
    return DownloadResult(job_id, tuple(got))
