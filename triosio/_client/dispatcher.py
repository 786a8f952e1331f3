"""Event listeners and the task that runs them, for the client.

Every handler of one client (its manager and all its namespace sockets) runs in
one *dispatcher* task of the client's nursery, one at a time, in the order the
events happened. So the order of events the documentation promises is the
order handlers see, and a handler never races another handler of the same
client. A handler that wants to do long work starts a task of its own.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import trio

from .._common.handlers import Handler, HandlerRegistry, call_handler

log = logging.getLogger("triosio.client")


async def run_handlers(handlers: list[Handler], args: tuple[Any, ...], describe: str) -> None:
    """Call ``handlers`` in turn with ``args``; log (never raise) their errors."""
    for handler in handlers:
        try:
            await call_handler(handler, *args)
        except Exception:
            log.exception("error in the %s handler", describe)


def fire(
    registry: HandlerRegistry,
    dispatcher: Dispatcher,
    event: str,
    args: tuple[Any, ...],
    what: str,
) -> None:
    """Fire ``event`` of ``registry``: queue its handlers on ``dispatcher``.

    The handlers are chosen now, when the event happens (as the reference
    does): one added later is not called for an event that happened before.
    """
    handlers = registry._take(event)
    if handlers:
        dispatcher.submit(partial(run_handlers, handlers, args, f"{what} {event!r}"))


Job = Callable[[], Awaitable[None]]


class Dispatcher:
    """Runs jobs (handler calls) one at a time, in submission order.

    Submitting never waits: jobs wait in an unbounded queue, as events wait in
    every other Socket.IO client. The queue only grows while a handler is slow.
    """

    def __init__(self) -> None:
        self._jobs: deque[Job] = deque()
        self._lot = trio.lowlevel.ParkingLot()
        self._idle = trio.lowlevel.ParkingLot()
        self._busy = False
        self._paused = False

    @property
    def paused(self) -> bool:
        """Whether jobs are held back."""
        return self._paused

    def pause(self) -> None:
        """Hold jobs back (they queue) until :meth:`resume`."""
        self._paused = True

    def resume(self) -> None:
        """Run held jobs again, from the next time the dispatcher gets to run."""
        self._paused = False
        if self._jobs:
            self._lot.unpark_all()

    def submit(self, job: Job) -> None:
        """Queue ``job``; it runs after every job submitted before it."""
        self._jobs.append(job)
        self._lot.unpark_all()

    @property
    def pending(self) -> int:
        """Jobs queued or running."""
        return len(self._jobs) + self._busy

    async def run(self) -> None:
        """Run jobs forever (in the client's nursery). Errors are logged, not raised."""
        while True:
            while not self._jobs or self._paused:
                if not self._jobs:
                    self._idle.unpark_all()
                await self._lot.park()
            job = self._jobs.popleft()
            self._busy = True
            try:
                await job()
            except Exception:
                log.exception("error in a client event handler")
            finally:
                self._busy = False

    async def drain(self) -> None:
        """Wait until every job submitted so far has run."""
        while self.pending:
            await self._idle.park()
