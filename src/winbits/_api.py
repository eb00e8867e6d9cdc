"""The public object API: connect() -> Manager -> Job -> File, over winbits._native.

Each property read is one BITS call (a round trip to the service), read live; ids are
remembered because they never change. Arguments are checked here, before any COM call.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import ntpath
import os
import sys
import threading
import time
import uuid
import warnings
from collections.abc import (
    AsyncIterator,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from enum import IntEnum
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeGuard

from ._errors import (
    BitsError,
    InvalidStateError,
    JobFailedError,
    NotSupportedError,
    PartialCompleteError,
    from_hresult,
)
from ._types import (
    AuthScheme,
    CertStoreLocation,
    ClientCertificate,
    CostFlags,
    CredentialTarget,
    DownloadedFile,
    DownloadResult,
    ErrorContext,
    FileProgress,
    FileRange,
    JobError,
    JobPriority,
    JobProgress,
    JobProperties,
    JobRecord,
    JobState,
    JobTimes,
    JobType,
    PeerCaching,
    PeerStats,
    ProxySettings,
    ProxyUsage,
    ReplyProgress,
    SecurityFlags,
    Snapshot,
    as_enum,
    filetime_to_datetime,
    job_record,
    size_or_none,
)

if TYPE_CHECKING:
    from . import _native as native_types

try:
    from . import _native
except ImportError:
    if sys.platform == "win32":
        raise  # a broken install on Windows must be loud
    _native = None  # type: ignore[assignment,unused-ignore]

DEFAULT_THREADS = 4  # measured: benchmarks/bench.py, cold snapshot against Wine's BITS
# BG_FILE_INFO: a URL of at most 2,200 characters; a local path of at most MAX_PATH, with
# no wildcards and no \\?\ prefix (each without the terminating NUL).
MAX_URL_LENGTH = 2200
MAX_PATH = 260
MAX_NAME_LENGTH = 256  # a job's display name
MAX_DESCRIPTION_LENGTH = 1024
MAX_USERNAME_LENGTH = 300  # BG_BASIC_CREDENTIALS' limits
MAX_PASSWORD_LENGTH = 65536
MAX_ULONG = 0xFFFFFFFF
MAX_UINT64 = 2**64 - 1
LENGTH_TO_EOF = MAX_UINT64  # BG_LENGTH_TO_EOF
E_NOINTERFACE = 0x80004002
E_NOTIMPL = 0x80004001
BG_E_INVALID_STATE = 0x80200002
BG_E_ERROR_INFORMATION_UNAVAILABLE = 0x8020000F
# GetClientCertificate when the job has none: RPC_X_BAD_STUB_DATA (Windows), or
# RPC_X_NULL_REF_POINTER where the server sets no out value and the stub cannot send it
# back (Wine's E_NOTIMPL).
NO_CLIENT_CERTIFICATE = (0x800706F7, 0x800706F4)
ERROR_NOT_SUPPORTED = 0x80070032
ERROR_NOACCESS = 0x800703E6
BG_S_PARTIAL_COMPLETE = 0x00200017
BG_S_UNABLE_TO_DELETE_FILES = 0x0020001A


def _check_url(url: object) -> None:
    """What BITS can fetch: http and https URLs with a host, and UNC paths (SMB), of at
    most MAX_URL_LENGTH characters."""
    url = _text(url, "url")
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"url is {len(url)} characters; BITS takes {MAX_URL_LENGTH} at most")
    if url.startswith("\\\\"):
        parts = url[2:].split("\\")
        if len(parts) < 3 or not all(parts[:2]) or any(c in url for c in '/*?"<>|'):
            raise ValueError(f"not a UNC path to a file (\\\\server\\share\\file): {url!r}")
        return
    scheme, sep, rest = url.partition("://")
    host = rest.split("/", 1)[0]
    if not sep or scheme.lower() not in ("http", "https") or not host:
        raise ValueError(f"BITS takes http://, https:// URLs or UNC paths, not {url!r}")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise ValueError(f"a URL must not contain spaces or control characters: {url!r}")


def _require_native() -> Any:  # the module; Any because it is absent off Windows
    if _native is None:
        raise NotSupportedError(
            ERROR_NOT_SUPPORTED,
            f"winbits needs Windows: BITS is a Windows service (this is {sys.platform})",
        )
    return _native


def _guid_bytes(value: uuid.UUID | str, what: str) -> bytes:
    if isinstance(value, uuid.UUID):
        return value.bytes_le
    if isinstance(value, str):
        try:
            return uuid.UUID(value).bytes_le
        except ValueError:
            raise ValueError(f"{what} is not a GUID: {value!r}") from None
    raise TypeError(f"{what} must be a uuid.UUID or str, not {type(value).__name__}")


def _text(value: object, what: str, limit: int | None = None) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be str, not {type(value).__name__}")
    if limit is not None and len(value) > limit:
        raise ValueError(f"{what} is {len(value)} characters; BITS takes {limit}")
    return value


def _is_member(value: object, cls: type[IntEnum]) -> TypeGuard[int]:
    """Whether value is one of cls's numbers (a bool is not)."""
    return isinstance(value, int) and not isinstance(value, bool) and value in set(cls)


def _auth(target: object, scheme: object) -> tuple[int, int]:
    """(target, scheme) as BITS' numbers; ValueError for one BITS does not know."""
    for value, cls in ((target, CredentialTarget), (scheme, AuthScheme)):
        if not _is_member(value, cls):
            raise ValueError(f"{cls.__name__} must be one of {[m.name for m in cls]}: {value!r}")
    return int(target), int(scheme)  # type: ignore[call-overload]


