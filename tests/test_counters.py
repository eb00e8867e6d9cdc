"""The exporter's counters (winbits._counters): counted once, kept when a job leaves
the queue and across restarts, never decreased, bounded in servers. Pure Python."""

from __future__ import annotations

import json
import uuid

import pytest

import winbits
from winbits import _counters
from winbits._counters import Counters
from winbits._types import FileProgress, FileRecord, JobProgress, JobRecord, PeerStats

JOB = uuid.UUID(int=42)


def snap(
    *files: tuple[str, int, int | None, int | None, bool],
    job: uuid.UUID = JOB,
    job_type: winbits.JobType = winbits.JobType.DOWNLOAD,
):
    """A snapshot of one job whose files are (url, transferred, origin, peers, done)."""
    records = tuple(
        FileRecord(
            url,
            f"C:\\f{i}",
            FileProgress(None, done_bytes, done),
            None if origin is None or peers is None else PeerStats(origin, peers),
        )
        for i, (url, done_bytes, origin, peers, done) in enumerate(files)
    )
    job_record = JobRecord(
        job,
        "j",
        None,
        winbits.JobState.TRANSFERRING,
        JobProgress(None, 0, 0, 0),
        None,
        records,
        job_type,
    )
    return winbits.Snapshot((job_record,), frozenset(), frozenset(), frozenset())


EMPTY = winbits.Snapshot((), frozenset(), frozenset(), frozenset())


def test_bytes_are_counted_once_and_kept_after_the_job_leaves_the_queue():
    c = Counters()
    c.update(snap(("http://Cache.Example:8080/a", 100, 80, 20, False)), now=0)
    c.update(snap(("http://Cache.Example:8080/a", 300, 200, 100, True)), now=1)
    c.update(snap(("http://Cache.Example:8080/a", 300, 200, 100, True)), now=2)  # nothing moved
    c.update(EMPTY, now=3)  # completed: out of the queue
    assert c.totals == {"cache.example": [300, 200, 100, 1]}


def test_a_counter_that_goes_backwards_adds_nothing_and_subtracts_nothing():
    c = Counters()
    c.update(snap(("http://h/a", 300, 300, 0, False)), now=0)
    c.update(snap(("http://h/a", 50, 50, 0, False)), now=1)  # the job restarted its file
    assert c.totals["h"] == [300, 300, 0, 0]
    c.update(snap(("http://h/a", 120, 120, 0, False)), now=2)
    assert c.totals["h"] == [370, 370, 0, 0]  # what moved since the lower value


def test_a_bits_without_peer_stats_counts_transferred_bytes_only():
    c = Counters()
    c.update(snap(("http://h/a", 10, None, None, False)), now=0)
    c.update(snap(("http://h/a", 25, None, None, True)), now=1)
    assert c.totals["h"] == [25, 0, 0, 1]


def test_hosts_past_the_hundredth_go_to_other():
    c = Counters()
    hosts = [f"http://h{i}.example/f" for i in range(102)]
    c.update(snap(*[(u, 1, None, None, False) for u in hosts]), now=0)
    assert len(c.totals) == 101 and "h99.example" in c.totals and "h100.example" not in c.totals
    assert c.totals["(other)"] == [2, 0, 0, 0]
    c.update(snap(("http://late.example/x", 5, None, None, False), job=uuid.UUID(int=7)), now=1)
    assert c.totals["(other)"] == [7, 0, 0, 0] and len(c.totals) == 101


def test_a_server_gets_its_slot_once_bytes_move_and_a_host_named_other_its_own():
    c = Counters()
    squatters = [f"http://made-up-{i}.example/f" for i in range(150)]  # suspended, no byte
    c.update(snap(*[(u, 0, None, None, False) for u in squatters]), now=0)
    assert c.totals == {}  # no slot taken by a server nothing came from
    c.update(snap(("http://other/f", 10, None, None, False), job=uuid.UUID(int=8)), now=1)
    assert c.totals == {"other": [10, 0, 0, 0]}  # a real host: not the overflow label


def test_a_server_idle_for_a_month_gives_its_slot_back():
    c = Counters()
    c.update(snap(("http://old.example/f", 10, None, None, True)), now=0)
    c.update(EMPTY, now=_counters.IDLE_FOR - 1)
    assert "old.example" in c.totals
    c.update(EMPTY, now=_counters.IDLE_FOR + 1)
    assert c.totals == {} and c.active == {}


