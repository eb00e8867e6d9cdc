"""Where downloads land: a file name taken from a URL only when it is one plain name
that stays in DEST. The security boundary of `winbits download`: pure, tested on any OS."""

from __future__ import annotations

import ntpath
import unicodedata
from collections.abc import Callable, Sequence
from urllib.parse import unquote, urlsplit

from .._types import HIDDEN_CATEGORIES, redact_url
from .usage import UsageError

# Names Windows gives to devices in every folder, with or without an extension
# (Microsoft's "Naming Files, Paths, and Namespaces"): the digits of COM and LPT include
# 0 and the superscripts ¹ ² ³, and the console's own CONIN$ and CONOUT$.
_RESERVED = {
    "CON",
    "PRN",
    "AUX",
    "NUL",
    "CONIN$",
    "CONOUT$",
    *(f"{d}{i}" for d in ("COM", "LPT") for i in "0123456789\u00b9\u00b2\u00b3"),
}


def unsafe_name_reason(name: str) -> str | None:
    """Why `name` (decoded from a URL) is not one plain file name that stays inside the
    folder it is joined to; None when it is."""
    if not name:
        return "it names no file"
    if "/" in name or "\\" in name:
        return "it holds a path separator"
    if name in (".", ".."):
        return "it names a folder"
    if ":" in name:
        return "it holds a drive or stream separator (:)"
    categories = {unicodedata.category(c) for c in name}
    if "Cc" in categories:
        return "it holds control characters"
    if categories & HIDDEN_CATEGORIES:
        return (
            "it holds invisible format characters (a bidi override, a zero-width or "
            "separator character), which can disguise a name"
        )
    if name.endswith((".", " ")):
        return "it ends in a dot or space, which Windows drops"
    if name.split(".")[0].rstrip(" ").upper() in _RESERVED:
        return "it is a device name on Windows"
    return None


def _url_basename(url: str) -> str:
    """The file name at the end of a URL's path, decoded (a UNC path's last component
    as it is); refused unless it is one plain file name (no separators, no drive, no
    device, no control or format characters)."""
    if url.startswith("\\\\"):  # \\server\share\folder\file: no percent-encoding
        name = url.rsplit("\\", 1)[-1]
    else:
        name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    why = unsafe_name_reason(name)
    if why:
        shown = redact_url(url)
        raise UsageError(f"cannot take a file name from {shown}: {why}; give a file as DEST")
    return name


def plan_targets(
    urls: Sequence[str], dest: str, isdir: Callable[[str], bool], abspath: Callable[[str], str]
) -> list[tuple[str, str]]:
    """(url, absolute local path) for each URL: one URL to DEST, or into DEST when it is
    a directory; several URLs need DEST to be a directory."""
    if len(urls) > 1 and not isdir(dest):
        raise UsageError(f"several URLs need DEST to be an existing directory: {dest}")
    if isdir(dest):
        folder = abspath(dest)
        targets = [(u, abspath(ntpath.join(folder, _url_basename(u)))) for u in urls]
        for u, path in targets:  # the last guard: nothing lands outside DEST
            if ntpath.dirname(path).rstrip("\\/").lower() != folder.rstrip("\\/").lower():
                raise UsageError(f"{redact_url(u)} would land outside {dest}; give a file as DEST")
    elif dest.endswith(("\\", "/")):
        raise UsageError(f"{dest} is not an existing folder")
    else:
        targets = [(urls[0], abspath(dest))]
    names = [p.lower() for _, p in targets]
    if len(set(names)) != len(names):
        raise UsageError("two URLs would land in the same file")
    return targets
