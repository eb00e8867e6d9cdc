"""The command line's pure parts: parsing, the JSON shape, progress, targets, Prometheus.
Run on Linux natively and under every Windows Python."""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import ntpath
import sys
import uuid
from typing import TextIO, cast

import pytest
from conftest import by_server, prom_samples, prom_values

import winbits
from winbits import _cli
from winbits._cli import commands, loops, options, progress, render, targets, usage
from winbits._types import (
    FileProgress,
    FileRecord,
    JobProgress,
    JobRecord,
    JobTimes,
    PeerStats,
    ProxySettings,
    ProxyUsage,
    visible,
)

UTC = dt.timezone.utc
JOB_ID = uuid.UUID("9019f17c-1111-2222-3333-444455556666")


def record(**over):
    base = {
        "id": JOB_ID,
        "name": 'upd "x" \\ y',
        "owner": "S-1-5-21-7",
        "state": winbits.JobState.TRANSFERRING,
        "progress": JobProgress(None, 3072, 3, 1),
        "times": JobTimes(
            dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
            dt.datetime(2026, 1, 2, 3, 4, 6, 500000, tzinfo=UTC),
            None,
        ),
        "files": (
            FileRecord("http://h/a", "C:\\a", FileProgress(2048, 2048, True), PeerStats(1536, 512)),
            FileRecord("http://h/b", "C:\\b", FileProgress(None, 1024, False), PeerStats(1024, 0)),
            FileRecord("http://h/c", "C:\\c", FileProgress(10, 0, False), None),
        ),
    }
    base.update(over)
    return JobRecord(**base)  # type: ignore[arg-type]


def snapshot(*jobs, added=(), changed=(), removed=()):
    return winbits.Snapshot(tuple(jobs), frozenset(added), frozenset(changed), frozenset(removed))


def test_job_json_is_the_documented_shape():
    j = render.job_json(record())
    assert j == {
        "id": str(JOB_ID),
        "name": 'upd "x" \\ y',
        "owner": "S-1-5-21-7",
        "state": "TRANSFERRING",
        "type": "DOWNLOAD",
        "progress": {
            "bytes_total": None,
            "bytes_transferred": 3072,
            "files_total": 3,
            "files_transferred": 1,
            "percent": None,
        },
        "times": {
            "created": "2026-01-02T03:04:05Z",
            "modified": "2026-01-02T03:04:06.500000Z",
            "transfer_completed": None,
        },
        "files": [
            {
                "remote_name": "http://h/a",
                "local_name": "C:\\a",
                "bytes_total": 2048,
                "bytes_transferred": 2048,
                "completed": True,
                "from_origin": 1536,
                "from_peers": 512,
                "peer_percent": 25.0,
            },
            {
                "remote_name": "http://h/b",
                "local_name": "C:\\b",
                "bytes_total": None,
                "bytes_transferred": 1024,
                "completed": False,
                "from_origin": 1024,
                "from_peers": 0,
                "peer_percent": 0.0,
            },
            {
                "remote_name": "http://h/c",
                "local_name": "C:\\c",
                "bytes_total": 10,
                "bytes_transferred": 0,
                "completed": False,
                "from_origin": None,
                "from_peers": None,
                "peer_percent": None,
            },
        ],
    }


def test_json_of_a_job_without_files_or_times():
    j = render.job_json(record(files=(), times=None, progress=JobProgress(0, 0, 0, 0)))
    assert (j["files"], j["times"], j["progress"]["percent"]) == ([], None, 100.0)


def test_watch_json_line_holds_the_changes():
    other = uuid.UUID(int=5)
    line = render.changes_json(
        snapshot(record(), added=[JOB_ID], removed=[other]), dt.datetime(2026, 1, 1, tzinfo=UTC)
    )
    assert line["time"] == "2026-01-01T00:00:00Z"
    assert (line["added"], line["changed"], line["removed"]) == ([str(JOB_ID)], [], [str(other)])
    assert [j["id"] for j in line["jobs"]] == [str(JOB_ID)]


def test_table_rows_show_peer_columns_and_unknown_totals():
    lines = render.format_table([render.job_json(record())]).splitlines()
    assert lines[1].split() == [
        "upd",
        '"x"',
        "\\",
        "y",
        "9019f17c",
        "TRANSFERRING",
        "S-1-5-21-7",
        "3.0",
        "KiB",
        "/",
        "?",
        "1/3",
    ]
    assert lines[2].split() == [
        "C:\\a",
        "2.0",
        "KiB",
        "/",
        "2.0",
        "KiB",
        "100.0%",
        "done",
        "1.5",
        "KiB",
        "512",
        "B",
        "25.0%",
    ]
    assert lines[3].split() == ["C:\\b", "1.0", "KiB", "/", "?", "1.0", "KiB", "0", "B", "0.0%"]
    assert lines[4].split() == ["C:\\c", "0", "B", "/", "10", "B", "0.0%"]


def test_format_bytes():
    assert [render.format_bytes(n) for n in (None, 0, 1023, 1024, 1536, 3_000_000, 2**64 - 1)] == [
        "?",
        "0 B",
        "1023 B",
        "1.0 KiB",
        "1.5 KiB",
        "2.9 MiB",
        "16384.0 PiB",
    ]


def test_progress_line_and_durations():
    assert progress.progress_line(1024, 4096, 512.0, width=8) == (
        "[##......]  25.0%  1.0 KiB / 4.0 KiB  512 B/s  ETA 0:06"
    )
    line = progress.progress_line
    assert line(0, None, None, width=4) == "[????]     ?%  0 B / ?  ?/s  ETA --:--"
    assert line(10, 10, None, width=2) == "[##] 100.0%  10 B / 10 B  ?/s  ETA 0:00"
    assert [render.format_duration(s) for s in (None, 0, 59.4, 61, 3725, float("inf"))] == [
        "--:--",
        "0:00",
        "0:59",
        "1:01",
        "1:02:05",
        "--:--",
    ]


def test_rate_is_over_a_recent_window():
    meter = progress.RateMeter(window=5.0)
    assert meter.add(0.0, 0) is None
    assert meter.add(0.2, 10_000) is None  # too early to say
    assert meter.add(1.0, 1000) == 1000.0
    for t in range(2, 20):
        rate = meter.add(float(t), 1000 * t + (50_000 if t > 10 else 0))
    assert rate == 1000.0  # the jump at t=11 has left the 5 s window