_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def format_headers(headers: Mapping[str, str]) -> str:
    """The CRLF-separated "Name: value" lines BITS takes. A name must be an HTTP token; a
    value must not hold CR, LF or NUL (they would smuggle in more headers). The errors
    name the header, never its value."""
    if not isinstance(headers, Mapping):
        raise TypeError(f"headers must be a mapping of name to value, not {type(headers).__name__}")
    lines = []
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError("header names and values must be str")
        if not name or not _TOKEN.issuperset(name):
            raise ValueError(f"not an HTTP header name: {name!r}")
        if any(c in value for c in "\r\n\0"):
            raise ValueError(f"the value of header {name!r} holds CR, LF or NUL")
        lines.append(f"{name}: {value}")
    return "\r\n".join(lines)


class _needs:
    """Turns E_NOINTERFACE from a call into a NotSupportedError that names the BITS
    version and interface it needs."""

    def __init__(self, version: str, interface: str) -> None:
        self.version, self.interface = version, interface

    def __enter__(self) -> None:
        pass

    def __exit__(self, kind: object, error: BaseException | None, tb: object) -> None:
        if isinstance(error, NotSupportedError) and error.hresult == E_NOINTERFACE:
            raise NotSupportedError(
                E_NOINTERFACE, f"this BITS lacks {self.interface} (BITS {self.version})"
            ) from None


_NO_NEEDS = _needs("1.0", "IBackgroundCopyJob")
_JOB2 = _needs("2.0", "IBackgroundCopyJob2")
_HTTP = _needs("2.5", "IBackgroundCopyJobHttpOptions")
_HTTP2 = _needs("10.2", "IBackgroundCopyJobHttpOptions2")
_JOB3 = _needs("3.0", "IBackgroundCopyJob3")
_JOB4 = _needs("3.0", "IBackgroundCopyJob4")
_JOB5 = _needs("5.0", "IBackgroundCopyJob5")
_FILE2 = _needs("2.0", "IBackgroundCopyFile2")
_FILE3 = _needs("3.0", "IBackgroundCopyFile3")
_FILE5 = _needs("5.0", "IBackgroundCopyFile5")


def parse_headers(text: str | None) -> dict[str, str]:
    """CRLF-separated "Name: value" lines as a dict; a line without a colon (a status
    line) is skipped, and a header given twice keeps both values, joined by ", "."""
    headers: dict[str, str] = {}
    for line in (text or "").split("\r\n"):
        name, sep, value = line.partition(":")
        name, value = name.strip(), value.strip()
        if sep and name:
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def _http_method(value: object, what: str) -> str:
    text = _text(value, what)
    if not text or not _TOKEN.issuperset(text):
        raise ValueError(f"{what} must be an HTTP method (a token such as GET), not {text!r}")
    return text


