"""The router's inbox: one FIFO of commands, drained in batches.

It is a memory channel shaped for one consumer that must never block on a
producer, and producers of two kinds:

- ``await put(command)`` waits while the inbox holds ``capacity`` commands or
  more (backpressure for tasks that produce faster than the router routes); it
  yields to the scheduler only once ``batch`` commands are queued, so that a
  burst of emits becomes one batch (and one write per client);
- ``put_nowait(command)`` never waits and ignores the capacity: for notices
  that must get through from code that cannot wait (a session that is being
  cancelled telling the router it is gone, an ack arriving).

The router takes everything queued at once (:meth:`get_batch`), so a burst of
commands costs one wake-up, not one per command. Order is FIFO across both kinds.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

import trio

T = TypeVar("T")


class Mailbox(Generic[T]):
    """A FIFO with a soft capacity for :meth:`put` and none for :meth:`put_nowait`.

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
