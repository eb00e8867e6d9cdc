"""Driving a job: name, description, priority, credentials and custom headers.

Wine's BITS applies credentials and custom headers for real (docs/testbed.md): the
loopback server demands Basic authentication and records the headers it gets."""

from __future__ import annotations

import base64
import json
import os
import re
import uuid

import pytest
from conftest import finish, run_winbits, wait_for_state, when_queued, windows_only

import winbits
from winbits import (
    AuthScheme,
    CertStoreLocation,
    ClientCertificate,
    CostFlags,
    CredentialTarget,
    FileRange,
    JobPriority,
    JobState,
    JobType,
    PeerCaching,
    ProxySettings,
    ProxyUsage,
    ReplyProgress,
    SecurityFlags,
)
from winbits._checks import format_headers
from winbits._job import Job

PASSWORD = "s3cret-Pa55-" + uuid.uuid4().hex  # found nowhere it should not be
HEADER_VALUE = "token-" + uuid.uuid4().hex


class _NoCom:
    """A native job that fails the test if any COM call is made."""

    def known_id(self) -> None:  # what the job object was made with: no call
        return None

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"a COM call ({name}) was made for input checked before it")


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda j: setattr(j, "name", 5), TypeError),
        (lambda j: setattr(j, "name", "n" * 257), ValueError),
        (lambda j: setattr(j, "description", "d" * 1025), ValueError),
        (lambda j: setattr(j, "priority", 4), ValueError),
        (lambda j: setattr(j, "priority", "HIGH"), TypeError),
        (lambda j: setattr(j, "priority", True), TypeError),
        (lambda j: j.set_credentials("", "pw"), ValueError),
        (lambda j: j.set_credentials("u" * 301, "pw"), ValueError),
        (lambda j: j.set_credentials("user", None), TypeError),
        (lambda j: j.set_credentials("user", "p\0w"), ValueError),
        (lambda j: j.set_credentials("user", "pw", scheme=9), ValueError),
        (lambda j: j.set_credentials("user", "pw", target=0), ValueError),
        (lambda j: j.set_credentials("user", "pw", scheme=True), ValueError),
        (lambda j: j.remove_credentials(scheme="basic"), ValueError),
        (lambda j: setattr(j, "custom_headers", {"X-A": "1\r\nX-Injected: 2"}), ValueError),
        (lambda j: setattr(j, "custom_headers", {"X-A": "1\n"}), ValueError),
        (lambda j: setattr(j, "custom_headers", {"X-A": "\0"}), ValueError),
        (lambda j: setattr(j, "custom_headers", {"Bad Name": "1"}), ValueError),
        (lambda j: setattr(j, "custom_headers", {"X:Y": "1"}), ValueError),
        (lambda j: setattr(j, "custom_headers", {"": "1"}), ValueError),
        (lambda j: setattr(j, "custom_headers", {"X-A": 1}), TypeError),
        (lambda j: setattr(j, "custom_headers", [("X-A", "1")]), TypeError),
        (lambda j: setattr(j, "minimum_retry_delay", -1), ValueError),
        (lambda j: setattr(j, "no_progress_timeout", 2**32), ValueError),
        (lambda j: setattr(j, "maximum_download_time", 1.5), TypeError),
        (lambda j: setattr(j, "minimum_retry_delay", True), TypeError),
        (lambda j: setattr(j, "peer_caching", 8), ValueError),
        (lambda j: setattr(j, "peer_caching", -1), ValueError),
        (lambda j: setattr(j, "owner_elevated", True), AttributeError),
        (lambda j: setattr(j, "error_count", 0), AttributeError),
        (lambda j: setattr(j, "proxy", ProxySettings(ProxyUsage.OVERRIDE)), ValueError),
        (lambda j: setattr(j, "proxy", ProxySettings(ProxyUsage.NO_PROXY, ("p:1",))), ValueError),
        (lambda j: setattr(j, "proxy", ProxySettings(ProxyUsage.OVERRIDE, ("a b",))), ValueError),
        (lambda j: setattr(j, "proxy", ProxySettings(ProxyUsage.OVERRIDE, ("p\0",))), ValueError),
        (lambda j: setattr(j, "proxy", ProxySettings(ProxyUsage.OVERRIDE, "p:1")), TypeError),  # type: ignore[arg-type]
        (lambda j: setattr(j, "proxy", 9), ValueError),
        (lambda j: setattr(j, "notify_command_line", ("", "x")), ValueError),
        (lambda j: setattr(j, "notify_command_line", "prog.exe"), TypeError),
        (lambda j: setattr(j, "reply_file_name", 5), TypeError),
        (lambda j: setattr(j, "security_flags", 0x300), ValueError),
        (lambda j: setattr(j, "security_flags", 0x400), ValueError),
        (lambda j: setattr(j, "security_flags", "0x1"), TypeError),
        (lambda j: j.set_client_certificate(""), ValueError),
        (lambda j: j.set_client_certificate("CN=a", store=""), ValueError),
        (lambda j: j.set_client_certificate("CN=a", location=9), ValueError),
        (lambda j: j.set_client_certificate(b"CN=a"), TypeError),
        (lambda j: setattr(j, "transfer_policy", 0), ValueError),
        (lambda j: setattr(j, "transfer_policy", 0x100), ValueError),
        (lambda j: setattr(j, "dynamic_content", 1), TypeError),
        (lambda j: setattr(j, "max_download_size", -1), ValueError),
        (lambda j: setattr(j, "max_download_size", 2**64), ValueError),
        (lambda j: setattr(j, "use_stored_credentials", 3), ValueError),
        (lambda j: setattr(j, "minimum_notification_interval", 2**32), ValueError),
        (lambda j: setattr(j, "on_demand", "yes"), TypeError),
        (lambda j: setattr(j, "http_method", ""), ValueError),
        (lambda j: setattr(j, "http_method", "GET /x"), ValueError),
        (lambda j: setattr(j, "http_method", "PUT\r\n"), ValueError),
        (lambda j: setattr(j, "http_method", None), TypeError),
        (lambda j: j.add_file("http://h/x", "C:\\x", ranges=[(0, 10), (5, 10)]), ValueError),
        (lambda j: j.add_file("http://h/x", "C:\\x", ranges=[(-1, 10)]), ValueError),
        (lambda j: j.add_file("http://h/x", "C:\\x", ranges=[(0, 0)]), ValueError),
        (lambda j: j.add_file("http://h/x", "C:\\x", ranges=[(2**64 - 1, 2)]), ValueError),
        (lambda j: j.add_file("http://h/x", "C:\\x", ranges=[(0, None), (10, 5)]), ValueError),
        (lambda j: j.add_file("http://h/x", "C:\\x", ranges=[]), ValueError),
        (lambda j: j.add_file("http://h/x", "C:\\x", ranges="0-10"), TypeError),
        (lambda j: j.add_file("http://h/x", "C:\\x", ranges=[(0,)]), TypeError),
        (lambda j: j.add_file("http://h/x", "C:\\x", ranges=[(0, 1.5)]), TypeError),
        (lambda j: j.add_file("http://h/x", "C:\\x", ranges=[(True, 1)]), TypeError),
    ],
)
def test_bad_settings_are_refused_before_any_com_call(call, error):
    job = Job(_NoCom(), int(JobType.DOWNLOAD))  # type: ignore[arg-type]
    with pytest.raises(error) as caught:
        call(job)
    assert "pw" not in str(caught.value).replace("password", "")  # no secret in the text


