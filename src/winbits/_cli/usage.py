"""How the command line talks back: a usage error is one line on stderr, and every
line leaves through say(), with control characters made visible."""

from __future__ import annotations

import sys

from .._types import visible


class UsageError(Exception):
    """A mistake in the command line: one line on stderr, exit code 1."""


def say(message: str) -> None:
    """One line on stderr, "winbits: " first (argparse's messages start with the
    command's own prog); control characters in names from BITS made visible. Every
    error message leaves through here."""
    text = visible(message)
    print(text if text.startswith("winbits") else "winbits: " + text, file=sys.stderr)
