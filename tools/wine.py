#!/usr/bin/env python3
"""The Linux test bed for winbits: Windows CPython 3.10-3.13 under Wine, the extension
cross-built with mingw-w64. Standard library only; every step is idempotent and caches
what it downloads in git-ignored folders (.cache/, build/). How it works:
docs/testbed.md; the code, by concern: tools/testbed/.

  python3 tools/wine.py setup    Wine + mingw-w64 (apt), Windows Pythons + test tools, prefix
  python3 tools/wine.py build    cross-build winbits._native (abi3, 3.10 headers) + test double
  python3 tools/wine.py test     Linux-native tests, then the whole suite under each Windows Python
  python3 tools/wine.py run [--python 3.X] -- ARGS...   Windows Python with winbits importable
  python3 tools/wine.py demo     download a file through Wine's BITS, then show the job table
  python3 tools/wine.py bench [--python 3.X] [-- ARGS...]   benchmarks/bench.py, side by side
  python3 tools/wine.py lint     ruff, mypy --strict, validate-pyproject, actionlint, zizmor,
                                 clang-format, references to files
  python3 tools/wine.py wheel    the cp310-abi3-win_amd64 wheel of the cross-built module
  python3 tools/wine.py docs     the documentation site (offline, warnings as errors) into
                                 build/docs/html

Each subcommand first does the steps it depends on.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable

from testbed import build, docs, lint, provision, runner, wheel
from testbed.common import PYTHONS, log


def _done(step: Callable[[], object]) -> int:
    step()
    return 0


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
    sub.add_parser("lint", help="ruff, mypy, validate-pyproject, actionlint, zizmor, clang-format")
    sub.add_parser("wheel", help="the cp310-abi3-win_amd64 wheel, from the cross-built module")
    sub.add_parser("docs", help="the documentation site (Sphinx, MyST, furo) into build/docs/html")
    p = sub.add_parser("bench", help="benchmarks: winbits vs pywin32, comtypes, ctypes")
    p.add_argument("--python", choices=list(PYTHONS), default="3.12")
    p.add_argument("args", nargs=argparse.REMAINDER, help="-- then bench.py's arguments")
    args = parser.parse_args(argv)
    if args.command in ("run", "bench") and args.args[:1] == ["--"]:
        args.args = args.args[1:]
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "setup": lambda a: _done(provision.setup),
        "build": lambda a: _done(build.build),
        "test": runner.test,
        "run": runner.run_cmd,
        "demo": runner.demo,
        "bench": runner.bench,
        "lint": lambda a: lint.lint(),
        "wheel": lambda a: _done(wheel.wheel),
        "docs": lambda a: docs.docs(),
    }
    try:
        return commands[args.command](args)
    except subprocess.CalledProcessError as e:
        log(f"failed: {' '.join(map(str, e.cmd))} (exit {e.returncode})")
        return 1


if __name__ == "__main__":
    sys.exit(main())
