"""Waiting for a job: the steps every wait takes (read the job, report its progress, say
how long to sleep), and the synchronous driver that sleeps on BITS' notifications. The
asyncio driver over the same steps is in _aio.py."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING

from ._errors import (
    BG_E_ERROR_INFORMATION_UNAVAILABLE,
    BG_E_INVALID_STATE,
    InvalidStateError,
    JobFailedError,
)
from ._types import JobProgress, JobState, redact_url

if TYPE_CHECKING:
    from ._job import Job

Steps = Generator[JobProgress | float, None, JobState | int]


def steps(
    job: Job,
    timeout: float | None,
    progress_interval: float | None,
    poll_interval: float,
    stall_timeout: float | None,
) -> Steps:
    """What a wait does between its sleeps, for wait() and the asyncio waits: reads
    the job and yields a JobProgress to report (when ``progress_interval`` is given
    and bytes moved or the state changed) or the seconds to sleep before the next
    read, which BITS' call may end sooner; the last bytes once more when the job is
    transferred. Returns TRANSFERRED; raises as Job.wait() does."""
    start = last_move = time.monotonic()
    shown: tuple[JobProgress, int] | None = None  # the progress and state last reported
    shown_at = -math.inf
    moved_to: int | None = None
    while True:
        state = job.state
        if state == JobState.TRANSFERRED:
            p = job.progress if progress_interval else None
            if p is not None and (shown is None or p != shown[0]):
                yield p  # the last count, for a display to end at what landed
            return state
        if state == JobState.ERROR:
            raise failure(job, state)
        if state in (JobState.ACKNOWLEDGED, JobState.CANCELLED):
            raise InvalidStateError(
                BG_E_INVALID_STATE, f"job {job.id} is {state}: nothing to wait for"
            )
        if state == JobState.SUSPENDED:  # nothing moves until somebody resumes it
            raise InvalidStateError(
                BG_E_INVALID_STATE, f"job {job.id} is SUSPENDED: resume() it, then wait"
            )
        now = time.monotonic()
        step = poll_interval
        if progress_interval or stall_timeout is not None:
            p = job.progress
            done = None if p is None else p.bytes_transferred
            if done != moved_to:
                moved_to, last_move = done, now
            seen = None if p is None else (p, int(state))
            if progress_interval:
                if p is not None and seen != shown and now - shown_at >= progress_interval:
                    yield p
                    shown, shown_at = seen, now
                step = min(step, progress_interval)
        for limit, since, what in (
            (timeout, start, "was not transferred in"),
            (stall_timeout, last_move, "moved no byte for"),
        ):
            if limit is not None:
                left = since + limit - now
                if left <= 0:
                    raise TimeoutError(f"job {job.id} {what} {limit:g} s (it is {state})")
                step = min(step, left)
        yield step


def failure(job: Job, state: JobState | int) -> JobFailedError:
    """The error of a job in ERROR, with BITS' reason and the file it names."""
    err = job.error
    if err is None:
        return JobFailedError(
            BG_E_ERROR_INFORMATION_UNAVAILABLE,
            f"job {job.id} failed and BITS gave no reason (it is {state})",
            None,
            int(state),
        )
    where = f" ({redact_url(err.remote_name)})" if err.remote_name else ""
    return JobFailedError(err.hresult, f"{err.message}{where}", err, int(state))


def run(
    job: Job, walk: Steps, on_progress: Callable[[JobProgress], object] | None
) -> JobState | int:
    """Drives a wait's steps on this thread: reports what they yield, and sleeps on
    BITS' notification where winbits' callback could be registered (a job this process
    created), else on time alone. The callback is taken away on every way out."""
    listening = job._created and job._native.listen()
    try:
        while True:
            try:
                step = next(walk)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            if isinstance(step, JobProgress):
                on_progress(step)  # type: ignore[misc]
            elif listening:
                job._native.notified(max(1, math.ceil(step * 1000)))
            else:
                time.sleep(step)
    finally:
        if listening:
            job._native.unlisten()
