"""winbits' exceptions, and the one table that picks a class for an HRESULT.

The native module calls :func:`from_hresult` for every failed COM call; nothing else
maps HRESULTs to exceptions.
"""

from __future__ import annotations

import errno
from http import HTTPStatus
from typing import Any

__all__ = [
    "SERVICE_GONE",
    "AccessDeniedError",
    "BitsError",
    "InvalidStateError",
    "JobNotFoundError",
    "NotSupportedError",
    "PartialCompleteError",
    "ServiceUnavailableError",
    "from_hresult",
    "hresult_name",
]

# Names of the codes a BITS client meets (docs/bits.md), for messages where neither BITS
# nor the system message table has a text (Wine's GetErrorDescription is E_NOTIMPL).
_NAMES = {
    0x80200001: ("BG_E_NOT_FOUND", "the requested job was not found"),
    0x80200002: ("BG_E_INVALID_STATE", "the requested action is not allowed in the job's state"),
    0x80200003: ("BG_E_EMPTY", "there are no files attached to this job"),
    0x8020000F: ("BG_E_ERROR_INFORMATION_UNAVAILABLE", "no error information is available"),
    0x80200047: ("BG_E_PEERCACHING_DISABLED", "peer caching is disabled"),
    0x00200017: ("BG_S_PARTIAL_COMPLETE", "some files of the job were not transferred"),
    0x0020001A: ("BG_S_UNABLE_TO_DELETE_FILES", "BITS could not delete all temporary files"),
    0x80070005: ("E_ACCESSDENIED", "access is denied"),
    0x80004002: ("E_NOINTERFACE", "the interface is not supported"),
    0x80004001: ("E_NOTIMPL", "not implemented"),
    0x8007000E: ("E_OUTOFMEMORY", "out of memory"),
    0x80070032: ("ERROR_NOT_SUPPORTED", "the request is not supported"),
    0x80040154: ("REGDB_E_CLASSNOTREG", "class not registered"),
    0x800706BA: ("RPC_S_SERVER_UNAVAILABLE", "the RPC server is unavailable"),
    0x800706BE: ("RPC_S_CALL_FAILED", "the remote procedure call failed"),
    0x80010108: ("RPC_E_DISCONNECTED", "the object invoked has disconnected from its clients"),
    0x8001010E: ("RPC_E_WRONG_THREAD", "the interface was marshalled for a different thread"),
    0x800704DD: ("ERROR_NOT_LOGGED_ON", "the job's owner is not logged on"),
    0x80070006: ("E_HANDLE", "the handle is invalid"),
}


# What an error means for the person who meets it, and what to do: added to a failure's
# line (the command line) and to `winbits doctor`'s queue report.
ADVICE = {
    0x800704DD: "BITS transfers only while the job's owner is logged on interactively, or "
    "for a service account: a network logon (WinRM, SSH) or a batch job without a session "
    "cannot; `winbits doctor` says which this is and what fixes it",
    0x80200013: "the server does not answer HTTP range requests "
    "(BG_E_INSUFFICIENT_RANGE_SUPPORT): download with --dynamic (BITS 5.0), which asks for "
    "the whole file",
    0x80200011: "the server sent no Content-Length (BG_E_MISSING_FILE_SIZE): download with "
    "--dynamic (BITS 5.0), which needs none",
}


# HRESULTs that mean the BITS service went away (stopped, crashed, restarting): the one
# table. The native module reads it at import to know when to reconnect; the facade
# maps each to ServiceUnavailableError.
SERVICE_GONE = (
    0x800706BA,  # RPC_S_SERVER_UNAVAILABLE
    0x800706BE,  # RPC_S_CALL_FAILED
    0x80010108,  # RPC_E_DISCONNECTED
    0x80010007,  # RPC_E_SERVER_DIED
    0x80010012,  # RPC_E_SERVER_DIED_DNE
    0x80080005,  # CO_E_SERVER_EXEC_FAILURE
)


# Codes the facade acts on by number.
E_NOINTERFACE = 0x80004002
E_NOTIMPL = 0x80004001
BG_E_INVALID_STATE = 0x80200002
BG_E_ERROR_INFORMATION_UNAVAILABLE = 0x8020000F
ERROR_NOT_SUPPORTED = 0x80070032
ERROR_NOACCESS = 0x800703E6
BG_S_PARTIAL_COMPLETE = 0x00200017
BG_S_UNABLE_TO_DELETE_FILES = 0x0020001A


def hresult_name(hresult: int) -> str | None:
    """The symbolic name of a known HRESULT, such as ``'BG_E_NOT_FOUND'``."""
    entry = _known(hresult & 0xFFFFFFFF)
    return entry[0] if entry else None


