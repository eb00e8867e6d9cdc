"""The one implementation under Manager's four downloads (sync and asyncio, one file or
several) and the command line's download and upload: make the job (created, set, files
added, resumed), wait for it, read what it moved and complete it, check that every
downloaded file landed, and cancel the job on any failure."""

from __future__ import annotations

import contextlib
import ntpath
import os
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from . import _checks as checks
from ._errors import BG_S_PARTIAL_COMPLETE, BitsError, PartialCompleteError
from ._job import Job
from ._types import DownloadedFile, DownloadResult, JobType

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
    *,
    job_type: JobType = JobType.DOWNLOAD,
    setup: Callable[[Job], object] | None = None,
) -> Job:
    """The job of a transfer: created, set (``settings`` by name, then ``setup(job)``),
    its files added, resumed; cancelled if any of that fails. Appended to ``made`` once
    it is under way."""
    pairs = list(files)
    if not pairs or not all(isinstance(p, tuple) and len(p) == 2 for p in pairs):
        raise TypeError("files must be a non-empty sequence of (url, path) pairs")
    for key in settings:
        if not Job.settable(key):
            raise TypeError(f"{key!r} is not a job setting")
    title = name if name is not None else f"winbits download {ntpath.basename(pairs[0][1])}"
    with bits.transfer(title[: checks.MAX_NAME_LENGTH], job_type) as job:
        for key, value in settings.items():
            setattr(job, key, value)
        if setup is not None:
            setup(job)
        for url, path in pairs:
            job.add_file(url, path, overwrite=overwrite)
        job.resume()
    if made is not None:
        made.append(job)
    return job


def finish(job: Job) -> DownloadResult:
    """What a transferred job holds, read before complete() moves it into place (the job
    leaves the queue). A download whose files did not all land where they should, at
    the size BITS transferred, raises PartialCompleteError naming them."""
    got = []
    for f in job.files():
        p = f.progress
        done = 0 if p is None else p.bytes_transferred
        got.append(DownloadedFile(f.remote_name, f.local_name, done, f.peer_download_stats()))
    job_id = job.id
    downloads = job._job_type() == JobType.DOWNLOAD
    job.complete()
    missing = tuple(f.path for f in got if downloads and not _landed(f))
    if missing:
        raise PartialCompleteError(
            BG_S_PARTIAL_COMPLETE,
            f"BITS completed the job, but {', '.join(missing)} did not land",
            missing,
        )
    return DownloadResult(job_id, tuple(got))


def _landed(f: DownloadedFile) -> bool:
    return os.path.isfile(f.path) and os.path.getsize(f.path) == f.bytes


def transfer(
    bits: Manager,
    files: Iterable[tuple[str, str]],
    wait: Callable[[Job], object],
    *,
    name: str | None = None,
    overwrite: bool = False,
    settings: Mapping[str, Any] | None = None,
    job_type: JobType = JobType.DOWNLOAD,
    setup: Callable[[Job], object] | None = None,
) -> DownloadResult:
    """A whole transfer: start(), ``wait(job)`` until BITS has transferred it, finish();
    on any exception (KeyboardInterrupt too) the job is cancelled first."""
    job = start(bits, files, name, overwrite, settings or {}, job_type=job_type, setup=setup)
    try:
        wait(job)
        return finish(job)
    except BaseException:
        cancel_quietly(job)
        raise
