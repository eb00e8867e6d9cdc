"""winbits: read and drive Windows' Background Intelligent Transfer Service (BITS)
natively, including how many bytes of each download came from peers (BranchCache)
through IBackgroundCopyFile4::GetPeerDownloadStats::

    import winbits
    with winbits.connect() as bits:
        for job in bits.jobs():
            for f in job.files():
                print(job.name, job.state.name, f.local_name, f.peer_download_stats())

``import winbits`` works on any OS; calls need Windows (elsewhere NotSupportedError).
"""

from ._errors import (
    AccessDeniedError,
    BitsError,
    InvalidStateError,
    JobFailedError,
    JobNotFoundError,
    NotSupportedError,
    PartialCompleteError,
    ServiceUnavailableError,
)
from ._file import File
from ._history import History, Transfer, history
from ._job import Job
from ._manager import Manager, bits_version, connect
from ._poller import Poller
from ._types import (
    AuthScheme,
    CertStoreLocation,
    ClientCertificate,
    CostFlags,
    CredentialTarget,
    DownloadedFile,
    DownloadResult,
    ErrorContext,
    FileAclFlags,
    FileProgress,
    FileRange,
    FileRecord,
    HelperTokenFlags,
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
)

__version__ = "0.1.0"

__all__ = [
    "AccessDeniedError",
    "AuthScheme",
    "BitsError",
    "CertStoreLocation",
    "ClientCertificate",
    "CostFlags",
    "CredentialTarget",
    "DownloadResult",
    "DownloadedFile",
    "ErrorContext",
    "File",
    "FileAclFlags",
    "FileProgress",
    "FileRange",
    "FileRecord",
    "HelperTokenFlags",
    "History",
    "InvalidStateError",
    "Job",
    "JobError",
    "JobFailedError",
    "JobNotFoundError",
    "JobPriority",
    "JobProgress",
    "JobProperties",
    "JobRecord",
    "JobState",
    "JobTimes",
    "JobType",
    "Manager",
    "NotSupportedError",
    "PartialCompleteError",
    "PeerCaching",
    "PeerStats",
    "Poller",
    "ProxySettings",
    "ProxyUsage",
    "ReplyProgress",
    "SecurityFlags",
    "ServiceUnavailableError",
    "Snapshot",
    "Transfer",
    "bits_version",
    "connect",
    "history",
]
