"""`winbits doctor`: each check's branches on what was read (pure), and the whole
command under Wine, which lacks most of what it reads."""

from __future__ import annotations

import datetime as dt
import json
import struct
import subprocess
import sys
import uuid

import pytest
from conftest import running_on_wine, windows_only

from winbits._cli import doctor
from winbits._types import JobProgress, JobRecord, JobState, JobTimes

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)
DENIED = PermissionError(5, "Access is denied")


@pytest.mark.parametrize(
    ("logon", "status"),
    [(2, "ok"), (10, "ok"), (11, "ok"), (5, "ok"), (9, "ok"), (3, "problem"), (4, "problem"),
     (8, "problem"), (0, "unknown"), (None, "unknown")],
    ids=lambda v: str(v),
)  # fmt: skip
def test_each_logon_type_says_whether_bits_transfers_for_it(logon, status):
    check = doctor.logon_check(("PC\\alice", "S-1-5-21-1-2-3-1001", False, logon))
    assert check.status == status
    if status == "problem":
        assert "ERROR_NOT_LOGGED_ON" in check.text and "helper token" in (check.fix or "")


def test_service_accounts_are_fine_whatever_their_logon():
    check = doctor.logon_check(("NT AUTHORITY\\SYSTEM", "S-1-5-18", True, 0))
    assert check.status == "ok" and "service account" in check.text
    assert doctor.logon_check(DENIED).status == "unknown"


@pytest.mark.parametrize(
    ("status", "verdict"),
    [((4, 2), "ok"), ((1, 3), "ok"), ((1, 4), "problem"), ((2, 2), "ok")],
    ids=["running", "manual", "disabled", "starting"],
)
def test_each_service_state(status, verdict):
    check = doctor.service_check(status)
    assert check.status == verdict
    assert doctor.service_check(DENIED).status == "unknown"


def test_the_version_names_what_it_lacks_and_branchcache_says_when_peers_cannot_show():
    old = doctor.version_check((1, 0))
    assert "these need a newer BITS: HTTP options" in old.text
    assert "these need" not in doctor.version_check((10, 3)).text
    assert doctor.version_check(OSError(1, "gone")).status == "problem"
    assert "can never show up" in doctor.branchcache_check((4, 2), (1, 0)).text
    missing = doctor.branchcache_check(OSError(1060, "no such service"), (10, 3))
    assert missing.status == "problem" and "origin" in missing.text
    assert doctor.branchcache_check((4, 2), (10, 3)).status == "ok"
    assert doctor.branchcache_check((1, 4), (10, 3)).status == "problem"


@pytest.mark.parametrize(
    ("mode", "status", "words"),
    [(0, "problem", "disabled mode"), (1, "problem", "local cache mode"),
     (2, "ok", "distributed cache mode"), (3, "ok", "hosted cache mode"),
     ("DistributedCache", "ok", "distributed cache mode"),
     ("LocalCache", "problem", "local cache mode"), (7, "ok", "in 7 mode"),
     (OSError(0, "WMI answered HRESULT 0x8004100E"), "ok", "mode cannot be read (WMI")],
    ids=lambda v: str(v)[:12],
)  # fmt: skip
def test_branchcache_says_its_mode_and_when_that_mode_asks_no_peer(mode, status, words):
    check = doctor.branchcache_check((4, 2), (10, 3), mode)
    assert check.status == status and words in check.text
    if status == "problem":
        assert "no peer" in check.text and "netsh branchcache set service" in (check.fix or "")


def test_the_event_log_line_says_whether_transfers_are_recorded_and_how_to_turn_it_on():
    assert doctor.event_log_check(True).status == "ok"
    off = doctor.event_log_check(False)
    assert off.status == "problem" and "turned off" in off.text
    assert (
        off.fix
        == "wevtutil sl Microsoft-Windows-Bits-Client/Operational /e:true (as an administrator)"
    )
    assert doctor.event_log_check(DENIED).status == "unknown"


def settings_blob(
    flags: int, server: bytes = b"", bypass: bytes = b"", script: bytes = b""
) -> bytes:
    """A DefaultConnectionSettings value as Windows writes it."""
    blob = struct.pack("<III", 0x46, 7, flags)
    for text in (server, bypass, script):
        blob += struct.pack("<I", len(text)) + text
    return blob + b"\0" * 32  # what follows (the last detection's results) is not read


def test_the_proxy_line_says_how_jobs_reach_servers_for_this_user_and_service_accounts():
    services: dict[str, doctor.Proxy | OSError] = {
        "LocalSystem": doctor.parse_connection_settings(settings_blob(0x3, b"p:8080", b"<local>")),
        "NetworkService": FileNotFoundError(2, "The system cannot find the file specified"),
    }
    line = doctor.proxy_check((False, None, None, None), services)
    assert line.status == "ok" and "this user's proxy" in line.text and "none: direct" in line.text
    assert "LocalSystem's: p:8080 (bypass: <local>)" in line.text
    assert "NetworkService's: not readable here (The system cannot find" in line.text
    text = doctor.proxy_check((True, "http://wpad/p.pac", "p:8080", "<local>"), {}).text
    assert "WPAD" in text and "p.pac" in text and "p:8080 (bypass: <local>)" in text
    assert doctor.proxy_check(DENIED, services).status == "unknown"


