"""The command line end to end against the real BITS, through a subprocess as a user runs
it: downloads land byte for byte, interrupted ones leave no job and no file."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import time
import uuid

import pytest
from conftest import (
    by_server,
    leftovers,
    prom_values,
    run_winbits,
    running_on_wine,
    skip_if_not_logged_on,
    wait_until,
    windows_only,
)
from rangeserver import make_payload

import winbits
from winbits import _cli
from winbits._cli import progress

pytestmark = windows_only


def winbits_cli(*argv, timeout=180):
    r = run_winbits(*argv, timeout=timeout)
    skip_if_not_logged_on(r.stderr)
    return r


def test_download_lands_byte_for_byte_and_reports_peers(serve, tmp_path):
    payload = make_payload(2_000_000, seed=4)
    url = serve("cli.bin", payload)
    dest = tmp_path / "cli.bin"
    name = f"winbits-cli {uuid.uuid4()}"
    r = winbits_cli("download", url, str(dest), "--name", name, "--timeout", "120")
    assert r.returncode == 0, r.stderr
    assert dest.read_bytes() == payload
    assert "ETA" in r.stderr and "100.0%" in r.stderr  # the progress bar
    assert "Downloaded 1 file(s), 1.9 MiB" in r.stdout
    assert "Bytes from origin" in r.stdout
    assert leftovers(name) == []


def test_an_existing_file_is_not_overwritten(serve, tmp_path):
    dest = tmp_path / "keep.bin"
    dest.write_bytes(b"mine")
    name = f"winbits-cli {uuid.uuid4()}"
    r = winbits_cli("download", serve("k.bin", b"theirs"), str(dest), "--name", name)
    assert r.returncode == 1
    assert r.stderr.strip().endswith("exists; pass --force to overwrite it")
    assert dest.read_bytes() == b"mine"
    assert leftovers(name) == []


def test_timeout_against_a_stalling_server_cancels(server, serve, tmp_path):
    dest = tmp_path / "stall.bin"
    name = f"winbits-cli {uuid.uuid4()}"
    server.stall.set()
    try:
        r = winbits_cli(
            "download",
            serve("stall.bin", make_payload(1_000_000)),
            str(dest),
            "--name",
            name,
            "--timeout",
            "3",
        )
    finally:
        server.stall.clear()
    print("timeout ->", r.stderr.strip().splitlines()[-1])
    assert r.returncode == 3  # a timeout: not a failed transfer's 1
    assert "did not finish in 3 s (the job is " in r.stderr and "); cancelled" in r.stderr
    assert "Traceback" not in r.stderr
    assert not dest.exists()
    assert leftovers(name) == []


def test_ctrl_c_cancels_the_job(serve, tmp_path, monkeypatch):
    dest = tmp_path / "int.bin"
    name = f"winbits-cli {uuid.uuid4()}"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(progress.ProgressDisplay, "show", interrupted)  # Ctrl-C mid-transfer
    code = _cli.main(
        ["download", serve("int.bin", make_payload(3_000_000)), str(dest), "--name", name],
        out=io.StringIO(),
    )
    assert code == 130
    assert not dest.exists()
    assert leftovers(name) == []


def test_list_json_agrees_with_the_library(bits):
    job = bits.create_job(f"winbits-cli {uuid.uuid4()}")
    r = winbits_cli("list", "--json")
    assert r.returncode == 0, r.stderr
    listed = {j["id"]: j for j in json.loads(r.stdout)["jobs"]}
    mine = listed[str(job.id)]
    assert (mine["name"], mine["state"], mine["files"]) == (job.name, "SUSPENDED", [])
    ours = {str(j.id): (j.name, j.state.name) for j in bits.jobs()}
    assert {k: (v["name"], v["state"]) for k, v in listed.items()} == ours


def test_export_writes_a_file_prometheus_parses(bits, tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    bits.create_job("winbits-cli export")
    path = tmp_path / "bits.prom"
    r = winbits_cli("export", "--prometheus", str(path), "--per-job")
    assert r.returncode == 0, r.stderr
    # Wine has no event log: the file says so, stderr says why once, and the export goes on
    assert prom_values(path)["winbits_event_log_up"] == (0.0 if running_on_wine() else 1.0)
    if running_on_wine():
        assert r.stderr.splitlines()[0] == (
            "winbits: the Bits-Client event log is not read, the polls count alone: this "
            "Windows has no Bits-Client event log: the Windows Event Log API answers no query "
            "here (Wine has none)"
        )
    samples = [s for f in text_string_to_metric_families(path.read_text()) for s in f.samples]
    assert any(
        s.name == "winbits_job_state"
        and s.labels["job_name"] == "winbits-cli export"
        and s.labels["state"] == "SUSPENDED"
        for s in samples
    )


@pytest.mark.parametrize("command", ["cancel", "complete"])
def test_a_verb_on_a_missing_job_is_one_line(command):
    r = winbits_cli(command, str(uuid.uuid4()))
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 1 and "no such job" in r.stderr


def test_complete_refuses_a_job_that_is_still_transferring(server, serve, tmp_path):
    url = serve("slow-complete.bin", make_payload(600_000, seed=8))
    server.rate["/slow-complete.bin"] = 40_000  # about 15 s: running while we ask
    name = f"winbits-cli {uuid.uuid4()}"
    with winbits.connect() as bits, bits.transfer(name) as job:
        job.add_file(url, str(tmp_path / "slow-complete.bin"))
        job.resume()
        try:
            wait_until(lambda: job.state == winbits.JobState.TRANSFERRING, "the transfer runs")
            r = winbits_cli("complete", str(job.id))
            assert r.returncode == 1
            assert f"job {job.id} is TRANSFERRING: only a TRANSFERRED job is completed" in r.stderr
            assert "--force" in r.stderr
            assert job.state == winbits.JobState.TRANSFERRING  # still running, not ACKNOWLEDGED
        finally:
            server.rate.clear()  # the rest at once, and cancelled once it is there: Wine's
            with contextlib.suppress(AssertionError):  # service is shaky after a Cancel
                done = (winbits.JobState.TRANSFERRED, winbits.JobState.ERROR)
                wait_until(lambda: job.state in done, "transferred", 30)
            job.cancel()  # mid-transfer (docs/testbed.md)
    assert leftovers(name) == []


def test_a_bits_error_is_shown_with_its_hresult_and_cancels(server, tmp_path):
    dest = tmp_path / "missing.bin"
    name = f"winbits-cli {uuid.uuid4()}"
    r = winbits_cli(
        "download",
        f"{server.base_url}/no-such-file.bin",
        str(dest),
        "--name",
        name,
        "--timeout",
        "120",
    )
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(f"winbits: download of {server.base_url}/no-such-file.bin failed: ")
    assert last.endswith("(HRESULT 0x80190194)")  # BG_E_HTTP_ERROR_404
    assert not dest.exists()
    assert leftovers(name) == []


@pytest.mark.parametrize("name", ["..%5C..%5Cevil.bin", "C:%5CWindows%5Cevil.dll", "CON.txt"])
def test_a_name_from_a_url_that_would_leave_dest_is_refused(server, tmp_path, name):
    dest = tmp_path / "dl" / "sub"
    dest.mkdir(parents=True)
    job_name = f"winbits-cli {uuid.uuid4()}"
    r = winbits_cli("download", f"{server.base_url}/{name}", str(dest), "--name", job_name)
    assert r.returncode == 2
    assert r.stdout == ""
    (line,) = r.stderr.splitlines()
    url = f"{server.base_url}/{name}"
    assert line.startswith(f"winbits: cannot take a file name from {url}: ")
    assert line.endswith("; give a file as DEST")
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    assert leftovers(job_name) == []


@pytest.mark.parametrize("where", ["nodir/sub/x.bin", "newdir/"])
def test_a_destination_folder_that_does_not_exist_is_refused_before_any_job(serve, tmp_path, where):
    dest = str(tmp_path / where.rstrip("/")) + ("\\" if where.endswith("/") else "")
    job_name = f"winbits-cli {uuid.uuid4()}"
    r = winbits_cli("download", serve("n.bin", b"data"), dest, "--name", job_name)
    assert r.returncode == (2 if where.endswith("/") else 1)
    assert r.stdout == ""
    assert len(r.stderr.splitlines()) == 1 and r.stderr.startswith("winbits: ")
    assert list(tmp_path.iterdir()) == []  # no file, no folder made
    assert leftovers(job_name) == []


def _dead_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again: nothing listens there


# 503, not 500: Wine's BITS maps only some statuses to errors and takes a 500 for success
# (docs/testbed.md); the text for any status is tested in test_pure.py.
@pytest.mark.parametrize("kind", ["401", "404", "503", "closed", "dead port"])
def test_every_failure_says_which_url_and_why(server, tmp_path, kind):
    if kind == "dead port":
        url = f"http://127.0.0.1:{_dead_port()}/f.bin"
    else:
        url = f"{server.base_url}/{kind.replace(' ', '-')}.bin"
        if kind != "404":
            server.answers[f"/{kind}.bin"] = 0 if kind == "closed" else int(kind)
    dest = tmp_path / "f.bin"
    name = f"winbits-cli {uuid.uuid4()}"
    r = winbits_cli("download", url, str(dest), "--name", name, "--stall-timeout", "8")
    last = r.stderr.strip().splitlines()[-1]
    print(kind, "->", last)
    assert r.returncode == 1 and r.stdout == ""
    expected = {
        "401": "HTTP status 401 (Unauthorized) (HRESULT 0x80190191)",
        "404": "HTTP status 404 (Not Found) (HRESULT 0x80190194)",
        "503": "HTTP status 503 (Service Unavailable) (HRESULT 0x801901F7)",
    }
    if kind in expected:
        assert last == f"winbits: download of {url} failed: {expected[kind]}"
    else:  # Wine's BITS gives no error here: the line says the state instead
        assert last.startswith(f"winbits: download of {url}")
        assert "BITS gave no reason (the job is ERROR)" in last or "no byte moved for 8 s" in last
    assert "HRESULT 0x" not in last.split("(HRESULT")[0]  # the code once, not in the text too
    assert not dest.exists()
    assert leftovers(name) == []


def test_a_server_that_stops_sending_is_given_up_on_after_the_stall_timeout(
    server, serve, tmp_path
):
    dest = tmp_path / "stall2.bin"
    name = f"winbits-cli {uuid.uuid4()}"
    url = serve("stall2.bin", make_payload(1_000_000))
    server.stall.set()
    try:
        r = winbits_cli("download", url, str(dest), "--name", name, "--stall-timeout", "3")
    finally:
        server.stall.clear()
    lines = r.stderr.strip().splitlines()
    print("stall ->", lines[-1])
    assert r.returncode == 3 and r.stdout == ""
    assert lines[-1].startswith(f"winbits: download of {url}: no byte moved for 3 s (")
    assert lines[-1].endswith("); cancelled")
    assert all(line.startswith("[") for line in lines[:-1])  # the progress lines, then one
    assert not dest.exists()
    assert leftovers(name) == []


@pytest.mark.parametrize(
    ("argv", "code", "out", "err"),
    [
        (["--version"], 0, f"winbits {winbits.__version__}\n", ""),
        (
            ["bogus"],
            2,
            "",
            "winbits: unknown command 'bogus'; the commands are: "
            "list, watch, download, upload, show, set, cancel, complete, resume, suspend, wait, "
            "prune, doctor, history, export\n",
        ),
        (
            ["cancel", "971"],
            2,
            "",
            "winbits: '971' is too short: give a job id or its first 4 hex digits or more\n",
        ),
        (
            ["download", "--all-users", "http://h/x", "C:\\x"],
            2,
            "",
            "winbits download: --all-users does not apply to download\n",
        ),
        *[
            (
                ["download", url, "C:\\windows\\temp\\winbits-never.bin"],
                1,
                "",
                f"winbits: BITS takes http://, https:// URLs or UNC paths, not {url!r}\n",
            )
            for url in ("ftp://127.0.0.1/f.bin", "hello")
        ],
    ],
)
def test_the_command_line_as_a_user_runs_it(argv, code, out, err):
    r = winbits_cli(*argv)
    assert (r.returncode, r.stdout, r.stderr) == (code, out, err)


def start_exporter(target, interval: str) -> subprocess.Popen[str]:
    """`winbits export --interval` running in its own process; stderr is kept."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "winbits",
            "export",
            "--prometheus",
            str(target),
            "--interval",
            interval,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


