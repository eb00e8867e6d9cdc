"""The wheel users would install, made here: setuptools builds the pure parts from
pyproject.toml (metadata, entry point, facade, py.typed, stub; on Linux it has no
extension to build); the cross-built _native.pyd joins them, and the `wheel` tool packs
the result under the cp310-abi3-win_amd64 tag, writing RECORD. No test double and no
tests go in. abi3audit checks that the extension uses 3.10's stable ABI only, and twine
the metadata."""

from __future__ import annotations

import shutil
import sys
import zipfile
from pathlib import Path

from .build import build
from .common import BUILD, ROOT, SITE, log, run
from .provision import ensure_linux_venv

WHEEL_TAG = "cp310-abi3-win_amd64"


def wheel() -> Path:
    build()
    wheel_tool = [str(ensure_linux_venv()), "-m", "wheel"]
    staging = BUILD / "wheel-staging"
    shutil.rmtree(staging, ignore_errors=True)
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(staging), str(ROOT)])
    (pure,) = staging.glob("winbits-*-py3-none-any.whl")
    run([*wheel_tool, "unpack", "-d", str(staging), str(pure)])
    (tree,) = (p for p in staging.iterdir() if p.is_dir())
    shutil.copyfile(SITE / "winbits" / "_native.pyd", tree / "winbits" / "_native.pyd")
    (info,) = tree.glob("*.dist-info")
    (info / "RECORD").unlink()  # `wheel pack` writes it anew
    (info / "WHEEL").write_text(
        f"Wheel-Version: 1.0\nGenerator: winbits tools/wine.py\n"
        f"Root-Is-Purelib: false\nTag: {WHEEL_TAG}\n"
    )
    out_dir = BUILD / "dist"
    out_dir.mkdir(parents=True, exist_ok=True)
    version = pure.name.split("-")[1]
    out = out_dir / f"winbits-{version}-{WHEEL_TAG}.whl"
    out.unlink(missing_ok=True)
    run([*wheel_tool, "pack", "-d", str(out_dir), str(tree)])
    names = zipfile.ZipFile(out).namelist()
    for needed in ("winbits/_native.pyd", "winbits/py.typed", "winbits/_native.pyi"):
        assert needed in names, f"{needed} missing from {out.name}"
    assert not [n for n in names if n.startswith("tests/") or "bitsdouble" in n], names
    venv_bin = Path(wheel_tool[0]).parent
    run([str(venv_bin / "abi3audit"), "--strict", "--summary", str(out)])  # 3.10's ABI only
    run([str(venv_bin / "twine"), "check", "--strict", str(out)])
    log(f"wheel: {out.relative_to(ROOT)} ({len(names)} files; abi3audit and twine check pass)")
    return out
