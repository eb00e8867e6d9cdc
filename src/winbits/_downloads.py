"""The one implementation under Manager's four downloads (sync and asyncio, one file or
several) and the command line's download and upload: make the job (created, set, files
added, resumed), wait for it, read what it moved and complete it, check that every
downloaded file landed, and cancel the job on any failure."""

from __future__ import annotations

import contextlib
import math
import ntpath
import os
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from . import _checks as checks
from ._errors import BG_S_PARTIAL_COMPLETE, BitsError, NotSupportedError, PartialCompleteError
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
    limits: tuple[float | None, float | None] = (None, None),
) -> Job:
    """The job of a transfer: created, set (BITS' own limits from ``limits``, the wait's
    (timeout, stall_timeout); then ``settings`` by name; then ``setup(job)``), its files
    added, resumed; cancelled if any of that fails. Appended to ``made`` once it is under
    way (before this returns), so that a caller interrupted at any moment finds it to
    cancel."""
    pairs = list(files)
    if not pairs or not all(isinstance(p, tuple) and len(p) == 2 for p in pairs):
        raise TypeError("files must be a non-empty sequence of (url, path) pairs")
    for key in settings:
        if not Job.settable(key):
            raise TypeError(f"{key!r} is not a job setting")
    title = name if name is not None else f"winbits download {ntpath.basename(pairs[0][1])}"
    with bits.transfer(title[: checks.MAX_NAME_LENGTH], job_type) as job:
        set_limits(job, *limits)
        for key, value in settings.items():
            setattr(job, key, value)
        if settings.get("custom_headers"):
            headers_write_only(job)
        if setup is not None:
            setup(job)
        for url, path in pairs:
            job.add_file(url, path, overwrite=overwrite)
        job.resume()
        if made is not None:  # inside: no moment where neither we nor the caller cancels
            made.append(job)
    return job


def headers_write_only(job: Job) -> None:
    """The custom headers of a job winbits made, write-only where this BITS can (10.3):
    no other program reads a token back from the queue; older BITS sends them all the
    same."""
    with contextlib.suppress(NotSupportedError):
        job.make_custom_headers_write_only()


# BITS' own limits end a job a while after the wait that made it would have: the wait
# reports first, and a job whose process was killed still ends by itself.
LIMIT_SLACK = 60


def set_limits(job: Job, timeout: float | None, stall_timeout: float | None) -> None:
    """BITS' own limits for a job winbits made, from the wait's: the whole job at most
    ``timeout`` (maximum_download_time, BITS 3.0), and no progress for ``stall_timeout``
    (no_progress_timeout, which BITS counts while it retries an error), each with
    LIMIT_SLACK seconds more. Where this BITS lacks them, the wait's limits are all."""
    for name, limit in (("maximum_download_time", timeout), ("no_progress_timeout", stall_timeout)):
        if limit is not None:
            seconds = min(math.ceil(limit) + LIMIT_SLACK, checks.MAX_ULONG)
            with contextlib.suppress(NotSupportedError):
                setattr(job, name, seconds)


def finish(job: Job, overwrite: bool = False) -> DownloadResult:
    """What a transferred job holds, read before complete() moves it into place (the job
    leaves the queue). Unless ``overwrite``, a download is not completed when something
    appeared at one of its files' paths while it transferred (BITS would replace it):
    FileExistsError naming it, and the caller cancels the job. A download whose files
    did not all land, at the size BITS transferred, raises PartialCompleteError."""
    got = []
    for f in job.files():
        p = f.progress
        done = 0 if p is None else p.bytes_transferred
        got.append(DownloadedFile(f.remote_name, f.local_name, done, f.peer_download_stats()))
    job_id = job.id
    downloads = job._job_type() == JobType.DOWNLOAD
    for landing in got if downloads and not overwrite else ():
        if os.path.lexists(landing.path):  # checked at add_file; looked at again now
            raise FileExistsError(
                f"{landing.path} appeared while the job transferred: the download was not "
                "put in its place"
            )
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
    limits: tuple[float | None, float | None] = (None, None),
) -> DownloadResult:
    """A whole transfer: start(), ``wait(job)`` until BITS has transferred it, finish();
    on any exception (KeyboardInterrupt too) the job is cancelled first, from the moment
    start() hands it over."""
    made: list[Job] = []
    try:
        start(
            bits,
            files,
            name,
            overwrite,
            settings or {},
            made,
            job_type=job_type,
            setup=setup,
            limits=limits,
        )
        wait(made[0])
        return finish(made[0], overwrite)
    except BaseException:
        if made:
            cancel_quietly(made[0])
        raise