CLOSE_THE_CONSOLE = """\
import os, sys, threading, time
from winbits import _cli, _native
target = sys.argv[1]
def close_the_console():  # once the first file is there, as a user closing the window
    while not os.path.exists(target):
        time.sleep(0.05)
    _native._console_event(int(sys.argv[2]))
threading.Thread(target=close_the_console, daemon=True).start()
sys.exit(_cli.main(["export", "--prometheus", target, "--interval", "1"]))
"""


@pytest.mark.parametrize("event", [2, 5, 6], ids=["close", "logoff", "shutdown"])
def test_closing_the_console_ends_export_with_0_after_its_write(tmp_path, event):
    """CTRL_CLOSE_EVENT (2), CTRL_LOGOFF_EVENT (5), CTRL_SHUTDOWN_EVENT (6), delivered as
    the system does, on a thread of its own: the exporter ends with 0, and the file it
    leaves is whole. Without winbits' console handler the process would be ended at once
    by the system, mid-write, with no exit code of ours."""
    target = tmp_path / "bits.prom"
    r = subprocess.run(
        [sys.executable, "-c", CLOSE_THE_CONSOLE, str(target), str(event)],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert prom_values(target)["winbits_up"] == 1.0


CLOSE_THE_CONSOLE_DURING_A_DOWNLOAD = """\
import sys, threading, time
sys.path.insert(0, sys.argv[1])
import _bitsdouble, winbits
from winbits import _cli, _native
_bitsdouble.register()
_bitsdouble.reset()
clsid = _bitsdouble.clsid()
def close_the_console():  # once the download's job is there, as a user closing the window
    while True:
        with winbits.connect(clsid) as bits:
            if bits.jobs():
                break
        time.sleep(0.05)
    _native._console_event(int(sys.argv[3]))
threading.Thread(target=close_the_console, daemon=True).start()
code = _cli.main(["download", "http://h/never.bin", sys.argv[2], "--clsid", clsid])
with winbits.connect(clsid) as bits:
    print(code, len(bits.jobs()), _bitsdouble.calls().get("Job.Cancel"))
"""


@pytest.mark.parametrize("event", [2, 5, 6], ids=["close", "logoff", "shutdown"])
def test_closing_the_console_during_a_download_cancels_its_job(double, tmp_path, event):
    """The console closes (or the user logs off, or Windows shuts down) while `winbits
    download` waits: its job is cancelled before the process ends, so nothing goes on
    downloading into DEST's folder for 90 days. Against the double (whose jobs never
    move), in a process of its own, with the event delivered as the system does."""
    dest = tmp_path / "never.bin"
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            CLOSE_THE_CONSOLE_DURING_A_DOWNLOAD,
            os.path.dirname(double.__file__),
            str(dest),
            str(event),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert r.stdout.strip() == "130 0 1", r.stderr  # exit 130, no job left, one Cancel
    assert r.stderr.strip().splitlines()[-1] == "winbits: interrupted"
    assert not dest.exists()


def stop_bits() -> str:
    """`net stop bits` from another Windows process, again while the service cannot be
    stopped yet (starting or stopping after the previous test's outage); -> what net
    said, for a failing test's message."""
    said = []
    for _ in range(10):
        r = subprocess.run(["net", "stop", "bits"], capture_output=True, text=True, timeout=120)
        said.append(f"{r.returncode}: {r.stdout.strip()} {r.stderr.strip()}")
        if r.returncode == 0:
            break
        time.sleep(1)
    return "; ".join(said)


def test_export_survives_the_service_stopping_and_starting(tmp_path):
    """`net stop bits` from another Windows process while `export --interval` runs:
    the exporter goes on, counts the failed polls, and reads BITS again once the
    service is back (Wine starts it again on the next connection, or `net start`)."""
    pytest.importorskip("prometheus_client")
    target = tmp_path / "bits.prom"
    exporter = start_exporter(target, "0.5")
    try:
        wait_until(lambda: prom_values(target).get("winbits_up") == 1.0, "the first export")
        said = stop_bits()
        wait_until(
            lambda: prom_values(target).get("winbits_exporter_poll_errors_total", 0) >= 1,
            f"a failed poll after the service stopped (net stop: {said})",
        )
        subprocess.run(["net", "start", "bits"], capture_output=True, timeout=120)
        back = wait_until(
            lambda: (m := prom_values(target)).get("winbits_up") == 1.0 and m,
            "winbits_up 1 after the service is back",
        )
        assert back["winbits_exporter_poll_errors_total"] >= 1
        assert exporter.poll() is None  # still running
    finally:
        exporter.terminate()
        _, err = exporter.communicate(timeout=60)
    lines = err.splitlines()
    print("\n".join(lines))
    outage = [line for line in lines if line.startswith("winbits: cannot read BITS: ")]
    again = [line for line in lines if line.startswith("winbits: reading BITS and writing ")]
    assert len(outage) == 1 and outage[0].endswith("; retrying")
    assert len(again) == 1


def test_a_download_while_the_exporter_runs_is_counted_once_across_a_restart(serve, tmp_path):
    """The exporter runs (--interval) while a few MB come through Wine's BITS: the
    transferred counter grows by exactly the file's size; a restarted exporter (a one-shot
    run with the same state) neither loses nor adds a byte."""
    pytest.importorskip("prometheus_client")
    payload = make_payload(3_000_000, seed=9)
    url = serve("counted.bin", payload)
    host = url.split("/")[2].split(":")[0]
    target = tmp_path / "bits.prom"
    total = "winbits_transferred_bytes_total"

    def counted() -> float:
        return next(
            (
                v
                for (name, server), v in by_server(target).items()
                if name == total and server == host
            ),
            0.0,
        )

    exporter = start_exporter(target, "0.3")
    name = f"winbits-cli {uuid.uuid4()}"
    try:
        wait_until(lambda: prom_values(target).get("winbits_up") == 1.0, "the first export")
        before = counted()
        r = winbits_cli("download", url, str(tmp_path / "counted.bin"), "--name", name)
        assert r.returncode == 0, r.stderr
        wait_until(lambda: counted() - before == len(payload), "the download counted")
    finally:
        exporter.terminate()
        exporter.communicate(timeout=60)
    after_restart = winbits_cli("export", "--prometheus", str(target))
    assert after_restart.returncode == 0, after_restart.stderr
    assert "counting from zero" not in after_restart.stderr  # the state was there
    assert counted() - before == len(payload)


def test_watch_json_survives_the_service_stopping_and_starting():
    """The same outage for `watch --json`: one line on stderr when it starts and one
    when it ends, and the JSON lines go on after it."""
    import threading

    watcher = subprocess.Popen(
        [sys.executable, "-m", "winbits", "watch", "--json", "--interval", "0.3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    out: list[str] = []
    err: list[str] = []
    readers = [
        threading.Thread(target=lambda s=s, into=into: into.extend(s), daemon=True)
        for s, into in ((watcher.stdout, out), (watcher.stderr, err))
    ]
    for r in readers:
        r.start()
    name = f"winbits-watch {uuid.uuid4()}"
    try:
        wait_until(lambda: out, "the first poll's line")
        said = stop_bits()
        wait_until(lambda: err, f"the outage said (net stop: {said})")
        subprocess.run(["net", "start", "bits"], capture_output=True, timeout=120)
        with winbits.connect() as bits:  # a change after the outage: a JSON line for it
            job = bits.create_job(name)
            try:
                wait_until(lambda: any(name in line for line in out), "the new job's line")
                assert watcher.poll() is None  # still running
            finally:
                job.cancel()
    finally:
        watcher.terminate()
        watcher.wait(60)
        for r in readers:
            r.join(10)
    assert err[0].startswith("winbits: cannot read BITS: ") and err[0].endswith("; retrying\n")
    assert len(err) == 2 and err[1].startswith("winbits: reading BITS again after 0:0")
    assert all(json.loads(line)["time"] for line in out)  # every stdout line is JSON


def test_upload_where_bits_has_no_uploads_is_refused_and_the_file_kept(serve, tmp_path):
    # Wine's BITS offers only 1.0's class and would run an upload job as a download,
    # writing the server's answer over the file to send (seen here); Windows uploads.
    if winbits.bits_version() >= (1, 5):
        pytest.skip("this BITS has upload jobs")
    url = serve("upload-target", b"what the server has")
    source = tmp_path / "report.txt"
    source.write_bytes(b"what the user sends")
    name = f"winbits-cli {uuid.uuid4()}"
    r = winbits_cli("upload", str(source), url, "--name", name)
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == (
        "winbits: upload jobs need BITS 1.5; this BITS offers 1.0 only (HRESULT 0x80004001)\n"
    )
    assert source.read_bytes() == b"what the user sends"
    assert leftovers(name) == []


def test_prune_by_name_dry_run_cancels_none_then_cancels_exactly_those(bits, tmp_path):
    tag = uuid.uuid4().hex[:8]
    made = {n: bits.create_job(f"prune-{n}-{tag}") for n in ("x-1", "x-2", "y-1")}
    for n, job in made.items():
        job.add_file(f"http://127.0.0.1:9/{n}.bin", str(tmp_path / f"{n}.bin"))
    pattern = f"prune-x-*-{tag}"
    r = winbits_cli("prune", "--name", pattern, "--dry-run")
    assert r.returncode == 0, r.stderr
    assert sorted(line.split()[2] for line in r.stdout.splitlines()) == sorted(
        str(made[n].id) for n in ("x-1", "x-2")
    )
    assert all(line.startswith("would cancel ") for line in r.stdout.splitlines())
    assert all(job.state == winbits.JobState.SUSPENDED for job in made.values())  # none gone
    r = winbits_cli("prune", "--name", pattern)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 2
    left = {j.name for j in bits.jobs() if not winbits.JobState(j.state).is_final}
    assert f"prune-y-1-{tag}" in left
    assert not {f"prune-x-1-{tag}", f"prune-x-2-{tag}"} & left
    r = winbits_cli("list", "--state", "SUSPENDED", "--name", f"*-{tag}", "--json")
    assert [j["name"] for j in json.loads(r.stdout)["jobs"]] == [f"prune-y-1-{tag}"]


def test_download_detach_returns_a_job_id_and_wait_lands_the_file(serve, tmp_path):
    payload = make_payload(1_500_000, seed=12)
    url = serve("detached.bin", payload)
    dest = tmp_path / "detached.bin"
    name = f"winbits-cli {uuid.uuid4()}"
    r = winbits_cli("download", url, str(dest), "--name", name, "--detach", "--json")
    assert r.returncode == 0, r.stderr
    made = json.loads(r.stdout)
    assert (made["command"], made["detached"]) == ("download", True)
    job_id = made["job_id"]
    assert not dest.exists()  # BITS writes it at complete(), which wait does
    r = winbits_cli("wait", job_id[:8], "--timeout", "120")
    assert r.returncode == 0, r.stderr
    assert dest.read_bytes() == payload
    assert "Downloaded 1 file(s)" in r.stdout and "100.0%" in r.stderr
    assert leftovers(name) == []  # completed: out of the queue