def test_download_targets():
    dirs = {"C:\\dl"}
    plan = lambda urls, dest: targets.plan_targets(urls, dest, dirs.__contains__, ntpath.normpath)
    assert plan(["http://h/a/x.iso?k=1"], "C:\\dl") == [("http://h/a/x.iso?k=1", "C:\\dl\\x.iso")]
    assert plan(["http://h/a/x%20y.bin"], "C:\\dl") == [("http://h/a/x%20y.bin", "C:\\dl\\x y.bin")]
    assert plan(["http://h/x"], "C:\\out.bin") == [("http://h/x", "C:\\out.bin")]
    assert plan(["http://h/1/a", "http://h/2/b"], "C:\\dl") == [
        ("http://h/1/a", "C:\\dl\\a"),
        ("http://h/2/b", "C:\\dl\\b"),
    ]
    with pytest.raises(usage.UsageError, match="existing directory"):
        plan(["http://h/a", "http://h/b"], "C:\\out.bin")
    with pytest.raises(usage.UsageError, match="same file"):
        plan(["http://h/1/a", "http://h/2/A"], "C:\\dl")
    with pytest.raises(usage.UsageError, match="file name"):
        plan(["http://h/"], "C:\\dl")
    with pytest.raises(usage.UsageError, match="not an existing folder"):
        plan(["http://h/a"], "C:\\newdir\\")


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://h/..%5C..%5Cevil.bin", "path separator"),
        ("http://h/C:%5CWindows%5Cevil.dll", "path separator"),
        ("http://h/a%2Fb", "path separator"),
        ("http://h/..", "names a folder"),
        ("http://h/%2E%2E", "names a folder"),
        ("http://h/evil.bin:stream", "stream separator"),
        ("http://h/C:evil.bin", "drive"),
        ("http://h/a%0Db", "control characters"),
        ("http://h/a%1B%5B2J", "control characters"),
        ("http://h/CON", "device name"),
        ("http://h/nul.txt", "device name"),
        ("http://h/com1.tar.gz", "device name"),
        ("http://h/LPT9", "device name"),
        ("http://h/trailing.", "dot or space"),
        ("http://h/trailing%20", "dot or space"),
        ("http://h/invoice%E2%80%AEfdp.exe", "format characters"),  # shows as invoiceexe.pdf
        ("http://h/a%E2%80%8Bb.bin", "format characters"),  # zero-width space
        ("http://h/a%E2%80%A8b.bin", "format characters"),  # line separator
        ("http://h/CONIN$", "device name"),
        ("http://h/conout$.txt", "device name"),
        ("http://h/COM%C2%B9", "device name"),  # COM¹
        ("http://h/lpt%C2%B3.log", "device name"),
        ("http://h/COM0", "device name"),
        ("\\\\srv\\share\\CON", "device name"),
    ],
)
def test_a_name_from_a_url_must_stay_inside_dest(url, why):
    with pytest.raises(usage.UsageError, match=why) as info:
        targets.plan_targets([url], "C:\\dl\\sub", lambda d: True, ntpath.normpath)
    assert "give a file as DEST" in str(info.value)


def test_a_unc_source_into_a_folder_takes_the_file_name():
    plan = targets.plan_targets(["\\\\srv\\share\\dir\\f%20x.bin"], "C:\\dl\\", lambda d: True, str)
    assert plan == [("\\\\srv\\share\\dir\\f%20x.bin", "C:\\dl\\f%20x.bin")]  # not decoded


def test_format_characters_are_escaped_wherever_text_is_shown():
    assert visible("invoice\u202efdp.exe") == "invoice\\u202efdp.exe"
    assert visible("a\u200bb\ufeff") == "a\\u200bb\\ufeff"
    assert visible("a\ud800b") == "a\\ud800b"  # a lone surrogate would not even encode
    proxy = ProxySettings(ProxyUsage.OVERRIDE, ("http://p\x1b[2J:8080",), ("h\u202e",))
    stream = io.StringIO()
    usage.Shown(stream).write(render.show_value(proxy) + "\n")  # as main() prints it
    assert stream.getvalue() == "OVERRIDE http://p\\x1b[2J:8080 (bypass: h\\u202e)\n"
    stream = io.StringIO()
    shown = cast(TextIO, usage.Shown(stream))
    progress.ProgressDisplay(shown).show("retrying: evil\x1b]0;title\x07 text", 0.0)
    assert stream.getvalue() == "retrying: evil\\x1b]0;title\\x07 text\n"
    usage.control(shown, "\x1b[H")  # winbits' own controls pass
    assert stream.getvalue().endswith("text\n\x1b[H")


def test_what_main_prints_passes_the_one_escaping_point(capsys):
    from winbits import _cli

    assert _cli.main(["list", "--bogus\u202e\x1b[2J"]) == 2  # argparse's own message
    err = capsys.readouterr().err
    assert "\u202e" not in err and "\x1b" not in err
    assert "--bogus\\u202e\\x1b[2J" in err


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_line_fits_a_narrow_terminal_and_leaves_nothing_behind():
    stream = Terminal()
    display = progress.ProgressDisplay(stream, width=20)
    display.show("[##########] 50.0%  1.0 MiB / 2.0 MiB", 0.0)
    display.show("short", 1.0)
    display.show("名前" * 20, 2.0, final=True)  # wide characters take two columns
    assert stream.getvalue().split("\r")[1:] == [
        "[##########] 50.0% ",  # cut to 19: the last column is left free
        "short" + " " * 14,  # padded: nothing of the longer line stays
        "名前" * 4 + "名" + " \n",  # 18 columns and a space: no half character
    ]


