"""BITS' enumerations and winbits' typed results: plain values, no COM."""

from __future__ import annotations

import datetime as _dt
import re
import unicodedata
import uuid
from enum import IntEnum, IntFlag
from typing import Any, NamedTuple, TypeVar

SIZE_UNKNOWN = 0xFFFFFFFFFFFFFFFF  # BG_SIZE_UNKNOWN
_EPOCH_1601 = _dt.datetime(1601, 1, 1, tzinfo=_dt.timezone.utc)


class _Named(IntEnum):
    """An IntEnum that prints as its name (``TRANSFERRED``, not ``6`` as IntEnum's str
    gives on Python 3.11+), in str(), print() and f-strings alike; repr and int() stay."""

    def __str__(self) -> str:
        return self.name

    def __format__(self, spec: str) -> str:
        return format(self.name, spec)


class JobState(_Named):
    """BG_JOB_STATE."""

    QUEUED = 0
    CONNECTING = 1
    TRANSFERRING = 2
    SUSPENDED = 3
    ERROR = 4
    TRANSIENT_ERROR = 5
    TRANSFERRED = 6
    ACKNOWLEDGED = 7
    CANCELLED = 8

    @property
    def is_final(self) -> bool:
        """True for ACKNOWLEDGED and CANCELLED: the job is out of the queue."""
        return self in (JobState.ACKNOWLEDGED, JobState.CANCELLED)


class JobType(_Named):
    """BG_JOB_TYPE."""

    DOWNLOAD = 0
    UPLOAD = 1
    UPLOAD_REPLY = 2


class JobPriority(_Named):
    """BG_JOB_PRIORITY."""

    FOREGROUND = 0
    HIGH = 1
    NORMAL = 2
    LOW = 3


class CredentialTarget(_Named):
    """BG_AUTH_TARGET: whom credentials are for."""

    SERVER = 1
    PROXY = 2


class AuthScheme(_Named):
    """BG_AUTH_SCHEME. PASSPORT is accepted by BITS but retired by Microsoft."""

    BASIC = 1
    DIGEST = 2
    NTLM = 3
    NEGOTIATE = 4
    PASSPORT = 5


class ProxyUsage(_Named):
    """BG_JOB_PROXY_USAGE."""

    PRECONFIG = 0  # the user's Internet settings
    NO_PROXY = 1
    OVERRIDE = 2  # the job's own proxy list and bypass list
    AUTODETECT = 3


class PeerCaching(IntFlag):
    """IBackgroundCopyJob4's peer caching flags. DISABLE_BRANCH_CACHE is the one that
    matters: since BITS 4.0 peer caching is BranchCache, and CLIENT and SERVER (BITS 3.0's
    own peer caching) are deprecated and ignored."""

    CLIENT = 1
    SERVER = 2
    DISABLE_BRANCH_CACHE = 4


class FileAclFlags(IntFlag):
    """IBackgroundCopyJob3's file ACL flags (BG_COPY_FILE_*): what security information
    BITS copies with a file from an SMB source (PowerShell's -ACLFlags)."""

    OWNER = 0x1
    GROUP = 0x2
    DACL = 0x4
    SACL = 0x8


class HelperTokenFlags(IntFlag):
    """IBitsTokenOptions' helper token flags (BG_TOKEN_*): what BITS uses the helper
    token for."""

    LOCAL_FILE = 0x1  # the job's local files: temporary, reply and upload files
    NETWORK = 0x2  # SMB sources, and the server's implicit NTLM or Kerberos challenges


class SecurityFlags(IntFlag):
    """IBackgroundCopyJobHttpOptions' security flags: certificate checks to relax or add,
    and what a redirect does (ALLOW_SILENT is 0, the default)."""

    ENABLE_CRL_CHECK = 0x1
    IGNORE_CERT_CN_INVALID = 0x2
    IGNORE_CERT_DATE_INVALID = 0x4
    IGNORE_UNKNOWN_CA = 0x8
    IGNORE_CERT_WRONG_USAGE = 0x10
    REDIRECT_POLICY_ALLOW_REPORT = 0x100  # follow, and update the file's remote name
    REDIRECT_POLICY_DISALLOW = 0x200  # a redirect puts the job in ERROR
    REDIRECT_POLICY_ALLOW_HTTPS_TO_HTTP = 0x800


