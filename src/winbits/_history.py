"""Every file BITS transferred, with its bytes from peers, from Windows' own record: the
Microsoft-Windows-Bits-Client/Operational event log. BITS writes event 60 ("BITS stopped
transferring …") for a file each time its transfer stops (done, suspended, failed), with
the job, the URL, the result and the byte counts, the bytes from peers among them. So a
job that came and went between two polls is still there to count.

Here: the query (an XPath filter on the event id, the time and the record id), an
event's XML read by field name (pure: tested on events the tests ship), the reading in
batches through the native module, and the reading of what is new since a bookmark (the
exporter's). The native reader gives each event's XML; nothing here calls Windows
directly.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from ._errors import AccessDeniedError, BitsError, NotSupportedError, hresult_text
from ._load import native
from ._types import SIZE_UNKNOWN, _redacted_repr

CHANNEL = "Microsoft-Windows-Bits-Client/Operational"
STOPPED = 60  # the event BITS writes when a file's transfer stops
BATCH = 512  # events read at a time: history's memory stays small over a long range
MAX_NEW = 20000  # events the exporter counts in one round; the rest the next round
TURN_ON = f"wevtutil sl {CHANNEL} /e:true"  # as an administrator

# The Windows errors a query can end with, and what they mean here.
ERROR_ACCESS_DENIED = 5
ERROR_NOT_SUPPORTED = 50
ERROR_CALL_NOT_IMPLEMENTED = 120  # the API failed without a reason (Wine)
ERROR_EVT_INVALID_CHANNEL_PATH = 15000
ERROR_EVT_CHANNEL_NOT_FOUND = 15007

_TIME = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?Z?\Z")


class Transfer(NamedTuple):
    """One stop of one file's transfer, as event 60 records it. ``bytes_from_peers`` is
    None where the event has no peer count; ``bytes_total`` None where the size was not
    known. ``owner_sid`` is the user the event was written for, where it names one."""

    time: dt.datetime
    record_id: int
    job_id: uuid.UUID | None
    job_name: str
    url: str
    hresult: int
    bytes_total: int | None
    bytes_transferred: int
    bytes_from_peers: int | None
    owner_sid: str | None
    version: int  # of the event's template: 0 on older Windows, 1 since

    def __repr__(self) -> str:  # no password or signed query of a URL in a repr
        return _redacted_repr(self, ("url",))

    @property
    def error(self) -> str | None:
        """What the result means, None where the transfer ended without an error."""
        return None if self.hresult == 0 else hresult_text(self.hresult)

    @property
    def bytes_from_origin(self) -> int | None:
        """The bytes from the server: those transferred, less those from peers."""
        if self.bytes_from_peers is None:
            return None
        return max(0, self.bytes_transferred - self.bytes_from_peers)

    @property
    def completed(self) -> bool:
        """The file arrived whole: no error, and every byte of a known size moved."""
        return (
            self.hresult == 0
            and self.bytes_total is not None
            and self.bytes_transferred >= self.bytes_total
        )


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _child(parent: ET.Element, name: str) -> ET.Element | None:
    return next((c for c in parent if _local(c.tag) == name), None)


def parse_time(text: str) -> dt.datetime:
    """An event's SystemTime ('2026-12-01T10:00:00.1234567Z', UTC) as an aware datetime;
    the digits past microseconds are dropped."""
    m = _TIME.match(text.strip())
    if m is None:
        raise ValueError(f"not an event time: {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    micro = int((m.group(7) or "0")[:6].ljust(6, "0"))
    return dt.datetime(year, month, day, hour, minute, second, micro, tzinfo=dt.timezone.utc)


def _number(data: dict[str, str], name: str) -> int | None:
    """A field's whole number (decimal or 0x hex; a negative HRESULT as unsigned), None
    where the event has no such field."""
    text = data.get(name)
    if text is None or not text.strip():
        return None
    try:
        return int(text.strip(), 0)
    except ValueError:
        raise ValueError(f"the field {name} is not a number: {text!r}") from None


def _guid(text: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(text.strip()) if text and text.strip() else None
    except ValueError:
        raise ValueError(f"not a GUID: {text!r}") from None


def _parse(xml: str) -> tuple[int, dict[str, ET.Element], ET.Element]:
    """An event's record id, the parts of its System element by name, and its root;
    ValueError where it is no event XML or has no record id."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as e:
        raise ValueError(f"not event XML: {e}") from None
    system = _child(root, "System")
    if system is None:
        raise ValueError("the event has no System part")
    fields = {_local(c.tag): c for c in system}
    found = fields.get("EventRecordID")
    if found is None or not (found.text or "").strip().isdigit():
        raise ValueError("the event has no record id")
    return int(found.text or ""), fields, root