def test_the_progress_line_in_a_log_file_is_a_line_per_30_s_and_per_state_change():
    stream = io.StringIO()
    display = progress.ProgressDisplay(stream)
    for second in range(3600):
        display.show(f"t={second}", float(second), news=second == 45)
    display.show("done", 3600.0, final=True)
    lines = stream.getvalue().splitlines()
    assert lines[:4] == ["t=0", "t=30", "t=45", "t=75"]  # the state change at once
    assert len(lines) == 121 + 1 and lines[-1] == "done"


def test_quiet_shows_no_progress_line():
    stream = Terminal()
    progress.ProgressDisplay(stream, quiet=True).show("anything", 0.0, final=True)
    assert stream.getvalue() == ""
    assert options.parse(["download", "http://h/f", "f", "-q"]).quiet


def test_exit_codes_tell_a_usage_error_from_the_rest():
    from winbits import _cli

    assert _cli.main(["list", "--no-such-option"]) == usage.Exit.USAGE
    assert int(usage.Exit.USAGE) == 2
    assert _cli.main(["download", "http://h/a", "http://h/b", "not-a-dir"]) == 2
    assert [int(e) for e in usage.Exit] == [0, 1, 2, 3, 4, 5, 6, 130]  # documented values


def test_plain_names_are_kept_as_they_are():
    plan = lambda url: targets.plan_targets([url], "C:\\", lambda d: True, ntpath.normpath)
    assert plan("http://h/a/console.bin") == [("http://h/a/console.bin", "C:\\console.bin")]
    assert plan("http://h/COM10") == [("http://h/COM10", "C:\\COM10")]
    assert plan("http://h/.hidden") == [("http://h/.hidden", "C:\\.hidden")]


def test_control_characters_never_reach_the_terminal():
    evil = "x\x1b[2J\ry\nz\u2028w\x9b"
    assert visible(evil) == "x\\x1b[2J\\ry\\nz\\u2028w\\x9b"
    assert visible("naïve 名前 🙂") == "naïve 名前 🙂"
    job = record(name=evil, owner=evil)
    table = render.format_table([render.job_json(job)])
    assert not any(c in table for c in "\x1b\r\u2028\x9b")
    assert len(table.splitlines()) == 1 + 1 + len(job.files)  # no name split a row


def test_parsing_defaults_to_list():
    assert options.parse([]).command == "list"
    args = options.parse(["--json", "--all-users"])
    assert (args.command, args.json, args.all_users) == ("list", True, True)
    args = options.parse(["watch", "--interval", "0.5", "--json"])
    assert (args.command, args.interval, args.json) == ("watch", 0.5, True)
    args = options.parse(["download", "http://h/x", "C:\\x", "--timeout", "3", "--force"])
    assert (args.urls, args.dest, args.timeout, args.force) == (["http://h/x"], "C:\\x", 3.0, True)
    assert args.stall_timeout == options.DEFAULT_STALL_TIMEOUT
    args = options.parse(["download", "http://h/x", "http://h/y", "D:\\", "--stall-timeout", "0"])
    assert (args.urls, args.dest, args.stall_timeout) == (["http://h/x", "http://h/y"], "D:\\", 0)
    assert options.parse(["cancel", "9019f17c"]).id == "9019f17c"


