"""A one-shot event that allocates nothing until a task waits on it.

An idle connection holds a dozen events (queue has room, upgrade done, closed...)
that are rarely awaited. A ``trio.Event`` costs about 430 bytes (itself and its
set of waiters); this costs about 60, and only becomes a ``trio.Event`` when a
task actually waits. Memory per idle connection is a benchmark target.
"""

from __future__ import annotations

import trio


class LazyEvent:
    """Like :class:`trio.Event` (set, is_set, wait), plus :meth:`clear`.

    ``clear`` re-arms it without stranding tasks already waiting: they are
    woken by the next :meth:`set`, exactly like new waiters.
    """

    __slots__ = ("_event", "_flag")

    def __init__(self, is_set: bool = False) -> None:
        self._flag = is_set
        self._event: trio.Event | None = None

    def is_set(self) -> bool:
        """Whether the event is set."""
        return self._flag

    def set(self) -> None:
        """Set the event, waking every waiter."""
        if not self._flag:
            self._flag = True
            event = self._event
            if event is not None:
                event.set()

    def clear(self) -> None:
        """Unset the event (waiters keep waiting for the next :meth:`set`)."""
        if self._flag:
            self._flag = False
            if self._event is not None and self._event.is_set():
                self._event = None

    async def wait(self) -> None:
        """Wait until the event is set (a checkpoint either way)."""
        if self._flag:
            await trio.lowlevel.checkpoint()
            return
        event = self._event
        if event is None:
            event = self._event = trio.Event()
        await event.wait()