def test_connection_settings_are_read_by_their_flags_and_refused_when_cut_short():
    parse = doctor.parse_connection_settings
    assert parse(settings_blob(0x1)) == (False, None, None, None)  # direct
    assert parse(settings_blob(0x9)) == (True, None, None, None)  # detect
    script = settings_blob(0x5, b"old:1", b"", b"http://wpad/x.pac")
    assert parse(script) == (False, "http://wpad/x.pac", None, None)  # a proxy set, not used
    for cut in (b"", settings_blob(0x3, b"p:8080")[:20]):
        with pytest.raises(ValueError, match="cut short"):
            parse(cut)


def job(state, created_days=0.0, modified_days=0.0, timed=True, name="j"):
    times = JobTimes(
        NOW - dt.timedelta(days=created_days), NOW - dt.timedelta(days=modified_days), None
    )
    return JobRecord(
        uuid.uuid4(), name, None, state, JobProgress(None, 0, 1, 0), times if timed else None, ()
    )


def test_the_queue_names_errors_stalls_and_forgotten_suspended_jobs():
    failed = job(JobState.ERROR, name="broken")
    jobs = [
        failed,
        job(JobState.TRANSFERRING, 3, 2, name="stuck"),
        job(JobState.TRANSFERRING, 1, 0.1, name="fine"),
        job(JobState.SUSPENDED, 40, 40),
        job(JobState.SUSPENDED, 2, 2),
    ]
    checks = doctor.queue_checks(jobs, {str(failed.id): "HTTP 404"}, NOW)
    texts = [(c.status, c.text) for c in checks]
    assert texts[0] == ("problem", f"{failed.id} broken: ERROR: HTTP 404")
    assert texts[1][0] == "problem"
    assert "stuck: TRANSFERRING, no progress for 48:00:00" in texts[1][1]
    assert texts[2] == ("problem", "2 SUSPENDED job(s), the oldest 960:00:00 old: likely forgotten")
    assert "prune --state SUSPENDED" in (checks[2].fix or "")
    assert len(checks) == 3
    assert doctor.queue_checks([], {}, NOW)[0].text == "0 job(s), none in trouble"
    untimed = doctor.queue_checks([job(JobState.SUSPENDED, timed=False)], {}, NOW)
    assert [c.status for c in untimed] == ["unknown", "ok"]  # no ages here, no guess


def test_a_not_logged_on_failure_line_says_what_it_means_and_points_to_doctor():
    from winbits._cli import progress
    from winbits._types import ErrorContext, JobError

    class Failed:
        error = JobError(
            0x800704DD, ErrorContext.GENERAL_TRANSPORT, "not logged on", None, None, None, None
        )
        state = JobState.ERROR

    line = progress.job_failure(Failed(), "http://h/f")  # type: ignore[arg-type]
    assert line.startswith("download of http://h/f failed: not logged on (HRESULT 0x800704DD): ")
    assert "logged on interactively" in line and "winbits doctor" in line


@windows_only
def test_doctor_runs_to_the_end_under_wine_and_says_what_it_lacks():
    run = lambda *a: subprocess.run(
        [sys.executable, "-m", "winbits", "doctor", *a],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    r = run()
    print(r.stdout)
    assert "Traceback" not in r.stderr and r.stdout.strip().endswith(("found", "found\n"))
    names = [line.split()[1] for line in r.stdout.splitlines()[:-1] if not line.startswith(" ")]
    assert set(names) >= {"service", "version", "account", "proxy", "branchcache", "event", "queue"}
    r2 = run("--json")
    report = json.loads(r2.stdout)
    assert report["schema_version"] == 1 and report["command"] == "doctor"
    assert r2.returncode == (0 if report["ok"] else 1) == r.returncode
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses["version"] == "ok"  # BITS answers, whatever version it gives
    if running_on_wine():  # Wine has no event log: it cannot be read
        assert statuses["event log"] == "unknown"


@windows_only
def test_branchcache_mode_is_read_through_wmi_or_says_why_not():
    from winbits import _native

    if running_on_wine():  # Wine's WMI has no ROOT\StandardCimv2 (WBEM_E_INVALID_NAMESPACE)
        with pytest.raises(OSError, match="WMI answered HRESULT 0x8004100E"):
            _native.branchcache_mode()
    else:
        try:
            mode = _native.branchcache_mode()
        except OSError as e:  # a Windows without BranchCache's WMI provider
            assert "WMI answered HRESULT 0x8" in str(e)
        else:
            assert mode is None or isinstance(mode, (int, str))
