"""The command line against the test double: peer columns, verbs, errors, watch, export."""

from __future__ import annotations

import io
import json
import time
import uuid

import pytest
from conftest import by_server, finish, prom_values, when_queued, windows_only

import winbits
from winbits import _cli
from winbits._cli import commands

pytestmark = windows_only


def run(double, *argv):
    """(exit code, stdout) of `winbits ARGV --clsid <double>`."""
    out = io.StringIO()
    code = _cli.main([*argv, "--clsid", double.clsid()], out=out)
    return code, out.getvalue()


def test_list_json_has_exact_peer_numbers_and_shares(double):
    job = double.add_job("peers", state=6)
    double.add_file(
        job,
        "http://h/a",
        "C:\\a",
        total=2**40,
        transferred=2**40,
        completed=True,
        from_peer=True,
        from_origin=2**40 - 2**38,
        from_peers=2**38,
    )
    double.add_file(
        job,
        "http://h/b",
        "C:\\b",
        total=100,
        transferred=100,
        completed=True,
        from_origin=100,
        from_peers=0,
    )
    double.add_job("empty")
    unknown = double.add_job("sizing", state=1)
    double.add_file(unknown, "http://h/c", "C:\\c")  # BG_SIZE_UNKNOWN
    code, out = run(double, "list", "--json")
    assert code == 0
    jobs = {j["name"]: j for j in json.loads(out)["jobs"]}
    a, b = jobs["peers"]["files"]
    assert (a["from_origin"], a["from_peers"], a["peer_percent"]) == (2**40 - 2**38, 2**38, 25.0)
    assert (b["from_peers"], b["peer_percent"]) == (0, 0.0)
    assert jobs["peers"]["state"] == "TRANSFERRED"
    assert jobs["empty"]["files"] == [] and jobs["empty"]["progress"]["files_total"] == 0
    sizing = jobs["sizing"]["progress"]
    assert sizing["bytes_total"] is None and sizing["percent"] is None
    assert jobs["sizing"]["files"][0]["bytes_total"] is None


def test_list_table_shows_the_peer_share(double):
    job = double.add_job("peers", state=6)
    double.add_file(
        job,
        "http://h/a",
        "C:\\a",
        total=4096,
        transferred=4096,
        completed=True,
        from_origin=1024,
        from_peers=3072,
    )
    code, out = run(double)
    assert code == 0
    file_line = out.splitlines()[2].split()
    assert file_line[-5:] == ["1.0", "KiB", "3.0", "KiB", "75.0%"]


def test_a_job_vanishing_mid_listing_is_left_out(double):
    double.add_job("first")
    double.add_job("second")
    double.fail("Job.GetDisplayName", 0x80200001, times=1)
    code, out = run(double, "--json")
    assert code == 0
    assert [j["name"] for j in json.loads(out)["jobs"]] == ["second"]


def test_all_users_without_admin_is_one_line_and_exit_5(double, capsys):
    code, out = run(double, "list", "--all-users")
    assert (code, out) == (5, "")  # access denied
    assert capsys.readouterr().err == (
        "winbits: every user's jobs can be read by an administrator only: "
        "run from an elevated prompt\n"
    )


@pytest.mark.parametrize(("verb", "state"), [("cancel", 8), ("resume", 0), ("suspend", 3)])
def test_verbs_by_id_prefix(double, verb, state):
    job = double.add_job("target", state=3 if verb != "suspend" else 0)
    double.add_file(job, "http://h/a", "C:\\a")
    prefix = job.strip("{}").lower()[:8]
    code, out = run(double, verb, prefix)
    assert code == 0
    assert out.startswith(f"{commands.VERBS[verb]} {job.strip('{}').lower()} target")
    assert double.job_state(job)[0] == state


@pytest.mark.parametrize(
    ("argv", "state", "said"),
    [
        (["complete"], 2, "TRANSFERRING: only a TRANSFERRED job is completed; completing it"),
        (["complete", "--force"], 2, "TRANSFERRING: it cannot be completed"),  # the double's word
        (["cancel"], 7, "ACKNOWLEDGED: it cannot be cancelled"),
    ],
)
def test_a_verb_refused_in_the_jobs_state_names_the_state(double, capsys, argv, state, said):
    job = double.add_job("not now", state=state)
    double.add_file(job, "http://h/a", "C:\\a")
    double.clear_calls()
    code, out = run(double, *argv, job)
    assert (code, out) == (1, "")
    assert capsys.readouterr().err.startswith(f"winbits: job {job.strip('{}').lower()} is {said}")
    assert double.job_state(job)[0] == state  # left as it was
    assert ("Job.Complete" in double.calls()) == ("--force" in argv)


