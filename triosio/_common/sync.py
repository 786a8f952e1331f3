"""Trio helpers shared by the layers: a lazy event, a mailbox, a write batch.

- :class:`LazyEvent`: a one-shot event that allocates nothing until a task
  waits on it. An idle connection holds a dozen events (queue has space,
  upgrade done, closed...) that are rarely awaited. A ``trio.Event`` costs
  about 430 bytes (itself and its set of waiters); this costs about 60, and
  only becomes a ``trio.Event`` when a task actually waits. Memory per idle
  connection is a benchmark target.
- :class:`Mailbox`: a FIFO shaped for one consumer that must never block on a
  producer (the router's inbox, the Redis adapter's publish queue).
- :class:`WriteBatch`: holds the writes of many sends so that each client gets
  one write for all of them.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Generic, TypeVar

import trio

T = TypeVar("T")


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


#: A LazyEvent that is set and never cleared, shared by the owners of
#: :func:`set_once` events that were set before anyone waited for them.
_SET = LazyEvent(True)


def set_once(event: LazyEvent | None) -> LazyEvent:
    """Set an event that is made on demand and never cleared; return it.

    Such an event is ``None`` until someone waits for it (then
    :func:`waitable` makes it): an idle connection holds none, which spares
    the cyclic GC an object each. Store the result: ``x = set_once(x)``.
    """
    if event is None:
        return _SET
    event.set()
    return event


def waitable(event: LazyEvent | None) -> LazyEvent:
    """The event to wait for (store it): ``x = waitable(x); await x.wait()``."""
    return LazyEvent() if event is None else event


class Mailbox(Generic[T]):
    """A FIFO with a soft capacity for :meth:`put` and none for :meth:`put_nowait`.

    A memory channel for one consumer that must never block on a producer,
    and producers of two kinds:

    - ``await put(item)`` waits while the mailbox holds ``capacity`` items or
      more (backpressure for tasks that produce faster than the consumer); it
      yields to the scheduler only once ``batch`` items are queued, so that a
      burst of emits becomes one batch (and one write per client). Cancelled
      means not queued: the check comes before the item is appended;
    - ``put_nowait(item)`` never waits and ignores the capacity: for notices
      that must get through from code that cannot wait (a session that is
      being cancelled telling the router it is gone).

    The consumer takes everything queued at once (:meth:`get_batch`), so a
    burst costs one wake-up, not one per item. Order is FIFO across both kinds.

    Args:
        capacity: How many queued commands make :meth:`put` wait.
    """

    __slots__ = ("_closed", "_items", "_nonempty", "_space", "batch", "capacity")

    def __init__(self, capacity: int = 4096, batch: int = 64) -> None:
        self.capacity = capacity
        self.batch = batch
        self._items: deque[T] = deque()
        self._nonempty = trio.Event()
        self._space = trio.lowlevel.ParkingLot()
        self._closed = False

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def put_nowait(self, item: T) -> None:
        """Queue ``item`` now, whatever the capacity. Never waits, never fails.

        After :meth:`close` the item is kept but never taken (see
        :attr:`closed`).
        """
        self._items.append(item)
        self._nonempty.set()

    async def put(self, item: T) -> None:
        """Queue ``item``, first waiting while the inbox is at capacity.

        Raises:
            trio.ClosedResourceError: the router is gone.
        """
        if self._closed:
            raise trio.ClosedResourceError("the router is not running")
        queued = len(self._items)
        if queued >= self.capacity:
            while len(self._items) >= self.capacity and not self._closed:
                await self._space.park()
            if self._closed:
                raise trio.ClosedResourceError("the router is not running")
        elif queued < self.batch:
            # No schedule point while the batch is small: a producer's burst
            # lands in one batch, which the router turns into one write per
            # client. Still a cancellation point.
            await trio.lowlevel.checkpoint_if_cancelled()
        else:
            await trio.lowlevel.checkpoint()
        self._items.append(item)
        self._nonempty.set()

    async def get_batch(self) -> deque[T]:
        """Wait for commands and take all of them, in order."""
        while not self._items:
            await self._nonempty.wait()
            self._nonempty = trio.Event()
        items = self._items
        self._items = deque()
        if self._space.statistics().tasks_waiting:
            self._space.unpark_all()
        return items

    def take_all(self) -> deque[T]:
        """Take every queued command now (for the consumer, once it stops)."""
        items = self._items
        self._items = deque()
        return items

    def close(self) -> None:
        """The consumer is gone: waiting and future :meth:`put` calls fail."""
        self._closed = True
        self._space.unpark_all()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed


class WriteBatch:
    """Coalesces the writes of many sends into one write per client.

    Between :meth:`begin` and :meth:`end` (the router wraps each batch of
    commands in them, without awaiting in between), a WebSocket session keeps
    what it is sent and registers here; :meth:`end` then has each one write all
    of it at once: one system call per client per batch instead of one per packet.
    Order is kept, since nothing else can write to the session meanwhile.
    """

    __slots__ = ("depth", "pending")

    def __init__(self) -> None:
        self.depth = 0
        self.pending: list[Any] = []

    def begin(self) -> None:
        """Start holding writes."""
        self.depth += 1

    def end(self) -> None:
        """Stop holding writes and flush every session that holds some."""
        self.depth -= 1
        if self.depth == 0 and self.pending:
            pending, self.pending = self.pending, []
            for session in pending:
                session.flush_batch()
