"""snapshot() and poller(): the fewest round trips, counted exactly with the test double."""

from __future__ import annotations

import threading
import uuid

import pytest
from conftest import fill, windows_only

import winbits

pytestmark = windows_only

BG_E_NOT_FOUND = 0x80200001
RPC_S_SERVER_UNAVAILABLE = 0x800706BA

PER_NEW_JOB = [
    "Job.GetId",
    "Job.GetDisplayName",
    "Job.GetType",
    "Job.GetOwner",
    "Job.GetState",
    "Job.GetProgress",
    "Job.GetTimes",
    "Job.EnumFiles",
    "EnumFiles.Next",
]
PER_NEW_FILE = [
    "File.GetRemoteName",
    "File.GetLocalName",
    "File.GetProgress",
    "File.QueryInterface",
    "File.GetPeerDownloadStats",
]


def counts(**per_name):
    return {name: n for name, n in per_name.items() if n}


@pytest.fixture
def bits(double):
    with winbits.connect(double.clsid()) as m:
        yield m


def test_cold_snapshot_of_20_jobs_by_5_files_makes_682_calls(double, bits):
    fill(double)
    double.clear_calls()
    snap = bits.snapshot()
    expected = {"Manager.EnumJobs": 1, "EnumJobs.Next": 1}
    expected.update(dict.fromkeys(PER_NEW_JOB, 20))
    expected.update(dict.fromkeys(PER_NEW_FILE, 100))
    assert double.calls() == expected
    assert sum(expected.values()) == 682
    assert len(snap.jobs) == 20 and len(snap.added) == 20
    first = snap.jobs[0]
    assert (first.name, first.owner, first.state) == (
        "job0",
        "S-1-5-21-0",
        winbits.JobState.TRANSFERRING,
    )
    assert first.progress == (500, 160, 5, 1)  # 0 + 10 + 20 + 30 + 100
    assert first.files[1] == winbits.FileRecord(
        "http://h/0/1", "C:\\0_1", winbits.FileProgress(100, 10, False), winbits.PeerStats(61, 1)
    )


def test_a_repeat_poll_where_nothing_moved_makes_two_calls_per_job(double, bits):
    fill(double)
    poller = bits.poller()
    first = poller.poll()
    double.clear_calls()
    again = poller.poll()
    assert double.calls() == {
        "Manager.EnumJobs": 1,
        "EnumJobs.Next": 1,
        "Job.GetState": 20,
        "Job.GetProgress": 20,
    }
    assert again.jobs == first.jobs
    assert (again.added, again.changed, again.removed) == (frozenset(), frozenset(), frozenset())
    assert all(
        a is b for a, b in zip(again.jobs, first.jobs, strict=True)
    )  # records reused, not rebuilt


def test_a_server_with_new_objects_each_time_costs_one_getid_per_job(double):
    double.reset(stable_identity=False)
    fill(double, jobs=3, files=2)
    with winbits.connect(double.clsid()) as m:
        poller = m.poller()
        poller.poll()
        double.clear_calls()
        assert poller.poll().changed == frozenset()
        assert double.calls() == {
            "Manager.EnumJobs": 1,
            "EnumJobs.Next": 1,
            "Job.GetId": 3,
            "Job.GetState": 3,
            "Job.GetProgress": 3,
        }


def test_only_the_unfinished_files_of_a_job_that_moved_are_read(double, bits):
    ids = fill(double, jobs=3, files=4)
    poller = bits.poller()
    poller.poll()
    double.set_file(ids[1], 0, 70, from_origin=50, from_peers=20)
    double.clear_calls()
    snap = poller.poll()
    # Job 1 moved: its times and its 3 unfinished files are read again (the 4th is
    # complete: final).
    assert double.calls() == {
        "Manager.EnumJobs": 1,
        "EnumJobs.Next": 1,
        "Job.GetState": 3,
        "Job.GetProgress": 3,
        "Job.GetTimes": 1,
        "File.GetProgress": 3,
        "File.GetPeerDownloadStats": 3,
    }
    assert snap.changed == {uuid.UUID(ids[1])} and not snap.added and not snap.removed
    moved = snap.jobs[1]
    assert moved.progress.bytes_transferred == 70 + 10 + 20 + 100
    assert moved.files[0].progress == (100, 70, False)
    assert moved.files[0].peer_stats == (50, 20)


