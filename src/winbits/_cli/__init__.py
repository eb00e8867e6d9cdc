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

import contextlib
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
    except Failure as e:
        say(str(e))
        return e.code
    except AccessDeniedError as e:
        if args is not None and getattr(args, "all_users", False):
            say(
                "every user's jobs can be read by an administrator only: "
                "run from an elevated prompt"
            )
        else:
            say(str(e))
        return Exit.ACCESS_DENIED
    except JobNotFoundError as e:
        say(f"no such job: {e}")
        return Exit.FAILED
    except ServiceUnavailableError as e:
        say(str(e))
        return Exit.UNAVAILABLE
    except PartialCompleteError as e:
        say(str(e))
        return Exit.PARTIAL
    except (BitsError, FileExistsError, ValueError) as e:
        say(str(e))
        return Exit.FAILED
    except KeyboardInterrupt:
        say("interrupted")
        return Exit.INTERRUPTED
    except SystemExit as e:  # --help and --version print, then end here; argparse's 2
        return e.code if isinstance(e.code, int) else 0