@pytest.mark.parametrize(
    "argv",
    [
        ["watch", "--interval", "0"],
        ["watch", "--interval", "x"],
        ["download", "http://h/x"],
        ["cancel"],
        ["list", "--bogus"],
        ["export"],
        ["watch", "--count", "-1"],
        ["download", "--stall-timeout", "-3", "http://h/x", "C:\\x"],
    ],
)
def test_usage_errors_exit_2_with_one_line(argv, capsys):
    assert _cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("winbits")
    assert "winbits: winbits" not in err[0]  # one prefix, argparse's prog or ours


def test_a_failure_line_shows_control_characters_in_bits_text(monkeypatch, capsys):
    def fails(args, out):
        raise usage.Failure("download failed: nope (http://h/\x1b[2Jx)")

    monkeypatch.setattr(commands, "cmd_list", fails)
    assert _cli.main(["list"]) == 1
    assert capsys.readouterr().err == "winbits: download failed: nope (http://h/\\x1b[2Jx)\n"


def test_help_works_for_every_command(capsys):
    for command in options.COMMANDS:
        with pytest.raises(SystemExit) as info:
            options.parse([command, "--help"])
        assert info.value.code == 0
        assert "usage: winbits " + command in capsys.readouterr().out


@pytest.mark.skipif(sys.platform == "win32", reason="the off-Windows error")
def test_off_windows_the_command_says_so_once(capsys):
    assert _cli.main(["list"]) == usage.Exit.UNAVAILABLE
    assert capsys.readouterr().err == (
        f"winbits: needs Windows (BITS is a Windows service); this is {sys.platform}\n"
    )


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            ["bogus"],
            "winbits: unknown command 'bogus'; the commands are: "
            "list, watch, download, upload, show, set, cancel, complete, resume, suspend, wait, "
            "prune, doctor, history, export",
        ),
        (
            ["download", "--all-users", "http://h/x", "C:\\x"],
            "winbits download: --all-users does not apply to download",
        ),
        (["list", "--force"], "winbits list: --force does not apply to list"),
        (["list", "--bogus"], "winbits list: unrecognized arguments: --bogus"),
    ],
)
def test_the_command_line_says_what_is_wrong(argv, line, capsys):
    assert _cli.main(argv) == 2
    assert capsys.readouterr().err == line + "\n"


def test_version(capsys):
    assert _cli.main(["--version"]) == 0
    assert capsys.readouterr().out == f"winbits {winbits.__version__}\n"


def test_every_option_has_help_and_download_reads_url_then_dest(capsys):
    parser = options.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in sub.choices.items():
        for action in command._actions:
            assert action.help, f"{name} {action.option_strings or action.dest}"
    assert _cli.main(["download", "--help"]) == 0
    usage = " ".join(capsys.readouterr().out.split("\n\n")[0].split())
    assert usage.endswith("URL [URL ...] DEST")


def test_prometheus_text_parses_and_carries_the_numbers():
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from winbits._prometheus import registry_for

    done = record(
        id=uuid.UUID(int=1),
        name="done\r\u2028",
        state=winbits.JobState.TRANSFERRED,
        files=(),
        progress=JobProgress(10, 10, 0, 0),
    )
    text = generate_latest(registry_for(snapshot(record(), done), per_job=True)).decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    key = (("job_id", str(JOB_ID)), ("job_name", 'upd "x" \\ y'))
    assert "\r" not in text and "\u2028" not in text  # line-based readers see one line
    assert 'job_name="done\\\\r\\\\u2028"' in text
    assert samples[("winbits_job_state", tuple(sorted((*key, ("state", "TRANSFERRING")))))] == 1
    assert ("winbits_job_size_bytes", key) not in samples  # unknown: absent, not a made-up 0
    assert samples[("winbits_job_transferred_bytes", key)] == 3072
    assert samples[("winbits_file_peer_bytes", tuple(sorted((*key, ("file", "C:\\a")))))] == 512
    assert samples[("winbits_jobs", (("state", "TRANSFERRED"),))] == 1
    assert samples[("winbits_jobs", (("state", "ERROR"),))] == 0
    assert samples[("winbits_peer_stats_reported", ())] == 1
    # Without per_job: no series per job or file (they grow without bound on a fleet)
    text = generate_latest(registry_for(snapshot(record(), done))).decode()
    assert "job_id" not in text and "winbits_jobs{" in text