def test_whether_bits_reports_peer_stats_is_kept_while_the_queue_is_empty(tmp_path):
    from winbits._prometheus import registry_for

    c = Counters()
    c.update(snap(("http://h/a", 10, 6, 4, True)), now=0)
    c.update(EMPTY, now=1)
    path = str(tmp_path / "s.json")
    _counters.save(c, path)
    again, _ = _counters.load(path)
    assert again.peer_stats is True
    registry = registry_for(EMPTY, counters=again)
    assert registry.get_sample_value("winbits_peer_stats_reported") == 1.0
    assert registry_for(EMPTY).get_sample_value("winbits_peer_stats_reported") == 0.0


def test_server_of():
    assert _counters.server_of("https://Dl.Example.COM:443/a/b?c") == "dl.example.com"
    assert _counters.server_of("\\\\FileServer\\share\\x") == "fileserver"
    assert _counters.server_of("http://[::1]:80/x") == "::1"
    assert _counters.server_of("not a url") == "unknown"


def test_jobs_gone_for_a_day_are_forgotten_and_their_totals_kept():
    c = Counters()
    c.update(snap(("http://h/a", 10, None, None, True)), now=0)
    c.update(EMPTY, now=_counters.FORGET_AFTER - 1)
    assert str(JOB) in c.jobs
    c.update(EMPTY, now=_counters.FORGET_AFTER + 1)
    assert c.jobs == {} and c.totals["h"] == [10, 0, 0, 1]


def test_a_restarted_exporter_neither_loses_nor_double_counts(tmp_path):
    path = str(tmp_path / "bits.winbits-state.json")
    first = Counters()
    first.update(snap(("http://h/a", 100, 60, 40, False)), now=0)
    _counters.save(first, path)
    again, warning = _counters.load(path)
    assert warning is None
    again.update(snap(("http://h/a", 100, 60, 40, False)), now=5)  # the same values: no more
    assert again.totals == first.totals == {"h": [100, 60, 40, 0]}
    again.update(snap(("http://h/a", 150, 90, 60, True)), now=6)
    assert again.totals == {"h": [150, 90, 60, 1]}
    assert [p.name for p in tmp_path.iterdir()] == ["bits.winbits-state.json"]  # no temporary


@pytest.mark.parametrize(
    "content", [None, "", "{not json", "[]", '{"version": 1}', '{"version": "x"}']
)
def test_a_missing_or_damaged_state_starts_from_zero_with_a_warning(tmp_path, content):
    path = tmp_path / "s.json"
    if content is not None:
        path.write_text(content)
    c, warning = _counters.load(str(path))
    assert c.totals == {} and c.jobs == {}
    assert warning is not None and warning.endswith("counting from zero") and str(path) in warning


def test_a_state_from_a_newer_winbits_is_refused(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"version": _counters.STATE_VERSION + 1, "totals": {}, "jobs": {}}))
    with pytest.raises(_counters.StateError, match="newer winbits"):
        _counters.load(str(path))


def test_the_state_lives_beside_the_metrics_file_and_is_no_prom_file():
    assert _counters.state_path("C:\\x\\bits.prom") == "C:\\x\\bits.winbits-state.json"


def test_the_state_keeps_no_secret_of_a_url(tmp_path):
    path = tmp_path / "bits.winbits-state.json"
    c = Counters()
    c.update(snap(("https://bob:PASSWORD@cdn.example/blob.bin?sig=SECRET", 10, 6, 4, False)), 0)
    _counters.save(c, str(path))
    text = path.read_text(encoding="utf-8")
    assert "SECRET" not in text and "PASSWORD" not in text and "bob" not in text
    assert "blob.bin" not in text  # not even the path: a job id and the local name
    assert c.totals == {"cdn.example": [10, 6, 4, 0]}


def test_a_url_that_changes_while_the_file_transfers_counts_once():
    c = Counters()
    c.update(snap(("http://origin.example/f", 100, None, None, False)), now=0)
    c.update(snap(("http://mirror.example/f", 150, None, None, True)), now=1)  # remote_name set
    assert c.totals == {"origin.example": [100, 0, 0, 0], "mirror.example": [50, 0, 0, 1]}


