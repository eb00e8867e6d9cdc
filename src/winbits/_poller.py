"""Polling the BITS queue cheaply: the C++ walk (csrc/poller.cpp) re-reads only what can
have moved; this merges its records into a Snapshot of added, changed and removed jobs."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from ._types import JobRecord, Snapshot, job_record

if TYPE_CHECKING:
    from . import _native as native_types

DEFAULT_THREADS = 4  # measured: benchmarks/bench.py, cold snapshot against Wine's BITS


class Poller:
    """Polls the BITS queue cheaply. It remembers what cannot change (ids, names,
    owners, and the COM objects of jobs and files), reads a job's files again only when
    the job's state or progress moved, and never reads a completed file's counters
    again. New and vanished jobs are always noticed. One poller may be shared by
    threads: polls take turns, so each change is reported to exactly one of them."""

    __slots__ = ("_lock", "_native", "_records", "_threads")

    def __init__(self, native: native_types.Poller, threads: int = DEFAULT_THREADS) -> None:
        if not isinstance(threads, int) or isinstance(threads, bool) or not 1 <= threads <= 64:
            raise ValueError("threads must be an int from 1 to 64")
        self._native = native
        self._threads = threads
        self._records: dict[bytes, JobRecord] = {}
        self._lock = threading.Lock()

    def poll(self) -> Snapshot:
        with self._lock:  # the native walk and the merge into _records are one step
            order, changed = self._native.poll(self._threads)
            try:
                return self._merge(order, changed)
            except BaseException:
                # The walk moved on, but its results were not taken in (a MemoryError, a
                # time past year 9999): both sides forget, and the next poll is cold.
                self._records = {}
                self._native.reset()
                raise

    def _merge(self, order: list[bytes], changed: list[Any]) -> Snapshot:
        previous = self._records
        records = {}
        added, moved = set(), set()
        fresh = {raw[0]: job_record(raw) for raw in changed}
        for key in order:
            record = fresh.get(key)
            if record is None:
                record = previous[key]
            elif key in previous:
                if record != previous[key]:  # read again (a cold walk reads all): moved?
                    moved.add(record.id)
            else:
                added.add(record.id)
            records[key] = record
        removed = frozenset(r.id for k, r in previous.items() if k not in records)
        self._records = records
        return Snapshot(tuple(records.values()), frozenset(added), frozenset(moved), removed)
