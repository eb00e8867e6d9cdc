"""A BITS job: its properties read live, its settings (one line per BITS property), its
files, the control verbs, and the waits (whose steps are in _wait.py and _aio.py).

Each property read is one BITS call (a round trip to the service); the id is remembered
because it never changes. Arguments are checked (_checks.py) before any call.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import _aio, _wait
from . import _checks as checks
from ._errors import (
    BG_S_PARTIAL_COMPLETE,
    BG_S_UNABLE_TO_DELETE_FILES,
    E_NOTIMPL,
    ERROR_NOACCESS,
    AccessDeniedError,
    BitsError,
    NotSupportedError,
    PartialCompleteError,
    from_hresult,
)
from ._file import File
from ._settings import HTTP, HTTP2, HTTP3, JOB2, JOB3, JOB4, TOKENS, Setting, job5
from ._types import (
    AuthScheme,
    CertStoreLocation,
    ClientCertificate,
    CostFlags,
    CredentialTarget,
    ErrorContext,
    FileAclFlags,
    HelperTokenFlags,
    JobError,
    JobPriority,
    JobProgress,
    JobProperties,
    JobState,
    JobTimes,
    JobType,
    PeerCaching,
    ProxySettings,
    ProxyUsage,
    ReplyProgress,
    SecurityFlags,
    as_enum,
    filetime_to_datetime,
    size_or_none,
)

if TYPE_CHECKING:
    from . import _native as native_types

# GetClientCertificate when the job has none: RPC_X_BAD_STUB_DATA (Windows), or
# RPC_X_NULL_REF_POINTER where the server sets no out value and the stub cannot send it
# back (Wine's E_NOTIMPL).
NO_CLIENT_CERTIFICATE = (0x800706F7, 0x800706F4)


class Job:
    """A BITS job. Properties are read live from BITS; None where this BITS does not
    implement them (E_NOTIMPL)."""

    __slots__ = ("_created", "_id", "_native", "_type")

    def __init__(
        self, native: native_types.Job, job_type: int | None = None, *, created: bool = False
    ) -> None:
        self._native = native
        # Read when the native object was made (the listing reads it in its batch): repr,
        # hash and == need no call, and work after the manager is closed.
        raw = native.known_id()
        self._id: uuid.UUID | None = None if raw is None else uuid.UUID(bytes_le=raw)
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

    @classmethod
    def settable(cls, name: str) -> bool:
        """Whether Job has a setting of this name that can be set."""
        attr = vars(cls).get(name)
        if isinstance(attr, property):
            return attr.fset is not None
        return isinstance(attr, Setting) and attr.check is not None

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
        name = checks.text(value, "name", checks.MAX_NAME_LENGTH)
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
        text = checks.text(value, "description", checks.MAX_DESCRIPTION_LENGTH)
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
            raise NotSupportedError(E_NOTIMPL, "this BITS does not report job states")
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

    minimum_retry_delay = Setting(
        "minimum_retry_delay",
        check=checks.seconds,
        doc="Seconds BITS waits after a transient error before it tries again.",
    )
    no_progress_timeout = Setting(
        "no_progress_timeout",
        check=checks.seconds,
        doc="Seconds without progress after which a transient error becomes ERROR.",
    )
    maximum_download_time = Setting(
        "maximum_download_time",
        check=checks.seconds,
        needs=JOB4,
        doc="Seconds the job may take in all before it fails (0: no limit; BITS 3.0).",
    )
    peer_caching = Setting(
        "peer_caching",
        check=checks.peer_flags,
        build=PeerCaching,
        needs=JOB4,
        doc="PeerCaching flags; PeerCaching.DISABLE_BRANCH_CACHE keeps this job's bytes "
        "from BranchCache peers (BITS 3.0).",
    )
    file_acl_flags = Setting(
        "file_acl_flags",
        check=checks.acl_flags,
        build=FileAclFlags,
        needs=JOB3,
        doc="FileAclFlags: the owner, group, DACL and SACL BITS copies with a file from an "
        "SMB source (BITS 3.0; PowerShell's -ACLFlags).",
    )
    helper_token_flags = Setting(
        "helper_token_flags",
        check=checks.token_flags,
        build=HelperTokenFlags,
        needs=TOKENS,
        doc="HelperTokenFlags: what BITS uses the helper token for (BITS 4.0; "
        "set_helper_token() sets the token).",
    )
    helper_token_sid = Setting(
        "helper_token_sid",
        needs=TOKENS,
        doc="The SID of the job's helper token, or None when it has none (BITS 4.0).",
    )
    owner_integrity_level = Setting(
        "owner_integrity_level", needs=JOB4, doc="The owner's integrity level (BITS 3.0)."
    )
    owner_elevated = Setting(
        "owner_elevated", needs=JOB4, doc="Whether the owner was elevated (BITS 3.0)."
    )
    error_count = Setting("error_count", doc="How many times the job has met an error.")
    security_flags = Setting(
        "security_flags",
        check=checks.security_flags,
        build=SecurityFlags,
        needs=HTTP,
        doc="SecurityFlags: certificate checks and the redirect policy (BITS 2.5).",
    )

    http_method = Setting(
        "http_method",
        check=checks.http_method,
        needs=HTTP2,
        doc="The HTTP verb of the job's requests: GET for downloads, BITS_POST for uploads "
        "unless set (BITS 10.2, Windows 10 1809). Set it before the job is resumed.",
    )

    # IBackgroundCopyJob5's properties: (id, check, build) each, one line apiece.
    transfer_policy = job5(
        1, check=checks.cost_flags, build=CostFlags,
        doc="The network costs the job may transfer on: CostFlags (BITS 5.0).",
    )  # fmt: skip
    dynamic_content = job5(
        3, check=checks.flag,
        doc="Content with no size or ranges, as a dynamic web page (BITS 5.0). Set it "
        "before files are added.",
    )  # fmt: skip
    high_performance = job5(
        4, check=checks.flag,
        doc="Use more of the network when the machine is otherwise idle (BITS 5.0).",
    )  # fmt: skip
    max_download_size = job5(
        5, check=checks.uint64,
        doc="The largest file, in bytes, the job will download (BITS 5.0).",
    )  # fmt: skip
    use_stored_credentials = job5(
        7, check=checks.stored_target,
        build=lambda v: as_enum(CredentialTarget, v) if v else None,
        doc="Use the user's stored Windows credentials for this CredentialTarget (BITS 5.0).",
    )  # fmt: skip
    on_demand = job5(
        10, check=checks.flag,
        doc="Download on demand, the parts a reader asks for (newer Windows 10 BITS).",
    )  # fmt: skip
    minimum_notification_interval = job5(
        9, check=checks.seconds,
        doc="Milliseconds between progress notifications at least (newer Windows 10 BITS).",
    )  # fmt: skip

    @property
    def client_certificate(self) -> ClientCertificate | None:
        """The certificate the job presents to HTTPS servers; None when none is set
        or this BITS does not give it (BITS 2.5)."""
        try:
            with HTTP:
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
        checks.text(subject, "subject")
        checks.text(store, "store")
        if not subject or not store:
            raise ValueError("subject and store must not be empty")
        if not checks.is_member(location, CertStoreLocation):
            raise ValueError(f"location must be a CertStoreLocation, not {location!r}")
        with HTTP:
            self._native.set_client_certificate(int(location), store, subject)

    def remove_client_certificate(self) -> None:
        """Present no client certificate (BITS 2.5)."""
        with HTTP:
            self._native.remove_client_certificate()

    reply_file_name = Setting(
        "reply_file_name",
        check=checks.optional_text,
        needs=JOB2,
        doc="Where an UPLOAD_REPLY job's reply lands (None: BITS picks; BITS 2.0). Set it "
        "before the job is resumed.",
    )
    reply_progress = Setting(
        "reply_progress",
        build=lambda t: ReplyProgress(size_or_none(t[0]), t[1]),
        needs=JOB2,
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
        try:
            headers = read("custom_headers")
        except AccessDeniedError:  # write-only, or another user's
            headers = None
        names = None if headers is None else tuple(headers)
        return JobProperties(**fields, custom_header_names=names)

    def reply_data(self) -> bytes:
        """The reply of an UPLOAD_REPLY job, in memory (BITS 2.0)."""
        with JOB2:
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
        if not checks.is_member(usage, ProxyUsage):
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
        with JOB2:
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
            program = checks.text(value[0], "program", checks.MAX_PATH)
            parameters = checks.text(value[1], "parameters", 4000)
            if not program:
                raise ValueError("program must not be empty")
        with JOB2:
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
        target, scheme = checks.auth(target, scheme)
        checks.text(username, "username", checks.MAX_USERNAME_LENGTH)
        if not username:
            raise ValueError("username must not be empty")
        if not isinstance(password, str):
            raise TypeError(f"password must be str, not {type(password).__name__}")
        if len(password) > checks.MAX_PASSWORD_LENGTH or "\0" in password:
            # Says why without a word of the password itself.
            raise ValueError(
                f"a password is at most {checks.MAX_PASSWORD_LENGTH} characters, no NUL"
            )
        with JOB2:
            self._native.set_credentials(target, scheme, username, password)

    def remove_credentials(
        self,
        *,
        target: CredentialTarget | int = CredentialTarget.SERVER,
        scheme: AuthScheme | int = AuthScheme.BASIC,
    ) -> None:
        """Forget the credentials set for this target and scheme (BITS 2.0)."""
        target, scheme = checks.auth(target, scheme)
        with JOB2:
            self._native.remove_credentials(target, scheme)

    @property
    def custom_headers(self) -> dict[str, str]:
        """HTTP headers sent with every request of this job, name to value (BITS 2.5,
        IBackgroundCopyJobHttpOptions); {} when none. winbits never prints the values."""
        with HTTP:
            return checks.parse_headers(self._native.custom_headers())

    @custom_headers.setter
    def custom_headers(self, headers: Mapping[str, str] | None) -> None:
        """Replaces every custom header; {} or None removes them all."""
        text = checks.format_headers(headers or {})
        with HTTP:
            self._native.set_custom_headers(text or None)

    def set_helper_token(self) -> None:
        """Give the job a helper token: the token of this process (BITS 4.0,
        IBitsTokenOptions::SetHelperToken), which BITS uses for what helper_token_flags
        name, e.g. to reach an SMB share or a proxy as this account while the job's owner
        is another. An impersonating thread's own token is not passed: winbits leaves
        COM's cloaking alone. Before Windows 10 1607 this needs an administrator."""
        with TOKENS:
            self._native.set_helper_token()

    def clear_helper_token(self) -> None:
        """Take the helper token away (BITS 4.0)."""
        with TOKENS:
            self._native.clear_helper_token()

    def replace_remote_prefix(self, old: str, new: str) -> None:
        """Move every file whose URL starts with ``old`` to ``new`` + the rest, in one call
        (a mirror; BITS 3.0, IBackgroundCopyJob3::ReplaceRemotePrefix). Both are whole
        URL prefixes of the same scheme (http(s) or UNC), as BITS requires."""
        old = checks.text(old, "old")
        new = checks.text(new, "new")
        if not old or not new:
            raise ValueError("replace_remote_prefix needs two non-empty prefixes")
        with JOB3:
            self._native.replace_remote_prefix(old, new)

    def make_custom_headers_write_only(self) -> None:
        """From now on BITS sends the custom headers but no program reads them back:
        ``custom_headers`` raises AccessDeniedError (BITS 10.3, Windows 10 1809,
        IBackgroundCopyJobHttpOptions3; PowerShell's ``-CustomHeadersWriteOnly``). For
        good: it cannot be undone. The downloads and the command line do it for the
        headers they set, where this BITS can."""
        with HTTP3:
            self._native.make_custom_headers_write_only()

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
        checks.check_url(url)
        local = checks.local_path(os.fspath(path))
        checked = None if ranges is None else checks.file_ranges(ranges)
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
            with JOB3:
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
        (TRANSIENT_ERROR is waited through: BITS retries it), InvalidStateError at once
        when it is SUSPENDED (nothing would move) or was completed or cancelled meanwhile,
        and TimeoutError when ``timeout`` seconds
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
        checks.wait_args(timeout, on_progress, progress_interval, poll_interval, stall_timeout)
        every = progress_interval if on_progress else None
        walk = _wait.steps(self, timeout, every, poll_interval, stall_timeout)
        return _wait.run(self, walk, on_progress)

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
        checks.wait_args(timeout, on_progress, progress_interval, poll_interval, stall_timeout)
        every = progress_interval if on_progress else None
        walk = _wait.steps(self, timeout, every, poll_interval, stall_timeout)
        return await _aio.run(self, walk, on_progress)

    def progress_async(
        self, interval: float = 0.5, *, poll_interval: float = 5.0
    ) -> AsyncIterator[JobProgress]:
        """``async for p in job.progress_async():`` the job's JobProgress at most every
        ``interval`` seconds while bytes move; the loop ends when the job is transferred
        and raises JobFailedError when it fails (InvalidStateError when it was completed
        or cancelled). Waits as wait_async() does."""
        checks.wait_args(None, None, interval, poll_interval)
        return _aio.follow(self, _wait.steps(self, None, interval, poll_interval, None))

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
