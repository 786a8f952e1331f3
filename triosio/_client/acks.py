"""Acknowledgements a client socket waits for, and its at-least-once queue.

- :class:`AckTable`: the socket's pending acknowledgements by ack id, the one
  owner of them. An ACK packet resolves one; a lost connection fails those whose
  packet went out (one still in the buffer waits); the manager's close fails all.
- :class:`RetryQueue` (``retries``, as socket.io-client 4.6): events go out one
  at a time, in order, each sent again until acknowledged or ``retries`` more
  attempts failed (at-least-once delivery).
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from .._errors import AckTimeout, Disconnected

if TYPE_CHECKING:
    from .outbox import Outbox

log = logging.getLogger("triosio.client")


class PendingAck:
    """An acknowledgement being waited for.

    Attributes:
        sent: Whether its packet was handed to the connection (a lost connection
            fails only those).
    """

    __slots__ = ("_args", "_done", "_error", "sent")

    def __init__(self) -> None:
        self._done = trio.Event()
        self._args: tuple[Any, ...] | None = None
        self._error: BaseException | None = None
        self.sent = False

    def resolve(self, args: tuple[Any, ...]) -> None:
        """The acknowledgement came, with ``args`` (the first outcome wins)."""
        if not self._done.is_set():
            self._args = args
            self._done.set()

    def fail(self, error: BaseException) -> None:
        """It will never come: :meth:`wait` raises ``error`` (the first outcome wins)."""
        if not self._done.is_set():
            self._error = error
            self._done.set()

    async def wait(self) -> tuple[Any, ...]:
        """The acknowledgement's arguments, once it came.

        Raises:
            BaseException: what :meth:`fail` was given.
        """
        await self._done.wait()
        if self._error is not None:
            raise self._error
        assert self._args is not None
        return self._args


class AckTable:
    """A socket's pending acknowledgements, by ack id (ids count up per socket)."""

    __slots__ = ("_next_id", "_pending")

    def __init__(self) -> None:
        self._pending: dict[int, PendingAck] = {}
        self._next_id = 0

    def __len__(self) -> int:
        return len(self._pending)

    def add(self) -> tuple[int, PendingAck]:
        """A new ack id and the acknowledgement waited for under it."""
        ack_id = self._next_id
        self._next_id += 1
        pending = self._pending[ack_id] = PendingAck()
        return ack_id, pending

    def discard(self, ack_id: int) -> None:
        """Stop waiting under ``ack_id`` (a late acknowledgement is then ignored)."""
        self._pending.pop(ack_id, None)

    def mark_sent(self, ack_id: int) -> None:
        """The packet asking for ``ack_id`` was handed to the connection."""
        pending = self._pending.get(ack_id)
        if pending is not None:
            pending.sent = True

    def resolve(self, ack_id: int, args: tuple[Any, ...]) -> None:
        """An ACK packet came for ``ack_id`` (ignored if nobody waits for it)."""
        pending = self._pending.pop(ack_id, None)
        if pending is not None:
            pending.resolve(args)

    def fail_sent(self, error: BaseException) -> None:
        """The connection was lost: fail every acknowledgement whose packet went out."""
        for ack_id, pending in list(self._pending.items()):
            if pending.sent:
                del self._pending[ack_id]
                pending.fail(error)

    def fail_all(self, error: BaseException) -> None:
        """Nothing will ever be answered (the manager closed): fail them all."""
        pending, self._pending = self._pending, {}
        for ack in pending.values():
            ack.fail(error)


@dataclass(slots=True)
class RetryItem:
    """An event in the at-least-once queue."""

    name: str
    args: tuple[Any, ...]
    timeout: float | None
    result: PendingAck | None
    tries: int = 0
    last_error: BaseException | None = None


class RetryQueue:
    """The at-least-once queue of a socket with ``retries``, run by one worker task.

    The worker starts with the first event (in the manager's nursery) and sends
    the head of the queue whenever the socket is connected; the head leaves the
    queue when it is acknowledged or its last attempt failed.
    """

    __slots__ = ("_items", "_lot", "_outbox", "_worker_started")

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox
        self._items: deque[RetryItem] = deque()
        self._lot = trio.lowlevel.ParkingLot()
        self._worker_started = False

    def __len__(self) -> int:
        return len(self._items)

    def put(
        self, name: str, args: tuple[Any, ...], timeout: float | None, result: PendingAck | None
    ) -> RetryItem:
        """Queue an event; ``result`` (if given) gets its acknowledgement or failure."""
        item = RetryItem(name, args, timeout, result)
        self._items.append(item)
        self._lot.unpark_all()
        if not self._worker_started:
            self._worker_started = True
            self._outbox.socket.manager._start_task(self._run)
        return item

    def withdraw(self, item: RetryItem) -> None:
        """Take ``item`` out if it was never sent (its caller gave up on it)."""
        if item.tries == 0 and item in self._items:
            self._items.remove(item)

    def wake(self) -> None:
        """The socket connected or disconnected: the worker looks again."""
        self._lot.unpark_all()

    def fail_all(self, error: BaseException) -> None:
        """The socket stopped: every queued event fails with ``error``."""
        while self._items:
            item = self._items.popleft()
            if item.result is not None:
                item.result.fail(error)

    async def _run(self) -> None:
        socket = self._outbox.socket
        try:
            while True:
                while not self._items or not socket.connected:
                    await self._lot.park()
                item = self._items[0]
                args = await self._try_once(item)
                if not self._items or self._items[0] is not item:
                    continue  # the queue was failed meanwhile (the socket stopped)
                if args is not None:
                    self._items.popleft()
                    if item.result is not None:
                        item.result.resolve(args)
                elif item.tries > socket.retries:
                    self._items.popleft()
                    error = AckTimeout(
                        f"no acknowledgement of {item.name!r} after {item.tries} attempts"
                    )
                    error.__cause__ = item.last_error
                    if item.result is not None:
                        item.result.fail(error)
                    else:
                        log.debug("gave up sending %r: %s", item.name, error)
        finally:
            self._worker_started = False

    async def _try_once(self, item: RetryItem) -> tuple[Any, ...] | None:
        """Send ``item`` once; its acknowledgement, or ``None`` if none came in time."""
        outbox = self._outbox
        item.tries += 1
        ack_id, pending = outbox.acks.add()
        timeout = item.timeout if item.timeout is not None else outbox.socket.ack_timeout
        try:
            outbox.send(outbox.encode(item.name, item.args, ack_id))
            with trio.move_on_after(math.inf if timeout is None else timeout):
                try:
                    return await pending.wait()
                except Disconnected as exc:
                    item.last_error = exc
                    return None
            item.last_error = AckTimeout(f"no acknowledgement within {timeout} s")
            return None
        finally:
            outbox.acks.discard(ack_id)
