"""winbits against the real BITS service (Wine's under Wine, Windows' on Windows),
downloading from the loopback server, cross-checked with pywin32."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
from conftest import running_on_wine, skip_if_not_logged_on, wait_for_state, windows_only
from rangeserver import make_payload

import winbits

pytestmark = windows_only

DONE = {winbits.JobState.TRANSFERRED, winbits.JobState.ERROR}
SIZE = 3_000_000


def download(bits, serve, tmp_path, name="payload.bin", size=SIZE):
    payload = make_payload(size, seed=size)
    url = serve(name, payload)
    dest = tmp_path / name
    job = bits.create_job(f"winbits-test {name}")
    job.add_file(url, str(dest))
    try:
        job.resume()
    except winbits.BitsError as e:
        skip_if_not_logged_on(e)
        raise
    wait_for_state(job, DONE)
    assert (job.state, job.error) == (winbits.JobState.TRANSFERRED, None)
    assert job.progress.bytes_transferred == len(payload)
    return job, payload, dest


def test_download_lands_byte_for_byte(bits, serve, tmp_path):
    job, payload, dest = download(bits, serve, tmp_path)
    (f,) = job.files()
    assert f.progress == (SIZE, SIZE, True)
    assert f.remote_name.endswith("/payload.bin")
    assert f.local_name == str(dest)
    assert job.progress.bytes_transferred == SIZE
    assert job.progress.files_transferred == job.progress.files_total == 1
    assert not dest.exists()  # BITS writes the file only at complete()
    job.complete()
    assert dest.read_bytes() == payload
    assert job.state == winbits.JobState.ACKNOWLEDGED


def test_pywin32_reads_the_same_jobs(bits, serve, tmp_path):
    sys.coinit_flags = 0  # type: ignore[attr-defined]  # pythoncom would otherwise make this thread an STA on import
    pythoncom = pytest.importorskip("pythoncom")  # no pywin32 for free-threaded Pythons
    from win32com.bits import bits as pwbits

    done, _, _ = download(bits, serve, tmp_path, "one.bin", 100_000)
    waiting = bits.create_job("winbits-test waiting")
    waiting.add_file(serve("two.bin", b"x" * 10), str(tmp_path / "two.bin"))
    waiting.add_file(serve("three.bin", b"y" * 20), str(tmp_path / "three.bin"))

    manager = pythoncom.CoCreateInstance(
        pwbits.CLSID_BackgroundCopyManager,
        None,
        pythoncom.CLSCTX_LOCAL_SERVER,
        pwbits.IID_IBackgroundCopyManager,
    )

    def unsigned(values):  # pywin32 gives 64-bit counts signed: BG_SIZE_UNKNOWN as -1
        return tuple(
            v & 0xFFFFFFFFFFFFFFFF if isinstance(v, int) and not isinstance(v, bool) else v
            for v in values
        )

    theirs = {}
    for job in manager.EnumJobs(0):
        files = [
            (f.GetRemoteName(), f.GetLocalName(), unsigned(f.GetProgress()))
            for f in job.EnumFiles()
        ]
        theirs[uuid.UUID(str(job.GetId()))] = (
            job.GetDisplayName(),
            job.GetState(),
            unsigned(job.GetProgress()),
            files,
        )
    ours = {}
    for job in bits.jobs():
        p = job.progress
        files = [
            (
                f.remote_name,
                f.local_name,
                (
                    f.progress.bytes_total if f.progress.bytes_total is not None else 2**64 - 1,
                    f.progress.bytes_transferred,
                    f.progress.completed,
                ),
            )
            for f in job.files()
        ]
        ours[job.id] = (
            job.name,
            int(job.state),
            (
                p.bytes_total if p.bytes_total is not None else 2**64 - 1,
                p.bytes_transferred,
                p.files_total,
                p.files_transferred,
            ),
            files,
        )
    assert done.id in ours and waiting.id in ours
    assert ours == theirs
    assert ours[waiting.id][0] == "winbits-test waiting"
    assert len(ours[waiting.id][3]) == 2


def test_cancel_leaves_no_job_and_no_file(bits, serve, tmp_path):
    job = bits.create_job("winbits-test cancel")
    job.add_file(serve("c.bin", make_payload(500_000)), str(tmp_path / "c.bin"))
    job.resume()
    job.cancel()
    # Windows drops a cancelled job from the queue; Wine keeps it, CANCELLED (docs/testbed.md).
    left = {j.id: j.state for j in bits.jobs()}
    assert left.get(job.id, winbits.JobState.CANCELLED) == winbits.JobState.CANCELLED
    assert not (tmp_path / "c.bin").exists()


def test_a_missing_remote_file_puts_the_job_in_error(bits, serve, tmp_path):
    job = bits.create_job("winbits-test 404")
    job.add_file(serve("exists.bin", b"z").replace("exists", "missing"), str(tmp_path / "m.bin"))
    job.resume()
    wait_for_state(job, {winbits.JobState.ERROR, winbits.JobState.TRANSIENT_ERROR})
    err = job.error
    assert err is not None and err.hresult == 0x80190194  # BG_E_HTTP_ERROR_404
    assert err.message


def test_unknown_job_id_is_not_found(bits):
    with pytest.raises(winbits.JobNotFoundError) as info:
        bits.get_job(uuid.uuid4())
    assert info.value.hresult == 0x80200001


def test_get_job_finds_a_created_job(bits):
    job = bits.create_job("winbits-test get")
    again = bits.get_job(job.id)
    assert again == job and again.name == "winbits-test get"
    assert again.state == winbits.JobState.SUSPENDED
    assert again.type == winbits.JobType.DOWNLOAD


def test_suspend_works_or_is_reported_unsupported(bits, serve, tmp_path):
    job = bits.create_job("winbits-test suspend")
    job.add_file(serve("s.bin", b"s" * 100), str(tmp_path / "s.bin"))
    if running_on_wine():  # Wine's Suspend is E_NOTIMPL (docs/testbed.md)
        with pytest.raises(winbits.NotSupportedError) as info:
            job.suspend()
        assert info.value.hresult == 0x80004001
    else:
        job.resume()
        job.suspend()
        assert job.state == winbits.JobState.SUSPENDED


def test_properties_wine_lacks_read_as_none(bits):
    job = bits.create_job("winbits-test props")
    if not running_on_wine():
        pytest.skip("Windows implements them")
    assert (job.owner, job.priority, job.times) == (None, None, None)


def test_the_http_method_and_response_headers_or_the_version_that_has_them(bits, serve, tmp_path):
    job, payload, _ = download(bits, serve, tmp_path, "headers.bin", 4096)
    (f,) = job.files()
    try:
        if running_on_wine():  # Wine's BITS has neither interface
            with pytest.raises(winbits.NotSupportedError, match=r"HttpOptions2 \(BITS 10\.2\)"):
                _ = job.http_method
            with pytest.raises(winbits.NotSupportedError, match=r"File5 \(BITS 5\.0\)"):
                _ = f.http_response_headers
            assert job.properties().http_method is None
        else:
            assert job.http_method == "GET"
            # the last answer: the whole file, or the last range BITS asked for
            assert 0 < int(f.http_response_headers["Content-Length"]) <= len(payload)
    finally:
        job.cancel()


def test_bits_version():
    version = winbits.bits_version()
    assert version == (1, 0) if running_on_wine() else version >= (1, 0)


def test_python_m_winbits_prints_the_table(bits):
    job = bits.create_job("winbits-test table")
    r = subprocess.run(
        [sys.executable, "-m", "winbits"],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["NAME", "ID", "STATE"]
    assert any(
        line.startswith("winbits-test table") and str(job.id)[:8] in line and "SUSPENDED" in line
        for line in lines
    )


def read_every_getter(job):
    """Every property of a job and of its files, as a script listing jobs reads them."""
    props = ("id", "name", "description", "owner", "type", "state", "priority", "progress")
    values = {p: getattr(job, p) for p in (*props, "times", "error")}
    values["files"] = [
        (f.remote_name, f.local_name, f.progress, f.downloaded_from_peer, f.peer_download_stats())
        for f in job.files()
    ]
    return values


def test_every_getter_reads_on_a_fresh_a_transferred_and_a_cancelled_job(bits, serve, tmp_path):
    fresh = read_every_getter(bits.create_job("winbits-test fresh"))
    assert (fresh["description"], fresh["state"], fresh["error"], fresh["files"]) == (
        "",
        winbits.JobState.SUSPENDED,
        None,
        [],
    )
    job, _, _ = download(bits, serve, tmp_path, name="getters.bin", size=1000)
    done = read_every_getter(job)
    assert (done["description"], done["state"], done["error"]) == (
        "",
        winbits.JobState.TRANSFERRED,
        None,
    )
    assert [f[2] for f in done["files"]] == [(1000, 1000, True)]
    doomed = bits.create_job("winbits-test doomed")
    doomed.add_file(serve("doomed.bin", b"x"), str(tmp_path / "doomed.bin"))
    doomed.cancel()
    if running_on_wine():  # Wine keeps a cancelled job readable; Windows drops it
        gone = read_every_getter(doomed)
        assert (gone["description"], gone["state"]) == ("", winbits.JobState.CANCELLED)


def test_token_options_raise_or_work_and_name_their_bits_version(bits, tmp_path):
    """Wine's BITS has no IBitsTokenOptions (seen here): the helper token's calls raise
    NotSupportedError naming BITS 4.0; a Windows BITS sets it."""
    job = bits.create_job("winbits helper token")
    try:
        job.set_helper_token()
    except winbits.NotSupportedError as e:
        assert "IBitsTokenOptions (BITS 4.0)" in str(e)
    else:
        assert (job.helper_token_sid or "").startswith("S-1-5-")
    finally:
        job.cancel()
