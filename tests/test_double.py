"""winbits against the in-process C++ COM test double: what Wine's BITS cannot show
(IBackgroundCopyFile3/4, access denied, faults), with exact call and live-object counts."""

from __future__ import annotations

import uuid

import pytest
from conftest import windows_only

import winbits

pytestmark = windows_only

BG_E_NOT_FOUND = 0x80200001
BG_E_INVALID_STATE = 0x80200002
E_ACCESSDENIED = 0x80070005
E_NOTIMPL = 0x80004001
E_OUTOFMEMORY = 0x8007000E
RPC_S_SERVER_UNAVAILABLE = 0x800706BA
RPC_E_DISCONNECTED = 0x80010108


@pytest.fixture
def manager(double):
    with winbits.connect(double.clsid()) as m:
        yield m


def one_file_job(double, **file):
    job = double.add_job("j", state=int(winbits.JobState.TRANSFERRED))
    double.add_file(job, "http://h/f", "C:\\f", **file)
    return job


@pytest.mark.parametrize(
    ("origin", "peers"),
    [(0, 0), (2**32 + 5, 2**33 - 1), (2**64 - 1, 2**64 - 2), (123, 2**63)],
)
def test_peer_stats_come_back_exactly(double, manager, origin, peers):
    one_file_job(
        double,
        total=origin + peers,
        transferred=origin + peers,
        completed=True,
        from_peer=peers > 0,
        from_origin=origin,
        from_peers=peers,
    )
    (f,) = manager.jobs()[0].files()
    stats = f.peer_download_stats()
    assert stats == (origin, peers)
    assert (stats.from_origin, stats.from_peers) == (origin, peers)
    assert f.downloaded_from_peer is (peers > 0)


@pytest.mark.parametrize(
    ("level", "has_file3", "has_file4"), [(2, False, False), (3, True, False), (4, True, True)]
)
def test_absent_file3_and_file4_read_as_none(double, level, has_file3, has_file4):
    double.reset(file_level=level)
    one_file_job(double, from_peer=True, from_origin=7, from_peers=9)
    with winbits.connect(double.clsid()) as m:
        (f,) = m.jobs()[0].files()
        assert f.downloaded_from_peer == (True if has_file3 else None)
        assert f.peer_download_stats() == ((7, 9) if has_file4 else None)


def test_a_missing_interface_is_asked_for_once_per_connection(double):
    double.reset(file_level=2)
    job = double.add_job("j")
    for i in range(3):
        double.add_file(job, f"http://h/{i}", f"C:\\{i}")
    with winbits.connect(double.clsid()) as m:
        files = m.jobs()[0].files()
        double.clear_calls()
        assert [f.peer_download_stats() for f in files] == [None, None, None]
        assert [f.peer_download_stats() for f in files] == [None, None, None]
        assert double.calls() == {"File.QueryInterface": 1}


def test_a_present_interface_is_asked_for_once_per_file(double, manager):
    one_file_job(double, from_origin=1, from_peers=2)
    (f,) = manager.jobs()[0].files()
    double.clear_calls()
    for _ in range(3):
        assert f.peer_download_stats() == (1, 2)
    assert double.calls() == {"File.QueryInterface": 1, "File.GetPeerDownloadStats": 3}


def object_walk(manager):
    """Every job and file read through the object API, property by property."""
    rows = []
    for job in manager.jobs():
        progress, state = job.progress, job.state
        files = [
            (f.remote_name, f.local_name, f.progress, f.peer_download_stats()) for f in job.files()
        ]
        rows.append(
            {
                "id": job.id,
                "name": job.name,
                "owner": job.owner,
                "state": state,
                "progress": progress,
                "files": files,
            }
        )
    return rows


