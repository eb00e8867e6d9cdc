"""The shape of a job setting: one line in Job's table per BITS property (a getter and,
where BITS has one, a setter through a check), and the BITS version each interface needs.
``JobSettings`` types the ``**settings`` that the downloads set by name."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypedDict

from ._errors import E_NOINTERFACE, NotSupportedError
from ._types import (
    CostFlags,
    CredentialTarget,
    FileAclFlags,
    HelperTokenFlags,
    JobPriority,
    PeerCaching,
    ProxySettings,
    SecurityFlags,
)

if TYPE_CHECKING:
    from ._job import Job


class Needs:
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


JOB = Needs("1.0", "IBackgroundCopyJob")
JOB2 = Needs("2.0", "IBackgroundCopyJob2")
HTTP = Needs("2.5", "IBackgroundCopyJobHttpOptions")
HTTP2 = Needs("10.2", "IBackgroundCopyJobHttpOptions2")
HTTP3 = Needs("10.3", "IBackgroundCopyJobHttpOptions3")
JOB3 = Needs("3.0", "IBackgroundCopyJob3")
JOB4 = Needs("3.0", "IBackgroundCopyJob4")
JOB5 = Needs("5.0", "IBackgroundCopyJob5")
TOKENS = Needs("4.0", "IBitsTokenOptions")
FILE2 = Needs("2.0", "IBackgroundCopyFile2")
FILE3 = Needs("3.0", "IBackgroundCopyFile3")
FILE5 = Needs("5.0", "IBackgroundCopyFile5")
FILE6 = Needs("10.1", "IBackgroundCopyFile6")


class Setting:
    """A job setting read live from BITS and, where it has a setter, written through it:
    one line per property in Job. A getter this BITS does not implement reads None; a
    setter it does not implement raises NotSupportedError, as does an interface it lacks."""

    def __init__(
        self,
        native: str,
        *,
        check: Callable[[object, str], object] | None = None,
        build: Callable[[Any], object] | None = None,
        needs: Needs = JOB,
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


def job5(property_id: int, **kw: Any) -> Setting:
    """An IBackgroundCopyJob5 property (BITS_JOB_PROPERTY_ID property_id) as a setting."""
    return Setting("property", args=(property_id,), needs=JOB5, **kw)


class JobSettings(TypedDict, total=False):
    """The job settings a download sets by name, before its files are added (each a
    property of Job, documented there)."""

    description: str
    priority: JobPriority | int
    minimum_retry_delay: int
    no_progress_timeout: int
    maximum_download_time: int
    peer_caching: PeerCaching | int
    security_flags: SecurityFlags | int
    http_method: str
    transfer_policy: CostFlags | int
    dynamic_content: bool
    high_performance: bool
    max_download_size: int
    use_stored_credentials: CredentialTarget | int
    on_demand: bool
    minimum_notification_interval: int
    reply_file_name: str | None
    proxy: ProxySettings | int
    notify_command_line: tuple[str, str] | None
    custom_headers: Mapping[str, str] | None
    file_acl_flags: FileAclFlags | int
    helper_token_flags: HelperTokenFlags | int