def test_a_refused_header_value_is_not_repeated_in_the_error():
    with pytest.raises(ValueError) as caught:
        format_headers({"Authorization": "Bearer " + HEADER_VALUE + "\r\n"})
    assert HEADER_VALUE not in str(caught.value)
    assert "Authorization" in str(caught.value)


def test_headers_are_sent_as_crlf_separated_lines():
    assert format_headers({"X-A": "1", "X-B": "two words"}) == "X-A: 1\r\nX-B: two words"
    assert format_headers({}) == ""


@windows_only
def test_a_download_with_credentials_and_a_header_reaches_the_server_with_both(
    bits, server, serve, tmp_path
):
    url = serve("private.bin", os.urandom(200_000))
    server.logins["/private.bin"] = "alice:" + PASSWORD
    dest = tmp_path / "private.bin"
    job = bits.create_job("winbits credentials test")
    job.set_credentials("alice", PASSWORD)
    job.custom_headers = {"X-Winbits-Test": HEADER_VALUE}
    assert job.custom_headers == {"X-Winbits-Test": HEADER_VALUE}  # read back from BITS
    job.add_file(url, str(dest))
    before = len(server.headers_seen)
    job.resume()
    assert wait_for_state(job, {JobState.TRANSFERRED, JobState.ERROR}) == JobState.TRANSFERRED
    job.complete()
    assert dest.read_bytes() == server.files["/private.bin"]
    seen = server.headers_seen[before:]
    assert all(h.get("X-Winbits-Test") == HEADER_VALUE for h in seen), seen
    basic = "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    assert any(h.get("Authorization") == basic for h in seen)


@windows_only
def test_a_wrong_password_is_bits_401_and_is_shown_nowhere(bits, server, serve, tmp_path):
    url = serve("locked.bin", b"x" * 1000)
    server.logins["/locked.bin"] = "alice:right"
    job = bits.create_job("winbits wrong password test")
    job.set_credentials("alice", PASSWORD)
    job.add_file(url, str(tmp_path / "locked.bin"))
    job.resume()
    assert wait_for_state(job, {JobState.ERROR, JobState.TRANSFERRED}) == JobState.ERROR
    error = job.error
    assert error is not None and error.hresult == 0x80190191  # BG_E_HTTP_ERROR_401
    shown = " ".join(map(repr, (job, error, bits, job.files())))
    assert PASSWORD not in shown
    job.cancel()
    assert not (tmp_path / "locked.bin").exists()


@windows_only
def test_credentials_can_be_removed_and_headers_cleared(bits):
    job = bits.create_job("winbits remove test")
    job.set_credentials("bob", PASSWORD, target=CredentialTarget.SERVER, scheme=AuthScheme.BASIC)
    job.remove_credentials()
    job.custom_headers = {"X-One": "1", "X-Two": "2"}
    assert job.custom_headers == {"X-One": "1", "X-Two": "2"}
    job.custom_headers = None
    assert job.custom_headers == {}
    job.cancel()


@windows_only
def test_description_and_priority_are_set(bits):
    job = bits.create_job("winbits description test")
    job.description = "what this job is for"
    assert job.description == "what this job is for"
    job.priority = JobPriority.LOW  # Wine accepts it and keeps nothing (docs/testbed.md)
    try:
        job.name = "renamed"
    except winbits.NotSupportedError as e:  # Wine: SetDisplayName is E_NOTIMPL
        assert e.hresult == 0x80004001
    else:
        assert job.name == "renamed"
    job.cancel()


run_cli = run_winbits