def test_the_object_api_makes_one_call_per_property(double, manager):
    for j in range(2):
        job = double.add_job(f"job{j}")
        for i in range(3):
            double.add_file(job, f"http://h/{j}/{i}", f"C:\\{j}{i}", total=10, transferred=5)
    double.clear_calls()
    rows = object_walk(manager)
    assert [r["name"] for r in rows] == ["job0", "job1"]
    assert [len(r["files"]) for r in rows] == [3, 3]
    per_job = [
        "Job.GetProgress",
        "Job.GetState",
        "Job.EnumFiles",
        "EnumFiles.Next",
        "Job.GetId",
        "Job.GetDisplayName",
        "Job.GetOwner",
    ]
    per_file = [
        "File.GetProgress",
        "File.QueryInterface",
        "File.GetPeerDownloadStats",
        "File.GetRemoteName",
        "File.GetLocalName",
    ]
    expected = {"Manager.EnumJobs": 1, "EnumJobs.Next": 1}
    expected.update(dict.fromkeys(per_job, 2))
    expected.update(dict.fromkeys(per_file, 6))
    assert double.calls() == expected


def test_job_properties(double, manager):
    job_id = double.add_job(
        "props",
        state=2,
        description="d",
        owner="S-1-5-21-7",
        priority=1,
        times=(132223104000000000, 132223104000000000 + 10**7, 0),
    )
    double.add_file(job_id, "http://h/a", "C:\\a", total=100, transferred=40)
    double.add_file(job_id, "http://h/b", "C:\\b", total=50, transferred=50, completed=True)
    (job,) = manager.jobs()
    assert job.id == uuid.UUID(job_id)
    assert (job.name, job.description, job.owner) == ("props", "d", "S-1-5-21-7")
    assert (job.state, job.priority, job.type) == (
        winbits.JobState.TRANSFERRING,
        winbits.JobPriority.HIGH,
        winbits.JobType.DOWNLOAD,
    )
    assert job.progress == (150, 90, 2, 1)
    assert job.times.created.isoformat() == "2020-01-01T00:00:00+00:00"
    assert job.times.modified.isoformat() == "2020-01-01T00:00:01+00:00"
    assert job.times.transfer_completed is None
    assert job.error is None
    a, b = job.files()
    assert (a.remote_name, a.local_name, a.progress) == ("http://h/a", "C:\\a", (100, 40, False))
    assert b.progress == (50, 50, True)


def test_unknown_size_reads_as_none(double, manager):
    job = double.add_job("j")
    double.add_file(job, "http://h/a", "C:\\a")  # total defaults to BG_SIZE_UNKNOWN
    (j,) = manager.jobs()
    assert j.progress.bytes_total is None
    assert j.files()[0].progress.bytes_total is None


def test_job_error_record(double, manager):
    job = double.add_job("failing", state=4, error=0x80190194, error_context=5, error_file=0)
    double.add_file(job, "http://h/missing", "C:\\m")
    err = manager.get_job(job).error
    assert err.hresult == 0x80190194
    assert err.context is winbits.ErrorContext.REMOTE_FILE
    assert err.message == "The double's description of the job error"
    assert err.protocol == "http"
    assert (err.remote_name, err.local_name) == ("http://h/missing", "C:\\m")


@pytest.mark.parametrize(
    ("hresult", "cls"),
    [
        (BG_E_NOT_FOUND, winbits.JobNotFoundError),
        (E_ACCESSDENIED, winbits.AccessDeniedError),
        (RPC_S_SERVER_UNAVAILABLE, winbits.ServiceUnavailableError),
        (RPC_E_DISCONNECTED, winbits.ServiceUnavailableError),
        (BG_E_INVALID_STATE, winbits.InvalidStateError),
        (E_OUTOFMEMORY, winbits.BitsError),
        (0x80ABCDEF, winbits.BitsError),
    ],
)
def test_a_failing_call_raises_its_class_with_the_hresult(double, manager, hresult, cls):
    double.add_job("j")
    (job,) = manager.jobs()
    double.fail("Job.GetState", hresult)
    with pytest.raises(cls) as info:
        _ = job.state
    assert type(info.value) is cls
    assert info.value.hresult == hresult
    assert str(info.value).endswith(f"(HRESULT 0x{hresult:08X})")
    assert info.value.strerror  # a text: BITS', the system's, or the code's name


def test_bits_own_message_is_used(double, manager):
    with pytest.raises(winbits.JobNotFoundError) as info:
        manager.get_job(uuid.uuid4())
    # From the manager's GetErrorDescription, trailing CR/LF and period trimmed.
    assert info.value.strerror == "The requested job was not found"


