"""Event listeners and the task that runs them, for the client.

Every handler of one client (its manager and all its namespace sockets) runs in
one *dispatcher* task of the client's nursery, one at a time, in the order the
events happened. So the order of events the documentation promises is the
order handlers see, and a handler never races another handler of the same
client. A handler that wants to do long work starts a task of its own.
"""

from __future__ import annotations

import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar, overload

import trio

log = logging.getLogger("triosio.client")

Handler = Callable[..., Any]
H = TypeVar("H", bound=Handler)


async def call_handler(handler: Handler, *args: Any) -> Any:
    """Call a plain or ``async def`` handler; return what it returned."""
    result = handler(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


async def run_handlers(handlers: list[Handler], args: tuple[Any, ...], describe: str) -> None:
    """Call ``handlers`` in turn with ``args``; log (never raise) their errors."""
    for handler in handlers:
        try:
            await call_handler(handler, *args)
        except Exception:
            log.exception("error in the %s handler", describe)


class Listeners:
    """Handlers by event name (:class:`~triosio.Manager` and, with the catch-all
    handlers of :class:`SocketListeners`, :class:`~triosio.ClientSocket`)."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[tuple[Handler, bool]]] = {}

    @overload
    def on(self, event: str) -> Callable[[H], H]: ...

    @overload
    def on(self, event: str, handler: H) -> H: ...

    def on(self, event: str, handler: Handler | None = None) -> Any:
        """Add a handler for ``event``; usable as a decorator (``@client.on("news")``).

        The handler may be a plain function or ``async def``; it is called with
        the event's arguments. For an event from the server that asked for an
        acknowledgement, the return value of the first handler is the
        acknowledgement (a tuple sends several arguments).
        """
        return self._register(event, handler, once=False)

    @overload
    def once(self, event: str) -> Callable[[H], H]: ...

    @overload
    def once(self, event: str, handler: H) -> H: ...

    def once(self, event: str, handler: Handler | None = None) -> Any:
        """Like :meth:`on`, but the handler is removed after its first call."""
        return self._register(event, handler, once=True)

    def _register(self, event: str, handler: Handler | None, *, once: bool) -> Any:
        if not isinstance(event, str):
            raise TypeError("event names are strings")

        def add(fn: H) -> H:
            if not callable(fn):
                raise TypeError("handlers must be callable")
            self._handlers.setdefault(event, []).append((fn, once))
            return fn

        return add if handler is None else add(handler)

    def off(self, event: str | None = None, handler: Handler | None = None) -> None:
        """Remove ``handler`` for ``event``; every handler of ``event`` if no handler
        is given; every handler of every event if neither is given."""
        if event is None:
            self._handlers.clear()
            return
        if handler is None:
            self._handlers.pop(event, None)
            return
        entries = self._handlers.get(event, [])
        for i, (fn, _) in enumerate(entries):
            if fn == handler:
                del entries[i]
                break
        if not entries:
            self._handlers.pop(event, None)

    def listeners(self, event: str) -> list[Handler]:
        """The handlers of ``event``, in the order they are called."""
        return [fn for fn, _ in self._handlers.get(event, [])]

    def _submit(self, dispatcher: Dispatcher, event: str, args: tuple[Any, ...], what: str) -> None:
        # The handlers are chosen now, when the event happens (as the reference
        # does): one added later is not called for an event that happened before.
        handlers = self._take(event)
        if handlers:
            dispatcher.submit(partial(run_handlers, handlers, args, f"{what} {event!r}"))

    def _take(self, event: str) -> list[Handler]:
        # The handlers to call now; once-handlers are removed as they are taken.
        entries = self._handlers.get(event)
        if not entries:
            return []
        handlers = [fn for fn, _ in entries]
        if any(once for _, once in entries):
            remaining: list[tuple[Handler, bool]] = [
                (fn, False) for fn, once in entries if not once
            ]
            if remaining:
                self._handlers[event] = remaining
            else:
                del self._handlers[event]
        return handlers


class SocketListeners(Listeners):
    """:class:`Listeners` plus the catch-all handlers of a client socket."""

    def __init__(self) -> None:
        super().__init__()
        self._any: list[Handler] = []
        self._any_outgoing: list[Handler] = []

    def on_any(self, handler: H) -> H:
        """Add a catch-all handler, called as ``handler(event, *args)`` for every
        event from the server (before the event's own handlers)."""
        self._any.append(handler)
        return handler

    def prepend_any(self, handler: H) -> H:
        """Like :meth:`on_any`, but the handler is called before the others."""
        self._any.insert(0, handler)
        return handler

    def off_any(self, handler: Handler | None = None) -> None:
        """Remove a catch-all handler, or all of them."""
        _remove(self._any, handler)

    def listeners_any(self) -> list[Handler]:
        """The catch-all handlers."""
        return list(self._any)

    def on_any_outgoing(self, handler: H) -> H:
        """Add a handler called as ``handler(event, *args)`` for every event this
        side sends, when it is handed to the connection."""
        self._any_outgoing.append(handler)
        return handler

    def prepend_any_outgoing(self, handler: H) -> H:
        """Like :meth:`on_any_outgoing`, but the handler is called before the others."""
        self._any_outgoing.insert(0, handler)
        return handler

    def off_any_outgoing(self, handler: Handler | None = None) -> None:
        """Remove an outgoing catch-all handler, or all of them."""
        _remove(self._any_outgoing, handler)

    def listeners_any_outgoing(self) -> list[Handler]:
        """The outgoing catch-all handlers."""
        return list(self._any_outgoing)


def _remove(handlers: list[Handler], handler: Handler | None) -> None:
    if handler is None:
        handlers.clear()
    elif handler in handlers:
        handlers.remove(handler)


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
