"""The test bed's own output (tools/testbed/): a passing run under Wine shows no dump of
Wine's first-chance RPC exceptions, and a real crash still shows its threads."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from testbed.firstchance import FirstChanceFilter

FIRST_CHANCE = (
    b"Windows fatal exception: code 0x800706f4\n\n"
    b"Thread 0x0000012c (most recent call first):\n"
    b'  File "C:\\x\\threading.py", line 331 in wait\n\n'
    b"Current thread 0x00000130 (most recent call first):\n"
    b'  File "C:\\x\\_job.py", line 142 in error\n'
)
CRASH = (
    b"Windows fatal exception: access violation\n\n"
    b"Current thread 0x00000130 (most recent call first):\n"
    b'  File "C:\\x\\_job.py", line 142 in error\n'
)


@pytest.mark.parametrize("piece", [1, 7, 4096])
def test_first_chance_dumps_are_left_out_and_a_crash_is_shown_whole(piece):
    no_access = FIRST_CHANCE.replace(b"0x800706f4", b"0x800703e6")  # GetDescription's
    stream = b"....." + FIRST_CHANCE + b"..... [ 17%]\r\n" + no_access + CRASH + b"1 failed\n"
    quiet = FirstChanceFilter()
    out = b"".join(quiet.feed(stream[i : i + piece]) for i in range(0, len(stream), piece))
    out += quiet.close()
    assert b"0x800706f4" not in out and b"0x800703e6" not in out
    assert b"threading.py" not in out
    assert out.endswith(b" [ 17%]\r\n" + CRASH + b"1 failed\n")  # the crash shown whole
    assert out.split(b" [ 17%]")[0].count(b".") == 10  # every dot (lines may break apart)
    assert quiet.left_out == 2