def test_not_implemented_property_is_none_and_verb_raises(double, manager):
    double.add_job("j")
    (job,) = manager.jobs()
    for method in ("Job.GetOwner", "Job.GetPriority", "Job.GetTimes", "Job.GetDescription"):
        double.fail(method, E_NOTIMPL)
    assert (job.owner, job.priority, job.times, job.description) == (None, None, None, None)
    double.fail("Job.Suspend", E_NOTIMPL)
    with pytest.raises(winbits.NotSupportedError):
        job.suspend()


def test_all_users_needs_an_administrator(double):
    double.add_job("mine")
    with winbits.connect(double.clsid()) as m:
        with pytest.raises(winbits.AccessDeniedError) as info:
            m.jobs(all_users=True)
        assert isinstance(info.value, PermissionError)
    double.reset(admin=True)
    double.add_job("theirs")
    with winbits.connect(double.clsid()) as m:
        assert [j.name for j in m.jobs(all_users=True)] == ["theirs"]


def test_verbs_drive_the_job(double, manager):
    job = manager.create_job("made")
    job_id = str(job.id).upper()
    assert job.state == winbits.JobState.SUSPENDED
    with pytest.raises(winbits.BitsError) as info:
        job.resume()  # no files yet
    assert info.value.hresult == 0x80200003
    job.add_file("http://h/x", "C:\\winbits-test-never-exists\\x.bin")
    assert job.resume() is None
    assert job.state == winbits.JobState.QUEUED
    with pytest.raises(winbits.InvalidStateError):
        job.complete()  # not transferred
    double.set_state("{" + job_id + "}", int(winbits.JobState.TRANSFERRED))
    assert job.complete() is None
    assert double.job_state("{" + job_id + "}") == (int(winbits.JobState.ACKNOWLEDGED), True)
    with pytest.raises(winbits.JobNotFoundError):
        manager.get_job(job.id)


def test_cancel_takes_the_job_out_of_the_queue(double, manager):
    job = manager.create_job("doomed")
    assert job.cancel() is None
    assert manager.jobs() == []


def test_bad_input_is_refused_before_any_com_call(double, manager, tmp_path):
    job = manager.create_job("j")
    double.clear_calls()
    existing = tmp_path / "exists.bin"
    existing.write_bytes(b"keep me")
    cases = [
        (TypeError, lambda: job.add_file(b"http://h/x", "C:\\x")),
        (TypeError, lambda: job.add_file("http://h/x", None)),
        (ValueError, lambda: job.add_file("http://h/x", "relative\\x.bin")),
        (ValueError, lambda: job.add_file("http://h/" + "a" * 2192, "C:\\x")),  # 2201 chars
        (ValueError, lambda: job.add_file("http://h/x", "C:\\" + "a" * 258)),  # 261 chars
        (ValueError, lambda: job.add_file("http://h/x", "\\\\?\\C:\\x")),
        (ValueError, lambda: job.add_file("http://h/x", "C:\\*.bin")),
        (ValueError, lambda: job.add_file("http://h/\0x", "C:\\x")),
        (ValueError, lambda: job.add_file("http://h/\ud800", "C:\\x")),
        (ValueError, lambda: job.add_file("ftp://h/x", "C:\\x")),
        (ValueError, lambda: job.add_file("file:///C:/x", "C:\\x")),
        (ValueError, lambda: job.add_file("hello world", "C:\\x")),
        (ValueError, lambda: job.add_file("http://", "C:\\x")),
        (ValueError, lambda: job.add_file("http://h/a b", "C:\\x")),
        (ValueError, lambda: job.add_file("\\\\server", "C:\\x")),
        (ValueError, lambda: manager.create_job("n" * 257)),
        (FileExistsError, lambda: job.add_file("http://h/x", str(existing))),
        (ValueError, lambda: manager.get_job("not-a-guid")),
        (TypeError, lambda: manager.get_job(42)),
        (TypeError, lambda: manager.create_job(None)),
        (ValueError, lambda: manager.create_job("n", 7)),
        (TypeError, lambda: manager.jobs(all_users="yes")),
    ]
    for exc, call in cases:
        with pytest.raises(exc):
            call()
    assert double.calls() == {}
    assert existing.read_bytes() == b"keep me"


