"""Builds the test double (_bitsdouble) with this Python's compiler, for Windows runs
where the Linux test bed (tools/wine.py) has not already cross-built it.

    python tests/double/build.py OUT_DIR
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CSRC = HERE.parent.parent / "csrc"


def build(out_dir: Path) -> Path:
    from setuptools import Distribution, Extension

    ext = Extension(
        "_bitsdouble",
        sources=[str(HERE / "bitsdouble.cpp")],
        include_dirs=[str(CSRC)],
        libraries=["ole32", "oleaut32", "uuid", "advapi32"],
        extra_compile_args=["/std:c++17", "/EHsc"] if os.name == "nt" else ["-std=c++17"],
    )
    dist = Distribution({"name": "bitsdouble", "ext_modules": [ext]})
    cmd = dist.get_command_obj("build_ext")
    cmd.build_lib = str(out_dir)
    cmd.build_temp = str(out_dir / "tmp")
    cmd.ensure_finalized()
    cmd.run()
    return out_dir


if __name__ == "__main__":
    print(build(Path(sys.argv[1]).resolve()))
