"""The progress line of download and upload, drawn from Job.wait()'s on_progress, and
the one-line failures of a transfer."""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import unicodedata
from typing import TextIO

from .._errors import ADVICE, JobFailedError
from .._job import Job
from .._types import JobProgress, JobState, redact_url, visible
from .render import format_bytes, format_duration
from .usage import Exit, Failure, control


class RateMeter:
    """Bytes per second over the last `window` seconds; None until half a second of
    samples exists (a rate from the first milliseconds says nothing)."""

    def __init__(self, window: float = 5.0) -> None:
        self.window = window
        self.samples: list[tuple[float, int]] = []

    def add(self, now: float, done: int) -> float | None:
        self.samples.append((now, done))
        while len(self.samples) > 2 and now - self.samples[1][0] >= self.window:
            self.samples.pop(0)
        t0, d0 = self.samples[0]
        return (done - d0) / (now - t0) if now - t0 >= 0.5 else None


def progress_line(done: int, total: int | None, rate: float | None, width: int = 24) -> str:
    """'[#######.........]  31.0%  1.2 MiB / 3.9 MiB  620.0 KiB/s  ETA 0:04'"""
    if total:
        filled = min(width, int(width * done / total))
        bar = "#" * filled + "." * (width - filled)
        eta = (total - done) / rate if rate else (0.0 if done >= total else None)
        pct = f"{100.0 * done / total:5.1f}%"
    else:
        bar, eta, pct = "?" * width, None, "    ?%"
    speed = "?" if rate is None else format_bytes(int(rate))
    return (
        f"[{bar}] {pct}  {format_bytes(done)} / {format_bytes(total)}  "
        f"{speed}/s  ETA {format_duration(eta)}"
    )


class ProgressDisplay:
    """On a terminal, one line redrawn in place, cut to the terminal's width and padded
    to it, so that it never wraps and nothing of a longer line before it stays; elsewhere
    (a pipe, a log file), a line when the state changes and at most every `every`
    seconds. Nothing at all when quiet."""

    def __init__(
        self, stream: TextIO, every: float = 30.0, *, quiet: bool = False, width: int | None = None
    ) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.every = every
        self.quiet = quiet
        self.width = width  # columns; None: the terminal's, asked at each line
        self.last = -math.inf

    def columns(self) -> int:
        if self.width is not None:
            return self.width
        try:
            return os.get_terminal_size(self.stream.fileno()).columns
        except (AttributeError, OSError, ValueError):
            return 80

    def show(self, line: str, now: float, final: bool = False, news: bool = False) -> None:
        """``news``: the line says something new (the job's state), shown at once. BITS'
        own text in it (a retry's reason) is measured as it is shown: escaped."""
        if self.quiet:
            return
        if self.tty:  # the last column is left free: some consoles wrap when it is written
            control(self.stream, "\r")
            self.stream.write(fit(visible(line), self.columns() - 1) + ("\n" if final else ""))
        elif final or news or now - self.last >= self.every:
            self.stream.write(line + "\n")
            self.last = now
        self.stream.flush()


def fit(text: str, columns: int) -> str:
    """text cut to `columns` terminal columns (East Asian wide characters take two) and
    padded with spaces to them."""
    out, used = [], 0
    for c in text:
        width = 2 if unicodedata.east_asian_width(c) in "WF" else 1
        if used + width > columns:
            break
        out.append(c)
        used += width
    return "".join(out) + " " * max(columns - used, 0)


def waiting_for(job: Job, state: JobState | int) -> str:
    """What the progress line adds while no byte moves: the state, and BITS' reason for
    a transient error (BITS retries it until the job's no-progress timeout)."""
    if state == JobState.TRANSIENT_ERROR:
        err = job.error
        return f"retrying: {err.message}" if err else "retrying"
    return str(state)


def job_failure(job: Job, urls: str, verb: str = "download") -> str:
    """One line: which URL, what BITS said (or winbits' text for the code), or, where
    BITS gave no error at all, the state the job ended in."""
    err = job.error
    if err is None:
        return f"{verb} of {urls} failed: BITS gave no reason (the job is {job.state})"
    where = redact_url(err.remote_name) if err.remote_name else urls
    line = f"{verb} of {where} failed: {err.message} (HRESULT 0x{err.hresult:08X})"
    advice = ADVICE.get(err.hresult)
    return f"{line}: {advice}" if advice else line


def follow(
    job: Job, args: argparse.Namespace, shown: str, verb: str, then: str = "cancelled"
) -> None:
    """Waits for the resumed job (Job.wait), showing its progress on stderr from wait()'s
    on_progress until BITS has transferred it. A Failure when it fails, or --timeout or
    --stall-timeout passes, whose line ends with ``then``: what the caller does with the
    job (download and upload cancel it, _downloads.transfer; wait leaves it)."""
    display = ProgressDisplay(sys.stderr, quiet=args.quiet)
    meter = RateMeter()
    handles = job.files()
    said = ""  # the state part of the line last shown

    def totals(p: JobProgress | None) -> tuple[int, int | None]:
        done = p.bytes_transferred if p else 0
        total = p.bytes_total if p else None
        if total is None:  # some BITS (Wine) never total a job: its files know
            sizes = [None if fp is None else fp.bytes_total for fp in (f.progress for f in handles)]
            total = None if None in sizes else sum(s for s in sizes if s is not None)
        return done, total

    def show(p: JobProgress) -> None:  # called while bytes move and when the state changes
        nonlocal said
        now = time.monotonic()
        done, total = totals(p)
        state = job.state
        moving = state in (JobState.TRANSFERRING, JobState.TRANSFERRED)
        waiting = "" if moving else waiting_for(job, state)
        line = progress_line(done, total, meter.add(now, done))
        display.show(line + ("  " + waiting if waiting else ""), now, news=waiting != said)
        said = waiting

    start = time.monotonic()
    try:
        job.wait(
            args.timeout,
            on_progress=show,
            progress_interval=0.2,
            stall_timeout=args.stall_timeout or None,
        )
    except JobFailedError:
        raise Failure(job_failure(job, shown, verb)) from None
    except TimeoutError:
        state = job.state
        if args.timeout is not None and time.monotonic() - start >= args.timeout:
            raise Failure(
                f"{verb} of {shown} did not finish in {args.timeout:g} s "
                f"(the job is {state}); {then}",
                Exit.TIMEOUT,
            ) from None
        raise Failure(
            f"{verb} of {shown}: no byte moved for "
            f"{args.stall_timeout:g} s ({waiting_for(job, state)}); {then}",
            Exit.TIMEOUT,
        ) from None
    now = time.monotonic()
    done, total = totals(job.progress)  # the last line: the whole transfer's rate
    display.show(
        progress_line(done, total, done / (now - start) if now > start else None), now, final=True
    )