def record_id(xml: str) -> int:
    """An event's record id, whatever the event."""
    return _parse(xml)[0]


def parse_event(xml: str) -> Transfer | None:
    """An event 60 as a Transfer, fields by name (versions 0 and 1 of the event); None for
    another event. ValueError where it lacks what a transfer needs, or holds nonsense."""
    return _transfer(*_parse(xml))


def _transfer(rid: int, fields: dict[str, ET.Element], root: ET.Element) -> Transfer | None:
    """parse_event, of an event already parsed."""
    if "EventID" not in fields or (fields["EventID"].text or "").strip() != str(STOPPED):
        return None
    created = fields.get("TimeCreated")
    security = fields.get("Security")
    version = fields.get("Version")
    event_data = _child(root, "EventData")
    data = {
        d.get("Name", ""): d.text or ""
        for d in (event_data if event_data is not None else ())
        if _local(d.tag) == "Data"
    }
    transferred = _number(data, "bytesTransferred")
    if transferred is None or "url" not in data:
        raise ValueError("the event has no url or bytesTransferred")
    total = _number(data, "bytesTotal")
    hresult = _number(data, "hr") or 0
    return Transfer(
        time=parse_time(created.get("SystemTime", "") if created is not None else ""),
        record_id=rid,
        job_id=_guid(data.get("Id")),
        job_name=data.get("name", ""),
        url=data["url"],
        hresult=hresult & 0xFFFFFFFF,
        bytes_total=None if total is None or total == SIZE_UNKNOWN else total,
        bytes_transferred=transferred,
        bytes_from_peers=_number(data, "bytesTransferredFromPeer"),
        owner_sid=(security.get("UserID") or None) if security is not None else None,
        version=int((version.text or "0").strip() or 0) if version is not None else 0,
    )


