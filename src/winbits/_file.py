"""A file of a BITS job: its names, progress, ranges, and the peer statistics
(IBackgroundCopyFile3/4) that winbits exists for."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import _checks as checks
from ._settings import FILE2, FILE3, FILE5, FILE6
from ._types import FileProgress, FileRange, PeerStats, redact_url, size_or_none

if TYPE_CHECKING:
    from . import _native as native_types


class File:
    """A file of a job."""

    __slots__ = ("_native",)

    def __init__(self, native: native_types.File) -> None:
        self._native = native

    def __repr__(self) -> str:
        return f"<winbits.File {redact_url(self.remote_name)!r}>"

    @property
    def remote_name(self) -> str:
        """The URL ("" where not implemented)."""
        return self._native.remote_name() or ""

    @remote_name.setter
    def remote_name(self, url: str) -> None:
        """Fetch the file from another URL, a mirror (BITS 2.0). The job must not be
        transferring; BITS' refusal comes through as its error."""
        checks.check_url(url)
        with FILE2:
            self._native.set_remote_name(url)

    @property
    def local_name(self) -> str:
        """The local path ("" where not implemented)."""
        return self._native.local_name() or ""

    @property
    def ranges(self) -> list[FileRange]:
        """The parts of the file the job downloads; [] for the whole file (BITS 2.0)."""
        with FILE2:
            raw = self._native.ranges()
        return _ranges(raw)

    @property
    def temporary_name(self) -> str | None:
        """Where BITS keeps the file until the job is completed (BITS 3.0)."""
        with FILE3:
            return self._native.temporary_name()

    @property
    def validation_state(self) -> bool | None:
        """Whether the downloaded content was marked valid (BITS 3.0); set it once the
        file is transferred, for peer caching to share the file."""
        with FILE3:
            return self._native.validation_state()

    @validation_state.setter
    def validation_state(self, valid: bool) -> None:
        if not isinstance(valid, bool):
            raise TypeError(f"validation_state must be a bool, not {type(valid).__name__}")
        with FILE3:
            self._native.set_validation_state(valid)

    @property
    def http_response_headers(self) -> dict[str, str]:
        """The headers of the server's last answer for this file, name to value; {}
        before BITS has one (BITS 5.0, IBackgroundCopyFile5)."""
        with FILE5:
            return checks.parse_headers(self._native.http_response_headers())

    @property
    def filled_file_ranges(self) -> list[FileRange]:
        """The parts of an on-demand job's file downloaded so far, merged and in order
        (BITS 10.1, IBackgroundCopyFile6::GetFilledFileRanges)."""
        with FILE6:
            raw = self._native.filled_file_ranges()
        return _ranges(raw)

    def request_file_ranges(self, ranges: Sequence[tuple[int, int | None]]) -> None:
        """Ask an on-demand job (``job.on_demand = True``) for these (offset, length)
        parts first, length None for "to the end" (BITS 10.1, RequestFileRanges). They may
        overlap parts already there; BITS splits them."""
        checked = checks.file_ranges(ranges)
        with FILE6:
            self._native.request_file_ranges(checked)

    def update_download_position(self, offset: int) -> None:
        """Ask an on-demand job for what is missing from ``offset`` on first (BITS 10.1,
        UpdateDownloadPosition)."""
        offset = checks.uint64(offset, "offset")
        with FILE6:
            self._native.update_download_position(offset)

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


def _ranges(raw: list[tuple[int, int]] | None) -> list[FileRange]:
    """FileRanges from BITS' (offset, length) pairs; None for a length "to the end"."""
    return [FileRange(o, None if n == checks.LENGTH_TO_EOF else n) for o, n in raw or ()]