@windows_only
def test_download_with_user_password_env_and_header(bits, server, serve, tmp_path):
    url = serve("cli-private.bin", os.urandom(100_000))
    server.logins["/cli-private.bin"] = "alice:" + PASSWORD
    dest = tmp_path / "cli-private.bin"
    before = len(server.headers_seen)
    r = run_cli(
        "download", url, str(dest), "--user", "alice", "--password-env", "WINBITS_TEST_PW",
        "--header", f"X-Winbits-Test: {HEADER_VALUE}", "--priority", "high",
        env={"WINBITS_TEST_PW": PASSWORD},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert dest.read_bytes() == server.files["/cli-private.bin"]
    seen = server.headers_seen[before:]
    assert seen and all(h.get("X-Winbits-Test") == HEADER_VALUE for h in seen)
    assert PASSWORD not in r.stdout + r.stderr and HEADER_VALUE not in r.stdout + r.stderr


@windows_only
def test_a_header_from_the_environment_reaches_the_server_and_no_output(server, serve, tmp_path):
    url = serve("cli-token.bin", os.urandom(50_000))
    dest = tmp_path / "cli-token.bin"
    before = len(server.headers_seen)
    r = run_cli(
        "download", url, str(dest), "--header-env", "X-Winbits-Test=WINBITS_TEST_TOKEN",
        env={"WINBITS_TEST_TOKEN": HEADER_VALUE},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    seen = server.headers_seen[before:]
    assert seen and all(h.get("X-Winbits-Test") == HEADER_VALUE for h in seen)
    assert HEADER_VALUE not in r.stdout + r.stderr


def test_a_header_from_the_environment_is_refused_without_its_value(tmp_path):
    url, dest = "http://127.0.0.1:9/x", str(tmp_path / "x")
    r = run_cli("download", url, dest, "--header-env", "X-T=WINBITS_UNSET_TOKEN")
    assert r.returncode == 2
    assert "the environment variable WINBITS_UNSET_TOKEN (for header X-T) is not set" in r.stderr
    env = {"WINBITS_TEST_TOKEN": HEADER_VALUE + "\r\nX-Smuggled: 1"}
    r = run_cli("download", url, dest, "--header-env", "X-T=WINBITS_TEST_TOKEN", env=env)
    assert r.returncode == 2 and "the value of header 'X-T' holds CR, LF or NUL" in r.stderr
    assert HEADER_VALUE not in r.stderr
    r = run_cli("download", url, dest, "--header-env", "Bad Name=V")
    assert r.returncode == 2 and "not an HTTP header name: 'Bad Name'" in r.stderr


@windows_only
def test_show_reads_every_property_of_a_real_job_and_no_header_value(bits):
    job = bits.create_job("winbits show test")
    job.custom_headers = {"X-Winbits-Test": HEADER_VALUE}
    job.description = "shown"
    r = run_cli("show", str(job.id), "--json")
    assert r.returncode == 0, r.stderr
    shown = json.loads(r.stdout)
    assert shown["custom_header_names"] == ["X-Winbits-Test"]
    assert shown["description"] == "shown" and shown["state"] == "SUSPENDED"
    text = run_cli("show", str(job.id)[:8])
    assert text.returncode == 0, text.stderr
    assert re.search(r"^Custom header names: +X-Winbits-Test$", text.stdout, re.M)
    assert HEADER_VALUE not in r.stdout + text.stdout + r.stderr + text.stderr


@windows_only
def test_download_with_a_wrong_password_fails_in_one_line_and_leaves_nothing(
    bits, server, serve, tmp_path
):
    url = serve("cli-locked.bin", b"y" * 1000)
    server.logins["/cli-locked.bin"] = "alice:right"
    dest = tmp_path / "cli-locked.bin"
    name = "winbits wrong password " + uuid.uuid4().hex
    r = run_cli(
        "download", url, str(dest), "--user", "alice", "--password-env", "WINBITS_TEST_PW",
        "--name", name, "--stall-timeout", "60", env={"WINBITS_TEST_PW": PASSWORD},
    )  # fmt: skip
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "401" in r.stderr, r.stderr
    assert PASSWORD not in r.stdout + r.stderr
    assert not dest.exists()
    live = [j for j in bits.jobs() if j.name == name and not JobState(j.state).is_final]
    assert live == []


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--user", "alice"], "--user needs a password"),
        (["--password-env", "X"], "--password-env goes with --user"),
        (["--user", "alice", "--password-env", "WINBITS_UNSET_VAR"], "WINBITS_UNSET_VAR"),
    ],
)
def test_a_password_comes_from_a_terminal_or_the_environment_only(argv, says, tmp_path):
    r = run_cli("download", "http://127.0.0.1:9/x", str(tmp_path / "x"), *argv)
    assert r.returncode == 2 and says in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert not (tmp_path / "x").exists()


def test_a_bad_header_option_is_refused_without_its_value(tmp_path):
    r = run_cli("download", "http://127.0.0.1:9/x", str(tmp_path / "x"), "--header", "Bad Name: v")
    assert r.returncode == 2 and "not an HTTP header name: 'Bad Name'" in r.stderr
    r = run_cli(
        "download", "http://127.0.0.1:9/x", str(tmp_path / "x"), "--header", "tok" + HEADER_VALUE
    )
    assert r.returncode == 2 and "no ':' found" in r.stderr and HEADER_VALUE not in r.stderr


@windows_only
def test_settings_reach_the_double_with_one_call_each(double):
    job_id = uuid.UUID(double.add_job("before"))
    with winbits.connect(double.clsid()) as bits:
        job = bits.get_job(job_id)
        double.clear_calls()
        job.name = "after"
        job.description = "what it is for"
        job.priority = JobPriority.HIGH
        assert double.calls() == {
            "Job.SetDisplayName": 1,
            "Job.SetDescription": 1,
            "Job.SetPriority": 1,
        }
        assert (job.name, job.description, job.priority) == (
            "after",
            "what it is for",
            JobPriority.HIGH,
        )


@windows_only
def test_a_job_without_job2_or_http_options_says_which_bits_has_them(double):
    """Jobs that are IBackgroundCopyJob only, as BITS 1.x's were."""
    double.reset(job_level=1)
    job_id = uuid.UUID(double.add_job("old"))
    with winbits.connect(double.clsid()) as bits:
        job = bits.get_job(job_id)
        with pytest.raises(
            winbits.NotSupportedError, match=r"IBackgroundCopyJob2 \(BITS 2\.0\)"
        ) as e:
            job.set_credentials("alice", PASSWORD)
        assert PASSWORD not in str(e.value) and PASSWORD not in repr(e.value)
        with pytest.raises(winbits.NotSupportedError, match=r"IBackgroundCopyJob2 \(BITS 2\.0\)"):
            job.remove_credentials()
        with pytest.raises(winbits.NotSupportedError, match=r"HttpOptions \(BITS 2\.5\)"):
            job.custom_headers = {"X-A": HEADER_VALUE}
        with pytest.raises(winbits.NotSupportedError, match=r"HttpOptions \(BITS 2\.5\)"):
            _ = job.custom_headers