def _file_ranges(ranges: object) -> list[tuple[int, int]]:
    """(offset, length) pairs for AddFileWithRanges: whole numbers, not overlapping,
    within 64 bits; a length of None (to the end of the file) only for the last."""
    if isinstance(ranges, (str, bytes)) or not isinstance(ranges, Sequence):
        raise TypeError("ranges must be a sequence of (offset, length) pairs")
    out = []
    for item in ranges:
        if not isinstance(item, tuple) or len(item) != 2:
            raise TypeError(f"a range is an (offset, length) pair, not {item!r}")
        offset, length = item
        for what, v in (("offset", offset), ("length", length)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
                raise TypeError(f"a range's {what} must be an int, not {v!r}")
        if offset is None or offset < 0 or (length is not None and length <= 0):
            raise ValueError(f"a range needs an offset >= 0 and a length > 0: {item!r}")
        end = MAX_UINT64 if length is None else offset + length
        if end > MAX_UINT64 or (length is not None and length >= LENGTH_TO_EOF):
            raise ValueError(f"a range must end within 64 bits: {item!r}")
        out.append((offset, LENGTH_TO_EOF if length is None else length, end))
    if not out:
        raise ValueError("ranges must not be empty (leave it out for the whole file)")
    out.sort()
    for (_, _, end), (offset, _, _) in itertools.pairwise(out):
        if offset < end:
            raise ValueError("ranges must not overlap")
    return [(offset, length) for offset, length, _ in out]


def _number(value: object, what: str, kind: str, allowed: int = MAX_UINT64) -> int:
    """value as an int from 0 to allowed; TypeError naming `kind` for a non-int (a bool
    too), ValueError outside the range."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be {kind}, not {type(value).__name__}")
    if not 0 <= value <= allowed:
        raise ValueError(f"{what} must be 0 to {allowed}, not {value}")
    return value


def _seconds(value: object, what: str) -> int:
    """A count of seconds (or milliseconds) BITS keeps in a ULONG."""
    return _number(value, what, "a whole number", MAX_ULONG)


def _uint64(value: object, what: str) -> int:
    return _number(value, what, "an int")


def _peer_flags(value: object, what: str) -> int:
    return _number(value, what, "PeerCaching flags", int(PeerCaching(7)))


def _security_flags(value: object, what: str) -> int:
    value = _number(value, what, "SecurityFlags", MAX_ULONG)
    if value & ~0xB1F or (value & 0x700) not in (0, 0x100, 0x200):  # 0x700: redirects
        raise ValueError(f"{what} takes SecurityFlags, with one redirect policy: {value:#x}")
    return value


def _cost_flags(value: object, what: str) -> int:
    value = _number(value, what, "CostFlags", MAX_ULONG)
    if value == 0 or value & ~0x800000FF:
        raise ValueError(f"{what} takes CostFlags (at least one network cost): {value:#x}")
    return value


def _job5(property_id: int, **kw: Any) -> _Setting:
    """An IBackgroundCopyJob5 property (BITS_JOB_PROPERTY_ID property_id) as a setting."""
    return _Setting("property", args=(property_id,), needs=_JOB5, **kw)


def _flag(value: object, what: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{what} must be a bool, not {type(value).__name__}")
    return value


def _stored_target(value: object, what: str) -> int:
    if not _is_member(value, CredentialTarget):
        raise ValueError(f"{what} takes a CredentialTarget, not {value!r}")
    return value


def _optional_text(value: object, what: str) -> str | None:
    return None if value is None else _text(value, what)


class _Setting:
    """A job setting read live from BITS and, where it has a setter, written through it:
    one line per property in Job. A getter this BITS does not implement reads None; a
    setter it does not implement raises NotSupportedError, as does an interface it lacks."""

    def __init__(
        self,
        native: str,
        *,
        check: Callable[[object, str], object] | None = None,
        build: Callable[[Any], object] | None = None,
        needs: _needs = _NO_NEEDS,
        args: tuple[int, ...] = (),
        doc: str = "",
    ) -> None:
        self.native, self.check, self.build, self.needs = native, check, build, needs
        self.args = args  # leading arguments of both calls: a Job5 property's id
        self.__doc__ = doc

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, job: Job | None, owner: type | None = None) -> Any:
        if job is None:
            return self
        with self.needs:
            value = getattr(job._native, self.native)(*self.args)
        return value if value is None or self.build is None else self.build(value)

    def __set__(self, job: Job, value: object) -> None:
        if self.check is None:
            raise AttributeError(f"{self.name} is read-only")
        checked = self.check(value, self.name)
        with self.needs:
            getattr(job._native, "set_" + self.native)(*self.args, checked)


def _settable(name: str) -> bool:
    """Whether Job has a setting of this name that can be set."""
    attr = vars(Job).get(name)
    if isinstance(attr, property):
        return attr.fset is not None
    return isinstance(attr, _Setting) and attr.check is not None


def bits_version() -> tuple[int, int]:
    """(major, minor) of the BITS here: the newest per-version manager class that can
    be created (Windows 10 and 11: (10, 3); Wine registers only 1.0)."""
    major, minor = _require_native().bits_version()
    return (int(major), int(minor))


def connect(clsid: uuid.UUID | str | None = None) -> Manager:
    """A connection to the BITS manager, to use as a context manager. ``clsid`` picks
    another COM class (a test double, or a version-specific manager class)."""
    native = _require_native()
    key = None if clsid is None else _guid_bytes(clsid, "clsid")
    return Manager(native.connect(key), bits_itself=clsid is None)


def _check_wait(
    timeout: object,
    on_progress: object,
    progress_interval: object,
    poll_interval: object,
    stall_timeout: object = None,
) -> None:
    """The arguments of the waits, checked before any call."""
    for what, value in (("progress_interval", progress_interval), ("poll_interval", poll_interval)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{what} must be a number of seconds")
        if not 0 < value < 2**31 / 1000:
            raise ValueError(f"{what} must be more than 0 seconds")
    for what, value in (("timeout", timeout), ("stall_timeout", stall_timeout)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{what} must be a number of seconds or None")
        if not value >= 0:
            raise ValueError(f"{what} must be 0 seconds or more")
    if on_progress is not None and not callable(on_progress):
        raise TypeError("on_progress must be callable")


def _cancel_quietly(job: Job) -> None:
    """Cancel a job of ours after a failure; one completed or gone meanwhile is left."""
    with contextlib.suppress(BitsError):
        job.cancel()


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
        return Job(self._native.get_job(_guid_bytes(job_id, "job id")))

    def create_job(self, name: str, type: JobType = JobType.DOWNLOAD) -> Job:
        """A new job, SUSPENDED: add files, then resume(). ``name`` is at most 256
        characters (BITS' limit)."""
        _text(name, "name", MAX_NAME_LENGTH)
        if not _is_member(type, JobType):
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
            _cancel_quietly(job)
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
        **settings: Any,
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
        **settings: Any,
    ) -> DownloadResult:
        """download() of several (url, path) pairs in one job."""
        _check_wait(timeout, on_progress, 0.5, poll_interval, stall_timeout)
        job = self._start_download(files, name, overwrite, settings)
        try:
            job.wait(
                timeout,
                on_progress=on_progress,
                poll_interval=poll_interval,
                stall_timeout=stall_timeout,
            )
            return _finish_download(job)
        except BaseException:
            _cancel_quietly(job)
            raise

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
        **settings: Any,
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
        **settings: Any,
    ) -> DownloadResult:
        """download_async() of several (url, path) pairs in one job."""
        from ._aio import off_loop

        _check_wait(timeout, on_progress, 0.5, poll_interval, stall_timeout)
        made: list[Job] = []  # the job, even when the task is cancelled as it is made
        try:
            await off_loop(self._start_download, list(files), name, overwrite, settings, made)
            job = made[0]
            await job.wait_async(
                timeout,
                on_progress=on_progress,
                poll_interval=poll_interval,
                stall_timeout=stall_timeout,
            )
            return await off_loop(_finish_download, job)
        except BaseException:
            if made:
                await off_loop(_cancel_quietly, made[0])
            raise

    def _start_download(
        self,
        files: Iterable[tuple[str, str]],
        name: str | None,
        overwrite: bool,
        settings: dict[str, Any],
        made: list[Job] | None = None,
    ) -> Job:
        """The job of a download: created, set, its files added, resumed; cancelled if
        any of that fails. Appended to ``made`` once it is under way."""
        pairs = list(files)
        if not pairs or not all(isinstance(p, tuple) and len(p) == 2 for p in pairs):
            raise TypeError("files must be a non-empty sequence of (url, path) pairs")
        for key in settings:
            if not _settable(key):
                raise TypeError(f"{key!r} is not a job setting")
        title = name if name is not None else f"winbits download {ntpath.basename(pairs[0][1])}"
        with self.transfer(title[:MAX_NAME_LENGTH]) as job:
            for key, value in settings.items():
                setattr(job, key, value)
            for url, path in pairs:
                job.add_file(url, path, overwrite=overwrite)
            job.resume()
        if made is not None:
            made.append(job)
        return job

    def snapshot(self, all_users: bool = False, *, threads: int = DEFAULT_THREADS) -> Snapshot:
        """Every job, file and peer count in one walk done in C++ with the GIL released,
        with the fewest calls BITS allows (see Poller)."""
        return self.poller(all_users, threads=threads).poll()

    def poller(self, all_users: bool = False, *, threads: int = DEFAULT_THREADS) -> Poller:
        """A poller: its first poll() is a snapshot; each further poll() asks BITS again
        only for what can have moved (a couple of calls per job when nothing did).
        ``threads``: jobs are read side by side on up to that many threads, each taking
        4 jobs at least (round trips to the service overlap; see the README's figures)."""
        if not isinstance(all_users, bool):
            raise TypeError("all_users must be bool")
        return Poller(self._native.poller(all_users), threads)

    def describe(self, hresult: int) -> str:
        """BITS' text for an HRESULT, else the system's, else its name."""
        if not isinstance(hresult, int) or not -(2**31) <= hresult < 2**32:
            raise ValueError("hresult must be a 32-bit integer")
        return self._native.describe(hresult & 0xFFFFFFFF) or str(from_hresult(hresult).strerror)