def _utc_text(when: dt.datetime) -> str:
    """A time as the event log's XPath compares it: UTC, ISO 8601 to the millisecond (as
    Event Viewer writes it), Z. A naive datetime is local time, as everywhere in Python.
    Cut to the millisecond below: `until` may leave an event of its last millisecond to
    the next read, never one before it."""
    utc = when.astimezone(dt.timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def query(
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    after: int | None = None,
) -> str:
    """The XPath filter of the events 60 written from `since` to `until` (either end
    open), with a record id past `after`."""
    terms = [f"EventID={STOPPED}"]
    if since is not None:
        terms.append(f"TimeCreated[@SystemTime>='{_utc_text(since)}']")
    if until is not None:
        terms.append(f"TimeCreated[@SystemTime<='{_utc_text(until)}']")
    if after is not None:
        terms.append(f"EventRecordID>{int(after)}")
    return f"*[System[{' and '.join(terms)}]]"


def _error(e: OSError) -> BitsError:
    """The exception for a query that failed: which of absent, forbidden or otherwise."""
    code = e.winerror or 0  # type: ignore[attr-defined,unused-ignore]
    hresult = 0x80070000 | (code & 0xFFFF) if code else 0x80004005
    if code in (ERROR_EVT_CHANNEL_NOT_FOUND, ERROR_EVT_INVALID_CHANNEL_PATH):
        return NotSupportedError(
            hresult, f"this Windows has no {CHANNEL} event log channel (BITS records none here)"
        )
    if code in (ERROR_CALL_NOT_IMPLEMENTED, ERROR_NOT_SUPPORTED):
        return NotSupportedError(
            hresult,
            "this Windows has no Bits-Client event log: the Windows Event Log API answers "
            "no query here (Wine has none)",
        )
    if code == ERROR_ACCESS_DENIED:
        return AccessDeniedError(
            hresult,
            f"this account may not read the {CHANNEL} event log: run as an administrator, "
            "or as a member of Event Log Readers",
        )
    return BitsError(hresult, f"cannot read the {CHANNEL} event log: {e.strerror or e}")


Reader = Callable[[str, int, bool], list[str]]  # (xpath, limit, newest first) -> XML


def _on_channel(function: str, *args: object) -> Any:
    """The native module's `function` on the channel, its failure turned by _error."""
    call = getattr(native(), function)
    try:
        return call(CHANNEL, *args)
    except BitsError:
        raise
    except OSError as e:
        raise _error(e) from None


def read(xpath: str, limit: int, reverse: bool = False) -> list[str]:
    """The XML of up to `limit` events of the channel that match; NotSupportedError
    where this Windows has no such log, AccessDeniedError where this account may not
    read it."""
    return list(_on_channel("event_log_read", xpath, limit, reverse))


def enabled() -> bool:
    """Whether Windows writes new events to the channel (it does by default). Where it
    is off, events stop being recorded: turn it on with TURN_ON."""
    return bool(_on_channel("event_log_enabled"))


def _each(events: list[str]) -> Iterator[tuple[int | None, Transfer | None, bool]]:
    """Per event, parsed once: (its record id, its transfer, whether it could not be
    read). The id is None for what is no event XML; the transfer None for another event
    or one that could not be read."""
    for xml in events:
        try:
            rid, fields, root = _parse(xml)
        except ValueError:
            yield None, None, True
            continue
        try:
            transfer = _transfer(rid, fields, root)
        except ValueError:
            yield rid, None, True
            continue
        yield rid, transfer, False


class History:
    """The transfers recorded from `since` to `until`, oldest first, read a batch at a
    time. An event that cannot be read as a transfer is skipped and counted in
    ``skipped`` (as iteration goes)."""

    def __init__(
        self,
        since: dt.datetime | dt.timedelta | None = None,
        until: dt.datetime | None = None,
        reader: Reader = read,
    ) -> None:
        if isinstance(since, dt.timedelta):
            since = dt.datetime.now(dt.timezone.utc) - since
        for name, value in (("since", since), ("until", until)):
            if value is not None and not isinstance(value, dt.datetime):
                raise TypeError(f"{name} must be a datetime (or since a timedelta), not {value!r}")
        self.since, self.until = since, until
        self.skipped = 0
        self._read = reader

    def __iter__(self) -> Iterator[Transfer]:
        after = None
        while True:
            events = self._read(query(self.since, self.until, after), BATCH, False)
            before = after
            for rid, transfer, bad in _each(events):
                after = after if rid is None else rid
                self.skipped += bad
                if transfer is not None:
                    yield transfer
            if len(events) < BATCH or after == before:  # the end, or no way past it
                return


def history(
    since: dt.datetime | dt.timedelta | None = None, until: dt.datetime | None = None
) -> History:
    """Every file transfer the Bits-Client event log recorded from `since` (a time, or a
    timedelta back from now) to `until`, oldest first, as Transfers: what BranchCache
    saved, job by job, including jobs no poll ever saw. NotSupportedError where this
    Windows has no such log (Wine), AccessDeniedError where this account may not read
    it."""
    return History(since, until)


def read_new(
    after: int | None, until: dt.datetime, reader: Reader = read
) -> tuple[list[Transfer], int, int]:
    """The transfers recorded after the bookmark `after` (a record id) up to `until`,
    the new bookmark, and how many events could not be read. With no bookmark yet, none:
    the bookmark is set at the newest event, so counting starts now. Where the channel
    was cleared (its newest record is older than the bookmark), it starts again from its
    first event."""

    def newest() -> int:
        last = reader("*", 1, True)
        return record_id(last[0]) if last else 0

    if after is None:
        return [], newest(), 0
    events = reader(query(until=until, after=after), MAX_NEW, False)
    if not events and newest() < after:  # cleared: the record ids start again from 1
        after = 0
        events = reader(query(until=until, after=0), MAX_NEW, False)
    transfers, skipped = [], 0
    for rid, transfer, bad in _each(events):
        after = max(after, rid or 0)
        skipped += bad
        if transfer is not None:
            transfers.append(transfer)
    return transfers, after, skipped