@pytest.mark.parametrize(
    ("text", "message"),
    [("zz", "not a job id"), ("abcd", "no job's id"), (str(uuid.UUID(int=7)), "no such job")],
)
def test_unknown_ids(double, capsys, text, message):
    double.add_job("x")
    assert run(double, "cancel", text)[0] == (2 if text == "zz" else 1)  # a usage error
    assert message in capsys.readouterr().err


def test_watch_json_writes_one_line_per_change(double):
    double.add_job("a", state=2)
    code, out = run(double, "watch", "--json", "--count", "3", "--interval", "0.01")
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(lines) == 1  # the first poll; nothing moved after it
    assert [j["name"] for j in lines[0]["jobs"]] == ["a"] and lines[0]["added"]


def test_export_writes_prometheus_text(double, tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    job = double.add_job("j", state=2)
    double.add_file(
        job, "http://h/a", "C:\\a", total=10, transferred=5, from_origin=4, from_peers=1
    )
    path = tmp_path / "bits.prom"

    def export() -> dict[tuple[str, str | None], float]:
        code, _ = run(double, "export", "--prometheus", str(path), "--per-job")
        assert code == 0
        return {
            (s.name, s.labels.get("file") or s.labels.get("server")): s.value
            for f in text_string_to_metric_families(path.read_text())
            for s in f.samples
        }

    first, values = export(), export()
    assert values[("winbits_file_peer_bytes", "C:\\a")] == 1
    for name, value in {"origin": 4, "peer": 1, "transferred": 5}.items():
        assert first[(f"winbits_{name}_bytes_total", "h")] == 0  # a new series: 0 first,
        assert values[(f"winbits_{name}_bytes_total", "h")] == value  # so increase() sees it


@pytest.mark.parametrize("where", ["nodir/x.prom", "."])
def test_a_one_shot_export_that_cannot_write_is_one_line(double, tmp_path, capsys, where):
    target = str(tmp_path / where)
    code, out = run(double, "export", "--prometheus", target)
    err = capsys.readouterr().err.splitlines()
    assert (code, out) == (1, "")
    assert len(err) == 1 and err[0].startswith(f"winbits: cannot write {target}: ")


def test_export_with_an_interval_says_once_that_it_cannot_write_and_goes_on(
    double, tmp_path, capsys
):
    target = str(tmp_path / "nodir" / "x.prom")
    code, _ = run(double, "export", "--prometheus", target, "--interval", "0.01", "--count", "3")
    err = capsys.readouterr().err.splitlines()
    assert code == 0
    assert len(err) == 1 and err[0].startswith(f"winbits: cannot write {target}: ")
    assert err[0].endswith("; retrying")


def test_watch_says_when_bits_went_away_and_when_it_came_back(double, capsys):
    double.add_job("a", state=2)
    double.fail("Manager.EnumJobs", 0x80010108, times=2)  # RPC_E_DISCONNECTED, two polls
    code, out = run(double, "watch", "--json", "--count", "4", "--interval", "0.01")
    err = capsys.readouterr().err.splitlines()
    assert code == 0
    assert [json.loads(line)["added"] != [] for line in out.splitlines()] == [True]
    assert len(err) == 2
    assert err[0].startswith("winbits: cannot read BITS: ") and err[0].endswith("; retrying")
    assert err[1].startswith("winbits: reading BITS again after 0:0")


def test_download_shows_a_transient_error_and_gives_up_when_nothing_moves(double, tmp_path, capsys):
    import winbits

    helper = when_queued(double, lambda job: double.set_state(f"{{{job.id}}}", 5))  # TRANSIENT
    dest = tmp_path / "t.bin"
    code, out = run(double, "download", "http://h/t.bin", str(dest), "--stall-timeout", "2")
    helper.join(10)
    err = capsys.readouterr().err.splitlines()
    print("transient ->", *err, sep="\n")
    assert (code, out) == (3, "")  # gave up: the timeout code
    assert any(line.endswith("  retrying") for line in err[:-1])  # the progress lines
    assert err[-1] == (
        "winbits: download of http://h/t.bin: no byte moved for 2 s (retrying); cancelled"
    )
    assert not dest.exists()
    with winbits.connect(double.clsid()) as bits:
        assert bits.jobs() == []  # cancelled: nothing left in the queue


def test_export_writes_bits_up_0_while_bits_is_away(double, tmp_path, capsys):
    double.add_job("a", state=2)
    target = tmp_path / "x.prom"
    double.fail("Manager.EnumJobs", 0x800706BA)  # RPC_S_SERVER_UNAVAILABLE, every poll
    code, _ = run(
        double, "export", "--prometheus", str(target), "--interval", "0.01", "--count", "3"
    )
    assert code == 0
    assert prom_values(target) == {
        "winbits_up": 0.0,
        "winbits_exporter_poll_errors_total": 3.0,
        "winbits_event_log_up": 0.0,
    }
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("winbits: no state file ") and err[0].endswith(": counting from zero")
    assert len(err) == 2  # then the outage, said once


def test_export_recovers_and_counts_the_polls_that_failed(double, tmp_path, capsys):
    double.add_job("a", state=2)
    target = tmp_path / "x.prom"
    double.fail("Manager.EnumJobs", 0x800706BA, times=2)
    before = time.time()
    code, _ = run(
        double, "export", "--prometheus", str(target), "--interval", "0.01", "--count", "4"
    )
    samples = prom_values(target)
    err = capsys.readouterr().err.splitlines()
    assert code == 0
    assert (samples["winbits_up"], samples["winbits_exporter_poll_errors_total"]) == (1.0, 2.0)
    assert before <= samples["winbits_exporter_last_success_timestamp_seconds"] <= time.time()
    assert "winbits_jobs" in samples  # the queue's metrics are back
    assert err[0].startswith("winbits: no state file ")
    assert len(err) == 3 and err[2].startswith("winbits: reading BITS and writing ")


def test_export_counts_each_byte_once_across_restarts_and_a_job_leaving(double, tmp_path, capsys):
    """One-shot exports (a scheduled task's way) are restarts: the state file carries
    what was counted. The double gives exact origin and peer bytes."""
    job = double.add_job("j", state=2)
    double.add_file(
        job,
        "http://Cache.Example/a",
        "C:\\a",
        total=1000,
        transferred=400,
        from_origin=300,
        from_peers=100,
    )
    target = tmp_path / "bits.prom"

    def export() -> dict[tuple[str, str], float]:
        assert run(double, "export", "--prometheus", str(target))[0] == 0
        return by_server(target)

    assert set(export().values()) == {0}  # new series: shown at 0 once
    first = export()
    assert first[("winbits_origin_bytes_total", "cache.example")] == 300
    assert export() == first  # restarted, nothing moved: nothing added
    double.set_file(job, 0, 1000, completed=True, from_origin=700, from_peers=300, total=1000)
    double.remove_job(job)  # completed and gone before the next export saw it...
    gone = export()
    assert gone == first  # ...so its last bytes were never seen: none are made up
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "bits.prom",
        "bits.winbits-state.json",
        "bits.winbits-state.json.lock",  # one exporter per file; no temporary left
    ]
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("winbits: no state file")  # the first run only


