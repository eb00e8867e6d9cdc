"""connect() -> Manager: the connection to BITS, the jobs it gives, the downloads (whose
one implementation is _downloads.py), and the fast snapshot and poller."""

from __future__ import annotations

import contextlib
import functools
import uuid
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING

from . import _checks as checks
from . import _downloads
from ._aio import off_loop
from ._errors import E_NOTIMPL, NotSupportedError, from_hresult
from ._job import Job
from ._load import native
from ._poller import DEFAULT_THREADS, Poller
from ._types import DownloadResult, JobProgress, JobType, Snapshot

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from . import _native as native_types
    from ._settings import JobSettings


def bits_version() -> tuple[int, int]:
    """(major, minor) of the BITS here: the newest per-version manager class that can
    be created (Windows 10 and 11: (10, 3); Wine registers only 1.0)."""
    major, minor = native().bits_version()
    return (int(major), int(minor))


def connect(clsid: uuid.UUID | str | None = None) -> Manager:
    """A connection to the BITS manager, to use as a context manager. ``clsid`` picks
    another COM class (a test double, or a version-specific manager class)."""
    key = None if clsid is None else checks.guid_bytes(clsid, "clsid")
    return Manager(native().connect(key), bits_itself=clsid is None)


class Manager:
    """A connection to BITS (IBackgroundCopyManager). Close it, or use ``with``."""

    __slots__ = ("_bits_itself", "_native")

    def __init__(self, native: native_types.Manager, *, bits_itself: bool = False) -> None:
        self._native = native
        self._bits_itself = bits_itself  # BITS' own class, whose version bits_version() tells

    def __enter__(self) -> Manager:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<winbits.Manager {'closed' if self.closed else 'open'}>"

    @property
    def closed(self) -> bool:
        return bool(self._native.closed)

    def close(self) -> None:
        """Release the manager; its jobs and files raise ValueError from then on."""
        self._native.close()

    def jobs(self, all_users: bool = False) -> list[Job]:
        """The jobs in the queue: the current user's, or every user's (administrators
        only; otherwise AccessDeniedError)."""
        if not isinstance(all_users, bool):
            raise TypeError("all_users must be bool")
        return [Job(j) for j in self._native.jobs(all_users)]

    def get_job(self, job_id: uuid.UUID | str) -> Job:
        """The job with this id; JobNotFoundError if there is none."""
        return Job(self._native.get_job(checks.guid_bytes(job_id, "job id")))

    def create_job(self, name: str, type: JobType = JobType.DOWNLOAD) -> Job:
        """A new job, SUSPENDED: add files, then resume(). ``name`` is at most 256
        characters (BITS' limit)."""
        checks.text(name, "name", checks.MAX_NAME_LENGTH)
        if not checks.is_member(type, JobType):
            raise ValueError(f"type must be a JobType, not {type!r}")
        # Upload jobs came with BITS 1.5. A BITS that offers only 1.0's class may take one
        # and run it as a download: Wine's fetched the URL over the local file (seen here).
        if type != JobType.DOWNLOAD and self._bits_itself and bits_version() < (1, 5):
            raise NotSupportedError(
                E_NOTIMPL, "upload jobs need BITS 1.5; this BITS offers 1.0 only"
            )
        return Job(self._native.create_job(name, int(type)), int(type), created=True)

    @contextlib.contextmanager
    def transfer(self, name: str, type: JobType = JobType.DOWNLOAD) -> Iterator[Job]:
        """``with bits.transfer(name) as job:`` a new job that is cancelled if the block
        raises (KeyboardInterrupt too), and left alone if it ends: for callers who take
        the steps themselves (add files, resume, wait, complete)."""
        job = self.create_job(name, type)
        try:
            yield job
        except BaseException:
            _downloads.cancel_quietly(job)
            raise

    def download(
        self,
        url: str,
        path: str,
        *,
        name: str | None = None,
        timeout: float | None = None,
        on_progress: Callable[[JobProgress], object] | None = None,
        overwrite: bool = False,
        poll_interval: float = 5.0,
        stall_timeout: float | None = None,
        **settings: Unpack[JobSettings],
    ) -> DownloadResult:
        """Download one URL to ``path`` through a BITS job of its own, and wait for it:
        create, add, resume, wait (Job.wait: ``timeout``, ``stall_timeout``,
        ``on_progress``, ``poll_interval``), complete. ``settings`` are job properties
        set before the file is added (``priority=``, ``custom_headers=``, ``proxy=``…).
        On any exception, KeyboardInterrupt, TimeoutError and JobFailedError among them,
        the job is cancelled first: nothing is left in the queue and no file lands."""
        return self.download_files(
            [(url, path)],
            name=name,
            timeout=timeout,
            on_progress=on_progress,
            overwrite=overwrite,
            poll_interval=poll_interval,
            stall_timeout=stall_timeout,
            **settings,
        )

    def download_files(
        self,
        files: Iterable[tuple[str, str]],
        *,
        name: str | None = None,
        timeout: float | None = None,
        on_progress: Callable[[JobProgress], object] | None = None,
        overwrite: bool = False,
        poll_interval: float = 5.0,
        stall_timeout: float | None = None,
        **settings: Unpack[JobSettings],
    ) -> DownloadResult:
        """download() of several (url, path) pairs in one job."""
        checks.wait_args(timeout, on_progress, 0.5, poll_interval, stall_timeout)
        return _downloads.transfer(
            self,
            files,
            lambda job: job.wait(
                timeout,
                on_progress=on_progress,
                poll_interval=poll_interval,
                stall_timeout=stall_timeout,
            ),
            name=name,
            overwrite=overwrite,
            settings=settings,
            limits=(timeout, stall_timeout),
        )

    async def download_async(
        self,
        url: str,
        path: str,
        *,
        name: str | None = None,
        timeout: float | None = None,
        on_progress: Callable[[JobProgress], object] | None = None,
        overwrite: bool = False,
        poll_interval: float = 5.0,
        stall_timeout: float | None = None,
        **settings: Unpack[JobSettings],
    ) -> DownloadResult:
        """download() for asyncio: BITS' calls run on the loop's default executor and
        the wait is Job.wait_async(). Cancelling the task that awaits it cancels the job
        (before the CancelledError propagates), as any other exception does."""
        return await self.download_files_async(
            [(url, path)],
            name=name,
            timeout=timeout,
            on_progress=on_progress,
            overwrite=overwrite,
            poll_interval=poll_interval,
            stall_timeout=stall_timeout,
            **settings,
        )

    async def download_files_async(
        self,
        files: Iterable[tuple[str, str]],
        *,
        name: str | None = None,
        timeout: float | None = None,
        on_progress: Callable[[JobProgress], object] | None = None,
        overwrite: bool = False,
        poll_interval: float = 5.0,
        stall_timeout: float | None = None,
        **settings: Unpack[JobSettings],
    ) -> DownloadResult:
        """download_async() of several (url, path) pairs in one job."""
        checks.wait_args(timeout, on_progress, 0.5, poll_interval, stall_timeout)
        made: list[Job] = []  # the job, even when the task is cancelled as it is made
        try:
            start = functools.partial(_downloads.start, limits=(timeout, stall_timeout))
            await off_loop(start, self, list(files), name, overwrite, settings, made)
            job = made[0]
            await job.wait_async(
                timeout,
                on_progress=on_progress,
                poll_interval=poll_interval,
                stall_timeout=stall_timeout,
            )
            return await off_loop(_downloads.finish, job, overwrite)
        except BaseException:
            if made:
                await off_loop(_downloads.cancel_quietly, made[0])
            raise

    def snapshot(self, all_users: bool = False, *, threads: int = DEFAULT_THREADS) -> Snapshot:
        """Every job, file and peer count in one walk done in C++ with the GIL released,
        with the fewest calls BITS allows (see Poller)."""
        return self.poller(all_users, threads=threads).poll()

    def poller(self, all_users: bool = False, *, threads: int = DEFAULT_THREADS) -> Poller:
        """A poller: its first poll() is a snapshot; each further poll() asks BITS again
        only for what can have moved (a couple of calls per job when nothing did).
        ``threads``: jobs are read side by side on up to that many threads, each taking
        4 jobs at least (round trips to the service overlap; see docs/performance.md)."""
        if not isinstance(all_users, bool):
            raise TypeError("all_users must be bool")
        return Poller(self._native.poller(all_users), threads)

    def describe(self, hresult: int) -> str:
        """BITS' text for an HRESULT, else the system's, else its name."""
        if not isinstance(hresult, int) or not -(2**31) <= hresult < 2**32:
            raise ValueError("hresult must be a 32-bit integer")
        return self._native.describe(hresult & 0xFFFFFFFF) or str(from_hresult(hresult).strerror)
