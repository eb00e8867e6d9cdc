"""The stub (_native.pyi) matches the built module: mypy's stubtest, where mypy is
installed (the Wine test bed's CPython 3.12; the wheel workflow runs it on Windows)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import windows_only

pytestmark = windows_only


def test_the_stub_matches_the_built_module(tmp_path):
    pytest.importorskip("mypy.stubtest")
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\n")  # not the project's: stubtest checks the installed module
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy.stubtest",
            "winbits._native",
            "--mypy-config-file",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Success" in r.stdout
