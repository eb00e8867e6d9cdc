"""Driving a job: name, description, priority, credentials and custom headers.

Wine's BITS applies credentials and custom headers for real (docs/testbed.md): the
loopback server demands Basic authentication and records the headers it gets."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import uuid

import pytest
from conftest import wait_for_state, windows_only

import winbits
from winbits import AuthScheme, CredentialTarget, JobPriority, JobState
from winbits._api import Job, format_headers

PASSWORD = "s3cret-Pa55-" + uuid.uuid4().hex  # found nowhere it should not be
HEADER_VALUE = "token-" + uuid.uuid4().hex


class _NoCom:
    """A native job that fails the test if any COM call is made."""

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
    ],
)
def test_bad_settings_are_refused_before_any_com_call(call, error):
    job = Job(_NoCom())  # type: ignore[arg-type]
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


def run_cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "winbits", *argv],
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )


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
    assert r.returncode == 1 and says in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert not (tmp_path / "x").exists()


def test_a_bad_header_option_is_refused_without_its_value(tmp_path):
    r = run_cli("download", "http://127.0.0.1:9/x", str(tmp_path / "x"), "--header", "Bad Name: v")
    assert r.returncode == 1 and "not an HTTP header name: 'Bad Name'" in r.stderr
    r = run_cli(
        "download", "http://127.0.0.1:9/x", str(tmp_path / "x"), "--header", "tok" + HEADER_VALUE
    )
    assert r.returncode == 1 and "no ':' found" in r.stderr and HEADER_VALUE not in r.stderr
