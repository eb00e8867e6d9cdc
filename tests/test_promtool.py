"""Prometheus' own tools on what winbits ships: `promtool check metrics` on an export
(the counters, the exporter's health and the per-job series), and `promtool check
rules` / `promtool test rules` on contrib/prometheus. Runs where Debian's prometheus
package is installed (the Linux test bed installs it); elsewhere it skips."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import winbits
from winbits import _counters
from winbits._types import FileProgress, FileRecord, JobProgress, JobRecord, PeerStats

RULES = Path(__file__).resolve().parent.parent / "contrib" / "prometheus"
PROMTOOL = shutil.which("promtool")
# On the test bed (CI) promtool must be there; a missing one is a failure, not a skip.
pytestmark = pytest.mark.skipif(
    PROMTOOL is None and (sys.platform == "win32" or not os.environ.get("CI")),
    reason="promtool is not installed",
)


def promtool(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL, "the test bed installs Debian's prometheus package (promtool)"
    return subprocess.run(
        [PROMTOOL, *args],
        input=None if stdin is None else stdin.decode(),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=RULES,
    )


def test_an_export_passes_promtool_check_metrics(tmp_path):
    pytest.importorskip("prometheus_client")
    from winbits._prometheus import Health, write_textfile

    files = (
        FileRecord("http://Cache.Example/a", "C:\\a", FileProgress(10, 10, True), PeerStats(6, 4)),
        FileRecord("\\\\srv\\share\\b", "C:\\b", FileProgress(None, 5, False), None),
    )
    job = JobRecord(
        uuid.UUID(int=1),
        "j",
        None,
        winbits.JobState.TRANSFERRING,
        JobProgress(None, 15, 2, 1),
        None,
        files,
    )
    snap = winbits.Snapshot((job,), frozenset(), frozenset(), frozenset())
    counters = _counters.Counters()
    counters.update(snap, now=0)
    path = tmp_path / "bits.prom"
    write_textfile(snap, str(path), Health(True, 1_700_000_000.0, 2), counters, per_job=True)
    r = promtool("check", "metrics", stdin=path.read_bytes())
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


def test_the_rules_pass_promtool_check_rules():
    r = promtool("check", "rules", "winbits.rules.yml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS: 13 rules found" in r.stdout


def test_the_rules_pass_their_unit_tests():
    r = promtool("test", "rules", "winbits.rules.test.yml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout
