"""`winbits history`: the file transfers the Bits-Client event log recorded, and a
summary per server (or per job) of the bytes, the bytes from peers and the peer share:
what BranchCache saved, including jobs that no poll ever saw."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TextIO

from .. import _history
from .._counters import Counters, server_of
from .._errors import BitsError, NotSupportedError
from .._history import Transfer
from .._types import redact_url
from .filters import duration
from .render import format_bytes, iso, result_json
from .usage import Exit, Failure, UsageError, say

OFF = (
    f"the {_history.CHANNEL} event log is turned off: BITS records no new transfers; turn "
    f"it on (as an administrator) with: {_history.TURN_ON}"
)


def moment(text: str) -> dt.datetime:
    """'1d', '12h' (that long ago), '2026-12-01' or '2026-12-01T08:00' (local time, or
    with its offset or Z) -> an aware datetime."""
    try:
        seconds = duration(text)
    except argparse.ArgumentTypeError:
        pass
    else:
        return dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=seconds)
    try:
        when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a time: {text!r} (a duration back from now such as 1d or 12h, "
            "or a date such as 2026-12-01 or 2026-12-01T08:00)"
        ) from None
    return when if when.tzinfo else when.astimezone()  # a naive time is local time


@dataclass
class Summary:
    """What moved for one server or one job."""

    key: str
    transfers: int = 0
    completed: int = 0
    failed: int = 0
    bytes: int = 0
    from_peers: int | None = None  # None while no event of it had a peer count

    def add(self, t: Transfer) -> None:
        self.transfers += 1
        self.completed += t.completed
        self.failed += t.hresult != 0
        self.bytes += t.bytes_transferred
        if t.bytes_from_peers is not None:
            self.from_peers = (self.from_peers or 0) + t.bytes_from_peers

    @property
    def peer_share(self) -> float | None:
        """The percent of the bytes that came from peers."""
        if self.from_peers is None or not self.bytes:
            return None
        return 100.0 * self.from_peers / self.bytes

    def to_json(self, by: str) -> dict[str, Any]:
        return {
            by: self.key,
            "transfers": self.transfers,
            "completed": self.completed,
            "failed": self.failed,
            "bytes": self.bytes,
            "from_peers": self.from_peers,
            "peer_percent": None if self.peer_share is None else round(self.peer_share, 2),
        }


def summarize(transfers: Iterable[Transfer], by: str) -> list[Summary]:
    """A Summary per server (its host) or per job (its id), most bytes first."""
    table: dict[str, Summary] = {}
    for t in transfers:
        key = server_of(t.url) if by == "server" else str(t.job_id)
        table.setdefault(key, Summary(key)).add(t)
    return sorted(table.values(), key=lambda s: (-s.bytes, s.key))


def transfer_json(t: Transfer) -> dict[str, Any]:
    return {
        "time": iso(t.time),
        "record_id": t.record_id,
        "job_id": None if t.job_id is None else str(t.job_id),
        "job_name": t.job_name,
        "url": redact_url(t.url),
        "hresult": t.hresult,
        "error": t.error,
        "bytes_total": t.bytes_total,
        "bytes": t.bytes_transferred,
        "from_origin": t.bytes_from_origin,
        "from_peers": t.bytes_from_peers,
        "completed": t.completed,
        "owner_sid": t.owner_sid,
    }


def _line(t: Transfer) -> str:
    when = t.time.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    peers = "?" if t.bytes_from_peers is None else format_bytes(t.bytes_from_peers)
    result = "ok" if t.hresult == 0 else f"0x{t.hresult:08X} {t.error}"
    size = format_bytes(t.bytes_transferred)
    return f"{when}  {t.job_name}  {redact_url(t.url)}  {size}  peers {peers}  {result}"


def _summary_lines(summaries: list[Summary], by: str) -> list[str]:
    rows = [(by.upper(), "TRANSFERS", "BYTES", "FROM PEERS", "PEER %")]
    for s in summaries:
        share = "" if s.peer_share is None else f"{s.peer_share:.1f}%"
        peers = "?" if s.from_peers is None else format_bytes(s.from_peers)
        rows.append((s.key, str(s.transfers), format_bytes(s.bytes), peers, share))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = (
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        lines.append("  ".join(cells).rstrip())
    return lines


def cmd_history(args: argparse.Namespace, out: TextIO) -> int:
    """Prints the transfers from --since to --until and a summary per server or job."""
    if args.since and args.until and args.since > args.until:
        raise UsageError("--since is after --until: nothing can be in between")
    records = _history.History(args.since, args.until, _history.read)
    try:
        transfers = list(records)
    except NotSupportedError as e:  # Wine, or a Windows without the channel: one line
        raise Failure(str(e.strerror), Exit.UNAVAILABLE) from None
    try:
        if not _history.enabled():
            say(OFF)
    except BitsError:
        pass  # whether it is on cannot be read: what was read is shown all the same
    if records.skipped:
        say(f"{records.skipped} event(s) could not be read as a transfer and are left out")
    summaries = summarize(transfers, args.by)
    if args.json:
        report = result_json(
            "history",
            since=iso(args.since),
            until=iso(args.until),
            by=args.by,
            transfers=[transfer_json(t) for t in transfers],
            summary=[s.to_json(args.by) for s in summaries],
            skipped=records.skipped,
        )
        out.write(json.dumps(report) + "\n")
        return 0
    for t in transfers:
        out.write(_line(t) + "\n")
    if not transfers:
        out.write("no transfers recorded in that time\n")
        return 0
    out.write("\n")
    for line in _summary_lines(summaries, args.by):
        out.write(line + "\n")
    return 0


class EventLogFeed:
    """The exporter's reading of the event log, once a round: the transfers recorded
    since the state's bookmark, added to the counters for the jobs no poll saw. Where
    the log cannot be read it says so once (until it can again), and the polls go on
    counting alone."""

    def __init__(
        self,
        all_users: bool,
        reader: _history.Reader = _history.read,
        enabled: Callable[[], bool] = _history.enabled,
    ) -> None:
        self.all_users = all_users
        self.reader = reader
        self.enabled = enabled
        self._owner: str | None = None
        self._said: str | None = None

    def owner(self) -> str | None:
        """The user whose events count: None for every user's; else this process's SID,
        as the poller sees this user's jobs only."""
        if self.all_users:
            return None
        if self._owner is None:
            from .. import _native

            self._owner = str(_native.process_identity()[1])
        return self._owner

    def feed(self, counters: Counters, until: dt.datetime, now: float) -> bool:
        """Counts what is new up to `until` (when the round's poll began); -> whether the
        log was read and is recording (a log turned off is read, but records nothing
        new: it says so, with how to turn it on)."""
        try:
            transfers, counters.event_log, skipped = _history.read_new(
                counters.event_log, until, self.reader
            )
            owner = self.owner()
            recording = self.enabled()
        except (BitsError, OSError) as e:
            self._say_once(
                f"the Bits-Client event log is not read, the polls count alone: {e.strerror or e}"
            )
            return False
        counters.add_transfers(transfers, now, owner)
        if skipped:
            say(f"{skipped} event(s) of the Bits-Client event log are unreadable: left out")
        if not recording:
            self._say_once(OFF)
            return False
        self._said = None
        return True

    def _say_once(self, message: str) -> None:
        """Says it, unless it was the last thing said (an outage is one line)."""
        if message != self._said:
            say(message)
            self._said = message