def test_overwrite_must_be_asked_for(double, manager, tmp_path):
    existing = tmp_path / "exists.bin"
    existing.write_bytes(b"old")
    job = manager.create_job("j")
    job.add_file("http://h/x", str(existing), overwrite=True)
    assert [f.local_name for f in job.files()] == [str(existing)]


def test_a_closed_manager_refuses_its_objects(double):
    double.add_job("j")
    m = winbits.connect(double.clsid())
    (job,) = m.jobs()
    m.close()
    assert m.closed
    double.clear_calls()
    with pytest.raises(ValueError, match="closed"):
        _ = job.state
    with pytest.raises(ValueError, match="closed"):
        m.jobs()
    assert double.calls() == {}


def test_connecting_to_an_unregistered_class_is_not_supported():
    with pytest.raises(winbits.NotSupportedError) as info:
        winbits.connect(uuid.uuid4())
    assert info.value.hresult == 0x80040154  # REGDB_E_CLASSNOTREG


def test_objects_are_released(double):
    job = double.add_job("j")
    double.add_file(job, "http://h/a", "C:\\a")
    with winbits.connect(double.clsid()) as m:
        files = m.jobs()[0].files()  # the job itself is released with its temporary wrapper
        files[0].peer_download_stats()
        assert double.live() == 2  # the manager and the file (File4 is the same object)
        del files
        assert double.live() == 1
    assert double.live() == 0


def test_the_longest_url_and_path_bits_takes_are_accepted(double, manager):
    job = manager.create_job("limits")
    url, path = "http://h/" + "a" * 2191, "C:\\" + "b" * 257
    assert (len(url), len(path)) == (2200, 260)
    job.add_file(url, path)
    assert [(f.remote_name, f.local_name) for f in job.files()] == [(url, path)]
    job.cancel()


def test_the_urls_bits_fetches_are_accepted(double, manager):
    job = manager.create_job("j")
    for i, url in enumerate(["http://h/x", "HTTPS://h:8443/x?y=1", "\\\\srv\\share\\x.bin"]):
        job.add_file(url, f"C:\\winbits-test-never-exists\\{i}.bin")
    assert [f.remote_name for f in job.files()][-1] == "\\\\srv\\share\\x.bin"
    assert len(manager.create_job("n" * 256).name) == 256


def _transferred_job(double, manager, tmp_path):
    job = manager.create_job("done")
    job.add_file("http://h/x", str(tmp_path / "never-landed.bin"))
    double.set_state("{" + str(job.id).upper() + "}", int(winbits.JobState.TRANSFERRED))
    return job


def test_a_partial_complete_raises_naming_the_files_that_did_not_land(double, manager, tmp_path):
    job = _transferred_job(double, manager, tmp_path)
    double.fail("Job.Complete", 0x00200017)  # BG_S_PARTIAL_COMPLETE: a success code
    with pytest.raises(winbits.PartialCompleteError) as info:
        job.complete()
    assert info.value.hresult == 0x00200017
    assert info.value.files == (str(tmp_path / "never-landed.bin"),)
    assert str(tmp_path / "never-landed.bin") in str(info.value)
    assert isinstance(info.value, winbits.BitsError)


def test_temporary_files_left_behind_are_a_warning(double, manager, tmp_path):
    job = _transferred_job(double, manager, tmp_path)
    double.fail("Job.Complete", 0x0020001A)  # BG_S_UNABLE_TO_DELETE_FILES
    with pytest.warns(RuntimeWarning, match="temporary files"):
        assert job.complete() is None


def test_a_jobs_repr_hash_and_equality_make_no_call_and_outlive_the_manager(double):
    key = double.add_job("a")
    with winbits.connect(double.clsid()) as bits:
        (job,) = bits.jobs()
        same = bits.get_job(uuid.UUID(key))
        made = bits.create_job("b")
        double.clear_calls()
        assert job == same and hash(job) == hash(same) and made != job
        assert repr(job) == f"<winbits.Job {key.strip('{}').lower()}>"
        assert double.calls() == {}  # the ids were read when the objects were made
        made.cancel()
    assert job == same and repr(job) == f"<winbits.Job {key.strip('{}').lower()}>"  # closed