class CostFlags(IntFlag):
    """BITS_COST_STATE_*: the network costs a job may transfer on (BITS 5.0). The
    TRANSFER_* members are the usual sets; TRANSFER_STANDARD, for example, waits while
    the user is near a data cap or roaming."""

    UNRESTRICTED = 0x1
    CAPPED_USAGE_UNKNOWN = 0x2
    BELOW_CAP = 0x4
    NEAR_CAP = 0x8
    OVERCAP_CHARGED = 0x10
    OVERCAP_THROTTLED = 0x20
    USAGE_BASED = 0x40
    ROAMING = 0x80
    IGNORE_CONGESTION = 0x80000000
    TRANSFER_NOT_ROAMING = 0x8000007F
    TRANSFER_NO_SURCHARGE = 0x8000006F
    TRANSFER_STANDARD = 0x80000067
    TRANSFER_UNRESTRICTED = 0x80000021
    TRANSFER_ALWAYS = 0x800000FF


class CertStoreLocation(_Named):
    """BG_CERT_STORE_LOCATION: where the client certificate's store is."""

    CURRENT_USER = 0
    LOCAL_MACHINE = 1
    CURRENT_SERVICE = 2
    SERVICES = 3
    USERS = 4
    CURRENT_USER_GROUP_POLICY = 5
    LOCAL_MACHINE_GROUP_POLICY = 6
    LOCAL_MACHINE_ENTERPRISE = 7


class ErrorContext(_Named):
    """BG_ERROR_CONTEXT: where a job's error came from."""

    NONE = 0
    UNKNOWN = 1
    GENERAL_QUEUE_MANAGER = 2
    QUEUE_MANAGER_NOTIFICATION = 3
    LOCAL_FILE = 4
    REMOTE_FILE = 5
    GENERAL_TRANSPORT = 6
    REMOTE_APPLICATION = 7
    SERVER_CERTIFICATE_CALLBACK = 8


# What is escaped before text reaches a terminal, a log line or a label: C0 and C1
# controls and DEL (Cc), format characters (Cf: bidi overrides, zero-width ones), the line
# and paragraph separators (Zl, Zp) and lone surrogates (Cs). Job and file names come from
# any user (--all-users) and must not drive a terminal, split a line or read backwards.
HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def _shown(c: str) -> str:
    if unicodedata.category(c) not in HIDDEN_CATEGORIES:
        return c
    return c.encode("unicode_escape", "backslashreplace").decode("ascii")


def visible(text: str) -> str:
    """text with every control, format and separator character shown as its escape (ESC
    as \\x1b, a right-to-left override as \\u202e)."""
    if text.isprintable():  # the usual case; a printable text holds none of them
        return text
    return "".join(map(_shown, text))