def _finish_download(job: Job) -> DownloadResult:
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


class Poller:
    """Polls the BITS queue cheaply. It remembers what cannot change (ids, names,
    owners, and the COM objects of jobs and files), reads a job's files again only when
    the job's state or progress moved, and never reads a completed file's counters
    again. New and vanished jobs are always noticed. One poller may be shared by
    threads: polls take turns, so each change is reported to exactly one of them."""

    __slots__ = ("_lock", "_native", "_records", "_threads")

    def __init__(self, native: native_types.Poller, threads: int = DEFAULT_THREADS) -> None:
        if not isinstance(threads, int) or isinstance(threads, bool) or not 1 <= threads <= 64:
            raise ValueError("threads must be an int from 1 to 64")
        self._native = native
        self._threads = threads
        self._records: dict[bytes, JobRecord] = {}
        self._lock = threading.Lock()

    def poll(self) -> Snapshot:
        with self._lock:  # the native walk and the merge into _records are one step
            return self._poll()

    def _poll(self) -> Snapshot:
        order, changed = self._native.poll(self._threads)
        previous = self._records
        records = {}
        added, moved = set(), set()
        fresh = {raw[0]: job_record(raw) for raw in changed}
        for key in order:
            record = fresh.get(key)
            if record is None:
                record = previous[key]
            elif key in previous:
                moved.add(record.id)
            else:
                added.add(record.id)
            records[key] = record
        removed = frozenset(r.id for k, r in previous.items() if k not in records)
        self._records = records
        return Snapshot(tuple(records.values()), frozenset(added), frozenset(moved), removed)