def test_export_counts_uploads_apart_by_the_direction_label(double, tmp_path):
    from conftest import prom_samples

    down = double.add_job("down", state=2)
    double.add_file(down, "http://h/a", "C:\\a", total=10, transferred=7)
    up = double.add_job("up", state=2, type=int(winbits.JobType.UPLOAD))
    double.add_file(up, "http://h/b", "C:\\b", total=10, transferred=3)
    target = tmp_path / "bits.prom"
    for _ in range(2):  # the first shows the new series at 0
        assert run(double, "export", "--prometheus", str(target))[0] == 0
    moved = {
        (s.labels["server"], s.labels["direction"]): s.value
        for s in prom_samples(target)
        if s.name == "winbits_transferred_bytes_total"
    }
    assert moved == {("h", "download"): 7, ("h", "upload"): 3}


def test_export_keeps_the_bytes_of_a_job_that_left_the_queue(double, tmp_path):
    job = double.add_job("j", state=2)
    double.add_file(
        job, "http://h/a", "C:\\a", total=10, transferred=4, from_origin=3, from_peers=1
    )
    target = tmp_path / "bits.prom"
    assert run(double, "export", "--prometheus", str(target))[0] == 0
    double.set_file(job, 0, 10, completed=True, from_origin=6, from_peers=4, total=10)
    assert run(double, "export", "--prometheus", str(target))[0] == 0
    double.remove_job(job)
    assert run(double, "export", "--prometheus", str(target))[0] == 0
    values = {name: v for (name, server), v in by_server(target).items() if server == "h"}
    assert values == {
        "winbits_transferred_bytes_total": 10,
        "winbits_origin_bytes_total": 6,
        "winbits_peer_bytes_total": 4,
        "winbits_files_transferred_total": 1,
    }