def test_prometheus_file_is_written_whole(tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    from winbits._prometheus import write_textfile

    path = tmp_path / "bits.prom"
    write_textfile(snapshot(), str(path))
    families = {f.name for f in text_string_to_metric_families(path.read_text())}
    assert {"winbits_jobs", "winbits_peer_stats_reported"} <= families
    assert [p.name for p in tmp_path.iterdir()] == ["bits.prom"]  # no temporary left


JobState = winbits.JobState


class _FakeJob:
    def __init__(self, id: str, name: str, state: JobState) -> None:
        self.id, self.name, self.state = uuid.UUID(id), name, state


class _FakeManager:
    def __init__(self, *jobs: _FakeJob) -> None:
        self._jobs = list(jobs)

    def jobs(self, all_users: bool = False) -> list[_FakeJob]:
        return self._jobs

    def get_job(self, job_id: uuid.UUID) -> _FakeJob:
        return next(j for j in self._jobs if j.id == job_id)


_TWINS = _FakeManager(
    _FakeJob("9019f17c-0000-0000-0000-000000000001", "one", JobState.TRANSFERRING),
    _FakeJob("9019f17c-0000-0000-0000-000000000002", "two", JobState.ERROR),
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("971", "'971' is too short: give a job id or its first 4 hex digits or more"),
        ("zzzz", "not a job id: 'zzzz'"),
        ("abcd", "no job's id starts with abcd"),
        (
            "9019",
            "2 jobs' ids start with 9019: "
            "9019f17c-0000-0000-0000-000000000001 'one' TRANSFERRING; "
            "9019f17c-0000-0000-0000-000000000002 'two' ERROR",
        ),
    ],
)
def test_a_job_id_or_prefix_that_names_no_one_job(text, message):
    with pytest.raises(usage.Failure) as info:
        commands.find_job(_TWINS, text)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_a_unique_prefix_or_a_whole_id_finds_the_job():
    other = _FakeJob("90aa0000-0000-0000-0000-000000000003", "three", JobState.QUEUED)
    bits = _FakeManager(*_TWINS._jobs, other)
    assert commands.find_job(bits, "90AA").name == "three"  # type: ignore[arg-type]
    assert commands.find_job(bits, "{9019f17c-0000-0000-0000-000000000002}").name == "two"  # type: ignore[arg-type]


def test_wide_characters_keep_the_columns_aligned_and_long_names_are_cut():
    jobs = [
        render.job_json(record(name="漢字のジョブ🎉", files=())),
        render.job_json(record(name="plain", files=())),
        render.job_json(record(name="x" * 200, files=())),
    ]
    lines = render.format_table(jobs, width=120).splitlines()
    # ID column: where "9019f17c" starts, counted in terminal columns, is the same in each row
    starts = {render.display_width(line[: line.index("9019f17c")]) for line in lines[1:]}
    assert len(starts) == 1
    assert all(render.display_width(line) <= 120 for line in lines)
    assert lines[3].startswith("x" * 10) and "\u2026" in lines[3]
    assert "x" * 200 in render.format_table(jobs)  # no width (a pipe): nothing cut


def test_display_width_and_cut():
    assert render.display_width("ab") == 2
    assert render.display_width("漢字") == 4
    assert render.display_width("e\u0301") == 1  # a combining accent takes no column
    assert render.cut("漢字漢字", 5) == "漢字\u2026"
    assert render.cut("short", 5) == "short"


