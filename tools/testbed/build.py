"""Cross-compiling winbits._native and the test double with mingw-w64, against the
headers of the oldest Windows Python the abi3 module targets (docs/testbed.md)."""

from __future__ import annotations

import shutil
from pathlib import Path

from .common import DOUBLE_DIR, OLDEST, ROOT, SITE, log, python_home, run
from .provision import CXX, ensure_apt, ensure_python

CXXFLAGS = ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Werror", "-shared"]
LDFLAGS = [
    "-lole32",
    "-loleaut32",
    "-luuid",
    "-lsecur32",
    "-lwinhttp",
    "-lwevtapi",
    "-lwbemuuid",
    "-static-libgcc",
    "-static-libstdc++",
    "-static",
]
LIMITED = ["Py_LIMITED_API=0x030A0000"]


def newer(output: Path, inputs: list[Path]) -> bool:
    """True when output is missing or older than any input."""
    if not output.exists():
        return True
    built = output.stat().st_mtime
    return any(p.stat().st_mtime > built for p in inputs)


def compile_module(sources: list[Path], headers: list[Path], output: Path) -> None:
    if not newer(output, sources + headers + [Path(__file__)]):
        return
    log(f"compiling {output.relative_to(ROOT)}")
    py = python_home(OLDEST)
    output.parent.mkdir(parents=True, exist_ok=True)
    run(
        [
            CXX,
            *CXXFLAGS,
            *(f"-D{d}" for d in LIMITED),
            f"-I{py / 'include'}",
            f"-I{ROOT / 'csrc'}",
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


def build() -> None:
    ensure_apt()
    ensure_python(OLDEST)
    csrc = ROOT / "csrc"
    headers = sorted(csrc.glob("*.h"))
    compile_module(sorted(csrc.glob("*.cpp")), headers, SITE / "winbits" / "_native.pyd")
    double = ROOT / "tests" / "double"
    compile_module(sorted(double.glob("*.cpp")), headers, DOUBLE_DIR / "_bitsdouble.pyd")
    sync_facade()
