"""Sphinx configuration of the documentation site (python3 tools/wine.py docs): the
Markdown pages of docs/ through MyST, the furo theme, the API reference by autodoc from
the facade's docstrings. Importing winbits imports no Windows code (its native module is
absent off Windows), so the site builds on Linux."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.environ["WINBITS_SRC"])  # src/, set by tools/testbed/docs.py

import winbits

project = "winbits"
release = version = winbits.__version__
extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["conf.py"]
html_theme = "furo"
html_title = f"winbits {release}"
myst_heading_anchors = 3
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "undoc-members": False}
# A type named in a docstring (bytes, str) that is also the name of a result's field
# (DownloadResult.bytes) is ambiguous to Sphinx; the type is meant.
suppress_warnings = ["ref.python"]
