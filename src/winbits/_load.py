"""winbits._native, loaded once: absent off Windows, where every call raises
NotSupportedError instead (``import winbits`` works on any OS)."""

from __future__ import annotations

import sys
from typing import Any

from ._errors import ERROR_NOT_SUPPORTED, NotSupportedError

try:
    from . import _native
except ImportError:
    if sys.platform == "win32":
        raise  # a broken install on Windows must be loud
    _native = None  # type: ignore[assignment,unused-ignore]


def native() -> Any:  # the module; Any because it is absent off Windows
    """The native module, or NotSupportedError off Windows."""
    if _native is None:
        raise NotSupportedError(
            ERROR_NOT_SUPPORTED,
            f"winbits needs Windows: BITS is a Windows service (this is {sys.platform})",
        )
    return _native
