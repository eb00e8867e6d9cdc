"""The commands that read and steer the queue: list, watch, show, set, the verbs and
export."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import sys
import time
import uuid
from typing import TextIO

from .. import _counters
from .._errors import (
    BitsError,
    InvalidStateError,
)
from .._job import Job
from .._manager import Manager, connect
from .._types import JobState, redact_url
from .filters import Filters
from .history import EventLogFeed
from .loops import Outage, Stopper
from .render import (
    changes_json,
    file_records,
    format_bytes,
    format_duration,
    format_table,
    iso,
    job_json,
    properties_json,
    result_json,
    show_value,
    snapshot_json,
    terminal_width,
)
from .settings import apply_settings, job_settings
from .usage import Exit, Failure, UsageError, control, say


def connect_for(args: argparse.Namespace) -> Manager:
    if sys.platform != "win32":
        raise Failure(
            f"needs Windows (BITS is a Windows service); this is {sys.platform}", Exit.UNAVAILABLE
        )
    return connect(args.clsid)


VERBS = {
    "cancel": "cancelled",
    "complete": "completed",
    "resume": "resumed",
    "suspend": "suspended",
}


def cmd_list(args: argparse.Namespace, out: TextIO) -> int:
    with connect_for(args) as bits:
        snap = bits.snapshot(args.all_users)
    now = dt.datetime.now(dt.timezone.utc)
    chosen = Filters.of(args)
    if chosen.given:
        snap = snap._replace(jobs=tuple(chosen.select(snap.jobs, now)))
    if args.json:
        json.dump(snapshot_json(snap, now), out, indent=2)
        out.write("\n")
    else:
        out.write(format_table([job_json(j) for j in snap.jobs], terminal_width(out)) + "\n")
    return 0


def vt_output() -> bool:
    """Whether standard output's console interprets the screen clear: classic conhost
    (cmd.exe on Server 2016-2022) does once asked, else it would print ``←[H←[2J``.
    Where it cannot, watch prints each table below the last."""
    if sys.platform != "win32":
        return True
    from .. import _native

    return _native.vt_output()


def cmd_watch(args: argparse.Namespace, out: TextIO) -> int:
    clear = out.isatty() and not args.json and vt_output()
    outage = Outage()
    with connect_for(args) as bits, Stopper() as stop:
        poller = bits.poller(args.all_users)
        for polls in stop.rounds(args.count, args.interval):
            try:
                snap = poller.poll()
            except BitsError as e:  # the service stopped or restarted: go on polling
                outage.failed(f"cannot read BITS: {e}")
            else:
                outage.ok("reading BITS")
                now = dt.datetime.now(dt.timezone.utc)
                if polls == 0 or snap.added or snap.changed or snap.removed:
                    if args.json:
                        out.write(json.dumps(changes_json(snap, now)) + "\n")
                    else:
                        if clear:
                            control(out, "\x1b[H\x1b[2J")
                        out.write(f"{iso(now)}  every {args.interval:g} s, Ctrl-C to stop\n")
                        table = format_table([job_json(j) for j in snap.jobs], terminal_width(out))
                        out.write(table + "\n\n")
                    out.flush()
    return 0


def find_job(bits: Manager, text: str, all_users: bool = False) -> Job:
    """A job by its id, or by a unique prefix of it (4 hex digits at least), as the
    table shows them."""
    try:
        return bits.get_job(uuid.UUID(text))
    except ValueError:
        pass
    prefix = text.strip("{}").lower()
    if any(c not in "0123456789abcdef-" for c in prefix):
        raise UsageError(f"not a job id: {text!r}")
    if len(prefix.replace("-", "")) < 4:
        raise UsageError(f"{text!r} is too short: give a job id or its first 4 hex digits or more")
    matches = [j for j in bits.jobs(all_users) if str(j.id).startswith(prefix)]
    if not matches:
        raise Failure(f"no job's id starts with {prefix}")
    if len(matches) > 1:
        listed = "; ".join(f"{j.id} {j.name!r} {j.state}" for j in matches)
        raise UsageError(f"{len(matches)} jobs' ids start with {prefix}: {listed}")
    return matches[0]


def cmd_verb(args: argparse.Namespace, out: TextIO) -> int:
    with connect_for(args) as bits:
        job = find_job(bits, args.id, args.all_users)
        name = job.name
        if args.command == "complete" and not args.force:
            state = job.state  # BITS would end a running transfer and keep what arrived
            if state != JobState.TRANSFERRED:
                raise Failure(
                    f"job {job.id} is {state}: only a TRANSFERRED job is completed; "
                    "completing it now would end its transfer and drop what did not "
                    "arrive (pass --force to do that)"
                )
        try:
            getattr(job, args.command)()
        except InvalidStateError:
            state = job.state
            raise Failure(f"job {job.id} is {state}: it cannot be {VERBS[args.command]}") from None
    if args.json:
        done = result_json(args.command, job_id=str(job.id), name=name)
        out.write(json.dumps(done) + "\n")
    else:
        out.write(f"{VERBS[args.command]} {job.id} {name}\n")
    return 0


def cmd_prune(args: argparse.Namespace, out: TextIO) -> int:
    """Cancels the jobs every given filter matches (at least one filter: a bare prune
    would empty the queue), printing each; with --dry-run cancels none."""
    chosen = Filters.of(args)
    if not chosen.given:
        raise UsageError(
            "prune needs a filter (--older-than, --state, --name or --owner): "
            "it would cancel every job"
        )
    failed = 0
    done = []
    with connect_for(args) as bits:
        now = dt.datetime.now(dt.timezone.utc)
        for record in chosen.select(bits.snapshot(args.all_users).jobs, now):
            made = record.times.created if record.times else None
            age = None if made is None else (now - made).total_seconds()
            error = None
            if not args.dry_run:
                try:
                    bits.get_job(record.id).cancel()
                except BitsError as e:  # gone meanwhile, or another user's
                    error, failed = str(e), failed + 1
            done.append((record, age, error))
    if args.json:
        jobs = [
            {
                "id": str(r.id),
                "name": r.name,
                "state": str(r.state),
                "age_seconds": None if age is None else round(age),
                "cancelled": not args.dry_run and error is None,
                "error": error,
            }
            for r, age, error in done
        ]
        out.write(json.dumps(result_json("prune", dry_run=args.dry_run, jobs=jobs)) + "\n")
    else:
        for r, age, error in done:
            what = "would cancel" if args.dry_run else "not cancelled" if error else "cancelled"
            shown_age = "unknown" if age is None else format_duration(age)
            line = f"{what} {r.id} {r.name}  {r.state}  age {shown_age}"
            out.write(line + (f": {error}" if error else "") + "\n")
    return Exit.FAILED if failed else Exit.OK


def cmd_show(args: argparse.Namespace, out: TextIO) -> int:
    with connect_for(args) as bits:
        job = find_job(bits, args.id, args.all_users)
        props = job.properties()
        files = file_records(job)
    if args.json:
        out.write(json.dumps(properties_json(props, files), indent=2) + "\n")
        return 0
    seconds = {"minimum_retry_delay", "no_progress_timeout", "maximum_download_time"}
    rows = [
        (
            name.replace("_", " ").capitalize().replace("Http ", "HTTP "),
            show_value(v) + (" s" if name in seconds and v is not None else ""),
        )
        for name, v in props._asdict().items()
    ]
    width = max(len(label) for label, _ in rows) + 1
    for label, value in rows:
        out.write(f"{label + ':':<{width}} {value}\n")
    out.write(f"Files ({len(files)}):\n")
    for f in files:
        p = f.progress
        peers = (
            ""
            if f.peer_stats is None
            else (
                f", {format_bytes(f.peer_stats.from_origin)} from origin, "
                f"{format_bytes(f.peer_stats.from_peers)} from peers"
            )
        )
        out.write(
            f"  {redact_url(f.remote_name)} -> {f.local_name}: "
            f"{format_bytes(p.bytes_transferred)} of {format_bytes(p.bytes_total)}"
            f"{' (complete)' if p.completed else ''}{peers}\n"
        )
    return 0


def cmd_set(args: argparse.Namespace, out: TextIO) -> int:
    changes = job_settings(args)
    if not changes and args.branchcache is None and args.helper_token is None:
        raise UsageError("nothing to set: give at least one option (see winbits set --help)")
    with connect_for(args) as bits:
        job = find_job(bits, args.id, args.all_users)
        done = apply_settings(job, args, None, changes)
        if args.json:
            out.write(json.dumps(result_json("set", job_id=str(job.id), set=done)) + "\n")
        else:
            out.write(f"set {', '.join(done)} of {job.id} {job.name}\n")
    return 0


def cmd_export(args: argparse.Namespace, out: TextIO) -> int:
    try:
        from .._prometheus import Health, write_textfile
    except ImportError:
        raise Failure("export needs prometheus_client: pip install winbits[prometheus]") from None

    state = _counters.state_path(args.prometheus)
    lock = _counters.StateLock(state)  # one exporter per file: a second one is refused
    with contextlib.ExitStack() as held:
        held.callback(lock.release)
        try:
            lock.acquire()
        except _counters.StateError as e:
            raise Failure(str(e)) from None
        except OSError as e:  # its folder is not there (yet): taken before the first write
            if args.interval is None:
                raise Failure(f"cannot write {args.prometheus}: {e.strerror or e}") from None
        try:
            counters, warning = _counters.load(state)
        except _counters.StateError as e:
            raise Failure(str(e)) from None
        stop = held.enter_context(Stopper())
        outage, health = Outage(), Health()
        # The event log is Windows' own BITS': not read for a test double (--clsid).
        events = EventLogFeed(args.all_users) if args.event_log and not args.clsid else None
        bits: Manager | None = None
        for _ in stop.rounds(args.count, args.interval):
            problem = None
            try:  # connecting is part of the round: BITS may be away from the start
                if bits is None:
                    bits = held.enter_context(connect_for(args))
                    poller = bits.poller(args.all_users)
                began = dt.datetime.now(dt.timezone.utc)  # events up to here: their jobs
                snap = poller.poll()  # were in this poll, or had left the queue before it
                health.up, health.last_success = True, time.time()
                counters.update(snap, health.last_success)
                if events is not None:
                    health.event_log_up = events.feed(counters, began, health.last_success)
            except BitsError as e:  # the file says so: bits_up 0, counters kept
                problem = f"cannot read BITS: {e}"
                snap, health.up, health.event_log_up = None, False, False
                health.poll_errors += 1
            zero = counters.take_fresh()  # new series: at 0 in this file, counted after
            try:  # the state first: a crash between the two never counts a byte twice
                if not lock.held:
                    lock.acquire()
                _counters.save(counters, state)
                write_textfile(
                    snap, args.prometheus, health, counters, per_job=args.per_job, zero=zero
                )
            except _counters.StateError as e:  # another exporter took the file meanwhile
                raise Failure(str(e)) from None
            except OSError as e:  # a folder that is not there, a directory, read-only
                counters.fresh |= zero  # not shown yet
                problem = f"cannot write {args.prometheus}: {e.strerror or e}"
                if args.interval is None:
                    raise Failure(problem) from None
            else:  # said once there is a state, so that a failed export stays one line
                if warning:
                    say(warning)
                warning = None
            if problem and args.interval is None:
                raise Failure(problem)  # a one-shot export: written, then one line
            if problem:
                outage.failed(problem)
            else:
                outage.ok(f"reading BITS and writing {args.prometheus}")
    return 0