def test_a_version_1_state_is_read_without_its_urls_and_counts_nothing_again(tmp_path):
    path = tmp_path / "s.json"
    url = "http://h/a?sig=SECRET"
    path.write_text(
        json.dumps(
            {
                "version": 1,
                "kinds": list(_counters.KINDS),
                "totals": {"h": [100, 60, 40, 0]},
                "jobs": {str(JOB): {"seen": 0, "files": {f"{url}\nC:\\f0": [100, 60, 40, 0]}}},
            }
        )
    )
    c, warning = _counters.load(str(path))
    assert warning is None and c.jobs[str(JOB)]["files"] == {"C:\\f0": [100, 60, 40, 0]}
    assert c.active == {}  # unknown until the next update, which counts it as now
    c.update(snap((url, 100, 60, 40, False)), now=1)
    assert c.totals == {"h": [100, 60, 40, 0]}


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ('{"version": 2, "totals": {"h": [-1, 0, 0, 0]}, "jobs": {}}', "whole number"),
        ('{"version": 2, "totals": {"h": [1.5, 0, 0, 0]}, "jobs": {}}', "whole number"),
        ('{"version": 2, "totals": {"h": [NaN, 0, 0, 0]}, "jobs": {}}', "NaN"),
        (
            '{"version": 2, "totals": {}, "jobs": {"j": {"seen": Infinity, "files": {}}}}',
            "Infinity",
        ),
        ('{"version": 2, "totals": {"h": "1"}, "jobs": {}}', "not a list"),
        ('{"version": 2, "totals": {}, "jobs": {"j": {"seen": "x", "files": {}}}}', "time"),
        ('{"version": true, "totals": {}, "jobs": {}}', "version"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ],
    ids=[
        "negative",
        "fraction",
        "nan",
        "infinite",
        "not-a-list",
        "bad-time",
        "bad-version",
        "deep",
    ],
)
def test_a_damaged_state_is_set_aside_and_counting_starts_afresh(tmp_path, content, why):
    path = tmp_path / "s.json"
    path.write_text(content)
    c, warning = _counters.load(str(path))
    assert c.totals == {} and c.jobs == {}
    assert warning is not None and why in warning and warning.endswith("counting from zero")
    assert f"kept as {path}.bad" in warning
    assert (tmp_path / "s.json.bad").read_text() == content and not path.exists()


def test_a_second_exporter_on_the_same_state_is_refused(tmp_path):
    path = str(tmp_path / "bits.winbits-state.json")
    refused = pytest.raises(_counters.StateError, match="another winbits export is writing")
    with _counters.StateLock(path), refused, _counters.StateLock(path):
        pass
    with _counters.StateLock(path):  # let go when the first one ended
        pass


def test_a_new_series_is_shown_at_0_once_before_its_first_value():
    c = Counters()
    c.update(snap(("http://h/a", 10, None, None, False)), now=0)
    fresh = {("download", "h", kind) for kind in _counters.KINDS}
    assert c.take_fresh() == fresh and c.take_fresh() == set()  # once
    assert c.totals["h"] == [10, 0, 0, 0]  # counted all the same
    c.update(snap(("http://h/a", 20, 15, 5, False)), now=1)  # peer statistics, first
    assert c.take_fresh() == {("download", "h", "origin_bytes"), ("download", "h", "peer_bytes")}
    c.update(snap(("http://h/a", 30, 20, 10, False)), now=2)
    assert c.take_fresh() == set()


def test_uploads_are_counted_apart_and_share_the_server_slots(tmp_path):
    c = Counters()
    c.update(snap(("http://h/up", 40, None, None, True), job_type=winbits.JobType.UPLOAD), 0)
    c.update(snap(("http://h/down", 7, None, None, False), job=uuid.UUID(int=7)), 0)
    assert c.uploads == {"h": [40, 0, 0, 1]} and c.totals == {"h": [7, 0, 0, 0]}
    path = tmp_path / "s.json"
    _counters.save(c, str(path))
    again, warning = _counters.load(str(path))
    assert warning is None
    assert (again.uploads, again.totals, again.fresh) == (c.uploads, c.totals, c.fresh)
    c.update(EMPTY, now=_counters.IDLE_FOR + 1)  # idle for a month: both go
    assert c.uploads == c.totals == {} and c.fresh == set()


def test_a_damaged_fresh_list_sets_the_state_aside(tmp_path):
    path = tmp_path / "s.json"
    path.write_text('{"version": 3, "totals": {}, "jobs": {}, "fresh": [["sideways", "h", "x"]]}')
    c, warning = _counters.load(str(path))
    assert c.fresh == set() and warning is not None and "damaged" in warning
    assert (tmp_path / "s.json.bad").exists()