# WinHTTP's errors (HRESULT_FROM_WIN32 of 12001-12185), which BITS passes on for a
# transfer that failed below HTTP; on Windows winhttp.dll has their texts, Wine has none.
_WINHTTP = {
    12002: ("ERROR_WINHTTP_TIMEOUT", "the server did not answer in time"),
    12004: ("ERROR_WINHTTP_INTERNAL_ERROR", "an internal error in WinHTTP"),
    12005: ("ERROR_WINHTTP_INVALID_URL", "the URL is not valid"),
    12006: ("ERROR_WINHTTP_UNRECOGNIZED_SCHEME", "the URL's scheme is not http or https"),
    12007: ("ERROR_WINHTTP_NAME_NOT_RESOLVED", "the server's name could not be resolved"),
    12017: ("ERROR_WINHTTP_OPERATION_CANCELLED", "the request was cancelled"),
    12029: ("ERROR_WINHTTP_CANNOT_CONNECT", "could not connect to the server"),
    12030: ("ERROR_WINHTTP_CONNECTION_ERROR", "the server closed or reset the connection"),
    12037: ("ERROR_WINHTTP_SECURE_CERT_DATE_INVALID", "the server's certificate has expired"),
    12038: ("ERROR_WINHTTP_SECURE_CERT_CN_INVALID", "the server's certificate is for another name"),
    12044: ("ERROR_WINHTTP_CLIENT_AUTH_CERT_NEEDED", "the server wants a client certificate"),
    12045: ("ERROR_WINHTTP_SECURE_INVALID_CA", "the server's certificate is from an unknown CA"),
    12152: ("ERROR_WINHTTP_INVALID_SERVER_RESPONSE", "the server's answer could not be read"),
    12156: ("ERROR_WINHTTP_REDIRECT_FAILED", "a redirect could not be followed"),
    12175: ("ERROR_WINHTTP_SECURE_FAILURE", "the secure connection failed (certificate)"),
}


def _known(hresult: int) -> tuple[str, str] | None:
    """(name, text) of a code winbits knows: the tables above, and BITS' 0x8019xxxx
    codes, which carry the HTTP status the server answered."""
    if hresult & 0xFFFF0000 == 0x80190000:  # BG_E_HTTP_ERROR_xxx: the server said xxx
        status = hresult & 0xFFFF
        try:
            text = f"HTTP status {status} ({HTTPStatus(status).phrase})"
        except ValueError:
            text = f"HTTP status {status}"
        return f"BG_E_HTTP_ERROR_{status}", text
    if hresult & 0xFFFF0000 == 0x80070000 and (hresult & 0xFFFF) in _WINHTTP:
        return _WINHTTP[hresult & 0xFFFF]
    return _NAMES.get(hresult)


def hresult_text(hresult: int) -> str:
    """A text for a code nobody gave one for: the name and text winbits knows (an HTTP
    status says enough alone), else the bare code."""
    entry = _known(hresult)
    if entry is None:
        return f"HRESULT 0x{hresult:08X}"
    name, text = entry
    return text if name.startswith("BG_E_HTTP_ERROR_") else f"{name}: {text}"


class BitsError(OSError):
    """A BITS call failed. ``hresult`` is the code (unsigned), ``strerror`` the text
    BITS gave for it (``GetErrorDescription``), else the system's, else its name."""

    hresult: int

    def __init__(self, hresult: int, message: str | None = None) -> None:
        hresult &= 0xFFFFFFFF
        text = message or hresult_text(hresult)
        super().__init__(errno.EACCES if hresult == 0x80070005 else None, text)
        self.hresult = hresult

    def __str__(self) -> str:
        return f"{self.strerror} (HRESULT 0x{self.hresult:08X})"

    def __reduce__(self) -> tuple[type[BitsError], tuple[int, str]]:
        return (type(self), (self.hresult, str(self.strerror)))


class JobNotFoundError(BitsError):
    """No job with that id (BG_E_NOT_FOUND), or it vanished while being read."""


class AccessDeniedError(BitsError, PermissionError):
    """E_ACCESSDENIED: another user's job, or all users' jobs without administrator."""


class NotSupportedError(BitsError):
    """This BITS lacks the interface or method (E_NOTIMPL, E_NOINTERFACE), or BITS is
    absent altogether (class not registered, or not Windows)."""


class ServiceUnavailableError(BitsError, ConnectionError):
    """The BITS service could not be reached or went away (RPC failures)."""


class InvalidStateError(BitsError):
    """The job's state does not allow the action (BG_E_INVALID_STATE)."""


class PartialCompleteError(BitsError):
    """Job.complete() moved only some files into place (BG_S_PARTIAL_COMPLETE): the
    others never landed (a folder that does not exist, a file locked). ``files`` are
    their local paths."""

    files: tuple[str, ...]

    def __init__(self, hresult: int, message: str | None = None, files: tuple[str, ...] = ()):
        super().__init__(hresult, message)
        self.files = tuple(files)

    def __reduce__(self) -> tuple[type[BitsError], tuple[int, str, tuple[str, ...]]]:  # type: ignore[override]
        return (type(self), (self.hresult, str(self.strerror), self.files))


class JobFailedError(BitsError):
    """A job that was waited for reached ERROR. ``error`` is its JobError (the HRESULT,
    the context, BITS' text and the file's URL), or None where BITS gave none; ``state``
    the state the job ended in. The job is left as it is (download() cancels its own)."""

    def __init__(
        self,
        hresult: int,
        message: str | None = None,
        error: Any = None,
        state: int = 4,
    ) -> None:
        super().__init__(hresult, message)
        self.error = error
        self.state = state

    def __reduce__(self) -> tuple[type[BitsError], tuple[Any, ...]]:
        return (type(self), (self.hresult, str(self.strerror), self.error, self.state))


_CLASSES: dict[int, type[BitsError]] = {
    0x80200001: JobNotFoundError,
    0x80070005: AccessDeniedError,
    0x80004001: NotSupportedError,
    0x80004002: NotSupportedError,
    0x80070032: NotSupportedError,
    0x80040154: NotSupportedError,
    0x80200002: InvalidStateError,
    **dict.fromkeys(SERVICE_GONE, ServiceUnavailableError),
}


def from_hresult(hresult: int, message: str | None = None) -> BitsError:
    """The exception for a failed HRESULT: the most specific class winbits has."""
    hresult &= 0xFFFFFFFF
    return _CLASSES.get(hresult, BitsError)(hresult, message)