class Job:
    """A BITS job. Properties are read live from BITS; None where this BITS does not
    implement them (E_NOTIMPL)."""

    __slots__ = ("_created", "_id", "_native", "_type")

    def __init__(
        self, native: native_types.Job, job_type: int | None = None, *, created: bool = False
    ) -> None:
        self._native = native
        self._id: uuid.UUID | None = None
        self._type = job_type
        # Made by create_job in this process: wait() may register its callback on it.
        # Never on another program's job: BITS keeps one callback per job, the last set.
        self._created = created

    def __repr__(self) -> str:
        return f"<winbits.Job {self.id}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Job) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def id(self) -> uuid.UUID:
        if self._id is None:
            self._id = uuid.UUID(bytes_le=self._native.id())
        return self._id

    @property
    def name(self) -> str:
        """The display name ("" where not implemented)."""
        return self._native.name() or ""

    @name.setter
    def name(self, value: str) -> None:
        name = _text(value, "name", MAX_NAME_LENGTH)
        self._native.set_name(name)

    @property
    def description(self) -> str | None:
        """The description ("" where none was set)."""
        try:
            return self._native.description()
        except BitsError as e:
            # Wine's service faults copying a description that was never set and answers
            # ERROR_NOACCESS (docs/testbed.md); Windows answers "" for such a job.
            if e.hresult != ERROR_NOACCESS:
                raise
            return ""

    @description.setter
    def description(self, value: str) -> None:
        text = _text(value, "description", MAX_DESCRIPTION_LENGTH)
        self._native.set_description(text)

    @property
    def owner(self) -> str | None:
        """The owner's SID as a string; None where not implemented (Wine)."""
        return self._native.owner()

    @property
    def type(self) -> JobType | int | None:
        v = self._native.type()
        return None if v is None else as_enum(JobType, v)

    @property
    def state(self) -> JobState | int:
        state = self._native.state()
        if state is None:  # every BITS implements GetState; a server that does not is broken
            raise NotSupportedError(0x80004001, "this BITS does not report job states")
        return as_enum(JobState, state)

    @property
    def priority(self) -> JobPriority | int | None:
        v = self._native.priority()
        return None if v is None else as_enum(JobPriority, v)

    @priority.setter
    def priority(self, value: JobPriority | int) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"priority must be a JobPriority, not {type(value).__name__}")
        priority = JobPriority(value)  # ValueError outside 0-3
        self._native.set_priority(priority)

    minimum_retry_delay = _Setting(
        "minimum_retry_delay",
        check=_seconds,
        doc="Seconds BITS waits after a transient error before it tries again.",
    )
    no_progress_timeout = _Setting(
        "no_progress_timeout",
        check=_seconds,
        doc="Seconds without progress after which a transient error becomes ERROR.",
    )
    maximum_download_time = _Setting(
        "maximum_download_time",
        check=_seconds,
        needs=_JOB4,
        doc="Seconds the job may take in all before it fails (0: no limit; BITS 3.0).",
    )
    peer_caching = _Setting(
        "peer_caching",
        check=_peer_flags,
        build=PeerCaching,
        needs=_JOB4,
        doc="PeerCaching flags; PeerCaching.DISABLE_BRANCH_CACHE keeps this job's bytes "
        "from BranchCache peers (BITS 3.0).",
    )
    owner_integrity_level = _Setting(
        "owner_integrity_level", needs=_JOB4, doc="The owner's integrity level (BITS 3.0)."
    )
    owner_elevated = _Setting(
        "owner_elevated", needs=_JOB4, doc="Whether the owner was elevated (BITS 3.0)."
    )
    error_count = _Setting("error_count", doc="How many times the job has met an error.")
    security_flags = _Setting(
        "security_flags",
        check=_security_flags,
        build=SecurityFlags,
        needs=_HTTP,
        doc="SecurityFlags: certificate checks and the redirect policy (BITS 2.5).",
    )

    http_method = _Setting(
        "http_method",
        check=_http_method,
        needs=_HTTP2,
        doc="The HTTP verb of the job's requests: GET for downloads, BITS_POST for uploads "
        "unless set (BITS 10.2, Windows 10 1809). Set it before the job is resumed.",
    )

    # IBackgroundCopyJob5's properties: (id, check, build) each, one line apiece.
    transfer_policy = _job5(
        1, check=_cost_flags, build=CostFlags,
        doc="The network costs the job may transfer on: CostFlags (BITS 5.0).",
    )  # fmt: skip
    dynamic_content = _job5(
        3, check=_flag,
        doc="Content with no size or ranges, as a dynamic web page (BITS 5.0). Set it "
        "before files are added.",
    )  # fmt: skip
    high_performance = _job5(
        4, check=_flag,
        doc="Use more of the network when the machine is otherwise idle (BITS 5.0).",
    )  # fmt: skip
    max_download_size = _job5(
        5, check=_uint64,
        doc="The largest file, in bytes, the job will download (BITS 5.0).",
    )  # fmt: skip
    use_stored_credentials = _job5(
        7, check=_stored_target,
        build=lambda v: as_enum(CredentialTarget, v) if v else None,
        doc="Use the user's stored Windows credentials for this CredentialTarget (BITS 5.0).",
    )  # fmt: skip
    on_demand = _job5(
        10, check=_flag,
        doc="Download on demand, the parts a reader asks for (newer Windows 10 BITS).",
    )  # fmt: skip
    minimum_notification_interval = _job5(
        9, check=_seconds,
        doc="Milliseconds between progress notifications at least (newer Windows 10 BITS).",
    )  # fmt: skip

    @property
    def client_certificate(self) -> ClientCertificate | None:
        """The certificate the job presents to HTTPS servers; None when none is set
        or this BITS does not give it (BITS 2.5)."""
        try:
            with _HTTP:
                raw = self._native.client_certificate()
        except BitsError as e:
            if e.hresult not in NO_CLIENT_CERTIFICATE:
                raise
            return None
        if raw is None:
            return None
        location, store, sha1, subject = raw
        return ClientCertificate(
            as_enum(CertStoreLocation, location), store or "", sha1, subject or ""
        )

    def set_client_certificate(
        self,
        subject: str,
        *,
        store: str = "MY",
        location: CertStoreLocation | int = CertStoreLocation.CURRENT_USER,
    ) -> None:
        """Present the certificate with this simple subject name, from the named store
        (BITS 2.5, SetClientCertificateByName)."""
        _text(subject, "subject")
        _text(store, "store")
        if not subject or not store:
            raise ValueError("subject and store must not be empty")
        if not _is_member(location, CertStoreLocation):
            raise ValueError(f"location must be a CertStoreLocation, not {location!r}")
        with _HTTP:
            self._native.set_client_certificate(int(location), store, subject)

    def remove_client_certificate(self) -> None:
        """Present no client certificate (BITS 2.5)."""
        with _HTTP:
            self._native.remove_client_certificate()

    reply_file_name = _Setting(
        "reply_file_name",
        check=_optional_text,
        needs=_JOB2,
        doc="Where an UPLOAD_REPLY job's reply lands (None: BITS picks; BITS 2.0). Set it "
        "before the job is resumed.",
    )
    reply_progress = _Setting(
        "reply_progress",
        build=lambda t: ReplyProgress(size_or_none(t[0]), t[1]),
        needs=_JOB2,
        doc="The reply's progress of an UPLOAD_REPLY job (BITS 2.0).",
    )

    def properties(self) -> JobProperties:
        """Every readable property at once, one BITS call each (each richer interface
        asked for once); None for what this BITS lacks."""

        def read(name: str) -> Any:
            try:
                return getattr(self, name)
            except NotSupportedError:
                return None

        fields = {f: read(f) for f in JobProperties._fields if f != "custom_header_names"}
        headers = read("custom_headers")
        names = None if headers is None else tuple(headers)
        return JobProperties(**fields, custom_header_names=names)

    def reply_data(self) -> bytes:
        """The reply of an UPLOAD_REPLY job, in memory (BITS 2.0)."""
        with _JOB2:
            data = self._native.reply_data()
        if data is None:
            raise NotSupportedError(E_NOTIMPL, "this BITS does not give reply data")
        return data

    def take_ownership(self) -> None:
        """Make the calling user the job's owner (needs administrator rights)."""
        self._native.take_ownership()

    @property
    def proxy(self) -> ProxySettings | None:
        """How the job reaches the server: a ProxySettings; None where not implemented."""
        raw = self._native.proxy()
        if raw is None:
            return None
        usage, proxies, bypass = raw
        return ProxySettings(
            as_enum(ProxyUsage, usage),
            tuple((proxies or "").split()),
            tuple((bypass or "").split()),
        )

    @proxy.setter
    def proxy(self, value: ProxySettings | ProxyUsage | int) -> None:
        """A ProxyUsage alone, or ProxySettings(OVERRIDE, proxies, bypass)."""
        settings = value if isinstance(value, ProxySettings) else ProxySettings(value)
        usage = settings.usage
        if not _is_member(usage, ProxyUsage):
            raise ValueError(f"usage must be a ProxyUsage, not {usage!r}")
        lists = []
        for what, items in (("proxies", settings.proxies), ("bypass", settings.bypass)):
            if isinstance(items, str) or not all(isinstance(i, str) for i in items):
                raise TypeError(f"{what} must be a sequence of str")
            for item in items:
                if not item or any(c.isspace() or c == "\0" for c in item):
                    raise ValueError(f"a {what} entry must be one word, not {item!r}")
            lists.append(" ".join(items) or None)
        if usage == ProxyUsage.OVERRIDE and not lists[0]:
            raise ValueError("ProxyUsage.OVERRIDE needs at least one proxy")
        if usage != ProxyUsage.OVERRIDE and any(lists):
            raise ValueError("proxies and bypass go only with ProxyUsage.OVERRIDE")
        self._native.set_proxy(int(usage), *lists)

    @property
    def notify_command_line(self) -> tuple[str, str] | None:
        """The program BITS starts when the job is transferred or fails, and its
        parameters; None when none is set or not implemented (BITS 2.0)."""
        with _JOB2:
            raw = self._native.notify_cmd_line()
        if raw is None or raw[0] is None:
            return None
        return raw[0], raw[1] or ""

    @notify_command_line.setter
    def notify_command_line(self, value: tuple[str, str] | None) -> None:
        if value is None:
            program, parameters = None, None
        else:
            if isinstance(value, str) or len(value) != 2:
                raise TypeError("notify_command_line is (program, parameters) or None")
            program = _text(value[0], "program", MAX_PATH)
            parameters = _text(value[1], "parameters", 4000)
            if not program:
                raise ValueError("program must not be empty")
        with _JOB2:
            self._native.set_notify_cmd_line(program, parameters)

    def set_credentials(
        self,
        username: str,
        password: str,
        *,
        target: CredentialTarget | int = CredentialTarget.SERVER,
        scheme: AuthScheme | int = AuthScheme.BASIC,
    ) -> None:
        """Credentials BITS gives the server (or the proxy) when it asks, for this
        scheme (BITS 2.0, IBackgroundCopyJob2). winbits keeps no copy of the password:
        its native copy is wiped as soon as BITS has taken it, and it appears in no
        repr, exception or output of winbits."""
        target, scheme = _auth(target, scheme)
        _text(username, "username", MAX_USERNAME_LENGTH)
        if not username:
            raise ValueError("username must not be empty")
        if not isinstance(password, str):
            raise TypeError(f"password must be str, not {type(password).__name__}")
        if len(password) > MAX_PASSWORD_LENGTH or "\0" in password:
            # Says why without a word of the password itself.
            raise ValueError(f"a password is at most {MAX_PASSWORD_LENGTH} characters, no NUL")
        with _JOB2:
            self._native.set_credentials(target, scheme, username, password)

    def remove_credentials(
        self,
        *,
        target: CredentialTarget | int = CredentialTarget.SERVER,
        scheme: AuthScheme | int = AuthScheme.BASIC,
    ) -> None:
        """Forget the credentials set for this target and scheme (BITS 2.0)."""
        target, scheme = _auth(target, scheme)
        with _JOB2:
            self._native.remove_credentials(target, scheme)

    @property
    def custom_headers(self) -> dict[str, str]:
        """HTTP headers sent with every request of this job, name to value (BITS 2.5,
        IBackgroundCopyJobHttpOptions); {} when none. winbits never prints the values."""
        with _HTTP:
            return parse_headers(self._native.custom_headers())

    @custom_headers.setter
    def custom_headers(self, headers: Mapping[str, str] | None) -> None:
        """Replaces every custom header; {} or None removes them all."""
        text = format_headers(headers or {})
        with _HTTP:
            self._native.set_custom_headers(text or None)

    @property
    def progress(self) -> JobProgress | None:
        p = self._native.progress()
        if p is None:
            return None
        return JobProgress(size_or_none(p[0]), p[1], p[2], p[3])

    @property
    def times(self) -> JobTimes | None:
        t = self._native.times()
        if t is None:
            return None
        return JobTimes(*map(filetime_to_datetime, t))

    @property
    def error(self) -> JobError | None:
        """The job's error, or None when it has none."""
        e = self._native.error()
        if e is None:
            return None
        hresult, context, description, context_description, protocol, remote, local = e
        message = description or str(from_hresult(hresult).strerror)
        return JobError(
            hresult,
            as_enum(ErrorContext, context),
            message,
            context_description,
            protocol,
            remote,
            local,
        )

    def files(self) -> list[File]:
        return [File(f) for f in self._native.files()]

    def add_file(
        self,
        url: str,
        path: str | os.PathLike[str],
        *,
        overwrite: bool = False,
        ranges: Sequence[tuple[int, int | None]] | None = None,
    ) -> None:
        """Add a download of ``url`` to the absolute local ``path``. An existing file at
        ``path`` is not overwritten unless ``overwrite=True`` (BITS would replace it at
        complete()). ``ranges`` downloads only those (offset, length) parts, length None
        for "to the end" (BITS 3.0). In an UPLOAD or UPLOAD_REPLY job, ``path`` is an
        existing file that BITS sends to ``url``."""
        _check_url(url)
        local = os.fspath(path)
        _text(local, "path")
        if not ntpath.isabs(local):
            raise ValueError(f"path must be absolute (BITS runs in another process): {local!r}")
        if len(local) > MAX_PATH:
            raise ValueError(f"path is {len(local)} characters; BITS takes {MAX_PATH} at most")
        if local.startswith(("\\\\?\\", "\\\\.\\")) or any(c in local for c in "*?"):
            raise ValueError(f"BITS takes no wildcards and no \\\\?\\ prefix in a path: {local!r}")
        checked = None if ranges is None else _file_ranges(ranges)
        if self._job_type() in (JobType.UPLOAD, JobType.UPLOAD_REPLY):
            if checked is not None:
                raise ValueError("ranges are for downloads; an upload sends the whole file")
            if not os.path.isfile(local):
                raise FileNotFoundError(f"{local} is not a file to upload")
        elif not overwrite and os.path.exists(local):
            raise FileExistsError(f"{local} exists; pass overwrite=True to replace it")
        if checked is None:
            self._native.add_file(url, local)
        else:
            with _JOB3:
                self._native.add_file_ranges(url, local, checked)

    def _job_type(self) -> int | None:
        """The job's type, read once: it never changes."""
        if self._type is None:
            self._type = self._native.type()
        return self._type

    def resume(self) -> None:
        """Start or continue the transfer."""
        self._native.resume()

    def wait(
        self,
        timeout: float | None = None,
        *,
        on_progress: Callable[[JobProgress], object] | None = None,
        progress_interval: float = 0.5,
        poll_interval: float = 5.0,
        stall_timeout: float | None = None,
    ) -> JobState | int:
        """Wait until BITS has transferred the job; -> JobState.TRANSFERRED (at once for
        a job already transferred). Raises JobFailedError when the job reaches ERROR
        (TRANSIENT_ERROR is waited through: BITS retries it), InvalidStateError when it
        was completed or cancelled meanwhile, and TimeoutError when ``timeout`` seconds
        pass, or ``stall_timeout`` seconds with no byte moving (BITS' own limit, the
        job's no_progress_timeout, is 14 days by default and counts only while BITS
        retries an error); in every case the job is left as it is.

        On a job this process created, BITS' own notifications wake the wait (a callback
        of winbits' in the MTA, no message pump); the state is also read every
        ``poll_interval`` seconds, since some BITS never send some notifications, and
        that is all where BITS refuses the callback. ``on_progress(JobProgress)`` is
        called from this thread at most every ``progress_interval`` seconds while bytes
        move, when the job's state changes (to TRANSIENT_ERROR, say), and with the last
        bytes when it is transferred; what it raises comes through."""
        _check_wait(timeout, on_progress, progress_interval, poll_interval, stall_timeout)
        steps = self._steps(
            timeout, progress_interval if on_progress else None, poll_interval, stall_timeout
        )
        listening = self._created and self._native.listen()
        try:
            while True:
                try:
                    step = next(steps)
                except StopIteration as done:
                    return done.value  # type: ignore[no-any-return]
                if isinstance(step, JobProgress):
                    on_progress(step)  # type: ignore[misc]
                elif listening:
                    self._native.notified(max(1, math.ceil(step * 1000)))
                else:
                    time.sleep(step)
        finally:
            if listening:
                self._native.unlisten()

    async def wait_async(
        self,
        timeout: float | None = None,
        *,
        on_progress: Callable[[JobProgress], object] | None = None,
        progress_interval: float = 0.5,
        poll_interval: float = 5.0,
        stall_timeout: float | None = None,
    ) -> JobState | int:
        """wait() for asyncio: the same arguments, results and errors, without blocking
        the event loop. BITS' calls are made on the loop's default executor; between them
        no thread waits for this job (one winbits thread waits for all asyncio waits of
        the process, and wakes each loop with call_soon_threadsafe). ``on_progress`` is
        called on the loop's thread. Cancelling the task only stops waiting: the job is
        left as it is."""
        _check_wait(timeout, on_progress, progress_interval, poll_interval, stall_timeout)
        from ._aio import follow

        steps = self._steps(
            timeout, progress_interval if on_progress else None, poll_interval, stall_timeout
        )
        async with contextlib.aclosing(follow(self, steps)) as progress:
            async for p in progress:
                on_progress(p)  # type: ignore[misc]
        return JobState.TRANSFERRED

    def progress_async(
        self, interval: float = 0.5, *, poll_interval: float = 5.0
    ) -> AsyncIterator[JobProgress]:
        """``async for p in job.progress_async():`` the job's JobProgress at most every
        ``interval`` seconds while bytes move; the loop ends when the job is transferred
        and raises JobFailedError when it fails (InvalidStateError when it was completed
        or cancelled). Waits as wait_async() does."""
        _check_wait(None, None, interval, poll_interval)
        from ._aio import follow

        return follow(self, self._steps(None, interval, poll_interval, None))

    def _steps(
        self,
        timeout: float | None,
        progress_interval: float | None,
        poll_interval: float,
        stall_timeout: float | None,
    ) -> Generator[JobProgress | float, None, JobState | int]:
        """What a wait does between its sleeps, for wait() and the asyncio waits: reads
        the job and yields a JobProgress to report (when ``progress_interval`` is given
        and bytes moved or the state changed) or the seconds to sleep before the next
        read, which BITS' call may end sooner; the last bytes once more when the job is
        transferred. Returns TRANSFERRED; raises as wait() does."""
        start = last_move = time.monotonic()
        shown: tuple[JobProgress, int] | None = None  # the progress and state last reported
        shown_at = -math.inf
        moved_to: int | None = None
        while True:
            state = self.state
            if state == JobState.TRANSFERRED:
                p = self.progress if progress_interval else None
                if p is not None and (shown is None or p != shown[0]):
                    yield p  # the last count, for a display to end at what landed
                return state
            if state == JobState.ERROR:
                raise self._failure(state)
            if state in (JobState.ACKNOWLEDGED, JobState.CANCELLED):
                raise InvalidStateError(
                    BG_E_INVALID_STATE, f"job {self.id} is {state}: nothing to wait for"
                )
            now = time.monotonic()
            step = poll_interval
            if progress_interval or stall_timeout is not None:
                p = self.progress
                done = None if p is None else p.bytes_transferred
                if done != moved_to:
                    moved_to, last_move = done, now
                seen = None if p is None else (p, int(state))
                if progress_interval:
                    if p is not None and seen != shown and now - shown_at >= progress_interval:
                        yield p
                        shown, shown_at = seen, now
                    step = min(step, progress_interval)
            for limit, since, what in (
                (timeout, start, "was not transferred in"),
                (stall_timeout, last_move, "moved no byte for"),
            ):
                if limit is not None:
                    left = since + limit - now
                    if left <= 0:
                        raise TimeoutError(f"job {self.id} {what} {limit:g} s (it is {state})")
                    step = min(step, left)
            yield step

    def _failure(self, state: JobState | int) -> JobFailedError:
        err = self.error
        if err is None:
            return JobFailedError(
                BG_E_ERROR_INFORMATION_UNAVAILABLE,
                f"job {self.id} failed and BITS gave no reason (it is {state})",
                None,
                int(state),
            )
        where = f" ({err.remote_name})" if err.remote_name else ""
        return JobFailedError(err.hresult, f"{err.message}{where}", err, int(state))

    def suspend(self) -> None:
        self._native.suspend()

    def cancel(self) -> None:
        """Cancel the job and delete its temporary files; it leaves the queue."""
        self._native.cancel()

    def complete(self) -> None:
        """Move the transferred files into place; the job leaves the queue.

        Raises PartialCompleteError, naming the files that did not land, when BITS could
        move only some (BG_S_PARTIAL_COMPLETE); warns (RuntimeWarning) when the files
        landed but BITS left temporary files behind (BG_S_UNABLE_TO_DELETE_FILES)."""
        local = [f.local_name for f in self.files()]  # the job's files are gone afterwards
        hr = self._native.complete()
        if hr == BG_S_PARTIAL_COMPLETE:
            missing = tuple(p for p in local if not os.path.exists(p))
            where = ", ".join(missing) or "some of the job's files"
            raise PartialCompleteError(
                hr, f"BITS completed the job but did not move {where} into place", missing
            )
        if hr == BG_S_UNABLE_TO_DELETE_FILES:
            warnings.warn(
                f"job {self.id}: the files landed, but BITS could not delete all its "
                "temporary files (BG_S_UNABLE_TO_DELETE_FILES)",
                RuntimeWarning,
                stacklevel=2,
            )