def test_an_empty_job_and_a_failed_empty_file_show_no_100_percent():
    empty = render.job_json(record(progress=JobProgress(0, 0, 0, 0), files=()))
    failed_file = FileRecord("http://h/x", "C:\\x", FileProgress(0, 0, False), None)
    failed = render.job_json(
        record(state=winbits.JobState.ERROR, progress=JobProgress(0, 0, 1, 0), files=(failed_file,))
    )
    done_file = FileRecord("http://h/e", "C:\\e", FileProgress(0, 0, True), None)
    done = render.job_json(record(progress=JobProgress(0, 0, 1, 1), files=(done_file,)))
    rows = render.table_rows([empty, failed, done])
    assert rows[0][4:7] == ("", "", "0/0")  # the empty job: no bytes, no share
    assert rows[2][4:7] == ("0 B / 0 B", "", "")  # the failed file: no 100%
    assert rows[3][5] == "100.0%" and rows[4][5] == "100.0%"  # an empty file that finished


def test_states_and_other_enums_print_their_names():
    state = winbits.JobState.TRANSFERRED
    assert (str(state), f"{state}", f"{state:>12}") == (
        "TRANSFERRED",
        "TRANSFERRED",
        " TRANSFERRED",
    )
    assert str(winbits.JobPriority.FOREGROUND) == "FOREGROUND"
    assert str(winbits.JobType.UPLOAD) == "UPLOAD"
    assert str(winbits.ErrorContext.REMOTE_FILE) == "REMOTE_FILE"
    assert state == 6 and int(state) == 6 and repr(state) == "<JobState.TRANSFERRED: 6>"


def test_the_exporter_says_whether_bits_answered(tmp_path):
    pytest.importorskip("prometheus_client")
    from winbits._prometheus import Health, write_textfile

    def samples(snap, health):
        target = tmp_path / "x.prom"
        write_textfile(snap, str(target), health)
        return prom_values(target)

    down = samples(None, Health(up=False, poll_errors=3))
    assert down == {
        "winbits_up": 0.0,
        "winbits_exporter_poll_errors_total": 3.0,
        "winbits_event_log_up": 0.0,
    }
    up = samples(snapshot(record()), Health(up=True, last_success=1_700_000_000.5, poll_errors=3))
    assert up["winbits_up"] == 1.0 and up["winbits_exporter_poll_errors_total"] == 3.0
    assert up["winbits_exporter_last_success_timestamp_seconds"] == 1_700_000_000.5
    assert "winbits_jobs" in up and "winbits_jobs" not in down  # the queue's metrics are back


def test_sigterm_asks_a_loop_to_stop_and_the_old_handler_comes_back():
    import signal as signals

    before = signals.getsignal(signals.SIGTERM)
    with loops.Stopper() as stop:
        assert not stop.asked
        signals.raise_signal(signals.SIGTERM)
        stop.sleep(5)  # wakes at once: it was asked
        assert stop.asked
    assert signals.getsignal(signals.SIGTERM) is before


def test_origin_and_peer_counters_are_absent_where_bits_gives_no_peer_stats(tmp_path):
    pytest.importorskip("prometheus_client")
    from winbits import _counters
    from winbits._prometheus import write_textfile

    no_stats = FileRecord("http://wine.example/a", "C:\\a", FileProgress(10, 10, True), None)
    stats = FileRecord("http://win.example/b", "C:\\b", FileProgress(8, 8, True), PeerStats(8, 0))
    counters = _counters.Counters()
    snap = snapshot(record(files=(no_stats, stats)))
    counters.update(snap, now=0)
    path = tmp_path / "bits.prom"
    write_textfile(
        snap, str(path), None, counters, zero={("download", "win.example", "transferred_bytes")}
    )
    assert {s.labels["direction"] for s in prom_samples(path) if "server" in s.labels} == {
        "download"
    }
    assert by_server(path) == {
        ("winbits_transferred_bytes_total", "wine.example"): 10,
        ("winbits_transferred_bytes_total", "win.example"): 0,  # zero: shown at 0 first
        ("winbits_files_transferred_total", "wine.example"): 1,
        ("winbits_files_transferred_total", "win.example"): 1,
        ("winbits_origin_bytes_total", "win.example"): 8,
        ("winbits_peer_bytes_total", "win.example"): 0,
    }


def test_durations_and_states_parse_and_refuse_in_one_line():
    from winbits._cli import filters

    assert [filters.duration(t) for t in ("90", "90s", "30m", "12h", "3d", "2w", "1.5h")] == [
        90, 90, 1800, 43200, 259200, 1209600, 5400
    ]  # fmt: skip
    assert filters.states("suspended, ERROR") == {JobState.SUSPENDED, JobState.ERROR}
    for bad in ("3y", "-1d", "d", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="not a duration"):
            filters.duration(bad)
    with pytest.raises(argparse.ArgumentTypeError, match="not a job state: 'RUNNING'"):
        filters.states("RUNNING")


def test_filters_choose_the_jobs_that_match_every_one_given():
    from winbits._cli.filters import Filters

    now = dt.datetime(2026, 1, 10, tzinfo=UTC)  # record()'s jobs were made on 2026-01-02
    old = record(name="x-old", state=JobState.SUSPENDED)
    mine = record(id=uuid.UUID(int=2), name="X-Mine", owner="S-1-5-21-8")
    other = record(id=uuid.UUID(int=3), name="y-other", state=JobState.SUSPENDED)
    jobs = [old, mine, other]
    assert Filters(name="x-*").select(jobs, now) == [old, mine]  # any case
    assert Filters(name="x-*", states=frozenset({JobState.SUSPENDED})).select(jobs, now) == [old]
    assert Filters(owner="s-1-5-21-8").select(jobs, now) == [mine]
    assert Filters(older_than=7 * 86400).select(jobs, now) == jobs  # 8 days old
    assert Filters(older_than=9 * 86400).select(jobs, now) == []
    assert not Filters().given and Filters(name="*").given


def test_filters_say_when_bits_does_not_give_what_they_read():
    from winbits._cli.filters import Filters

    now = dt.datetime(2026, 1, 10, tzinfo=UTC)
    with pytest.raises(usage.Failure, match=r"no job times .* cannot tell a job.s age"):
        Filters(older_than=60).select([record(times=None)], now)
    with pytest.raises(usage.Failure, match="does not tell a job's owner"):
        Filters(owner="S-1-5-21-7").select([record(owner=None)], now)


def test_prune_without_a_filter_is_refused(capsys):
    from winbits import _cli

    code = _cli.main(["prune", "--dry-run"])
    assert type(code) is int and code == 2  # a plain int: 3.10 prints an IntEnum by name
    assert capsys.readouterr().err.startswith("winbits: prune needs a filter")


@pytest.mark.skipif(sys.platform == "win32", reason="fails here for want of Windows")
@pytest.mark.parametrize(
    "argv",
    [["download", "http://h/f", "C:\\d\\f"], ["upload", "C:\\f", "http://h/f"],
     ["set", "abcd1234", "--description", "d"], ["wait", "abcd1234"], ["prune", "--name", "x"],
     ["doctor"], ["history"], ["cancel", "abcd1234"], ["complete", "abcd1234"],
     ["resume", "abcd1234"], ["suspend", "abcd1234"]],
    ids=lambda argv: argv[0],
)  # fmt: skip
def test_every_one_object_command_fails_with_one_json_object(argv, capsys):
    out = io.StringIO()
    code = _cli.main([*argv, "--json"], out)
    (line,) = out.getvalue().splitlines()
    report = json.loads(line)
    assert (report["command"], report["ok"], report["error"]["exit_code"]) == (argv[0], False, code)
    assert code in (1, 6) and len(capsys.readouterr().err.splitlines()) == 1


def test_list_json_failing_prints_no_object(capsys):
    out = io.StringIO()
    assert _cli.main(["list", "--json", "--older-than", "soon"], out) == 2
    assert out.getvalue() == ""
