"""The pure-Python parts: run on Linux natively and under every Windows Python."""

from __future__ import annotations

import datetime as dt
import errno
import pickle
import sys

import pytest

import winbits
from winbits._errors import from_hresult, hresult_name
from winbits._types import SIZE_UNKNOWN, filetime_to_datetime, size_or_none


@pytest.mark.parametrize(
    ("hresult", "cls", "extra_base"),
    [
        (0x80200001, winbits.JobNotFoundError, None),
        (0x80070005, winbits.AccessDeniedError, PermissionError),
        (0x80004001, winbits.NotSupportedError, None),
        (0x80004002, winbits.NotSupportedError, None),
        (0x80040154, winbits.NotSupportedError, None),
        (0x800706BA, winbits.ServiceUnavailableError, ConnectionError),
        (0x80010108, winbits.ServiceUnavailableError, ConnectionError),
        (0x80200002, winbits.InvalidStateError, None),
        (0x8007000E, winbits.BitsError, None),
        (0x80ABCDEF, winbits.BitsError, None),
    ],
)
def test_each_hresult_maps_to_its_class(hresult, cls, extra_base):
    err = from_hresult(hresult, "BITS says so")
    assert type(err) is cls
    assert isinstance(err, winbits.BitsError) and isinstance(err, OSError)
    if extra_base:
        assert isinstance(err, extra_base)
    assert err.hresult == hresult
    assert err.strerror == "BITS says so"
    assert str(err) == f"BITS says so (HRESULT 0x{hresult:08X})"


def test_negative_hresult_is_read_as_unsigned():
    assert from_hresult(-2145386495).hresult == 0x80200001  # as a signed 32-bit value


def test_message_falls_back_to_the_name_then_the_code():
    assert str(from_hresult(0x80200001)) == (
        "BG_E_NOT_FOUND: the requested job was not found (HRESULT 0x80200001)"
    )
    assert str(from_hresult(0x80ABCDEF)) == "HRESULT 0x80ABCDEF (HRESULT 0x80ABCDEF)"
    assert hresult_name(0x80200003) == "BG_E_EMPTY"
    assert hresult_name(0x12345678) is None


@pytest.mark.parametrize(
    ("hresult", "name", "text"),
    [
        (0x80190191, "BG_E_HTTP_ERROR_401", "HTTP status 401 (Unauthorized)"),
        (0x801901F4, "BG_E_HTTP_ERROR_500", "HTTP status 500 (Internal Server Error)"),
        (0x80190194, "BG_E_HTTP_ERROR_404", "HTTP status 404 (Not Found)"),
        (0x80190258, "BG_E_HTTP_ERROR_600", "HTTP status 600"),
        (
            0x80072EFD,
            "ERROR_WINHTTP_CANNOT_CONNECT",
            "ERROR_WINHTTP_CANNOT_CONNECT: could not connect to the server",
        ),
        (
            0x80072EFE,
            "ERROR_WINHTTP_CONNECTION_ERROR",
            "ERROR_WINHTTP_CONNECTION_ERROR: the server closed or reset the connection",
        ),
    ],
)
def test_http_and_winhttp_codes_get_a_text_where_bits_gives_none(hresult, name, text):
    assert from_hresult(hresult).strerror == text
    assert hresult_name(hresult) == name


def test_access_denied_carries_eacces_and_pickles():
    err = from_hresult(0x80070005, "Access is denied")
    assert err.errno == errno.EACCES
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is winbits.AccessDeniedError
    assert (copy.hresult, copy.strerror) == (0x80070005, "Access is denied")


def test_sizes_and_times():
    assert size_or_none(SIZE_UNKNOWN) is None
    assert size_or_none(2**64 - 2) == 2**64 - 2
    assert filetime_to_datetime(0) is None
    # 2020-01-01T00:00:00Z as FILETIME ticks
    assert filetime_to_datetime(132223104000000000) == dt.datetime(
        2020, 1, 1, tzinfo=dt.timezone.utc
    )


def test_progress_and_peer_share():
    assert winbits.JobProgress(None, 5, 1, 0).percent is None
    assert winbits.JobProgress(200, 50, 1, 0).percent == 25.0
    assert winbits.FileProgress(0, 0, True).percent == 100.0
    assert winbits.PeerStats(0, 0).peer_share is None
    assert winbits.PeerStats(300, 100).peer_share == 25.0
    assert winbits.JobState.CANCELLED.is_final and not winbits.JobState.TRANSFERRED.is_final


@pytest.mark.skipif(sys.platform == "win32", reason="the off-Windows error")
def test_calls_off_windows_raise_a_clear_error():
    with pytest.raises(winbits.NotSupportedError, match="winbits needs Windows"):
        winbits.connect()
    with pytest.raises(winbits.NotSupportedError):
        winbits.bits_version()


def test_public_names_are_exported():
    for name in winbits.__all__:
        obj = getattr(winbits, name)
        assert obj.__name__ == name and obj.__module__.startswith("winbits.")
    assert winbits.__all__ == sorted(winbits.__all__)
    assert {n for n in dir(winbits) if n[0].isupper()} <= set(winbits.__all__)
    assert isinstance(winbits.__version__, str)


def test_the_version_is_the_installed_wheels():
    from importlib import metadata

    try:
        installed = metadata.version("winbits")
    except metadata.PackageNotFoundError:
        pytest.skip("winbits runs from the source tree here, not from an installed wheel")
    assert installed == winbits.__version__


def test_the_download_settings_type_names_every_settable_job_property():
    from winbits._job import Job
    from winbits._settings import JobSettings

    settable = {name for name in vars(Job) if not name.startswith("_") and Job.settable(name)}
    assert set(JobSettings.__annotations__) == settable - {"name"}  # name= is the download's own


SECRET_URL = "https://bob:PASSWORD@cdn.example/f.bin?sig=SECRET&X-Amz-Signature=SECRET2#t"


def test_a_url_is_shown_without_its_password_and_signed_query():
    from winbits._types import redact_url

    assert redact_url(SECRET_URL) == "https://cdn.example/f.bin?…#…"
    assert redact_url("http://h:8080/a/b") == "http://h:8080/a/b"
    assert redact_url("\\\\server\\share\\f.bin") == "\\\\server\\share\\f.bin"
    assert redact_url("not a url") == "not a url"


def test_a_urls_secrets_reach_no_exception_and_no_repr():
    from winbits._checks import check_url
    from winbits._types import DownloadedFile, ErrorContext, FileProgress, FileRecord, JobError

    for bad in (
        SECRET_URL.replace("https", "ftp"),
        SECRET_URL.replace("f.bin", "f .bin"),
    ):
        with pytest.raises(ValueError) as info:
            check_url(bad)
        assert "PASSWORD" not in str(info.value) and "SECRET" not in str(info.value)
    records: list[DownloadedFile | FileRecord | JobError] = [
        DownloadedFile(SECRET_URL, "C:\\f.bin", 1, None),
        FileRecord(SECRET_URL, "C:\\f.bin", FileProgress(1, 1, True), None),
        JobError(
            0x80190194, ErrorContext.REMOTE_FILE, "not found", None, "HTTP", SECRET_URL, "C:\\f"
        ),
    ]
    for record in records:
        assert "PASSWORD" not in repr(record) and "SECRET" not in repr(record), repr(record)
        assert "https://cdn.example/f.bin?…#…" in repr(record)
    assert DownloadedFile(SECRET_URL, "C:\\f", 1, None).url == SECRET_URL  # the value, whole
