"""The documentation site: the Markdown pages of docs/ (and the changelog), a command-line
reference generated from the argparse parser (so it cannot drift from --help), and the
API reference from the facade's docstrings (autodoc: importing winbits imports no
Windows code), built by Sphinx with MyST and furo into build/docs/html. Offline; any
warning fails the build."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys

from .common import BUILD, CACHE, ROOT, log, requirements, run
from .provision import ensure_venv

DOCS_TOOLS = requirements("docs")
DOCS_VENV = CACHE / "docs-venv"
STAGE = BUILD / "docs-src"  # the pages as Sphinx reads them
SITE_DIR = ROOT / "build" / "docs" / "html"
WIDTH = "100"  # the columns argparse wraps the help to: the same page on any terminal


def cli_reference() -> str:
    """A page with `winbits --help` and every command's --help, as the parser prints them."""
    os.environ["COLUMNS"] = WIDTH
    sys.path.insert(0, str(ROOT / "src"))
    try:
        from winbits._cli import options
    finally:
        sys.path.pop(0)
    parser = options.build_parser()
    parts = [
        "# Command-line reference",
        "",
        "Generated from the parser: what `--help` prints, command by command. What the "
        "commands do and their exit codes: [command-line.md](command-line.md).",
        "",
        "```text",
        parser.format_help().rstrip(),
        "```",
    ]
    (commands,) = [a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for name in options.COMMANDS:
        page = commands[name].format_help().rstrip()
        parts += ["", f"## winbits {name}", "", "```text", page, "```"]
    return "\n".join(parts) + "\n"


def stage() -> None:
    """docs/ as Sphinx reads it, with the generated pages and the changelog."""
    shutil.rmtree(STAGE, ignore_errors=True)
    shutil.copytree(ROOT / "docs", STAGE)
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    # the index's toctree names them "changelog" and "cli-reference"
    log_page = (STAGE / "changelog").with_suffix(".md")
    log_page.write_text(re.sub(r"\]\(docs/", "](", changelog), encoding="utf-8")
    (STAGE / "cli-reference").with_suffix(".md").write_text(cli_reference(), encoding="utf-8")


def docs() -> int:
    python = ensure_venv(DOCS_VENV, DOCS_TOOLS)
    stage()
    log(f"building the documentation site into {SITE_DIR.relative_to(ROOT)}")
    shutil.rmtree(SITE_DIR, ignore_errors=True)
    env = {**os.environ, "WINBITS_SRC": str(ROOT / "src"), "PYTHONDONTWRITEBYTECODE": "1"}
    run(
        [str(python), "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "-d",
         str(BUILD / "docs-doctrees"), str(STAGE), str(SITE_DIR)],
        env=env,
    )  # fmt: skip
    log(f"the site: {SITE_DIR.relative_to(ROOT)}/index.html")
    return 0
