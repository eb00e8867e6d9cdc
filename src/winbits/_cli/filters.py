"""Which jobs `list` and `prune` act on: every filter given must match (age, state,
name, owner). Pure: tested on any OS; an owner's account name is turned into its SID by
the native module."""

from __future__ import annotations

import argparse
import datetime as dt
import fnmatch
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass

from .._types import JobRecord, JobState
from .usage import Failure, UsageError

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw]?)\Z")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def duration(text: str) -> float:
    """'90s', '30m', '12h', '3d', '2w' (a bare number: seconds) -> seconds."""
    m = _DURATION.match(text.strip().lower())
    if m is None:
        raise argparse.ArgumentTypeError(
            f"not a duration: {text!r} (a number with s, m, h, d or w: 3d, 12h, 90m)"
        )
    return float(m.group(1)) * _UNIT[m.group(2)]


def states(text: str) -> frozenset[JobState]:
    """'SUSPENDED,error' -> the states, by name (any case)."""
    names = [n.strip().upper() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in JobState.__members__]
    if unknown or not names:
        known = ", ".join(JobState.__members__)
        raise argparse.ArgumentTypeError(f"not a job state: {text!r} (one or more of {known})")
    return frozenset(JobState[n] for n in names)


def add_filters(parser: argparse.ArgumentParser) -> None:
    """The filters, on the parser of list and prune."""
    parser.add_argument(
        "--older-than",
        type=duration,
        metavar="DURATION",
        help="jobs created longer ago than DURATION (3d, 12h, 90m)",
    )
    parser.add_argument(
        "--state",
        type=states,
        metavar="STATE,…",
        help="jobs in one of these states (SUSPENDED, ERROR, TRANSIENT_ERROR, …)",
    )
    parser.add_argument(
        "--name", dest="name_glob", metavar="GLOB", help="jobs whose name matches (x-*, any case)"
    )
    parser.add_argument(
        "--owner", metavar="ACCOUNT", help="jobs of this account (a name such as alice, or a SID)"
    )


@dataclass(frozen=True)
class Filters:
    older_than: float | None = None  # seconds
    states: frozenset[JobState] | None = None
    name: str | None = None  # a glob, matched without regard to case
    owner: str | None = None  # a SID

    @property
    def given(self) -> bool:
        return any(v is not None for v in (self.older_than, self.states, self.name, self.owner))

    @classmethod
    def of(cls, args: argparse.Namespace) -> Filters:
        owner = args.owner
        if owner is not None and not owner.upper().startswith("S-1-"):
            owner = account_sid(owner)
        return cls(args.older_than, args.state, args.name_glob, owner)

    def select(self, jobs: Iterable[JobRecord], now: dt.datetime) -> list[JobRecord]:
        """The jobs every given filter matches. Where BITS does not give what a filter
        reads (Wine gives no job times and no owners), a Failure says so: no guess."""
        chosen = []
        for job in jobs:
            if self.states is not None and job.state not in self.states:
                continue
            if self.name is not None and not fnmatch.fnmatchcase(
                job.name.casefold(), self.name.casefold()
            ):
                continue
            if self.owner is not None:
                if job.owner is None:
                    raise Failure("this BITS does not tell a job's owner: --owner cannot choose")
                if job.owner.upper() != self.owner.upper():
                    continue
            if self.older_than is not None:
                if job.times is None or job.times.created is None:
                    raise Failure(
                        "this BITS gives no job times (GetTimes): --older-than cannot tell "
                        "a job's age"
                    )
                if (now - job.times.created).total_seconds() <= self.older_than:
                    continue
            chosen.append(job)
        return chosen


def account_sid(name: str) -> str:
    """The SID of an account name (alice, DOMAIN\\alice), as S-1-5-…."""
    if sys.platform != "win32":
        raise UsageError("--owner takes a SID (S-1-5-…) here: account names need Windows")
    from .. import _native

    try:
        return _native.account_sid(name)
    except OSError as e:
        raise UsageError(f"no account named {name!r}: {e.strerror or e}") from None
