"""The winbits command: list, watch, show, set, download, upload, the verbs and export,
one module per concern (parser: options.py; commands: commands.py and transfer.py; what
they print: render.py and progress.py; where downloads land: targets.py; long loops:
loops.py).

Everything shown comes from the poller's records (one walk of the queue, the fewest
round trips). Exit codes: usage.Exit (0 success, 2 a usage error, distinct codes for a
failed transfer, a timeout, a partial completion, access denied and BITS unavailable,
130 on Ctrl-C), each failure one line on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
from typing import TextIO, cast

from .._errors import (
    AccessDeniedError,
    BitsError,
    JobNotFoundError,
    PartialCompleteError,
    ServiceUnavailableError,
)
from .options import parse
from .render import failure_json
from .usage import Exit, Failure, Shown, say

__all__ = ["main"]


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Runs one command; -> its exit code (usage.Exit). Everything it prints passes
    through the one escaping point (usage.Shown)."""
    shown = cast(TextIO, Shown(out or sys.stdout))
    with contextlib.redirect_stderr(cast(TextIO, Shown(sys.stderr))):
        return _run(argv, shown)


def _run(argv: Sequence[str] | None, out: TextIO) -> int:
    args = None
    try:
        args = parse(sys.argv[1:] if argv is None else argv)
        return int(args.run(args, out))
    except SystemExit as e:  # --help and --version print, then end here; argparse's 2
        return e.code if isinstance(e.code, int) else 0
    except (Failure, BitsError, FileExistsError, ValueError, KeyboardInterrupt) as e:
        message, code = _failure(e, args)
        say(message)
        if args is not None and getattr(args, "json", False) and getattr(args, "one_object", False):
            hresult = getattr(e, "hresult", None)
            report = failure_json(str(args.command), message, code, hresult)
            out.write(json.dumps(report) + "\n")
        return int(code)  # a plain int: 3.10 prints an IntEnum by its name


def _failure(e: BaseException, args: argparse.Namespace | None) -> tuple[str, Exit]:
    """The one line and the exit code (usage.Exit) of a failure."""
    if isinstance(e, Failure):
        return str(e), e.code
    if isinstance(e, KeyboardInterrupt):
        return "interrupted", Exit.INTERRUPTED
    if isinstance(e, AccessDeniedError):
        if args is not None and getattr(args, "all_users", False):
            return (
                "every user's jobs can be read by an administrator only: "
                "run from an elevated prompt",
                Exit.ACCESS_DENIED,
            )
        return str(e), Exit.ACCESS_DENIED
    if isinstance(e, JobNotFoundError):
        return f"no such job: {e}", Exit.FAILED
    if isinstance(e, ServiceUnavailableError):
        return str(e), Exit.UNAVAILABLE
    if isinstance(e, PartialCompleteError):
        return str(e), Exit.PARTIAL
    return str(e), Exit.FAILED
