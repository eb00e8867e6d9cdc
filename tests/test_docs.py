"""Every code block in the README and the documentation pages (docs/*.md) runs as
written: the Python blocks under Windows Python against the real BITS (the download's
URL and folder pointed at a loopback server and a temporary folder), and every `winbits`
command line and option they show is one the command knows (its --help)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import windows_only
from rangeserver import make_payload

ROOT = Path(__file__).resolve().parent.parent
PAGES = {
    p.relative_to(ROOT).as_posix(): p.read_text(encoding="utf-8")
    for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
}
BLOCKS = [
    b for text in PAGES.values() for b in re.findall(r"^```(\w*)\n(.*?)^```", text, re.S | re.M)
]
PYTHON = [code for lang, code in BLOCKS if lang == "python"]


def run_python(code: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **env},
    )


def test_the_docs_have_the_blocks_this_test_runs():
    assert len(PYTHON) == 5
    assert "https://example.com/big.iso" in PYTHON[0]  # the README's tour
    assert sum("download_async" in code for code in PYTHON) == 1  # "Waiting in asyncio"
    assert sum("DOWNLOAD_PASSWORD" in code for code in PYTHON) == 1  # "Driving a job"
    assert sum("print(winbits.bits_version())" in code for code in PYTHON) == 1  # the start
    assert all("import time" in code for code in PYTHON if "time." in code)


@windows_only
@pytest.mark.parametrize("index", range(len(PYTHON)))
def test_a_python_block_runs(index, server, serve, tmp_path):
    payload = make_payload(300_000, seed=11)
    code = PYTHON[index]
    code = code.replace("https://example.com/big.iso", serve("big.iso", payload))
    code = code.replace("C:\\Downloads", str(tmp_path))
    # The settings block: the server asks for the password, the header must arrive.
    env = {"DOWNLOAD_PASSWORD": "readme-pw", "DOWNLOAD_KEY": "readme-key"}
    if "DOWNLOAD_PASSWORD" in code:
        server.logins["/big.iso"] = "alice:readme-pw"
    before = len(server.headers_seen)
    try:
        r = run_python(code, tmp_path, env)
    finally:
        server.logins.clear()
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    for name in ("big.iso", "big2.iso", "big3.iso", "big4.iso"):
        if "Downloads\\" + name in PYTHON[index]:  # a file the block downloads to
            assert (tmp_path / name).read_bytes() == payload
    if "print(winbits.bits_version())" in code:
        assert r.stdout.strip().splitlines()[-1].startswith("(")  # bits_version()
    if "download_async" in code:  # the download's bytes, then the progress, ending with all of it
        lines = r.stdout.strip().splitlines()
        assert lines[0] == str(len(payload))
        assert lines[-1] == f"{len(payload)} bytes, 1 file(s)"
    if "DOWNLOAD_KEY" in code:
        assert r.stdout.strip() == "('X-Api-Key',)"
        assert any(h.get("X-Api-Key") == "readme-key" for h in server.headers_seen[before:])


def shown_commands() -> list[list[str]]:
    """Each `winbits ...` command line the pages show, in a block or in a table."""
    lines: list[str] = []
    for lang, code in BLOCKS:
        if lang == "":  # where a block shows prompts, the rest of it is output
            rows = code.splitlines()
            prompted = [row[2:] for row in rows if row.startswith("$ ")]
            lines += prompted or rows
    for text in PAGES.values():
        lines += re.findall(r"^\| `(winbits [^`]*)`", text, re.M)
    found = []
    for line in lines:
        if line == "winbits" or line.startswith("winbits "):
            words = line.replace("\\|", "|").split()
            found.append(words[1:])
    return found


def test_the_docs_show_every_command():
    commands = {words[0].split("|")[0] for words in shown_commands() if words}
    assert {"list", "watch", "download", "cancel", "export", "--version"} <= commands


@windows_only
def test_every_command_and_option_the_docs_show_is_known():
    for words in shown_commands():
        if not words or words[0] == "--version":
            continue
        for command in words[0].split("|"):
            r = subprocess.run(
                [sys.executable, "-m", "winbits", command, "--help"],
                capture_output=True,
                text=True,
                timeout=60,
                stdin=subprocess.DEVNULL,
            )
            assert r.returncode == 0, (command, r.stderr)
            for option in re.findall(r"--[a-z][a-z-]*", " ".join(words[1:])):
                assert option in r.stdout, f"winbits {command} has no {option}"


def test_the_export_example_parses_as_a_shell_would_split_it():
    from winbits._cli import options

    (line,) = [c for lang, c in BLOCKS if lang == "" and c.startswith("winbits export")]
    words = [w.strip('"') for w in shlex.split(line.strip(), posix=False)]
    args = options.parse(words[1:])
    assert args.prometheus == r"C:\Program Files\windows_exporter\textfile_inputs\bits.prom"
    assert args.interval == 60