def test_export_ends_with_0_on_sigterm_after_its_write(double, tmp_path):
    import signal
    import threading

    double.add_job("a", state=2)
    target = tmp_path / "x.prom"
    timer = threading.Timer(1.0, signal.raise_signal, (signal.SIGTERM,))
    timer.start()
    started = time.monotonic()
    code, _ = run(double, "export", "--prometheus", str(target), "--interval", "0.05")
    timer.join()
    assert code == 0 and time.monotonic() - started < 30  # no --count: the signal ended it
    assert prom_values(target)["winbits_up"] == 1.0


def test_download_ends_its_job_on_sigterm_and_ctrl_break(double, tmp_path):
    import signal
    import threading

    numbers = [signal.SIGTERM, *([signal.SIGBREAK] if hasattr(signal, "SIGBREAK") else [])]
    for number in numbers:
        double.clear_calls()
        timer = threading.Timer(1.0, signal.raise_signal, (number,))
        timer.start()
        started = time.monotonic()
        code, _ = run(double, "download", "http://h/never.bin", str(tmp_path / "never.bin"))
        timer.join()
        assert code == 130 and time.monotonic() - started < 30  # the double never transfers
        calls = double.calls()
        assert calls["Job.Cancel"] == 1 and "Job.Complete" not in calls
        assert calls["Job.SetNoProgressTimeout"] == 1  # BITS' own limit: --stall-timeout's
        with winbits.connect(double.clsid()) as bits:
            assert bits.jobs() == []


def test_a_failure_line_shows_no_secret_of_the_url(double, tmp_path, capsys):
    helper = when_queued(double, lambda job: double.set_state(f"{{{job.id}}}", 4))  # ERROR
    url = "https://bob:PASSWORD@h.example/f.bin?sig=SECRET"
    code, out = run(double, "download", url, str(tmp_path / "f.bin"))
    helper.join(10)
    err = capsys.readouterr().err
    assert (code, out) == (1, "")
    assert "PASSWORD" not in err and "SECRET" not in err and "bob" not in err
    assert "winbits: download of https://h.example/f.bin?… failed: " in err


def test_a_one_shot_export_that_cannot_read_bits_writes_up_0_then_fails(double, tmp_path, capsys):
    target = tmp_path / "x.prom"
    target.write_text("winbits_up 1\n")  # what an earlier run left
    double.fail("Manager.EnumJobs", 0x800706BA)  # RPC_S_SERVER_UNAVAILABLE
    code, out = run(double, "export", "--prometheus", str(target))
    err = capsys.readouterr().err.splitlines()
    assert (code, out) == (1, "")
    assert prom_values(target) == {
        "winbits_up": 0.0,
        "winbits_exporter_poll_errors_total": 1.0,
        "winbits_event_log_up": 0.0,
    }
    assert err[-1].startswith("winbits: cannot read BITS: ")


def test_a_second_exporter_on_the_same_file_is_refused_in_one_line(double, tmp_path, capsys):
    from winbits import _counters

    target = str(tmp_path / "x.prom")
    with _counters.StateLock(_counters.state_path(target)):  # the first exporter
        code, _ = run(double, "export", "--prometheus", target)
    err = capsys.readouterr().err.splitlines()
    assert code == 1 and len(err) == 1
    assert err[0].startswith(f"winbits: another winbits export is writing {tmp_path}")
    assert not (tmp_path / "x.prom").exists()


def test_download_json_prints_one_object_with_the_job_and_peer_bytes(double, tmp_path):
    helper = when_queued(double, lambda job: finish(double, job))  # 3 from origin, 1 from peers
    dest = tmp_path / "j.bin"
    url = "https://bob:PASSWORD@h.example/j.bin?sig=SECRET"
    code, out = run(double, "download", url, str(dest), "--json")
    helper.join()
    assert code == 0
    done = json.loads(out)
    assert "PASSWORD" not in out and "SECRET" not in out
    assert (done["schema_version"], done["command"], done["ok"]) == (1, "download", True)
    assert uuid.UUID(done["job_id"])
    assert (done["bytes"], done["from_origin"], done["from_peers"]) == (4, 3, 1)
    assert done["files"] == [
        {
            "url": "https://h.example/j.bin?…",
            "path": str(dest),
            "bytes": 4,
            "from_origin": 3,
            "from_peers": 1,
        }
    ]


