"""Waiting without polling: Job.wait(), Manager.download() and transfer().

Against the test double, which keeps the callback wait() registers and calls it when the
test says (fire), the number of COM calls a wait makes is counted: fixed when BITS calls
back, one state read per poll_interval when it cannot. Against Wine's BITS, which calls
JobTransferred, a wait with a long poll_interval returns as soon as the transfer ends."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Any

import pytest
from conftest import finish, leftovers, wait_until, when_queued, windows_only

import winbits
from winbits import JobState

pytestmark = windows_only

E_NOTIMPL = 0x80004001
TRANSFERRED, ERROR = int(JobState.TRANSFERRED), int(JobState.ERROR)


def later(seconds: float, *steps) -> threading.Thread:
    """A thread that runs steps (callables) after seconds: BITS moving a job."""

    def run() -> None:
        time.sleep(seconds)
        for step in steps:
            step()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def queued_job(bits, tmp_path, name="wait"):
    job = bits.create_job(name)
    job.add_file("http://h/a.bin", str(tmp_path / f"{name}.bin"))
    job.resume()
    return job, f"{{{job.id}}}"


def wait_calls(double, job_id, seconds):
    """The calls one wait() makes on a job the double transfers after `seconds` and
    announces with JobTransferred."""
    helper = later(
        seconds,
        lambda: double.set_state(job_id, TRANSFERRED),
        lambda: double.fire(job_id, "transferred"),
    )
    return helper


def test_a_wait_woken_by_bits_makes_the_same_calls_however_long_it_takes(double, tmp_path):
    counts = []
    with winbits.connect(double.clsid()) as bits:
        for seconds in (0.2, 1.2):
            job, key = queued_job(bits, tmp_path, f"w{seconds}")
            double.clear_calls()
            helper = wait_calls(double, key, seconds)
            started = time.monotonic()
            assert job.wait(poll_interval=60) == JobState.TRANSFERRED
            helper.join()
            assert time.monotonic() - started < 30  # woken by the callback, not the poll
            counts.append(double.calls())
            assert double.notify_flags(key) == (3, False)  # flags put back, callback gone
            job.complete()
    assert counts[0] == counts[1]
    assert counts[0] == {
        "Job.QueryInterface": 1,  # IBackgroundCopyJob2, asked for once per job object
        "Job.GetNotifyCmdLine": 1,  # a job with one is polled, so that BITS runs it
        "Job.GetNotifyFlags": 1,
        "Job.SetNotifyInterface": 2,  # the notifier, then NULL
        "Job.SetNotifyFlags": 2,  # TRANSFERRED | ERROR | MODIFICATION, then the old ones
        "Job.GetState": 2,  # once before the event, once after
    }


def test_where_bits_refuses_the_callback_the_wait_polls(double, tmp_path):
    double.fail("Job.SetNotifyInterface", E_NOTIMPL)
    with winbits.connect(double.clsid()) as bits:
        job, key = queued_job(bits, tmp_path)
        double.clear_calls()
        helper = later(1.0, lambda: double.set_state(key, TRANSFERRED))
        assert job.wait(poll_interval=0.1) == JobState.TRANSFERRED
        helper.join()
        reads = double.calls()["Job.GetState"]
        assert 5 <= reads <= 15  # about 1 s / 0.1 s, on a noisy machine
        assert "Job.SetNotifyFlags" not in double.calls()
        job.cancel()


def test_a_job_of_another_program_is_polled_never_listened_to(double, tmp_path):
    key = double.add_job("theirs", state=int(JobState.TRANSFERRED))
    with winbits.connect(double.clsid()) as bits:
        job = bits.get_job(uuid.UUID(key))
        assert job.wait() == JobState.TRANSFERRED  # at once
        assert "Job.SetNotifyInterface" not in double.calls()


def test_a_job_with_a_notify_command_line_is_polled_so_that_bits_runs_it(double, tmp_path):
    with winbits.connect(double.clsid()) as bits:
        job, key = queued_job(bits, tmp_path)
        job.notify_command_line = (r"C:\Windows\System32\cmd.exe", "/c exit")
        double.clear_calls()
        helper = later(0.5, lambda: double.set_state(key, TRANSFERRED))
        assert job.wait(poll_interval=0.1) == JobState.TRANSFERRED
        helper.join()
        assert "Job.SetNotifyInterface" not in double.calls()  # BITS would skip the program
        assert double.calls()["Job.GetState"] >= 3  # polled
        job.cancel()


def test_two_waits_on_one_job_object_both_return(double, tmp_path):
    with winbits.connect(double.clsid()) as bits:
        job, key = queued_job(bits, tmp_path)
        results = []
        other = threading.Thread(target=lambda: results.append(job.wait(poll_interval=0.1)))
        other.start()
        helper = later(
            0.5,
            lambda: double.set_state(key, TRANSFERRED),
            lambda: double.fire(key, "transferred"),
        )
        results.append(job.wait(poll_interval=0.1))
        other.join(10)
        helper.join()
        assert results == [JobState.TRANSFERRED] * 2  # one listened, the other polled
        assert double.notify_flags(key) == (3, False)
        job.cancel()


def test_ctrl_c_ends_a_wait_on_bits_notification_at_once(double, tmp_path):
    import _thread

    with winbits.connect(double.clsid()) as bits:
        job, key = queued_job(bits, tmp_path)
        timer = threading.Timer(0.3, _thread.interrupt_main)
        started = time.monotonic()
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            job.wait(poll_interval=60)  # one native wait of 60 s, in slices
        assert time.monotonic() - started < 10  # not the 60 s of the wait
        assert double.notify_flags(key) == (3, False)  # the callback taken away
        job.cancel()


def test_a_wait_async_cancelled_while_it_registers_takes_its_callback_away(double, tmp_path):
    with winbits.connect(double.clsid()) as bits:
        job, key = queued_job(bits, tmp_path)
        double.hold("Job.SetNotifyInterface")

        async def main():
            task = asyncio.create_task(job.wait_async(poll_interval=60))
            loop = asyncio.get_running_loop()
            assert await loop.run_in_executor(None, double.held, 10)
            task.cancel()  # while BITS is answering SetNotifyInterface
            await asyncio.sleep(0.1)
            double.release()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(main())
        assert double.notify_flags(key) == (3, False)  # not left registered
        helper = later(
            0.2,
            lambda: double.set_state(key, TRANSFERRED),
            lambda: double.fire(key, "transferred"),
        )
        assert job.wait(poll_interval=60) == JobState.TRANSFERRED  # a wait works again
        helper.join()
        job.cancel()


def test_error_raises_job_failed_with_bits_error(double, tmp_path):
    with winbits.connect(double.clsid()) as bits:
        job, key = queued_job(bits, tmp_path)
        helper = later(0.2, lambda: double.set_state(key, ERROR), lambda: double.fire(key, "error"))
        with pytest.raises(winbits.JobFailedError) as failed:
            job.wait(poll_interval=60)
        helper.join()
        assert failed.value.state == ERROR
        assert failed.value.hresult == 0x8020000F  # the double's job has no error object
        assert job.state == JobState.ERROR  # left as it is
        job.cancel()


def test_transient_errors_are_waited_through(double, tmp_path):
    with winbits.connect(double.clsid()) as bits:
        job, key = queued_job(bits, tmp_path)
        helper = later(
            0.2,
            lambda: double.set_state(key, int(JobState.TRANSIENT_ERROR)),
            lambda: double.fire(key, "modification"),
            lambda: time.sleep(0.3),
            lambda: double.set_state(key, TRANSFERRED),
            lambda: double.fire(key, "transferred"),
        )
        assert job.wait(poll_interval=60) == JobState.TRANSFERRED
        helper.join()
        assert double.calls()["Job.GetState"] == 3
        job.cancel()


def test_timeout_leaves_the_job_as_it_is(double, tmp_path):
    with winbits.connect(double.clsid()) as bits:
        job, key = queued_job(bits, tmp_path)
        with pytest.raises(TimeoutError, match=r"was not transferred in 0\.3 s"):
            job.wait(0.3)
        assert job.state == JobState.QUEUED
        assert double.notify_flags(key) == (3, False)
        job.cancel()


def test_a_callback_after_the_wait_and_after_close_does_nothing(double, tmp_path):
    with winbits.connect(double.clsid()) as bits:
        job, key = queued_job(bits, tmp_path)
        with pytest.raises(TimeoutError):
            job.wait(0.1)
        assert double.fire(key, "transferred") is False  # taken away: nothing to call
        assert double.fire(key, "transferred", late=True) is True  # BITS calling late
        job.cancel()
    del job, bits
    assert double.fire(key, "error", late=True) is True  # the manager is closed
    assert winbits._native._live_notifiers() == 1  # held by the double, as BITS would
    double.reset()
    assert winbits._native._live_notifiers() == 0


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"timeout": -1}, ValueError),
        ({"timeout": "1"}, TypeError),
        ({"poll_interval": 0}, ValueError),
        ({"progress_interval": True}, TypeError),
        ({"on_progress": 5}, TypeError),
        ({"stall_timeout": -1}, ValueError),
        ({"stall_timeout": "5"}, TypeError),
    ],
)
def test_bad_arguments_are_refused_before_any_call(double, tmp_path, kwargs, error):
    with winbits.connect(double.clsid()) as bits:
        job = bits.create_job("args")
        double.clear_calls()
        with pytest.raises(error):
            job.wait(**kwargs)
        assert double.calls() == {}
        job.cancel()


def test_on_progress_is_called_while_bytes_move_and_what_it_raises_comes_through(double, tmp_path):
    with winbits.connect(double.clsid()) as bits:
        job, key = queued_job(bits, tmp_path)
        double.set_file(key, 0, 100, total=1000)
        seen = []

        def progress(p):
            seen.append(p.bytes_transferred)
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            job.wait(on_progress=progress)
        assert seen == [100]
        assert job.state == JobState.QUEUED  # untouched
        assert double.notify_flags(key) == (3, False)
        job.cancel()


def test_on_progress_hears_of_state_changes_and_stall_timeout_ends_a_wait(double, tmp_path):
    with winbits.connect(double.clsid()) as bits:
        job, key = queued_job(bits, tmp_path)
        double.set_file(key, 0, 100, total=1000)
        seen = []
        helper = later(
            0.3,
            lambda: double.set_state(key, int(JobState.TRANSIENT_ERROR)),
            lambda: double.fire(key, "modification"),
        )
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=r"moved no byte for 1 s \(it is TRANSIENT_ERROR\)"):
            job.wait(
                on_progress=lambda p: seen.append((p.bytes_transferred, job.state)),
                progress_interval=0.05,
                poll_interval=60,
                stall_timeout=1,
            )
        helper.join()
        assert time.monotonic() - started < 30
        # once for the first bytes, once when BITS began to retry: no byte moved between
        assert seen == [(100, JobState.QUEUED), (100, JobState.TRANSIENT_ERROR)]
        assert job.state == JobState.TRANSIENT_ERROR  # left as it is
        job.cancel()


def test_download_returns_what_landed_and_leaves_no_job(double, tmp_path):
    def finish():
        with winbits.connect(double.clsid()) as bits:
            for _ in range(500):
                jobs = bits.jobs()
                if jobs and jobs[0].state == JobState.QUEUED:
                    key = f"{{{jobs[0].id}}}"
                    double.set_file(key, 0, 4, completed=True, total=4, from_origin=3, from_peers=1)
                    double.set_state(key, TRANSFERRED)
                    double.fire(key, "transferred")
                    return
                time.sleep(0.01)

    helper = later(0, finish)
    with winbits.connect(double.clsid()) as bits:
        dest = str(tmp_path / "d.bin")
        result = bits.download("http://h/d.bin", dest, priority=winbits.JobPriority.HIGH)
        helper.join()
        assert result.files == (
            winbits.DownloadedFile("http://h/d.bin", dest, 4, winbits.PeerStats(3, 1)),
        )
        assert result.bytes == 4 and result.peer_stats == winbits.PeerStats(3, 1)
        assert bits.jobs() == []  # completed
        assert double.calls()["Job.SetPriority"] == 1


@pytest.mark.parametrize("failure", ["timeout", "interrupt", "setting"])
def test_download_cancels_its_job_on_any_exception(double, tmp_path, failure):
    def interrupt(_):
        raise KeyboardInterrupt

    cases: dict[str, dict[str, Any]] = {
        "timeout": {"timeout": 0.2},
        "interrupt": {"on_progress": interrupt},
        "setting": {"priority": 9},
    }
    kwargs = cases[failure]
    expected = {"timeout": TimeoutError, "interrupt": KeyboardInterrupt, "setting": ValueError}
    with winbits.connect(double.clsid()) as bits:
        with pytest.raises(expected[failure]):
            bits.download("http://h/x.bin", str(tmp_path / "x.bin"), **kwargs)
        assert bits.jobs() == []  # cancelled
        assert not (tmp_path / "x.bin").exists()


def test_download_refuses_what_is_not_a_setting_before_making_a_job(double, tmp_path):
    with winbits.connect(double.clsid()) as bits:
        with pytest.raises(TypeError, match="'colour' is not a job setting"):
            bits.download("http://h/x.bin", str(tmp_path / "x.bin"), colour="red")  # type: ignore[call-arg]
        assert "Manager.CreateJob" not in double.calls()


def test_transfer_cancels_when_the_block_raises_and_not_otherwise(double, tmp_path):
    with winbits.connect(double.clsid()) as bits:
        with pytest.raises(RuntimeError), bits.transfer("raises") as job:
            raise RuntimeError
        assert bits.jobs() == []
        with bits.transfer("kept") as kept:
            pass
        assert [j.name for j in bits.jobs()] == ["kept"]
        kept.cancel()
        del job


# --- asyncio ----------------------------------------------------------------------------


def doorbell_threads() -> int:
    return sum(t.name == "winbits-doorbell" for t in threading.enumerate())


async def ticking(seconds: float) -> int:
    """Ticks of a coroutine that wants the loop every 10 ms: a blocked loop starves it."""
    ticks = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        await asyncio.sleep(0.01)
        ticks += 1
    return ticks


def test_wait_async_is_woken_by_bits_without_blocking_the_loop_or_a_thread_per_job(
    double, tmp_path
):
    with winbits.connect(double.clsid()) as bits:
        jobs = [queued_job(bits, tmp_path, f"a{i}") for i in range(5)]
        double.clear_calls()
        helper = later(
            1.0,
            *[lambda key=key: double.set_state(key, TRANSFERRED) for _, key in jobs],
            *[lambda key=key: double.fire(key, "transferred") for _, key in jobs],
        )
        threads_while_waiting = []

        async def main():
            async def watch():
                await asyncio.sleep(0.5)
                threads_while_waiting.append(doorbell_threads())

            started = time.monotonic()
            results = await asyncio.gather(
                *[job.wait_async(poll_interval=60) for job, _ in jobs], ticking(1.0), watch()
            )
            return results, time.monotonic() - started

        (*states, ticks, _), took = asyncio.run(main())
        helper.join()
        assert states == [JobState.TRANSFERRED] * 5
        assert took < 30  # woken by the callbacks, not the 60 s poll
        assert ticks >= 20  # about 1 s / 10 ms on a quiet machine: the loop kept running
        assert threads_while_waiting == [1]  # one thread for all five waits
        assert double.calls() == {  # five times what one synchronous wait makes
            "Job.QueryInterface": 5,
            "Job.GetNotifyCmdLine": 5,
            "Job.GetNotifyFlags": 5,
            "Job.SetNotifyInterface": 10,
            "Job.SetNotifyFlags": 10,
            "Job.GetState": 10,
        }
        for job, key in jobs:
            assert double.notify_flags(key) == (3, False)
            job.complete()
    # the thread ends once no wait is left (it looks every second)
    wait_until(lambda: doorbell_threads() == 0, "the doorbell thread to end", deadline=10)


def test_cancelling_wait_async_only_stops_waiting(double, tmp_path):
    with winbits.connect(double.clsid()) as bits:
        job, key = queued_job(bits, tmp_path)

        async def main():
            task = asyncio.create_task(job.wait_async(poll_interval=60))
            await asyncio.sleep(0.3)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(main())
        assert job.state == JobState.QUEUED  # left as it is
        assert double.notify_flags(key) == (3, False)  # and put back
        # BITS calling late rings a doorbell nobody listens to: nothing happens
        assert double.fire(key, "transferred", late=True) is True
        other, other_key = queued_job(bits, tmp_path, "other")
        helper = wait_calls(double, other_key, 0.3)
        started = time.monotonic()
        assert asyncio.run(other.wait_async(poll_interval=60)) == JobState.TRANSFERRED
        assert time.monotonic() - started < 30  # woken by its own callback
        helper.join()
        other.complete()
        job.cancel()


def test_progress_async_yields_while_bytes_move_and_ends_when_transferred(double, tmp_path):
    with winbits.connect(double.clsid()) as bits:
        job, key = queued_job(bits, tmp_path)
        double.set_file(key, 0, 0, total=1000)

        def moved(done: int) -> Any:
            return lambda: (
                double.set_file(key, 0, done, total=1000),
                double.fire(key, "modification"),
            )

        helper = later(
            0.3,
            moved(400),
            lambda: time.sleep(0.3),
            moved(1000),
            lambda: double.set_state(key, TRANSFERRED),
            lambda: double.fire(key, "transferred"),
        )

        async def main():
            return [p.bytes_transferred async for p in job.progress_async(0.1, poll_interval=60)]

        seen = asyncio.run(main())
        helper.join()
        assert seen[0] == 0 and 400 in seen and seen[-1] == 1000  # the last: transferred
        assert seen == sorted(set(seen))  # each value once, in order
        job.complete()


def test_a_job_transferred_before_the_first_read_reports_its_bytes_once(double, tmp_path):
    with winbits.connect(double.clsid()) as bits:
        job, key = queued_job(bits, tmp_path)
        double.set_file(key, 0, 1000, completed=True, total=1000)
        double.set_state(key, TRANSFERRED)
        seen = []
        assert job.wait(on_progress=lambda p: seen.append(p.bytes_transferred)) == TRANSFERRED

        async def main():
            return [p.bytes_transferred async for p in job.progress_async()]

        assert seen == [1000]
        assert asyncio.run(main()) == [1000]
        job.complete()


def test_an_asyncio_wait_where_no_thread_may_start_polls(double, tmp_path, monkeypatch):
    def refused(*args):
        raise RuntimeError("can't create new thread at interpreter shutdown")

    from winbits import _aio  # Windows only: it needs the native module

    monkeypatch.setattr(_aio._hub, "add", refused)
    with winbits.connect(double.clsid()) as bits:
        job, key = queued_job(bits, tmp_path)
        double.clear_calls()
        helper = later(1.0, lambda: double.set_state(key, TRANSFERRED))
        assert asyncio.run(job.wait_async(poll_interval=0.1)) == TRANSFERRED
        helper.join()
        calls = double.calls()
        assert calls["Job.SetNotifyInterface"] == 2  # registered, then taken away at once
        assert 5 <= calls["Job.GetState"] <= 15  # about 1 s / 0.1 s: it polled
        assert double.notify_flags(key) == (3, False)
        job.complete()


def test_progress_async_raises_job_failed_when_the_job_fails(double, tmp_path):
    with winbits.connect(double.clsid()) as bits:
        job, key = queued_job(bits, tmp_path)
        helper = later(0.3, lambda: double.set_state(key, ERROR), lambda: double.fire(key, "error"))

        async def main():
            async for _ in job.progress_async(poll_interval=60):
                pass

        with pytest.raises(winbits.JobFailedError) as failed:
            asyncio.run(main())
        helper.join()
        assert failed.value.hresult == 0x8020000F  # the double's job has no error object
        job.cancel()


def test_download_whose_file_did_not_land_raises_and_names_it(double, tmp_path):
    double.reset(lands=False)  # BITS answered Complete, but nothing is at DEST
    helper = when_queued(double, lambda job: finish(double, job))
    with winbits.connect(double.clsid()) as bits:
        dest = str(tmp_path / "gone.bin")
        with pytest.raises(winbits.PartialCompleteError) as failed:
            bits.download("http://h/gone.bin", dest)
        helper.join()
        assert failed.value.files == (dest,)
        assert f"{dest} did not land" in str(failed.value)
        assert bits.jobs() == []  # completed, not left in the queue


def test_a_file_that_appears_at_dest_during_the_transfer_is_left_alone(double, tmp_path):
    dest = tmp_path / "theirs.bin"
    appear = lambda job: dest.write_bytes(b"theirs")  # after add_file looked, before complete
    helper = when_queued(double, appear, lambda job: finish(double, job))
    with winbits.connect(double.clsid()) as bits:
        with pytest.raises(FileExistsError, match="appeared while the job transferred"):
            bits.download("http://h/theirs.bin", str(dest))
        helper.join()
        assert bits.jobs() == []  # cancelled, not completed
    assert "Job.Complete" not in double.calls() and double.calls()["Job.Cancel"] == 1
    assert dest.read_bytes() == b"theirs"  # Windows' Cancel leaves it (Wine's deletes it)


def test_a_download_job_carries_bits_own_limits_from_its_timeouts(double, tmp_path):
    seen = []
    read = lambda job: seen.append((job.maximum_download_time, job.no_progress_timeout))
    helper = when_queued(double, read, lambda job: finish(double, job))
    with winbits.connect(double.clsid()) as bits:
        bits.download("http://h/l.bin", str(tmp_path / "l.bin"), timeout=100, stall_timeout=29.5)
        helper.join()
    assert seen == [(160, 90)]  # each a minute past the wait's: the wait reports first


def test_waiting_on_a_suspended_job_raises_at_once(double, tmp_path):
    with winbits.connect(double.clsid()) as bits:
        job = bits.create_job("never resumed")
        job.add_file("http://h/s.bin", str(tmp_path / "s.bin"))
        started = time.monotonic()
        with pytest.raises(winbits.InvalidStateError, match="SUSPENDED: resume"):
            job.wait()  # no timeout: it would wait for ever
        with pytest.raises(winbits.InvalidStateError, match="SUSPENDED"):
            asyncio.run(job.wait_async())
        assert time.monotonic() - started < 10
        assert double.notify_flags(f"{{{job.id}}}") == (3, False)
        job.cancel()


def test_download_lands_each_file_at_the_size_bits_transferred(double, tmp_path):
    helper = when_queued(double, lambda job: finish(double, job))
    with winbits.connect(double.clsid()) as bits:
        dest = tmp_path / "four.bin"
        result = bits.download("http://h/four.bin", str(dest))
        helper.join()
    assert result.bytes == 4 and dest.stat().st_size == 4


def test_download_async_returns_what_landed(double, tmp_path):
    helper = when_queued(double, lambda job: finish(double, job))
    with winbits.connect(double.clsid()) as bits:
        dest = str(tmp_path / "d.bin")
        result = asyncio.run(bits.download_async("http://h/d.bin", dest, poll_interval=60))
        helper.join()
        assert result.files == (
            winbits.DownloadedFile("http://h/d.bin", dest, 4, winbits.PeerStats(3, 1)),
        )
        assert bits.jobs() == []  # completed


@pytest.mark.parametrize("when", [0, 0.3])
def test_cancelling_download_async_cancels_the_job(double, tmp_path, when):
    with winbits.connect(double.clsid()) as bits:

        async def main():
            task = asyncio.create_task(
                bits.download_async("http://h/x.bin", str(tmp_path / "x.bin"), poll_interval=60)
            )
            await asyncio.sleep(when)  # 0: while the job is being made
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(main())
        assert bits.jobs() == []  # cancelled before the CancelledError came out
        assert not (tmp_path / "x.bin").exists()


def test_download_async_refuses_bad_arguments_before_making_a_job(double, tmp_path):
    with winbits.connect(double.clsid()) as bits:
        for kwargs, error in (({"colour": "red"}, TypeError), ({"timeout": -1}, ValueError)):
            with pytest.raises(error):
                asyncio.run(bits.download_async("http://h/x", str(tmp_path / "x"), **kwargs))
        assert "Manager.CreateJob" not in double.calls()


# --- against Wine's (or Windows') real BITS ----------------------------------------------


def test_a_real_wait_returns_on_bits_notification(bits, serve, tmp_path):
    from rangeserver import make_payload

    payload = make_payload(3_000_000, seed=12)
    url = serve("wait.bin", payload)
    job = bits.create_job("winbits-test wait")
    job.add_file(url, str(tmp_path / "wait.bin"))
    job.resume()
    started = time.monotonic()
    assert job.wait(timeout=120, poll_interval=30) == JobState.TRANSFERRED
    # Not a benchmark: with poll_interval=30, only BITS' JobTransferred ends it sooner.
    assert time.monotonic() - started < 20
    job.complete()
    assert (tmp_path / "wait.bin").read_bytes() == payload


def test_a_real_404_raises_job_failed_with_the_http_code(bits, server, tmp_path):
    job = bits.create_job("winbits-test 404")
    job.add_file(f"{server.base_url}/nothing-here", str(tmp_path / "n.bin"))
    job.resume()
    with pytest.raises(winbits.JobFailedError) as failed:
        job.wait(timeout=120, poll_interval=1)
    assert failed.value.hresult == 0x80190194  # BG_E_HTTP_ERROR_404
    assert failed.value.error is not None
    assert failed.value.error.remote_name.endswith("/nothing-here")
    job.cancel()


def test_a_real_download_lands_byte_for_byte_and_leaves_no_job(bits, serve, tmp_path):
    from rangeserver import make_payload

    payload = make_payload(1_000_000, seed=13)
    url = serve("dl.bin", payload)
    dest = str(tmp_path / "dl.bin")
    result = bits.download(url, dest, name="winbits-test download()", timeout=120)
    assert (tmp_path / "dl.bin").read_bytes() == payload
    assert result.bytes == len(payload) and result.files[0].path == dest
    left = [j for j in bits.jobs() if j.id == result.job_id]
    assert all(j.state == JobState.ACKNOWLEDGED for j in left)  # Wine keeps finished jobs


@pytest.mark.parametrize("failure", ["interrupt", "timeout"])
def test_a_real_download_that_is_interrupted_or_times_out_leaves_no_job_and_no_file(
    bits, server, serve, tmp_path, failure
):
    from rangeserver import make_payload

    url = serve(f"{failure}.bin", make_payload(500_000, seed=14))
    dest = tmp_path / f"{failure}.bin"
    name = f"winbits-test download() {failure} {uuid.uuid4()}"
    seen = []

    def interrupt(p):
        seen.append(p)
        raise KeyboardInterrupt

    if failure == "interrupt":
        server.rate[f"/{failure}.bin"] = 50_000  # bytes move, slowly
        with pytest.raises(KeyboardInterrupt):
            bits.download(url, str(dest), name=name, timeout=120, on_progress=interrupt)
        assert len(seen) == 1
    else:
        server.stall.set()  # headers, then nothing: the job stays under way
        try:
            with pytest.raises(TimeoutError):
                bits.download(url, str(dest), name=name, timeout=2)
        finally:
            server.stall.clear()
    assert leftovers(name) == []
    assert not dest.exists()


def test_a_real_download_async_lands_while_another_coroutine_ticks(bits, server, serve, tmp_path):
    from rangeserver import make_payload

    payload = make_payload(400_000, seed=15)
    url = serve("async.bin", payload)
    server.rate["/async.bin"] = 200_000  # about 2 s
    dest = str(tmp_path / "async.bin")

    async def main():
        download = asyncio.create_task(
            bits.download_async(url, dest, name="winbits-test download_async", poll_interval=30)
        )
        ticks = 0
        while not download.done():
            await asyncio.sleep(0.01)
            ticks += 1
        return await download, ticks

    started = time.monotonic()
    result, ticks = asyncio.run(main())
    took = time.monotonic() - started
    assert (tmp_path / "async.bin").read_bytes() == payload
    assert result.bytes == len(payload)
    assert took < 25  # JobTransferred woke it, not the 30 s poll
    assert ticks >= 50  # the loop ran all along: a 10 ms tick over about 2 s


def test_a_file_written_to_dest_during_a_real_download_makes_it_fail(bits, server, serve, tmp_path):
    url = serve("raced.bin", b"x" * 300_000)
    server.rate["/raced.bin"] = 100_000  # about 3 s
    dest = tmp_path / "raced.bin"
    name = f"winbits-raced {uuid.uuid4()}"
    try:
        helper = later(1.0, lambda: dest.write_bytes(b"another program's"))
        with pytest.raises(FileExistsError, match="appeared while the job transferred"):
            bits.download(url, str(dest), name=name, timeout=120)
        helper.join()
    finally:
        server.rate.clear()
    assert leftovers(name) == []  # cancelled (Wine's Cancel also deletes DEST; Windows' not)


def test_cancelling_a_real_download_async_leaves_no_job_and_no_file(bits, server, serve, tmp_path):
    from rangeserver import make_payload

    url = serve("cancel.bin", make_payload(500_000, seed=16))
    dest = tmp_path / "cancel.bin"
    name = f"winbits-test download_async cancel {uuid.uuid4()}"
    server.stall.set()

    async def main():
        task = asyncio.create_task(bits.download_async(url, str(dest), name=name))
        await asyncio.sleep(1.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    try:
        asyncio.run(main())
    finally:
        server.stall.clear()
    assert leftovers(name) == []
    assert not dest.exists()
