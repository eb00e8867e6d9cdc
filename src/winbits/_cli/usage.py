"""How the command line talks back: a usage error is one line on stderr, and every
line leaves through say(); everything written to stdout and stderr passes the one
escaping point, Shown."""

from __future__ import annotations

import enum
import io
import sys
from typing import TextIO

from .._types import visible


class Shown(io.TextIOBase):
    """The one escaping point of the command line: a text stream that writes every
    control, format (bidi, zero-width) and separator character of what it is given as
    its escape (visible()), line ends excepted, so that no name, URL or message from BITS
    can move the cursor, clear the screen or reorder what a reader sees. winbits' own
    terminal controls go through control(), unescaped."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write("\n".join(map(visible, text.split("\n"))))
        return len(text)

    def control(self, sequence: str) -> None:
        self.stream.write(sequence)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    def writable(self) -> bool:
        return True


def control(stream: TextIO, sequence: str) -> None:
    """Writes one of winbits' own terminal controls (a carriage return, a screen clear)
    past the escaping point."""
    getattr(stream, "control", stream.write)(sequence)


class Exit(enum.IntEnum):
    """The exit codes: the same code for the same cause in every command."""

    OK = 0
    FAILED = 1  # a transfer failed; BITS refused; something else went wrong
    USAGE = 2  # a mistake in the command line (argparse's own code)
    TIMEOUT = 3  # --timeout passed, or no byte moved for --stall-timeout
    PARTIAL = 4  # BITS completed some files of the job, not all
    ACCESS_DENIED = 5  # another user's job, or every user's without administrator
    UNAVAILABLE = 6  # BITS cannot be reached (the service is disabled, not Windows)
    INTERRUPTED = 130  # Ctrl-C


class Failure(Exception):
    """One line on stderr, then the exit code ``code``."""

    def __init__(self, message: str, code: Exit = Exit.FAILED) -> None:
        super().__init__(message)
        self.code = code


class UsageError(Failure):
    """A mistake in the command line: one line on stderr, exit code 2."""

    def __init__(self, message: str) -> None:
        super().__init__(message, Exit.USAGE)


def say(message: str) -> None:
    """One line on stderr, "winbits: " first (argparse's messages start with the
    command's own prog). Every error message leaves through here, and main() has made
    stderr a Shown stream."""
    print(message if message.startswith("winbits") else "winbits: " + message, file=sys.stderr)