class File:
    """A file of a job."""

    __slots__ = ("_native",)

    def __init__(self, native: native_types.File) -> None:
        self._native = native

    def __repr__(self) -> str:
        return f"<winbits.File {self.remote_name!r}>"

    @property
    def remote_name(self) -> str:
        """The URL ("" where not implemented)."""
        return self._native.remote_name() or ""

    @remote_name.setter
    def remote_name(self, url: str) -> None:
        """Fetch the file from another URL, a mirror (BITS 2.0). The job must not be
        transferring; BITS' refusal comes through as its error."""
        _check_url(url)
        with _FILE2:
            self._native.set_remote_name(url)

    @property
    def local_name(self) -> str:
        """The local path ("" where not implemented)."""
        return self._native.local_name() or ""

    @property
    def ranges(self) -> list[FileRange]:
        """The parts of the file the job downloads; [] for the whole file (BITS 2.0)."""
        with _FILE2:
            raw = self._native.ranges()
        return [FileRange(o, None if n == LENGTH_TO_EOF else n) for o, n in raw or ()]

    @property
    def temporary_name(self) -> str | None:
        """Where BITS keeps the file until the job is completed (BITS 3.0)."""
        with _FILE3:
            return self._native.temporary_name()

    @property
    def validation_state(self) -> bool | None:
        """Whether the downloaded content was marked valid (BITS 3.0); set it once the
        file is transferred, for peer caching to share the file."""
        with _FILE3:
            return self._native.validation_state()

    @validation_state.setter
    def validation_state(self, valid: bool) -> None:
        if not isinstance(valid, bool):
            raise TypeError(f"validation_state must be a bool, not {type(valid).__name__}")
        with _FILE3:
            self._native.set_validation_state(valid)

    @property
    def http_response_headers(self) -> dict[str, str]:
        """The headers of the server's last answer for this file, name to value; {}
        before BITS has one (BITS 5.0, IBackgroundCopyFile5)."""
        with _FILE5:
            return parse_headers(self._native.http_response_headers())

    @property
    def progress(self) -> FileProgress | None:
        p = self._native.progress()
        if p is None:
            return None
        total, done, completed = p
        return FileProgress(size_or_none(total), done, completed)

    @property
    def downloaded_from_peer(self) -> bool | None:
        """True if any part came from a peer (IBackgroundCopyFile3); None where the
        BITS here lacks that interface."""
        return self._native.downloaded_from_peer()

    def peer_download_stats(self) -> PeerStats | None:
        """Bytes from the origin server and from peers (IBackgroundCopyFile4), read
        live; None where the BITS here lacks that interface."""
        s = self._native.peer_stats()
        return None if s is None else PeerStats(*s)