def test_a_completed_files_counters_are_final(double, bits):
    (job,) = fill(double, jobs=1, files=2)  # file 1 is complete
    poller = bits.poller()
    before = poller.poll().jobs[0].files[1]
    # Behind BITS' back the complete file's counters change, and the other file moves.
    double.set_file(job, 1, 100, completed=True, from_origin=1, from_peers=99)
    double.set_file(job, 0, 50)
    double.clear_calls()
    after = poller.poll().jobs[0]
    assert double.calls()["File.GetProgress"] == 1  # only the unfinished file
    assert after.files[1] == before
    assert after.files[0].progress.bytes_transferred == 50


def test_new_and_vanished_jobs_and_new_files_are_noticed(double, bits):
    ids = fill(double, jobs=2, files=1)
    poller = bits.poller()
    poller.poll()
    double.remove_job(ids[0])
    new = double.add_job("late")
    double.add_file(ids[1], "http://h/extra", "C:\\extra", total=5, transferred=0)
    double.clear_calls()
    snap = poller.poll()
    assert snap.removed == {uuid.UUID(ids[0])}
    assert snap.added == {uuid.UUID(new)}
    assert snap.changed == {uuid.UUID(ids[1])}
    assert [j.name for j in snap.jobs] == ["job1", "late"]
    assert [f.remote_name for f in snap.jobs[0].files] == ["http://h/1/0", "http://h/extra"]
    calls = double.calls()
    assert calls["Job.EnumFiles"] == 1  # only the job with a new file lists its files again
    assert calls["File.GetRemoteName"] == 1  # only the new file's names are read


def test_a_server_without_file4_is_asked_once(double):
    double.reset(file_level=2)
    fill(double, jobs=2, files=3)
    with winbits.connect(double.clsid()) as m:
        snap = m.snapshot()
        assert double.calls()["File.QueryInterface"] == 1
        assert "File.GetPeerDownloadStats" not in double.calls()
        assert all(f.peer_stats is None for j in snap.jobs for f in j.files)


@pytest.mark.parametrize("method", ["Job.GetOwner", "Job.GetTimes"])
def test_a_server_without_owner_or_times_is_asked_once(double, bits, method):
    fill(double, jobs=3, files=1)
    double.fail(method, 0x80004001)  # E_NOTIMPL, as Wine
    snap = bits.snapshot(threads=1)
    assert double.calls()[method] == 1
    field = "owner" if method == "Job.GetOwner" else "times"
    assert [getattr(j, field) for j in snap.jobs] == [None, None, None]


@pytest.mark.parametrize("hresult", [BG_E_NOT_FOUND, 0x80070005], ids=["not found", "denied"])
def test_a_job_vanishing_mid_walk_is_left_out(double, bits, hresult):
    fill(double, jobs=3, files=1)
    double.fail("Job.GetDisplayName", hresult, times=1)
    poller = bits.poller()
    assert [j.name for j in poller.poll().jobs] == ["job1", "job2"]
    snap = poller.poll()  # it is still in the queue: now it is read
    assert [j.name for j in snap.jobs] == ["job0", "job1", "job2"]
    assert snap.added == {snap.jobs[0].id}


