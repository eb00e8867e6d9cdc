"""The Bits-Client event log as a second source: event 60 read by field name (versions 0
and 1, from the event XML the tests ship in tests/events/), the queries, the paging, the
bookmark, and the exporter's counting of what no poll saw. Pure: any OS. What Windows
itself does is tested under Wine (no event log: one line, exit 6; the exporter goes on)
and on a real Windows (test_history_windows)."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import uuid
from pathlib import Path

import pytest
from conftest import run_winbits, running_on_wine, wait_until, windows_only
from rangeserver import make_payload

import winbits
from winbits import _counters, _history
from winbits._cli import history as cli_history
from winbits._cli import main
from winbits._counters import Counters
from winbits._history import Transfer
from winbits._types import FileProgress, FileRecord, JobProgress, JobRecord, PeerStats

EVENTS = Path(__file__).parent / "events"
SEEN = uuid.UUID("0a1b2c3d-0000-4000-8000-000000000001")
UNSEEN = uuid.UUID("0a1b2c3d-0000-4000-8000-000000000002")
BROKEN = uuid.UUID("0a1b2c3d-0000-4000-8000-000000000003")
ALICE = "S-1-5-21-1004336348-1177238915-682003330-1001"
UTC = dt.timezone.utc


def event(name: str) -> str:
    return (EVENTS / name).read_text(encoding="utf-8")


class Channel:
    """A channel of events that answers the queries _history makes, as EvtQuery would:
    by event id, time and record id, oldest first or newest first, at most `limit`."""

    def __init__(self, *xml: str) -> None:
        self.events = sorted(xml, key=rid_of)
        self.queries: list[tuple[str, int, bool]] = []

    def __call__(self, xpath: str, limit: int, reverse: bool) -> list[str]:
        self.queries.append((xpath, limit, reverse))
        found = [x for x in self.events if self._matches(xpath, x)]
        return (found[::-1] if reverse else found)[:limit]

    @staticmethod
    def _matches(xpath: str, xml: str) -> bool:
        if xpath == "*":
            return True
        ids = re.findall(r"EventID=(\d+)", xpath)
        if ids and f"<EventID>{ids[0]}</EventID>" not in xml:
            return False
        rid = rid_of(xml)
        after = re.search(r"EventRecordID>(\d+)", xpath)
        if after and rid <= int(after.group(1)):
            return False
        when = re.search(r'SystemTime="([^"]+)"', xml)
        assert when is not None
        t = _history.parse_time(when.group(1))
        for op, text in re.findall(r"@SystemTime(>=|<=)'([^']+)'", xpath):
            bound = _history.parse_time(text)
            if (op == ">=" and t < bound) or (op == "<=" and t > bound):
                return False
        return True


def rid_of(xml: str) -> int:
    """An event's record id, found in its text as Windows' query would (read, not parsed)."""
    m = re.search(r"<EventRecordID>(\d+)</EventRecordID>", xml)
    assert m is not None
    return int(m.group(1))


def with_record(xml: str, rid: int, when: str | None = None) -> str:
    """The same event under another record id (and time)."""
    xml = re.sub(
        r"<EventRecordID>\d+</EventRecordID>", f"<EventRecordID>{rid}</EventRecordID>", xml
    )
    if when:
        xml = re.sub(r'SystemTime="[^"]+"', f'SystemTime="{when}"', xml, count=1)
    return xml


# --- reading an event --------------------------------------------------------------


def test_event_60_version_1_is_read_by_field_name():
    t = _history.parse_event(event("60-v1-unseen.xml"))
    assert t is not None
    assert t.time == dt.datetime(2026, 12, 1, 10, 0, 5, 500000, tzinfo=UTC)
    assert (t.record_id, t.job_id, t.job_name, t.version) == (1202, UNSEEN, "short-job", 1)
    assert (t.bytes_total, t.bytes_transferred, t.bytes_from_peers) == (1048576, 1048576, 786432)
    assert (t.bytes_from_origin, t.hresult, t.error, t.completed) == (262144, 0, None, True)
    assert t.owner_sid == ALICE
    # the URL is kept whole (it is the caller's), and no repr shows its secrets
    assert t.url == "https://user:secret@cdn.example.org/pkg/small.cab?sig=TOPSECRET"
    assert "secret" not in repr(t).lower() and "cdn.example.org/pkg/small.cab?…" in repr(t)


def test_event_60_version_0_has_no_peer_count():
    t = _history.parse_event(event("60-v0.xml"))
    assert t is not None
    assert (t.version, t.bytes_transferred, t.bytes_from_peers, t.bytes_from_origin) == (
        0,
        5000,
        None,
        None,
    )
    assert t.time == dt.datetime(2025, 3, 2, 8, 30, tzinfo=UTC) and t.completed


def test_an_error_result_is_kept_with_its_text_and_an_unknown_size_is_none():
    t = _history.parse_event(event("60-v1-error.xml"))
    assert t is not None
    assert (t.hresult, t.bytes_total, t.completed) == (0x80190194, None, False)
    assert t.error is not None and "404" in t.error


def test_a_negative_decimal_hresult_reads_as_unsigned():
    xml = event("60-v1-error.xml").replace(">0x80190194<", f">{0x80190194 - 2**32}<")
    t = _history.parse_event(xml)
    assert t is not None and t.hresult == 0x80190194


def test_another_event_is_no_transfer_and_a_broken_one_says_why():
    assert _history.parse_event(event("3.xml")) is None
    no_bytes = re.sub(r'<Data Name="bytesTransferred">\d+</Data>', "", event("60-v0.xml"))
    with pytest.raises(ValueError, match="bytesTransferred"):
        _history.parse_event(no_bytes)
    with pytest.raises(ValueError, match="not a number"):
        _history.parse_event(event("60-v0.xml").replace('"bytesTotal">5000<', '"bytesTotal">lots<'))
    with pytest.raises(ValueError, match="not event XML"):
        _history.parse_event("<Event><System>")
    with pytest.raises(ValueError, match="not an event time"):
        _history.parse_event(event("60-v0.xml").replace("2025-03-02T08:30:00Z", "yesterday"))


def test_the_query_filters_by_event_time_in_utc_and_record():
    local = dt.timezone(dt.timedelta(hours=2))
    q = _history.query(
        since=dt.datetime(2026, 12, 1, 12, 0, tzinfo=local),
        until=dt.datetime(2026, 12, 2, 0, 0, 0, 999999, tzinfo=UTC),
        after=41,
    )
    assert q == (
        "*[System[EventID=60 and TimeCreated[@SystemTime>='2026-12-01T10:00:00.000Z'] "
        "and TimeCreated[@SystemTime<='2026-12-02T00:00:00.999Z'] and EventRecordID>41]]"
    )
    assert _history.query() == "*[System[EventID=60]]"


# --- history ------------------------------------------------------------------------


def test_history_reads_in_batches_skips_other_events_and_counts_unreadable_ones(monkeypatch):
    monkeypatch.setattr(_history, "BATCH", 2)
    base = event("60-v1-unseen.xml")
    channel = Channel(
        event("3.xml"),
        *(with_record(base, 2000 + i) for i in range(5)),
        with_record(base.replace('"bytesTotal">1048576<', '"bytesTotal">lots<'), 3000),
    )
    records = _history.History(reader=channel)
    got = [t.record_id for t in records]
    assert got == [2000, 2001, 2002, 2003, 2004]
    assert records.skipped == 1  # the event whose size is no number
    # each query went on from the last record read: 2 + 2 + 2 (one unreadable) + 0
    afters = [re.search(r"EventRecordID>(\d+)", q) for q, _, _ in channel.queries]
    assert [m.group(1) if m else None for m in afters] == [None, "2001", "2003", "3000"]


def test_history_takes_a_timedelta_and_refuses_what_is_no_time():
    records = winbits.history(dt.timedelta(days=1))
    assert records.since is not None
    assert abs((dt.datetime.now(UTC) - records.since) - dt.timedelta(days=1)) < dt.timedelta(
        seconds=60
    )
    with pytest.raises(TypeError, match="since must be a datetime"):
        winbits.history("1d")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "cls", "words"),
    [
        (120, winbits.NotSupportedError, "no Bits-Client event log"),
        (15007, winbits.NotSupportedError, "no Microsoft-Windows-Bits-Client/Operational"),
        (5, winbits.AccessDeniedError, "Event Log Readers"),
        (1359, winbits.BitsError, "cannot read"),
    ],
    ids=["none", "nochannel", "denied", "other"],
)
def test_a_failed_query_says_which_of_absent_forbidden_or_else(code, cls, words):
    e = OSError(22, "the text", None, code)
    e.winerror = code  # the attribute exists on Windows only
    err = _history._error(e)
    assert type(err) is cls and words in str(err)
    assert err.hresult == 0x80070000 | code
    assert isinstance(_history._error(e), PermissionError) == (code == 5)


# --- the command --------------------------------------------------------------------


def run(monkeypatch, channel, *argv):
    monkeypatch.setattr(_history, "read", channel)
    monkeypatch.setattr(_history, "enabled", lambda: True)
    out = io.StringIO()
    code = main(["history", *argv], out)
    return code, out.getvalue()


def three() -> Channel:
    return Channel(
        event("3.xml"),
        event("60-v1-seen.xml"),
        event("60-v1-unseen.xml"),
        event("60-v1-error.xml"),
        event("60-v0.xml"),
    )


def test_the_command_shows_the_transfers_and_the_peer_share_per_server(monkeypatch):
    code, text = run(monkeypatch, three(), "--since", "2026-01-01")
    assert code == 0
    lines = text.splitlines()
    assert len(lines) == 3 + 1 + 3  # three transfers since 2026, a blank, header + 2 servers
    assert (
        "short-job  https://cdn.example.org/pkg/small.cab?…  1.0 MiB  peers 768.0 KiB  ok"
        in (lines[1])
    )
    assert "0x80190194" in lines[2] and "404" in lines[2]
    assert "secret" not in text.lower()
    assert lines[4].split() == ["SERVER", "TRANSFERS", "BYTES", "FROM", "PEERS", "PEER", "%"]
    assert lines[5].split() == ["cdn.example.org", "2", "4.8", "MiB", "3.6", "MiB", "75.0%"]
    assert lines[6].split() == ["origin.example.net", "1", "0", "B", "0", "B"]


def test_the_command_json_is_one_object_with_the_summary_per_job(monkeypatch):
    code, text = run(monkeypatch, three(), "--json", "--by", "job", "--until", "2025-12-31")
    assert code == 0
    report = json.loads(text)
    assert (report["command"], report["ok"], report["by"], report["skipped"]) == (
        "history",
        True,
        "job",
        0,
    )
    (only,) = report["transfers"]
    assert only["job_name"] == "old-job" and only["from_peers"] is None
    assert report["summary"] == [
        {
            "job": "0a1b2c3d-0000-4000-8000-000000000004",
            "transfers": 1,
            "completed": 1,
            "failed": 0,
            "bytes": 5000,
            "from_peers": None,
            "peer_percent": None,
        }
    ]


def test_the_command_redacts_urls_in_json(monkeypatch):
    code, text = run(monkeypatch, three(), "--json")
    assert code == 0 and "secret" not in text.lower()
    urls = {t["url"] for t in json.loads(text)["transfers"]}
    assert "https://cdn.example.org/pkg/small.cab?…" in urls


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--since", "soon"], "not a time: 'soon'"),
        (["--since", "1d", "--until", "2d"], "--since is after --until"),
    ],
    ids=["word", "backwards"],
)
def test_the_command_refuses_times_it_cannot_use(monkeypatch, capsys, argv, words):
    code, _ = run(monkeypatch, three(), *argv)
    assert code == 2 and words in capsys.readouterr().err


def test_moment_reads_durations_dates_and_offsets():
    now = dt.datetime.now(UTC)
    assert abs(now - dt.timedelta(hours=12) - cli_history.moment("12h")) < dt.timedelta(minutes=1)
    assert cli_history.moment("2026-12-01T08:00Z") == dt.datetime(2026, 12, 1, 8, tzinfo=UTC)
    assert cli_history.moment("2026-12-01").tzinfo is not None  # local time, made aware


# --- the exporter -------------------------------------------------------------------


def polled(*job_ids: uuid.UUID) -> winbits.Snapshot:
    """A snapshot with a job per id, each with one file of 4000000 bytes done."""
    jobs = tuple(
        JobRecord(
            jid,
            "j",
            None,
            winbits.JobState.TRANSFERRED,
            JobProgress(None, 0, 0, 0),
            None,
            (
                FileRecord(
                    "https://cdn.example.org/pkg/seen.cab",
                    "C:\\f",
                    FileProgress(4000000, 4000000, True),
                    PeerStats(1000000, 3000000),
                ),
            ),
        )
        for jid in job_ids
    )
    return winbits.Snapshot(jobs, frozenset(), frozenset(), frozenset())


NOW = dt.datetime(2026, 12, 1, 12, tzinfo=UTC)


def feed_of(channel, all_users: bool = True, on: bool = True) -> cli_history.EventLogFeed:
    return cli_history.EventLogFeed(all_users, reader=channel, enabled=lambda: on)


def test_the_exporter_counts_the_files_no_poll_saw_and_only_those():
    counters = Counters()
    counters.event_log = 1199
    counters.update(polled(SEEN), now=0)  # the poll saw this job: it counts its file
    channel = Channel(
        event("3.xml"), event("60-v1-seen.xml"), event("60-v1-unseen.xml"), event("60-v1-error.xml")
    )
    feed = feed_of(channel, all_users=True)
    assert feed.feed(counters, NOW, 1.0)
    # seen: 4000000 (1000000 from origin, 3000000 from peers), once, from the poll;
    # unseen: 1048576 (262144 + 786432) from its event; the error moved nothing
    assert counters.totals == {"cdn.example.org": [5048576, 1262144, 3786432, 2]}
    assert counters.event_log == 1203
    assert feed.feed(counters, NOW, 2.0)  # nothing new: nothing added
    assert counters.totals == {"cdn.example.org": [5048576, 1262144, 3786432, 2]}


def test_a_restart_between_two_events_neither_misses_nor_repeats_one(tmp_path):
    path = str(tmp_path / "bits.winbits-state.json")
    channel = Channel(event("3.xml"))
    first = Counters()
    feed = feed_of(channel, all_users=True)
    assert feed.feed(first, NOW, 0.0)  # the first read: the bookmark is set at now
    assert (first.event_log, first.totals) == (1200, {})
    channel.events.append(event("60-v1-unseen.xml"))
    assert feed.feed(first, NOW, 1.0)
    _counters.save(first, path)  # the state keeps the counts and the bookmark together
    channel.events.append(with_record(event("60-v1-unseen.xml"), 1300).replace("-0002}", "-0009}"))
    again, warning = _counters.load(path)  # a restarted exporter
    assert warning is None and again.event_log == 1202
    assert feed_of(channel, all_users=True).feed(again, NOW, 2.0)
    assert again.totals == {"cdn.example.org": [2 * 1048576, 2 * 262144, 2 * 786432, 2]}
    assert again.event_log == 1300


def test_events_written_after_the_poll_began_wait_for_the_next_round():
    counters = Counters()
    counters.event_log = 1199
    channel = Channel(event("60-v1-unseen.xml"))  # written at 10:00:05.5
    feed = feed_of(channel, all_users=True)
    assert feed.feed(counters, dt.datetime(2026, 12, 1, 10, 0, 5, tzinfo=UTC), 0.0)
    assert (counters.totals, counters.event_log) == ({}, 1199)
    assert feed.feed(counters, NOW, 1.0)
    assert counters.totals["cdn.example.org"][0] == 1048576


def test_a_cleared_channel_is_read_again_from_its_first_event():
    counters = Counters()
    counters.event_log = 90000  # before the log was cleared
    channel = Channel(event("60-v1-unseen.xml"))
    assert feed_of(channel, all_users=True).feed(counters, NOW, 0.0)
    assert counters.totals["cdn.example.org"][0] == 1048576 and counters.event_log == 1202


def test_a_poller_of_one_user_counts_that_users_events_only():
    counters = Counters()
    counters.event_log = 0
    channel = Channel(event("60-v1-unseen.xml"), event("60-v0.xml").replace(ALICE, "S-1-5-18"))
    feed = feed_of(channel, all_users=False)
    feed._owner = "S-1-5-18"
    assert feed.feed(counters, NOW, 0.0)
    assert list(counters.totals) == ["old.example.net"]


def test_an_unreadable_log_says_so_once_and_the_polls_go_on(capsys):
    def absent(xpath, limit, reverse):
        raise _history._error(_oserror(120))

    counters = Counters()
    feed = feed_of(absent, all_users=True)
    assert not feed.feed(counters, NOW, 0.0)
    assert not feed.feed(counters, NOW, 1.0)
    err = capsys.readouterr().err
    assert err.count("event log is not read") == 1 and "no Bits-Client event log" in err
    assert counters.event_log is None


def test_a_log_turned_off_is_read_and_says_how_to_turn_it_on_once(capsys):
    counters = Counters()
    counters.event_log = 0
    feed = feed_of(Channel(event("60-v1-unseen.xml")), on=False)
    assert not feed.feed(counters, NOW, 0.0)  # winbits_event_log_up 0: nothing new comes
    assert not feed.feed(counters, NOW, 1.0)
    assert counters.totals["cdn.example.org"][0] == 1048576  # what it holds still counts
    err = capsys.readouterr().err
    assert err.count("turned off") == 1
    assert "wevtutil sl Microsoft-Windows-Bits-Client/Operational /e:true" in err


def _oserror(code: int) -> OSError:
    e = OSError(22, "failed", None, code)
    e.winerror = code
    return e


@pytest.mark.parametrize("bookmark", [-1, "12", 1.5])
def test_a_state_with_a_bookmark_that_is_no_record_id_is_set_aside(tmp_path, bookmark):
    path = tmp_path / "bits.winbits-state.json"
    data = Counters().to_json()
    data["event_log"] = bookmark
    path.write_text(json.dumps(data))
    counters, warning = _counters.load(str(path))
    assert warning is not None and "damaged" in warning and counters.event_log is None


def test_transfer_is_a_public_name():
    assert winbits.Transfer is Transfer and winbits.history is _history.history


# --- under Wine (no event log) and on a real Windows (the wheels workflow) --------------


@windows_only
@pytest.mark.skipif(not running_on_wine(), reason="Wine has no event log; Windows has one")
def test_under_wine_history_says_in_one_line_there_is_no_event_log():
    r = run_winbits("history", "--since", "7d")
    assert r.returncode == 6 and r.stdout == ""
    assert r.stderr == (
        "winbits: this Windows has no Bits-Client event log: the Windows Event Log API "
        "answers no query here (Wine has none)\n"
    )
    j = run_winbits("history", "--json")
    assert j.returncode == 6 and len(j.stdout.splitlines()) == 1
    report = json.loads(j.stdout)
    assert (report["command"], report["ok"], report["error"]["exit_code"]) == ("history", False, 6)
    with pytest.raises(winbits.NotSupportedError, match="no Bits-Client event log"):
        list(winbits.history())


def events_of(job_id: uuid.UUID, since: dt.datetime) -> list[Transfer]:
    return [t for t in winbits.history(since) if t.job_id == job_id]


@windows_only
@pytest.mark.skipif(running_on_wine(), reason="needs Windows' Bits-Client event log")
def test_on_windows_a_download_is_found_in_the_event_log_with_its_bytes(
    bits, server, serve, tmp_path
):
    """Downloads a file, then finds its event 60 with the exact byte count; then a job
    suspended and resumed mid-transfer, to report whether bytesTransferred is counted per
    transfer session or from the file's start (the docs say what this found)."""
    began = dt.datetime.now(UTC) - dt.timedelta(seconds=5)
    payload = make_payload(300_000, seed=60)
    result = bits.download(serve("event60.bin", payload), str(tmp_path / "event60.bin"))
    found = wait_until(
        lambda: events_of(result.job_id, began),
        "event 60 of the download",
        60,
    )
    assert found[-1].bytes_transferred == found[-1].bytes_total == len(payload)
    assert found[-1].hresult == 0 and found[-1].completed

    size = 2_000_000
    url = serve("event60-slow.bin", make_payload(size, seed=61))
    server.rate["/event60-slow.bin"] = 400_000  # about 5 s
    try:
        with bits.transfer(f"winbits-event60 {uuid.uuid4()}") as job:
            job.add_file(url, str(tmp_path / "event60-slow.bin"))
            job.resume()
            wait_until(lambda: job.progress.bytes_transferred > size // 4, "a quarter", 60)
            job.suspend()
            first = job.progress.bytes_transferred
            server.rate.clear()
            job.resume()
            wait_until(lambda: job.state == winbits.JobState.TRANSFERRED, "transferred", 60)
            job.complete()
            events = wait_until(
                lambda: e if len(e := events_of(job.id, began)) >= 2 else None,
                "two events 60 of the suspended job",
                60,
            )
    finally:
        server.rate.clear()
    last = events[-1].bytes_transferred
    semantics = "cumulative" if last == size else f"per session ({last} of {size})"
    print(f"event 60 after a suspend at {first} bytes: bytesTransferred is {semantics}")
    assert 0 < last <= size
