"""The checks of what a caller gives winbits, made before any BITS call: URLs, local
paths, names, headers, ranges, numbers and the waits' arguments, with BITS' own limits.
Pure Python: the security-relevant edges are tested on any OS."""

from __future__ import annotations

import itertools
import ntpath
import uuid
from collections.abc import Mapping, Sequence
from enum import IntEnum
from typing import TypeGuard

from ._types import AuthScheme, CredentialTarget, PeerCaching, redact_url

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


def check_url(url: object) -> None:
    """What BITS can fetch: http and https URLs with a host, and UNC paths (SMB), of at
    most MAX_URL_LENGTH characters."""
    url = text(url, "url")
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
        raise ValueError(f"BITS takes http://, https:// URLs or UNC paths, not {redact_url(url)!r}")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise ValueError(
            f"a URL must not contain spaces or control characters: {redact_url(url)!r}"
        )


def guid_bytes(value: uuid.UUID | str, what: str) -> bytes:
    if isinstance(value, uuid.UUID):
        return value.bytes_le
    if isinstance(value, str):
        try:
            return uuid.UUID(value).bytes_le
        except ValueError:
            raise ValueError(f"{what} is not a GUID: {value!r}") from None
    raise TypeError(f"{what} must be a uuid.UUID or str, not {type(value).__name__}")


def text(value: object, what: str, limit: int | None = None) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be str, not {type(value).__name__}")
    if limit is not None and len(value) > limit:
        raise ValueError(f"{what} is {len(value)} characters; BITS takes {limit}")
    return value


def is_member(value: object, cls: type[IntEnum]) -> TypeGuard[int]:
    """Whether value is one of cls's numbers (a bool is not)."""
    return isinstance(value, int) and not isinstance(value, bool) and value in set(cls)


def auth(target: object, scheme: object) -> tuple[int, int]:
    """(target, scheme) as BITS' numbers; ValueError for one BITS does not know."""
    for value, cls in ((target, CredentialTarget), (scheme, AuthScheme)):
        if not is_member(value, cls):
            raise ValueError(f"{cls.__name__} must be one of {[m.name for m in cls]}: {value!r}")
    return int(target), int(scheme)  # type: ignore[call-overload]


TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


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
        if not name or not TOKEN.issuperset(name):
            raise ValueError(f"not an HTTP header name: {name!r}")
        if any(c in value for c in "\r\n\0"):
            raise ValueError(f"the value of header {name!r} holds CR, LF or NUL")
        lines.append(f"{name}: {value}")
    return "\r\n".join(lines)


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


def http_method(value: object, what: str) -> str:
    method = text(value, what)
    if not method or not TOKEN.issuperset(method):
        raise ValueError(f"{what} must be an HTTP method (a token such as GET), not {method!r}")
    return method


def file_ranges(ranges: object) -> list[tuple[int, int]]:
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


def number(value: object, what: str, kind: str, allowed: int = MAX_UINT64) -> int:
    """value as an int from 0 to allowed; TypeError naming `kind` for a non-int (a bool
    too), ValueError outside the range."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be {kind}, not {type(value).__name__}")
    if not 0 <= value <= allowed:
        raise ValueError(f"{what} must be 0 to {allowed}, not {value}")
    return value


def seconds(value: object, what: str) -> int:
    """A count of seconds (or milliseconds) BITS keeps in a ULONG."""
    return number(value, what, "a whole number", MAX_ULONG)


def uint64(value: object, what: str) -> int:
    return number(value, what, "an int")


def peer_flags(value: object, what: str) -> int:
    return number(value, what, "PeerCaching flags", int(PeerCaching(7)))


def acl_flags(value: object, what: str) -> int:
    return number(value, what, "FileAclFlags", 0xF)


def token_flags(value: object, what: str) -> int:
    return number(value, what, "HelperTokenFlags", 0x3)


def security_flags(value: object, what: str) -> int:
    value = number(value, what, "SecurityFlags", MAX_ULONG)
    if value & ~0xB1F or (value & 0x700) not in (0, 0x100, 0x200):  # 0x700: redirects
        raise ValueError(f"{what} takes SecurityFlags, with one redirect policy: {value:#x}")
    return value


def cost_flags(value: object, what: str) -> int:
    value = number(value, what, "CostFlags", MAX_ULONG)
    if value == 0 or value & ~0x800000FF:
        raise ValueError(f"{what} takes CostFlags (at least one network cost): {value:#x}")
    return value


def flag(value: object, what: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{what} must be a bool, not {type(value).__name__}")
    return value


def stored_target(value: object, what: str) -> int:
    if not is_member(value, CredentialTarget):
        raise ValueError(f"{what} takes a CredentialTarget, not {value!r}")
    return value


def optional_text(value: object, what: str) -> str | None:
    return None if value is None else text(value, what)


def wait_args(
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


def local_path(path: str) -> str:
    """A local path BITS takes: absolute (BITS runs in another process), at most MAX_PATH
    characters, no wildcards and no long-path (\\\\?\\) prefix."""
    text(path, "path")
    if not ntpath.isabs(path):
        raise ValueError(f"path must be absolute (BITS runs in another process): {path!r}")
    if len(path) > MAX_PATH:
        raise ValueError(f"path is {len(path)} characters; BITS takes {MAX_PATH} at most")
    if path.startswith(("\\\\?\\", "\\\\.\\")) or any(c in path for c in "*?"):
        raise ValueError(f"BITS takes no wildcards and no \\\\?\\ prefix in a path: {path!r}")
    return path