@windows_only
def test_every_setting_round_trips_through_the_double_with_one_call_each_way(double):
    job_id = double.add_job("settings", type=int(JobType.UPLOAD_REPLY))
    with winbits.connect(double.clsid()) as bits:
        job = bits.get_job(uuid.UUID(job_id))
        assert job.custom_headers == {}  # none set: S_FALSE and a null string
        writes = {
            "minimum_retry_delay": 45,
            "no_progress_timeout": 2**32 - 1,
            "maximum_download_time": 3600,
            "peer_caching": PeerCaching.DISABLE_BRANCH_CACHE,
            "proxy": ProxySettings(
                ProxyUsage.OVERRIDE, ("http://p1:8080", "p2:3128"), ("<local>",)
            ),
            "notify_command_line": (r"C:\tools\notify.exe", "--job done"),
            "reply_file_name": r"C:\replies\r.bin",
            "custom_headers": {"X-One": HEADER_VALUE, "X-Two": "2"},
        }
        double.clear_calls()
        for name, value in writes.items():
            setattr(job, name, value)
        for name, value in writes.items():
            assert getattr(job, name) == value, name
        job.set_credentials(
            "carol", PASSWORD, target=CredentialTarget.PROXY, scheme=AuthScheme.NTLM
        )
        job.set_credentials("dave", PASSWORD)
        job.remove_credentials(target=CredentialTarget.PROXY, scheme=AuthScheme.NTLM)
        assert double.credentials(job_id) == ["1/1/dave"]
        assert job.owner_integrity_level == 0x2000 and job.owner_elevated is False
        assert job.error_count == 0
        assert job.reply_progress == ReplyProgress(5, 5)
        assert job.reply_data() == b"reply"
        assert isinstance(job.peer_caching, PeerCaching)
        calls = double.calls()
        # Each interface is asked for once per job object: IBackgroundCopyJob4 and 2 here
        # (the HTTP options were asked for before the count was cleared).
        assert calls.pop("Job.QueryInterface") == 2
        assert calls == {
            **{f"Job.{verb}{m}": 1 for verb in ("Set", "Get") for m in (
                "MinimumRetryDelay", "NoProgressTimeout", "MaximumDownloadTime",
                "PeerCachingFlags", "ProxySettings", "NotifyCmdLine", "ReplyFileName")},
            "Http.SetCustomHeaders": 1,
            "Http.GetCustomHeaders": 1,
            "Job.SetCredentials": 2,
            "Job.RemoveCredentials": 1,
            "Job.GetOwnerIntegrityLevel": 1,
            "Job.GetOwnerElevationState": 1,
            "Job.GetErrorCount": 1,
            "Job.GetReplyProgress": 1,
            "Job.GetReplyData": 1,
            "Job.GetPeerCachingFlags": 2,
        }  # fmt: skip


@windows_only
def test_a_getter_bits_does_not_implement_reads_none_and_a_setter_raises(double):
    job_id = uuid.UUID(double.add_job("notimpl"))
    double.fail("Job.GetMaximumDownloadTime", 0x80004001)
    double.fail("Job.SetMaximumDownloadTime", 0x80004001)
    double.fail("Job.GetProxySettings", 0x80004001)
    with winbits.connect(double.clsid()) as bits:
        job = bits.get_job(job_id)
        assert job.maximum_download_time is None
        assert job.proxy is None
        with pytest.raises(winbits.NotSupportedError) as e:
            job.maximum_download_time = 10
        assert e.value.hresult == 0x80004001


@windows_only
def test_bits_own_refusal_comes_through_as_its_error(double):
    """A reply file name on a job that is not UPLOAD_REPLY: BITS says BG_E_INVALID_STATE."""
    job_id = uuid.UUID(double.add_job("download"))
    with winbits.connect(double.clsid()) as bits:
        job = bits.get_job(job_id)
        with pytest.raises(winbits.InvalidStateError):
            job.reply_file_name = r"C:\replies\r.bin"
        with pytest.raises(winbits.InvalidStateError):
            job.reply_data()


@windows_only
def test_what_wine_does_with_the_settings_it_stubs(bits):
    """Wine accepts and forgets some settings, and lacks others (docs/testbed.md): what
    winbits then says, so that a user sees None or NotSupportedError, never a crash."""
    job = bits.create_job("winbits wine settings test")
    job.minimum_retry_delay = 77  # accepted; Wine's getter answers a constant
    job.no_progress_timeout = 1234
    job.maximum_download_time = 3600
    job.peer_caching = PeerCaching.DISABLE_BRANCH_CACHE
    assert isinstance(job.minimum_retry_delay, int)
    job.security_flags = SecurityFlags.ENABLE_CRL_CHECK  # Wine keeps it, and uses it not
    assert job.security_flags == SecurityFlags.ENABLE_CRL_CHECK
    for name, value in (
        ("proxy", ProxyUsage.NO_PROXY),
        ("notify_command_line", (r"C:\windows\notepad.exe", "")),
    ):
        try:
            setattr(job, name, value)
        except winbits.NotSupportedError as e:
            assert e.hresult == 0x80004001
        else:
            assert getattr(job, name) in (value, ProxySettings(ProxyUsage.NO_PROXY))
    job.cancel()


