"""Receiving events with ``async for``: :class:`Event` and :class:`EventStream`.

A stream is a bounded buffer filled by the connection as events arrive, so the
connection never waits for the consumer (it must keep answering pings and
acknowledgements). When the consumer falls behind and the buffer is full, the
stream's *overflow* policy applies:

- ``"error"`` (the default): the stream stops taking events; the consumer gets
  every event buffered before the overflow, then :class:`EventStreamOverflow`.
  Nothing is lost silently.
- ``"drop_oldest"``: the oldest buffered event is dropped to make room; the
  stream's :attr:`EventStream.dropped` counts them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

import trio

from .._errors import TriosioError

Overflow = Literal["error", "drop_oldest"]


class EventStreamOverflow(TriosioError):
    """An :class:`EventStream` was full: its consumer did not keep up.

    Attributes:
        max_buffer: The size of the stream's buffer.
    """

    def __init__(self, max_buffer: int) -> None:
        super().__init__(f"event stream overflow: more than {max_buffer} events waited")
        self.max_buffer = max_buffer


@dataclass(frozen=True, slots=True)
class Event:
    """An event from the server, as :class:`EventStream` yields it.

    Attributes:
        name: The event name.
        args: The event arguments.
        namespace: The namespace it arrived on.
    """

    name: str
    args: tuple[Any, ...]
    namespace: str = "/"
    _ack: Callable[[tuple[Any, ...]], Awaitable[None]] | None = field(
        default=None, repr=False, compare=False
    )

    @property
    def ack_requested(self) -> bool:
        """Whether the server asked for an acknowledgement."""
        return self._ack is not None

    async def ack(self, *args: Any) -> None:
        """Acknowledge the event with ``args``.

        Only the first acknowledgement of an event is sent (a handler's return
        value counts too); later ones, and acknowledgements of events that did
        not ask for one, are ignored.
        """
        if self._ack is not None:
            await self._ack(args)
        else:
            await trio.lowlevel.checkpoint()


class EventStream:
    """Events from the server, for ``async for`` (see :meth:`ClientSocket.events`).

    The stream ends (``async for`` finishes) when its socket stops for good: the
    application disconnected it, the server did, the connection gave up, or the
    client closed. It also stops taking events once closed with :meth:`close`,
    which ``with`` / ``async with`` do on exit.

    Attributes:
        names: The event names taken, or empty for every event.
        max_buffer: The most events kept waiting for the consumer.
        overflow: What happens when the buffer is full (see the module docs).
        dropped: Events dropped by the ``"drop_oldest"`` policy.
    """

    def __init__(
        self,
        names: frozenset[str],
        max_buffer: int,
        overflow: Overflow,
        on_close: Callable[[EventStream], None],
    ) -> None:
        if max_buffer < 1:
            raise ValueError("max_buffer must be at least 1")
        if overflow not in ("error", "drop_oldest"):
            raise ValueError("overflow must be 'error' or 'drop_oldest'")
        self.names = names
        self.max_buffer = max_buffer
        self.overflow: Overflow = overflow
        self.dropped = 0
        self._buffer: deque[Event] = deque()
        self._lot = trio.lowlevel.ParkingLot()
        self._overflowed = False
        self._ended = False
        self._on_close = on_close

    def _push(self, event: Event) -> None:
        if self._ended or self._overflowed:
            return
        if self.names and event.name not in self.names:
            return
        if len(self._buffer) >= self.max_buffer:
            if self.overflow == "error":
                self._overflowed = True
                self._lot.unpark_all()
                return
            self._buffer.popleft()
            self.dropped += 1
        self._buffer.append(event)
        self._lot.unpark_all()

    def _end(self) -> None:
        self._ended = True
        self._lot.unpark_all()

    def close(self) -> None:
        """Stop taking events; iteration ends after the events already buffered."""
        if not self._ended:
            self._end()
            self._on_close(self)

    async def aclose(self) -> None:
        """Like :meth:`close` (for ``async with``)."""
        self.close()
        await trio.lowlevel.checkpoint()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        await trio.lowlevel.checkpoint()
        while True:
            if self._buffer:
                return self._buffer.popleft()
            if self._overflowed:
                self._overflowed = False
                self.close()
                raise EventStreamOverflow(self.max_buffer)
            if self._ended:
                raise StopAsyncIteration
            await self._lot.park()

    def receive_nowait(self) -> Event:
        """The next buffered event, without waiting.

        Raises:
            trio.WouldBlock: no event is buffered.
            trio.EndOfChannel: the stream ended.
            EventStreamOverflow: the stream overflowed (policy ``"error"``).
        """
        if self._buffer:
            return self._buffer.popleft()
        if self._overflowed:
            self._overflowed = False
            self.close()
            raise EventStreamOverflow(self.max_buffer)
        if self._ended:
            raise trio.EndOfChannel
        raise trio.WouldBlock
