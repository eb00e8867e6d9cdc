"""The winbits command: list, watch, show, set, download, upload, the verbs and export,
one module per concern (parser: options.py; commands: commands.py and transfer.py; what
they print: render.py and progress.py; where downloads land: targets.py; long loops:
loops.py).

Everything shown comes from the poller's records (one walk of the queue, the fewest
round trips). Exit codes: 0 success, 1 a BITS or usage error (one line on stderr), 130
on Ctrl-C.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from .._errors import AccessDeniedError, BitsError, JobNotFoundError
from .options import parse
from .usage import UsageError, say

__all__ = ["main"]


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    args = None
    try:
        args = parse(sys.argv[1:] if argv is None else argv)
        return int(args.run(args, out))
    except UsageError as e:
        say(str(e))
        return 1
    except AccessDeniedError as e:
        if args is not None and getattr(args, "all_users", False):
            say(
                "every user's jobs can be read by an administrator only: "
                "run from an elevated prompt"
            )
        else:
            say(str(e))
        return 1
    except JobNotFoundError as e:
        say(f"no such job: {e}")
        return 1
    except (BitsError, FileExistsError, ValueError) as e:
        say(str(e))
        return 1
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    except SystemExit as e:  # --help and --version print, then end here
        return e.code if isinstance(e.code, int) else 0
