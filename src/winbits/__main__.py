"""python -m winbits: the current user's BITS jobs and their files, as a table."""

import sys

from ._cli import main

sys.exit(main())