def test_a_failed_download_json_is_one_object_with_the_error_and_its_exit_code(
    double, tmp_path, capsys
):
    helper = when_queued(double, lambda job: double.set_state(f"{{{job.id}}}", 4))  # ERROR
    code, out = run(double, "download", "http://h/f.bin", str(tmp_path / "f.bin"), "--json")
    helper.join(10)
    assert code == 1
    failed = json.loads(out)
    assert (failed["ok"], failed["command"], failed["error"]["exit_code"]) == (False, "download", 1)
    assert failed["error"]["message"].startswith("download of http://h/f.bin failed")
    assert len(capsys.readouterr().err.splitlines()) >= 1  # the line on stderr stays


def test_a_verb_json_names_the_job_it_acted_on(double):
    job = double.add_job("to cancel")
    code, out = run(double, "cancel", job[1:9], "--json")
    assert code == 0
    assert json.loads(out) == {
        "schema_version": 1,
        "command": "cancel",
        "ok": True,
        "job_id": job.strip("{}").lower(),
        "name": "to cancel",
    }
    code, out = run(double, "cancel", job[1:9], "--json")  # gone now: no such job
    assert code == 1 and json.loads(out)["error"]["exit_code"] == 1


def test_vt_output_is_false_where_standard_output_is_no_console():
    import subprocess
    import sys

    code = "from winbits import _native; print(_native.vt_output())"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stdout) == (0, "False\n")  # a pipe: watch will not clear it


def test_prune_dry_run_lists_exactly_the_matching_jobs_and_cancels_none(double):
    keep = double.add_job("y-keep", state=3)
    matching = [double.add_job("x-one", state=3), double.add_job("X-two", state=4)]
    double.clear_calls()
    code, out = run(double, "prune", "--name", "x-*", "--dry-run")
    assert code == 0
    lines = out.splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["would", "cancel"],
        ["would", "cancel"],
    ]
    assert [line.split()[2] for line in lines] == [j.strip("{}").lower() for j in matching]
    assert "Job.Cancel" not in double.calls()
    code, out = run(double, "prune", "--name", "x-*", "--json")
    assert code == 0
    pruned = json.loads(out)
    assert [j["name"] for j in pruned["jobs"]] == ["x-one", "X-two"]
    assert all(j["cancelled"] for j in pruned["jobs"]) and pruned["dry_run"] is False
    with winbits.connect(double.clsid()) as bits:
        assert [str(j.id) for j in bits.jobs()] == [keep.strip("{}").lower()]


def test_list_takes_the_same_filters(double):
    double.add_job("a", state=3)  # SUSPENDED
    double.add_job("b", state=2)
    code, out = run(double, "list", "--state", "suspended", "--json")
    assert code == 0
    assert [j["name"] for j in json.loads(out)["jobs"]] == ["a"]
    code, out = run(double, "list", "--owner", "S-1-5-21-0", "--json")
    assert code == 0 and json.loads(out)["jobs"] == []
    code, out = run(double, "list", "--owner", "S-1-5-21-1000", "--json")  # the double's own
    assert code == 0 and len(json.loads(out)["jobs"]) == 2


def test_wait_never_cancels_a_timeout_leaves_the_job_and_exits_3(double, capsys):
    job = double.add_job("detached", state=2)  # TRANSFERRING; nothing moves
    double.add_file(job, "http://h/w.bin", "C:\\w.bin", total=10, transferred=1)
    code, out = run(double, "wait", job[1:9], "--timeout", "0.5", "-q")
    assert (code, out) == (3, "")
    err = capsys.readouterr().err
    assert err.endswith(f"the job is left in the queue ({job.strip('{}').lower()})\n")
    assert "Job.Cancel" not in double.calls()
    double.set_file(job, 0, 10, completed=True, total=10)
    double.set_state(job, 6)  # TRANSFERRED
    code, out = run(double, "wait", job[1:9], "--no-complete", "--json")
    assert code == 0 and json.loads(out)["completed"] is False
    assert "Job.Complete" not in double.calls()


def test_an_owner_given_by_account_name_is_looked_up_as_its_sid(double):
    import os

    from winbits import _native

    sid = _native.account_sid(os.environ["USERNAME"])
    assert sid.startswith("S-1-5-")
    with pytest.raises(OSError):
        _native.account_sid("no-such-account-" + uuid.uuid4().hex[:8])
    double.add_job("theirs")  # owned by S-1-5-21-1000
    code, out = run(double, "list", "--owner", os.environ["USERNAME"], "--json")
    assert code == 0 and json.loads(out)["jobs"] == []