def test_the_service_dying_mid_walk_raises_and_the_next_poll_recovers(double, bits):
    fill(double, jobs=3, files=2)
    poller = bits.poller()
    first = poller.poll()
    double.set_file(first.jobs[0].id.__str__().join("{}"), 0, 55)
    double.fail("File.GetProgress", RPC_S_SERVER_UNAVAILABLE, times=1)
    with pytest.raises(winbits.ServiceUnavailableError):
        poller.poll()
    snap = poller.poll()
    assert [j.id for j in snap.jobs] == [j.id for j in first.jobs]
    assert snap.jobs[0].files[0].progress.bytes_transferred == 55


@pytest.mark.parametrize("threads", [2, 4, 8])
def test_threads_read_the_same_snapshot(double, bits, threads):
    fill(double, jobs=12, files=3)
    one = bits.snapshot(threads=1)
    double.clear_calls()
    many = bits.snapshot(threads=threads)
    assert many.jobs == one.jobs
    assert sum(double.calls().values()) == 2 + 12 * 9 + 36 * 5  # the same calls, side by side


def test_snapshot_agrees_with_the_object_api(double, bits):
    fill(double, jobs=2, files=2)
    snap = bits.snapshot()
    for record, job in zip(snap.jobs, bits.jobs(), strict=True):
        assert (
            record.id,
            record.name,
            record.owner,
            record.state,
            record.progress,
            record.times,
        ) == (job.id, job.name, job.owner, job.state, job.progress, job.times)
        for rf, f in zip(record.files, job.files(), strict=True):
            assert (rf.remote_name, rf.local_name, rf.progress, rf.peer_stats) == (
                f.remote_name,
                f.local_name,
                f.progress,
                f.peer_download_stats(),
            )


def test_bad_poller_arguments(double, bits):
    with pytest.raises(ValueError):
        bits.poller(threads=0)
    with pytest.raises(TypeError):
        bits.poller(all_users=1)
    with pytest.raises(winbits.AccessDeniedError):
        bits.snapshot(all_users=True)


def test_a_poller_of_a_closed_manager_raises(double):
    m = winbits.connect(double.clsid())
    poller = m.poller()
    m.close()
    with pytest.raises(ValueError, match="closed"):
        poller.poll()


def test_threads_sharing_one_poller_see_each_change_once(double, bits):
    ids = fill(double, jobs=20, files=2)
    poller = bits.poller()
    assert len(poller.poll().added) == 20
    for round in range(10):
        double.set_file(ids[round], 0, 50 + round)  # one job moves between two polls
        snaps: list[winbits.Snapshot] = []

        def poll_once(out: list[winbits.Snapshot] = snaps) -> None:
            out.append(poller.poll())

        threads = [threading.Thread(target=poll_once) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(snaps) == 8  # none failed (a KeyError, say) or hung
        reported = [job_id for s in snaps for job_id in s.changed | s.added | s.removed]
        moved = next(j.id for j in snaps[0].jobs if j.name == f"job{round}")
        assert reported == [moved]  # exactly one thread saw it, once
        assert all(len(s.jobs) == 20 for s in snaps)


THROW_BAD_ALLOC = 0xE0BADA11  # the double throws std::bad_alloc instead of answering


def test_an_allocation_failure_on_every_poll_thread_fails_the_poll_and_the_next_is_whole(
    double, bits
):
    """std::bad_alloc thrown inside the walk on the caller's and the helper threads
    (12 jobs, 4 threads: 3 helpers) is caught in each work item: the poll raises, every
    thread is joined, and the next poll reads the whole queue."""
    fill(double, jobs=12, files=3)
    poller = bits.poller(threads=4)
    double.fail("File.GetProgress", THROW_BAD_ALLOC, times=12)  # every job, every thread
    with pytest.raises(winbits.BitsError) as failed:
        poller.poll()
    assert failed.value.hresult == 0x8007000E  # E_OUTOFMEMORY
    assert double.calls()["File.GetProgress"] == 12  # each job's item ran to its throw
    snap = poller.poll()
    assert len(snap.jobs) == 12 and len(snap.added) == 12
    assert all(len(j.files) == 3 for j in snap.jobs)
