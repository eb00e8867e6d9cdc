"""Builds winbits._native from csrc/ with MSVC on Windows: C++17, ole32/oleaut32 (and
advapi32, secur32, winhttp, wevtapi and wbemuuid for accounts, logon sessions, proxies,
the event log and BranchCache's mode through WMI), as a stable-ABI (abi3, cp310) module,
except on free-threaded Pythons, which have no limited API. Elsewhere the package
installs without it and its calls raise NotSupportedError. The Linux test bed
cross-builds the same sources with mingw-w64 (tools/wine.py)."""

import sys
import sysconfig
from pathlib import Path

from setuptools import Extension, setup

FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
LIMITED = not FREE_THREADED

ext_modules = []
if sys.platform == "win32":
    ext_modules.append(
        Extension(
            "winbits._native",
            sources=sorted(p.as_posix() for p in Path("csrc").glob("*.cpp")),
            depends=sorted(p.as_posix() for p in Path("csrc").glob("*.h")),
            include_dirs=["csrc"],
            libraries=[
                "ole32",
                "oleaut32",
                "uuid",
                "advapi32",
                "secur32",
                "winhttp",
                "wevtapi",
                "wbemuuid",
            ],
            define_macros=[("Py_LIMITED_API", "0x030A0000")] if LIMITED else [],
            py_limited_api=LIMITED,
            extra_compile_args=["/std:c++17", "/EHsc", "/W4", "/WX", "/permissive-"],
        )
    )

setup(
    ext_modules=ext_modules,
    options={"bdist_wheel": {"py_limited_api": "cp310"}} if LIMITED and ext_modules else {},
)
