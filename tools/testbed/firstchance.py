"""A passing run's output without Wine's first-chance exceptions: Wine's RPC proxies raise
RPC_X_NULL_REF_POINTER (0x800706F4), and ERROR_NOACCESS (0x800703E6) where the service
faults copying a null string, and catch them themselves; Python's faulthandler,
which pytest turns on, reports every exception with the error bit as "Windows fatal
exception" with a dump of every thread (docs/testbed.md). Those dumps, and only those,
are left out of what is relayed and counted instead; any other dump (an access
violation: a real crash) goes through whole."""

from __future__ import annotations

import re

# The headers faulthandler writes for them, possibly after pytest's dots on one line.
HEADERS = (
    b"Windows fatal exception: code 0x800706f4",
    b"Windows fatal exception: code 0x800703e6",
)
# The lines of a dump: blank lines, thread headers, and frames.
_DUMP_LINE = re.compile(rb"^(\s*|(Current thread|Thread) 0x[0-9a-fA-F]+ .*|  File .*)$")


class FirstChanceFilter:
    """feed() the bytes of a stream, in any pieces; it returns what to show. A line
    is held only while it could still turn out to be the start of such a dump."""

    def __init__(self) -> None:
        self.left_out = 0  # dumps left out
        self._skipping = False
        self._tail = b""

    def feed(self, chunk: bytes) -> bytes:
        text = self._tail + chunk
        lines = text.split(b"\n")
        self._tail = lines.pop()  # no newline yet
        shown = [kept for line in lines if (kept := self._line(line)) is not None]
        out = b"".join(line + b"\n" for line in shown)
        if not self._skipping and not self._may_begin_a_dump(self._tail):
            out, self._tail = out + self._tail, b""  # pytest's dots as they come
        return out

    def close(self) -> bytes:
        rest, self._tail = self._tail, b""
        return b"" if self._skipping else rest

    def _line(self, line: bytes) -> bytes | None:
        """The part of a complete line to show, or None."""
        header = next((h for h in HEADERS if h in line), None)
        if header is not None:
            self.left_out += 1
            self._skipping = True
            before = line.split(header, 1)[0]
            return before or None
        if self._skipping:
            if _DUMP_LINE.match(line.rstrip(b"\r")):
                return None
            self._skipping = False
        return line

    @staticmethod
    def _may_begin_a_dump(tail: bytes) -> bool:
        """Whether the end of a line not yet ended could grow into one of HEADERS."""
        return any(
            h in tail or any(tail.endswith(h[:n]) for n in range(1, len(h))) for h in HEADERS
        )
