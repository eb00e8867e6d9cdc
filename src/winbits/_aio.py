"""asyncio waits: no thread per waiting job, and BITS' calls off the event loop.

BITS calls winbits' notifier on an RPC thread; for an asyncio wait the notifier also rings
the module's doorbell with the wait's token (C++, no GIL). One thread of winbits', alive
while any asyncio wait is, takes the rung tokens and wakes each wait's loop with
call_soon_threadsafe. BITS' own calls (a state read, a resume, a Complete) can block, for
a service that is starting for instance, so they run on the loop's default executor.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncGenerator, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ._load import native
from ._types import JobProgress, JobState

if TYPE_CHECKING:
    from ._job import Job
    from ._wait import Steps

T = TypeVar("T")

RING_WAIT_MS = 1000  # how long the thread sleeps between looks at whether waits are left


class _Hub:
    """The thread that wakes the asyncio waits BITS called back for."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waits: dict[int, tuple[asyncio.AbstractEventLoop, Callable[[], object]]] = {}
        self._running = False

    def add(self, token: int, loop: asyncio.AbstractEventLoop, wake: Callable[[], object]) -> None:
        with self._lock:
            self._waits[token] = (loop, wake)
            if not self._running:
                thread = threading.Thread(target=self._run, name="winbits-doorbell", daemon=True)
                try:
                    thread.start()
                except BaseException:
                    del self._waits[token]
                    raise
                self._running = True

    def remove(self, token: int) -> None:
        with self._lock:
            self._waits.pop(token, None)

    def _run(self) -> None:
        try:
            doorbell = native().doorbell
            while True:
                rung = dict.fromkeys(doorbell(RING_WAIT_MS))  # each token once, in order
                with self._lock:
                    if not self._waits:
                        return
                    woken = [self._waits[t] for t in rung if t in self._waits]
                for loop, wake in woken:
                    with contextlib.suppress(RuntimeError):  # that loop is closed
                        loop.call_soon_threadsafe(wake)
        finally:  # however the thread ends, the next asyncio wait starts another
            with self._lock:
                self._running = False


_hub = _Hub()


async def off_loop(fn: Callable[..., T], *args: Any) -> T:
    """fn(*args) on the running loop's default executor. A cancelled caller still waits
    for the call to end before the CancelledError goes on, so that no BITS call of its
    runs on behind its back (the cleanup after it would race it)."""
    future = asyncio.get_running_loop().run_in_executor(None, fn, *args)
    cancelled: asyncio.CancelledError | None = None
    while not future.done():
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError as e:
            cancelled = e
        except BaseException:  # the call failed: future.result() raises it below
            pass
    if cancelled is not None:
        raise cancelled
    return future.result()


def _listen(job: Job, tokens: list[int]) -> None:
    """listen(ring=True), for the executor: the token (0: not registered, the wait polls)
    lands in ``tokens``, where the cleanup finds it even when the task was cancelled
    while the call ran."""
    token = int(job._native.listen(True))
    if token:
        tokens.append(token)


def _step(steps: Steps) -> JobProgress | float | None:
    """The next step of a wait; None when it ended (StopIteration cannot cross a future)."""
    try:
        return next(steps)
    except StopIteration:
        return None


async def follow(job: Job, steps: Steps) -> AsyncGenerator[JobProgress, None]:
    """Runs a wait's steps (_wait.steps) for asyncio: yields what they report, sleeps
    until BITS calls back or the step's time passes, and ends when the job is
    transferred. The notifier is registered only on a job this process created."""
    loop = asyncio.get_running_loop()
    bell = asyncio.Event()
    # The registration is inside the cleanup's scope: a task cancelled while listen() runs
    # still gets its token here (off_loop waits for the call), and takes the callback away.
    tokens: list[int] = []
    try:
        if job._created:
            await off_loop(_listen, job, tokens)
        token = tokens[0] if tokens else 0
        if token:
            try:
                _hub.add(token, loop, bell.set)
            except RuntimeError:  # no thread may start here (an isolated sub-interpreter)
                tokens.clear()
                await off_loop(job._native.unlisten)
                token = 0  # so the wait polls
        while True:
            bell.clear()  # a call before this is seen by the read that follows
            step = await off_loop(_step, steps)
            if step is None:
                return
            if isinstance(step, JobProgress):
                yield step
            elif token:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(bell.wait(), step)
            else:
                await asyncio.sleep(step)
    finally:
        steps.close()
        if tokens:
            _hub.remove(tokens[0])
            await off_loop(job._native.unlisten)


async def run(
    job: Job, steps: Steps, on_progress: Callable[[JobProgress], object] | None
) -> JobState | int:
    """Job.wait_async(): follows the steps to their end, reporting what they yield on the
    loop's thread; the callback is taken away however it ends."""
    async with contextlib.aclosing(follow(job, steps)) as progress:
        async for p in progress:
            on_progress(p)  # type: ignore[misc]
    return JobState.TRANSFERRED