def cli_double(double, *argv: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `winbits ARGV --clsid <double>`, in this process."""
    import contextlib
    import io

    from winbits import _cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err):
        code = _cli.main([*argv, "--clsid", double.clsid()], out=out)
    return code, out.getvalue(), err.getvalue()


@windows_only
def test_set_changes_what_its_options_give_and_show_reads_it_back(double):
    job_id = double.add_job("to set")
    double.add_file(job_id, "http://h/a.bin", "C:\\a.bin", total=100, transferred=40)
    code, out, err = cli_double(
        double, "set", job_id[1:9], "--priority", "low", "--description", "nightly",
        "--retry-delay", "120", "--no-progress-timeout", "3600", "--max-time", "7200",
        "--proxy", "http://p:8080", "--proxy-bypass", "<local>", "--no-branchcache",
    )  # fmt: skip
    assert code == 0, err
    assert out.startswith("set priority, description, minimum_retry_delay, no_progress_timeout,")
    code, out, _ = cli_double(double, "show", job_id[1:9], "--json")
    shown = json.loads(out)
    assert shown["priority"] == "LOW" and shown["description"] == "nightly"
    assert (shown["minimum_retry_delay"], shown["no_progress_timeout"]) == (120, 3600)
    assert shown["maximum_download_time"] == 7200
    assert shown["proxy"] == {
        "usage": "OVERRIDE",
        "proxies": ["http://p:8080"],
        "bypass": ["<local>"],
    }
    assert shown["peer_caching"] == ["DISABLE_BRANCH_CACHE"]
    assert shown["files"][0]["bytes_transferred"] == 40
    assert shown["id"] == str(uuid.UUID(job_id))
    # list --json gives the same record: every key of its job is in show's, the same
    code, out, _ = cli_double(double, "list", "--json")
    (listed,) = [j for j in json.loads(out)["jobs"] if j["id"] == shown["id"]]
    assert {k: shown[k] for k in listed} == listed
    assert set(listed) == {"id", "name", "owner", "state", "type", "progress", "times", "files"}
    code, out, err = cli_double(double, "set", job_id[1:9], "--branchcache", "--no-proxy")
    assert code == 0, err
    code, out, _ = cli_double(double, "show", job_id[1:9])
    assert "Peer caching:" in out and "DISABLE_BRANCH_CACHE" not in out
    assert "Proxy:" in out and "NO_PROXY" in out
    assert "http://h/a.bin -> C:\\a.bin: 40 B of 100 B" in out


@windows_only
@pytest.mark.parametrize(
    ("argv", "says"),
    [
        ([], "nothing to set"),
        (["--proxy-bypass", "<local>"], "--proxy-bypass goes with --proxy"),
        (["--no-proxy", "--proxy", "p:1"], "--no-proxy goes alone"),
        (["--retry-delay", "-5"], "must be 0 to 4294967295 seconds"),
        (["--max-time", "1.5"], "not a whole number of seconds"),
    ],
)
def test_set_refuses_what_cannot_be_set_in_one_line(double, argv, says):
    job_id = double.add_job("refuse")
    double.clear_calls()
    code, _, err = cli_double(double, "set", job_id, *argv)
    assert code == 2 and says in err and err.count("\n") == 1, err
    assert not any(name.startswith("Job.Set") for name in double.calls())


@windows_only
def test_secrets_appear_in_no_output(double):
    """Credentials and custom headers set, then every kind of output winbits makes:
    reprs, a failing call's exception, show and show --json, list --json, watch --json
    and the Prometheus export. Neither the password nor a header value is in any."""
    job_id = double.add_job("secret", state=1)
    double.add_file(job_id, "http://h/s.bin", "C:\\s.bin", total=10, transferred=5)
    outputs = []
    with winbits.connect(double.clsid()) as bits:
        job = bits.get_job(uuid.UUID(job_id))
        job.set_credentials("alice", PASSWORD)
        job.custom_headers = {"X-Token": HEADER_VALUE}
        outputs += [repr(job), repr(bits), repr(job.properties()), repr(job.files())]
        double.fail("Job.SetCredentials", 0x80070005)
        with pytest.raises(winbits.AccessDeniedError) as e:
            job.set_credentials("alice", PASSWORD)
        outputs += [str(e.value), repr(e.value), repr(e.value.args)]
        import traceback

        outputs.append("".join(traceback.format_exception(e.value)))
    for argv in (["show", job_id], ["show", job_id, "--json"], ["list", "--json"],
                 ["watch", "--json", "--count", "1"]):  # fmt: skip
        code, out, err = cli_double(double, *argv)
        assert code == 0, err
        outputs += [out, err]
    assert "X-Token" in outputs[2]  # the header's name is shown; its value is not
    for text in outputs:
        assert PASSWORD not in text and HEADER_VALUE not in text, text


@windows_only
def test_the_prometheus_export_holds_no_secret(double, tmp_path):
    pytest.importorskip("prometheus_client")
    job_id = double.add_job("secret", state=1)
    double.add_file(job_id, "http://h/s.bin", "C:\\s.bin", total=10, transferred=5)
    with winbits.connect(double.clsid()) as bits:
        job = bits.get_job(uuid.UUID(job_id))
        job.set_credentials("alice", PASSWORD)
        job.custom_headers = {"X-Token": HEADER_VALUE}
    target = tmp_path / "bits.prom"
    code, _, err = cli_double(double, "export", "--prometheus", str(target), "--per-job")
    assert code == 0, err
    text = target.read_text(encoding="utf-8")
    assert "winbits_up 1" in text
    assert PASSWORD not in text and HEADER_VALUE not in text


@windows_only
def test_https_options_round_trip_through_the_double(double):
    job_id = double.add_job("https")
    with winbits.connect(double.clsid()) as bits:
        job = bits.get_job(uuid.UUID(job_id))
        assert job.client_certificate is None  # none set: BITS says RPC_X_BAD_STUB_DATA
        flags = SecurityFlags.ENABLE_CRL_CHECK | SecurityFlags.REDIRECT_POLICY_DISALLOW
        job.security_flags = flags
        assert job.security_flags == flags and isinstance(job.security_flags, SecurityFlags)
        job.set_client_certificate("CN=agent", location=CertStoreLocation.LOCAL_MACHINE)
        assert job.client_certificate == ClientCertificate(
            CertStoreLocation.LOCAL_MACHINE, "MY", bytes(range(20)), "CN=agent"
        )
        props = job.properties()
        assert props.security_flags == flags and props.client_certificate is not None
        assert props.client_certificate.subject == "CN=agent"
        job.remove_client_certificate()
        assert job.client_certificate is None
        code, out, err = cli_double(double, "show", job_id, "--json")
        assert code == 0, err
        assert json.loads(out)["security_flags"] == ["ENABLE_CRL_CHECK", "REDIRECT_POLICY_DISALLOW"]


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda f: setattr(f, "remote_name", "ftp://h/x"), ValueError),
        (lambda f: setattr(f, "remote_name", None), TypeError),
        (lambda f: setattr(f, "validation_state", 1), TypeError),
    ],
)
def test_bad_file_settings_are_refused_before_any_com_call(call, error):
    with pytest.raises(error):
        call(winbits.File(_NoCom()))  # type: ignore[arg-type]


@windows_only
def test_ranges_mirrors_and_validation_through_the_double(double, tmp_path):
    job_id = double.add_job("ranges")
    done = double.add_job("done", state=6)
    double.add_file(
        done, "http://h/done.bin", "C:\\done.bin", total=5, transferred=5, completed=True
    )
    local = str(tmp_path / "part.bin")
    with winbits.connect(double.clsid()) as bits:
        job = bits.get_job(uuid.UUID(job_id))
        job.add_file("http://h/big.iso", local, ranges=[(1000, 10), (0, 100), (5000, None)])
        (f,) = job.files()
        assert f.ranges == [FileRange(0, 100), FileRange(1000, 10), FileRange(5000, None)]
        f.remote_name = "http://mirror/big.iso"
        assert f.remote_name == "http://mirror/big.iso"
        assert f.temporary_name == local + ".bits.tmp"
        assert f.validation_state is False
        with pytest.raises(winbits.InvalidStateError):  # BITS: only a transferred file
            f.validation_state = True
        (g,) = bits.get_job(uuid.UUID(done)).files()
        g.validation_state = True
        assert g.validation_state is True
        assert g.ranges == []


@windows_only
def test_file_and_job_interfaces_this_bits_lacks_are_named(double, tmp_path):
    double.reset(file_level=1, job_level=2)
    job_id = double.add_job("old")
    double.add_file(job_id, "http://h/a", "C:\\a")
    with winbits.connect(double.clsid()) as bits:
        job = bits.get_job(uuid.UUID(job_id))
        with pytest.raises(winbits.NotSupportedError, match=r"IBackgroundCopyJob3 \(BITS 3\.0\)"):
            job.add_file("http://h/b", str(tmp_path / "b"), ranges=[(0, 1)])
        (f,) = job.files()
        with pytest.raises(winbits.NotSupportedError, match=r"IBackgroundCopyFile2 \(BITS 2\.0\)"):
            f.remote_name = "http://mirror/a"
        with pytest.raises(winbits.NotSupportedError, match=r"IBackgroundCopyFile3 \(BITS 3\.0\)"):
            _ = f.temporary_name
        with pytest.raises(winbits.NotSupportedError, match=r"IBackgroundCopyJob4 \(BITS 3\.0\)"):
            job.peer_caching = PeerCaching.DISABLE_BRANCH_CACHE
        assert job.properties().peer_caching is None  # properties() reads None for it


@windows_only
def test_an_upload_sends_an_existing_file_and_refuses_a_missing_one(double, tmp_path):
    report = tmp_path / "report.txt"
    report.write_text("to the server")
    with winbits.connect(double.clsid()) as bits:
        job = bits.create_job("upload", JobType.UPLOAD_REPLY)
        job.add_file("http://h/upload", str(report))  # exists: no overwrite check
        double.clear_calls()
        with pytest.raises(FileNotFoundError):
            job.add_file("http://h/upload", str(tmp_path / "missing.txt"))
        with pytest.raises(ValueError, match="ranges are for downloads"):
            job.add_file("http://h/upload", str(report), ranges=[(0, 1)])
        assert double.calls() == {}  # the type was known from create_job
        (f,) = job.files()
        assert f.local_name == str(report)
        job.reply_file_name = str(tmp_path / "reply.txt")
        assert job.reply_file_name == str(tmp_path / "reply.txt")
        job.cancel()
    assert report.read_text() == "to the server"


@windows_only
def test_job5_properties_round_trip_through_the_double(double):
    job_id = double.add_job("job5")
    with winbits.connect(double.clsid()) as bits:
        job = bits.get_job(uuid.UUID(job_id))
        assert job.transfer_policy == CostFlags.TRANSFER_ALWAYS  # the double's default
        writes = {
            "transfer_policy": CostFlags.TRANSFER_STANDARD,
            "dynamic_content": True,
            "high_performance": True,
            "max_download_size": 2**40,
            "use_stored_credentials": CredentialTarget.PROXY,
            "on_demand": False,
            "minimum_notification_interval": 500,
        }
        double.clear_calls()
        for name, value in writes.items():
            setattr(job, name, value)
        for name, value in writes.items():
            assert getattr(job, name) == value, name
        assert double.calls() == {"Job.SetProperty": 7, "Job.GetProperty": 7}
        assert isinstance(job.transfer_policy, CostFlags)
    code, _, err = cli_double(double, "set", job_id, "--transfer-policy", "no-surcharge")
    assert code == 0, err
    code, out, _ = cli_double(double, "show", job_id, "--json")
    assert json.loads(out)["transfer_policy"] == int(CostFlags.TRANSFER_NO_SURCHARGE)


@windows_only
def test_a_job_without_job5_reads_none_in_properties_and_names_bits_5(double):
    double.reset(job_level=4)
    job_id = double.add_job("no job5")
    with winbits.connect(double.clsid()) as bits:
        job = bits.get_job(uuid.UUID(job_id))
        with pytest.raises(winbits.NotSupportedError, match=r"IBackgroundCopyJob5 \(BITS 5\.0\)"):
            job.transfer_policy = CostFlags.TRANSFER_STANDARD
        props = job.properties()
        assert props.transfer_policy is None and props.on_demand is None
        assert props.peer_caching == PeerCaching(0)  # Job4 is there


@windows_only
def test_the_http_method_round_trips_and_needs_http_options_2(double):
    job_id = double.add_job("verb")
    with winbits.connect(double.clsid()) as bits:
        job = bits.get_job(uuid.UUID(job_id))
        upload = bits.create_job("up", JobType.UPLOAD)
        double.clear_calls()
        assert job.http_method == "GET"  # the defaults of each type
        assert upload.http_method == "BITS_POST"
        job.http_method = "PUT"
        assert job.http_method == "PUT"
        assert double.calls() == {  # HttpOptions2 asked for once per job object
            "Job.QueryInterface": 2,
            "Http.GetHttpMethod": 3,
            "Http.SetHttpMethod": 1,
        }
        assert job.properties().http_method == "PUT"
        upload.cancel()
    double.reset(job_level=4)
    old = double.add_job("old")
    with winbits.connect(double.clsid()) as bits:
        job = bits.get_job(uuid.UUID(old))
        match = r"IBackgroundCopyJobHttpOptions2 \(BITS 10\.2\)"
        with pytest.raises(winbits.NotSupportedError, match=match):
            job.http_method = "PUT"
        assert job.properties().http_method is None


@windows_only
def test_a_files_response_headers_read_as_a_dict_and_need_file5(double):
    job_id = double.add_job("headers")
    answer = (
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nSet-Cookie: a=1\r\n"
        'Set-Cookie: b=2\r\nETag: "x:y"\r\n\r\n'
    )
    double.add_file(job_id, "http://h/a", "C:\\a", response_headers=answer)
    double.add_file(job_id, "http://h/b", "C:\\b")
    with winbits.connect(double.clsid()) as bits:
        first, second = bits.get_job(uuid.UUID(job_id)).files()
        double.clear_calls()
        assert first.http_response_headers == {
            "Content-Type": "text/plain",
            "Set-Cookie": "a=1, b=2",
            "ETag": '"x:y"',
        }
        assert second.http_response_headers == {}  # no answer yet
        assert first.http_response_headers["ETag"] == '"x:y"'
        assert double.calls() == {"File.QueryInterface": 2, "File.GetProperty": 3}
        assert double.strings()[1] == 0  # every string handed out was freed
    double.reset(file_level=4)
    job_id = double.add_job("old")
    double.add_file(job_id, "http://h/a", "C:\\a")
    with winbits.connect(double.clsid()) as bits:
        (f,) = bits.get_job(uuid.UUID(job_id)).files()
        with pytest.raises(winbits.NotSupportedError, match=r"IBackgroundCopyFile5 \(BITS 5\.0\)"):
            _ = f.http_response_headers


@windows_only
def test_upload_sends_a_file_with_the_download_options_and_completes(double, tmp_path, monkeypatch):
    source = tmp_path / "report.txt"
    source.write_bytes(b"x" * 1500)
    monkeypatch.setenv("WINBITS_TEST_PASSWORD", PASSWORD)
    helper = when_queued(double, lambda job: finish(double, job, 1500, 0))
    code, out, err = cli_double(
        double, "upload", str(source), "https://h/upload", "--priority", "high",
        "--header", f"X-Token: {HEADER_VALUE}", "--user", "ann",
        "--password-env", "WINBITS_TEST_PASSWORD", "--timeout", "60",
    )  # fmt: skip
    helper.join(10)
    assert code == 0, err
    assert out.startswith(f"Uploaded {source} to https://h/upload, 1.5 KiB in ")
    assert "100.0%" in err  # the progress bar
    calls = double.calls()
    assert calls["Job.SetPriority"] == 1 and calls["Http.SetCustomHeaders"] == 1
    assert calls["Job.SetCredentials"] == 1 and calls["Job.Complete"] == 1
    assert PASSWORD not in out + err and HEADER_VALUE not in out + err
    with winbits.connect(double.clsid()) as bits:
        assert bits.jobs() == []  # completed: out of the queue
    assert source.read_bytes() == b"x" * 1500


@windows_only
def test_a_failed_upload_names_the_url_and_cancels(double, tmp_path):
    source = tmp_path / "report.txt"
    source.write_bytes(b"data")

    helper = when_queued(double, lambda job: double.set_state(f"{{{job.id}}}", 4))  # ERROR
    code, out, err = cli_double(double, "upload", str(source), "http://h/up")
    helper.join(10)
    assert (code, out) == (1, "")
    assert err.splitlines()[-1] == (
        "winbits: upload of http://h/up failed: BITS gave no reason (the job is ERROR)"
    )
    with winbits.connect(double.clsid()) as bits:
        assert bits.jobs() == []  # cancelled


@windows_only
def test_upload_of_a_file_that_is_not_there_makes_no_job(double, tmp_path):
    missing = tmp_path / "missing.txt"
    code, out, err = cli_double(double, "upload", str(missing), "http://h/up")
    assert (code, out) == (1, "")
    assert err == f"winbits: {missing} is not a file: upload sends an existing file\n"
    assert double.calls().get("Manager.CreateJob") is None


@windows_only
def test_headers_made_write_only_are_kept_but_never_read_back(double):
    """BITS 10.3: after MakeCustomHeadersWriteOnly, GetCustomHeaders answers
    E_ACCESSDENIED; `show` names no header rather than failing."""
    double.reset(job_level=6)
    job_id = double.add_job("write-only")
    with winbits.connect(double.clsid()) as bits:
        job = bits.get_job(uuid.UUID(job_id))
        job.custom_headers = {"X-Api-Key": HEADER_VALUE}
        assert job.custom_headers == {"X-Api-Key": HEADER_VALUE}
        double.clear_calls()
        job.make_custom_headers_write_only()
        assert double.calls() == {"Job.QueryInterface": 1, "Http.MakeCustomHeadersWriteOnly": 1}
        with pytest.raises(winbits.AccessDeniedError) as denied:
            _ = job.custom_headers
        assert HEADER_VALUE not in str(denied.value)
        assert job.properties().custom_header_names is None
    code, out, err = cli_double(double, "show", job_id, "--json")
    assert code == 0, err
    assert json.loads(out)["custom_header_names"] is None and HEADER_VALUE not in out


@windows_only
def test_write_only_headers_name_bits_10_3_where_this_bits_lacks_them(double):
    job_id = double.add_job("older")  # job_level 5: HttpOptions2, not 3
    with winbits.connect(double.clsid()) as bits:
        job = bits.get_job(uuid.UUID(job_id))
        match = r"IBackgroundCopyJobHttpOptions3 \(BITS 10\.3\)"
        with pytest.raises(winbits.NotSupportedError, match=match):
            job.make_custom_headers_write_only()


@windows_only
@pytest.mark.parametrize("level", [6, 5], ids=["bits10_3", "bits10_2"])
def test_a_download_makes_its_headers_write_only_where_bits_can(double, tmp_path, level):
    double.reset(job_level=level)
    helper = when_queued(double, lambda job: finish(double, job))
    with winbits.connect(double.clsid()) as bits:
        bits.download("http://h/k.bin", str(tmp_path / "k.bin"), custom_headers={"X-K": "v"})
        helper.join()
    assert double.calls().get("Http.MakeCustomHeadersWriteOnly", 0) == (level == 6)
    assert double.calls()["Http.SetCustomHeaders"] == 1


@windows_only
@pytest.mark.parametrize("readable", [False, True], ids=["default", "readable"])
def test_the_command_line_makes_headers_write_only_unless_asked(double, tmp_path, readable):
    double.reset(job_level=6)
    helper = when_queued(double, lambda job: finish(double, job))
    more = ["--readable-headers"] if readable else []
    code, _, err = cli_double(
        double, "download", "http://h/c.bin", str(tmp_path / "c.bin"), "--header", "X-K: v", *more
    )
    helper.join()
    assert code == 0, err
    assert double.calls().get("Http.MakeCustomHeadersWriteOnly", 0) == (not readable)


@windows_only
def test_a_helper_token_is_set_read_and_cleared_through_token_options(double):
    job_id = double.add_job("helper")
    with winbits.connect(double.clsid()) as bits:
        job = bits.get_job(uuid.UUID(job_id))
        double.clear_calls()
        job.helper_token_flags = winbits.HelperTokenFlags.LOCAL_FILE | 2
        assert job.helper_token_flags == winbits.HelperTokenFlags(3)
        assert job.helper_token_sid is None  # none set yet
        job.set_helper_token()
        sid = job.helper_token_sid
        assert sid is not None and sid.startswith("S-1-5-")  # this process's account
        job.clear_helper_token()
        assert job.helper_token_sid is None
        assert double.calls() == {
            "Job.QueryInterface": 1,  # IBitsTokenOptions, asked for once per job object
            "Token.SetHelperTokenFlags": 1,
            "Token.GetHelperTokenFlags": 1,
            "Token.GetHelperTokenSid": 3,
            "Token.SetHelperToken": 1,
            "Token.ClearHelperToken": 1,
        }
        with pytest.raises(ValueError, match="must be 0 to 3"):
            job.helper_token_flags = 4
        props = job.properties()
        assert props.helper_token_flags == winbits.HelperTokenFlags(3)
    code, out, err = cli_double(double, "set", job_id, "--helper-token", "network", "--json")
    assert code == 0, err
    assert json.loads(out)["set"] == ["helper_token"]
    code, out, _ = cli_double(double, "show", job_id, "--json")
    shown = json.loads(out)
    assert shown["helper_token_flags"] == ["NETWORK"] and shown["helper_token_sid"].startswith(
        "S-1-5-"
    )


@windows_only
def test_token_options_and_file6_name_the_bits_version_that_brings_them(double):
    double.reset(job_level=4, file_level=5)
    job_id = double.add_job("older")
    double.add_file(job_id, "http://h/a", "C:\\a", total=10)
    with winbits.connect(double.clsid()) as bits:
        job = bits.get_job(uuid.UUID(job_id))
        with pytest.raises(winbits.NotSupportedError, match=r"IBitsTokenOptions \(BITS 4\.0\)"):
            job.set_helper_token()
        assert job.properties().helper_token_flags is None
        with pytest.raises(winbits.NotSupportedError, match=r"IBackgroundCopyFile6 \(BITS 10\.1\)"):
            job.files()[0].request_file_ranges([(0, 5)])
    code, _, err = cli_double(double, "set", job_id, "--helper-token", "local-file")
    assert code == 1 and "IBitsTokenOptions (BITS 4.0)" in err


@windows_only
def test_replace_remote_prefix_moves_every_matching_file_and_acl_flags_round_trip(double):
    job_id = double.add_job("mirror")
    for name in ("a", "b"):
        double.add_file(job_id, f"http://old.example/pub/{name}", f"C:\\{name}")
    double.add_file(job_id, "http://other.example/c", "C:\\c")
    with winbits.connect(double.clsid()) as bits:
        job = bits.get_job(uuid.UUID(job_id))
        job.replace_remote_prefix("http://old.example/pub/", "https://mirror.example/p/")
        assert [f.remote_name for f in job.files()] == [
            "https://mirror.example/p/a",
            "https://mirror.example/p/b",
            "http://other.example/c",
        ]
        with pytest.raises(ValueError, match="non-empty"):
            job.replace_remote_prefix("", "http://x/")
        job.file_acl_flags = winbits.FileAclFlags.OWNER | winbits.FileAclFlags.DACL
        assert job.file_acl_flags == winbits.FileAclFlags(5)
        with pytest.raises(ValueError, match="must be 0 to 15"):
            job.file_acl_flags = 0x10


@windows_only
def test_an_on_demand_file_takes_ranges_and_says_what_it_holds(double):
    double.reset(file_level=6)
    job_id = double.add_job("on demand")
    double.add_file(job_id, "http://h/big", "C:\\big", total=100, transferred=40)
    with winbits.connect(double.clsid()) as bits:
        f = bits.get_job(uuid.UUID(job_id)).files()[0]
        assert f.filled_file_ranges == [winbits.FileRange(0, 40)]
        double.clear_calls()
        f.request_file_ranges([(90, None), (50, 10)])
        f.update_download_position(60)
        assert double.calls() == {  # File6 was asked for once, by filled_file_ranges
            "File.RequestFileRanges": 1,
            "File.UpdateDownloadPosition": 1,
        }
        with pytest.raises(winbits.BitsError) as bad:
            f.request_file_ranges([(95, 10)])  # past the end of the file
        assert bad.value.hresult == 0x8020002C  # BG_E_INVALID_RANGE
        with pytest.raises(ValueError, match="overlap"):
            f.request_file_ranges([(0, 10), (5, 10)])