# scheme://, the authority (user:password@host:port), the path, ?query, #fragment
_URL_PARTS = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)([^/?#]*)([^?#]*)(\?[^#]*)?(#.*)?\Z", re.S)


def redact_url(url: str) -> str:
    """A URL as winbits shows it anywhere (messages, exceptions, reprs, output): without
    its user name and password, and with its query and fragment elided, which is where
    signed URLs keep their signatures: ``https://host/path?…``. A UNC path, or what is
    not a URL, is shown as it is."""
    m = _URL_PARTS.match(url)
    if m is None:
        return url
    scheme, authority, path, query, fragment = m.groups()
    host = authority.rpartition("@")[2]
    return f"{scheme}{host}{path}{'?…' if query else ''}{'#…' if fragment else ''}"


def _redacted_repr(record: Any, urls: tuple[str, ...]) -> str:
    """A named tuple's repr, with the URLs in its fields named by `urls` redacted."""
    parts = []
    for name, value in zip(record._fields, record, strict=True):
        shown = redact_url(value) if name in urls and isinstance(value, str) else value
        parts.append(f"{name}={shown!r}")
    return f"{type(record).__name__}({', '.join(parts)})"


E = TypeVar("E", bound=IntEnum)


def as_enum(cls: type[E], value: int) -> E | int:
    """The member for value, or the plain int where a newer BITS has a value we lack."""
    try:
        return cls(value)
    except ValueError:
        return value


def size_or_none(value: int) -> int | None:
    """A byte count from BITS, None for BG_SIZE_UNKNOWN."""
    return None if value == SIZE_UNKNOWN else value


def filetime_to_datetime(ticks: int) -> _dt.datetime | None:
    """A FILETIME (100 ns since 1601, UTC) as an aware datetime; None for 0 (not set)."""
    if not ticks:
        return None
    return _EPOCH_1601 + _dt.timedelta(microseconds=ticks // 10)


def peer_share(from_origin: int | None, from_peers: int | None) -> float | None:
    """Percent of the downloaded bytes that came from peers; None before any byte or
    where the BITS does not report them."""
    if from_origin is None or from_peers is None or from_origin + from_peers == 0:
        return None
    return 100.0 * from_peers / (from_origin + from_peers)


def percent(done: int, total: int | None) -> float | None:
    if total is None:
        return None
    if total == 0:
        return 100.0
    return 100.0 * done / total


class JobProgress(NamedTuple):
    """A job's progress: bytes (total None while unknown) and files."""

    bytes_total: int | None
    bytes_transferred: int
    files_total: int
    files_transferred: int

    @property
    def percent(self) -> float | None:
        return percent(self.bytes_transferred, self.bytes_total)


class ProxySettings(NamedTuple):
    """A job's proxy: how it is chosen, and with OVERRIDE the proxies and the hosts that
    bypass them (BITS' own syntax, e.g. "<local>")."""

    usage: ProxyUsage | int
    proxies: tuple[str, ...] = ()
    bypass: tuple[str, ...] = ()


class ClientCertificate(NamedTuple):
    """The certificate a job presents to an HTTPS server."""

    location: CertStoreLocation | int
    store: str
    sha1: bytes | None
    subject: str


class ReplyProgress(NamedTuple):
    """The reply of an UPLOAD_REPLY job (total None while unknown)."""

    bytes_total: int | None
    bytes_transferred: int


class FileRange(NamedTuple):
    """A part of a file a job downloads: length None means to the end of the file."""

    offset: int
    length: int | None


class FileProgress(NamedTuple):
    """A file's progress: bytes (total None while unknown) and whether it is complete."""

    bytes_total: int | None
    bytes_transferred: int
    completed: bool

    @property
    def percent(self) -> float | None:
        return percent(self.bytes_transferred, self.bytes_total)


class JobTimes(NamedTuple):
    """When a job was created, last modified, and finished transferring (None if not)."""

    created: _dt.datetime | None
    modified: _dt.datetime | None
    transfer_completed: _dt.datetime | None


class PeerStats(NamedTuple):
    """IBackgroundCopyFile4::GetPeerDownloadStats: bytes from the origin server and
    bytes from peers (BranchCache), exact 64-bit counts read live."""

    from_origin: int
    from_peers: int

    @property
    def peer_share(self) -> float | None:
        """Percent of the downloaded bytes that came from peers; None before any byte."""
        return peer_share(self.from_origin, self.from_peers)


class DownloadedFile(NamedTuple):
    """A file Manager.download() brought: where from, where it landed, its size, and
    its bytes from origin and from peers (None where BITS lacks IBackgroundCopyFile4)."""

    url: str
    path: str
    bytes: int
    peer_stats: PeerStats | None

    def __repr__(self) -> str:  # no password or signed query of a URL in a repr
        return _redacted_repr(self, ("url",))


class DownloadResult(NamedTuple):
    """What Manager.download() or download_files() downloaded."""

    job_id: uuid.UUID
    files: tuple[DownloadedFile, ...]

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    @property
    def peer_stats(self) -> PeerStats | None:
        """Bytes from origin and from peers over all the files; None where BITS did not
        report them for every file."""
        stats = [f.peer_stats for f in self.files]
        if any(s is None for s in stats):
            return None
        return PeerStats(
            sum(s.from_origin for s in stats if s), sum(s.from_peers for s in stats if s)
        )


class JobError(NamedTuple):
    """A job's error (IBackgroundCopyError)."""

    hresult: int
    context: ErrorContext | int
    message: str
    context_description: str | None
    protocol: str | None
    remote_name: str | None
    local_name: str | None

    def __repr__(self) -> str:  # no password or signed query of a URL in a repr
        return _redacted_repr(self, ("remote_name",))


class JobProperties(NamedTuple):
    """Every readable property of one job (Job.properties()); None where this BITS does
    not implement it or lacks the interface. Custom headers by name only: their values
    are secrets and never part of a record that may be printed."""

    id: uuid.UUID
    name: str
    description: str | None
    type: JobType | int | None
    state: JobState | int
    priority: JobPriority | int | None
    owner: str | None
    progress: JobProgress | None
    times: JobTimes | None
    error: JobError | None
    error_count: int | None
    minimum_retry_delay: int | None
    no_progress_timeout: int | None
    proxy: ProxySettings | None
    maximum_download_time: int | None
    peer_caching: PeerCaching | None
    owner_integrity_level: int | None
    owner_elevated: bool | None
    notify_command_line: tuple[str, str] | None
    reply_file_name: str | None
    security_flags: SecurityFlags | None
    client_certificate: ClientCertificate | None
    transfer_policy: CostFlags | None
    dynamic_content: bool | None
    high_performance: bool | None
    max_download_size: int | None
    use_stored_credentials: CredentialTarget | int | None
    on_demand: bool | None
    minimum_notification_interval: int | None
    http_method: str | None
    custom_header_names: tuple[str, ...] | None
    file_acl_flags: FileAclFlags | None = None
    helper_token_flags: HelperTokenFlags | None = None
    helper_token_sid: str | None = None


class FileRecord(NamedTuple):
    """A file as one snapshot saw it."""

    remote_name: str
    local_name: str
    progress: FileProgress
    peer_stats: PeerStats | None  # None where the BITS lacks IBackgroundCopyFile4

    def __repr__(self) -> str:  # no password or signed query of a URL in a repr
        return _redacted_repr(self, ("remote_name",))


class JobRecord(NamedTuple):
    """A job as one snapshot saw it, with its files."""

    id: uuid.UUID
    name: str
    owner: str | None
    state: JobState | int
    progress: JobProgress
    times: JobTimes | None  # None where the BITS does not implement GetTimes (Wine)
    files: tuple[FileRecord, ...]
    type: JobType | int = JobType.DOWNLOAD  # read once, as the name and owner


class Snapshot(NamedTuple):
    """Every job in the queue, in BITS' order, and what changed since the previous poll
    of the same poller: ``added`` (new ids), ``changed`` (state or progress moved) and
    ``removed`` (gone from the queue)."""

    jobs: tuple[JobRecord, ...]
    added: frozenset[uuid.UUID]
    changed: frozenset[uuid.UUID]
    removed: frozenset[uuid.UUID]


def job_record(raw: tuple) -> JobRecord:  # type: ignore[type-arg]
    """A JobRecord from the native poller's tuple."""
    id_le, name, owner, state, (bt, btr, ft, ftr), times, files, job_type = raw
    return JobRecord(
        uuid.UUID(bytes_le=id_le),
        name,
        owner,
        as_enum(JobState, state),
        JobProgress(size_or_none(bt), btr, ft, ftr),
        None if times is None else JobTimes(*map(filetime_to_datetime, times)),
        tuple(
            FileRecord(
                remote,
                local,
                FileProgress(size_or_none(total), done, completed),
                None if stats is None else PeerStats(*stats),
            )
            for remote, local, total, done, completed, stats in files
        ),
        as_enum(JobType, job_type),
    )
