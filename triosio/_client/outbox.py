"""What a client socket sends: EVENT packets, their buffer, their acknowledgements.

Semantics as ``socket.io-client`` 4.8's ``Socket``:

- ``emit`` while disconnected is buffered and sent, in order, when the socket
  connects again (the buffer is bounded here); ``volatile`` emits are dropped
  instead. Packets already handed to a connection that then breaks are lost,
  unless ``retries`` is set.
- ``ack_timeout`` + ``retries`` (4.6): events go through the socket's
  :class:`~triosio._client.acks.RetryQueue`.
- A pending acknowledgement whose packet was sent fails when the connection is
  lost (:class:`~triosio.Disconnected`); one still in the buffer waits.

Every send follows Trio's rule, *Cancelled means it did not happen*: it checks
for cancellation before it sends (or buffers, or queues) and cannot raise
``Cancelled`` after.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

from .._errors import AckTimeout, TriosioError
from .._proto.sio import SioPacket, SioType, ack_value, check_event_name
from .acks import AckTable, PendingAck, RetryItem, RetryQueue
from .dispatcher import run_handlers

if TYPE_CHECKING:
    from .socket import ClientSocket


class BufferFull(TriosioError):
    """``emit`` while disconnected, and the socket's send buffer is full.

    Attributes:
        max_buffer: The size of the buffer.
    """

    def __init__(self, max_buffer: int) -> None:
        super().__init__(f"the send buffer is full ({max_buffer} packets wait for the connection)")
        self.max_buffer = max_buffer


@dataclass(slots=True, eq=False)
class Outgoing:
    """An EVENT, encoded, on its way (compared by identity: the buffer removes it so)."""

    name: str
    args: tuple[Any, ...]
    messages: list[str | bytes]
    ack_id: int | None = None


class EmitFlags:
    """Emit modifiers, chainable: ``socket.volatile.timeout(5).emit_with_ack(...)``."""

    __slots__ = ("_socket", "_timeout", "_volatile")

    def __init__(self, socket: ClientSocket, volatile: bool, timeout: float | None) -> None:
        self._socket = socket
        self._volatile = volatile
        self._timeout = timeout

    @property
    def volatile(self) -> EmitFlags:
        """Drop the event, instead of buffering it, if it cannot be sent now."""
        return EmitFlags(self._socket, True, self._timeout)

    def timeout(self, seconds: float) -> EmitFlags:
        """Give up waiting for the acknowledgement after ``seconds``."""
        return EmitFlags(self._socket, self._volatile, seconds)

    async def emit(self, event: str, *args: Any) -> None:
        """Emit with these flags (see :meth:`ClientSocket.emit`)."""
        await self._socket._outbox.emit(event, args, volatile=self._volatile, timeout=self._timeout)

    async def emit_with_ack(self, event: str, *args: Any) -> Any:
        """Emit with these flags and wait for the acknowledgement
        (see :meth:`ClientSocket.emit_with_ack`)."""
        return await self._socket._outbox.emit_with_ack(
            event, args, volatile=self._volatile, timeout=self._timeout
        )

    async def send(self, *args: Any) -> None:
        """Emit a ``"message"`` event with these flags."""
        await self.emit("message", *args)


class Outbox:
    """The sending side of one :class:`ClientSocket`.

    Attributes:
        socket: The socket it sends for.
        acks: The acknowledgements the socket waits for (their one owner).
        buffer: Events waiting for the socket to connect.
        retry: The at-least-once queue (used when the socket has ``retries``).
    """

    __slots__ = ("acks", "buffer", "retry", "socket")

    def __init__(self, socket: ClientSocket) -> None:
        self.socket = socket
        self.acks = AckTable()
        self.buffer: deque[Outgoing] = deque()
        self.retry = RetryQueue(self)

    # ------------------------------------------------------------ the socket's lifecycle

    def connected(self) -> None:
        """The socket connected: send the buffer, in order; the retry queue resumes."""
        while self.buffer:
            self.send(self.buffer.popleft())
        self.retry.wake()

    def disconnected(self, error: BaseException) -> None:
        """The socket left its connection: acknowledgements of sent packets fail."""
        self.acks.fail_sent(error)
        self.retry.wake()

    # ------------------------------------------------------------ encoding and sending

    def encode(self, name: str, args: tuple[Any, ...], ack_id: int | None) -> Outgoing:
        """Encode an EVENT of the socket's namespace.

        Raises:
            LocalProtocolError: the arguments cannot be encoded.
        """
        socket = self.socket
        packet = SioPacket(SioType.EVENT, socket.namespace, [name, *args], ack_id)
        return Outgoing(name, args, socket.manager._encoder.encode(packet), ack_id)

    def send(self, outgoing: Outgoing) -> None:
        """Hand ``outgoing`` to the connection now (never waits)."""
        socket = self.socket
        if outgoing.ack_id is not None:
            self.acks.mark_sent(outgoing.ack_id)
        if socket._any_outgoing:
            socket.manager._dispatcher.submit(
                partial(
                    run_handlers,
                    list(socket._any_outgoing),
                    (outgoing.name, *outgoing.args),
                    f"outgoing catch-all (namespace {socket.namespace})",
                )
            )
        socket.manager._connection.send(outgoing.messages)

    async def _send_or_buffer(self, outgoing: Outgoing, volatile: bool) -> None:
        """Send ``outgoing`` (waiting for space in the connection's queue), or buffer
        it while disconnected; a volatile one is dropped instead of either wait."""
        socket = self.socket
        if volatile:
            await trio.lowlevel.checkpoint_if_cancelled()
            if socket.connected and socket.manager._connection.writable():
                self.send(outgoing)
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        if socket.connected:
            # A checkpoint: cancelled there, nothing went out.
            await socket.manager._connection.wait_writable()
            if socket.connected:
                self.send(outgoing)
                return
        else:
            await trio.lowlevel.checkpoint_if_cancelled()
        if len(self.buffer) >= socket.max_buffer:
            raise BufferFull(socket.max_buffer)
        self.buffer.append(outgoing)
        await trio.lowlevel.cancel_shielded_checkpoint()

    def _queue_for_retries(
        self, event: str, args: tuple[Any, ...], timeout: float | None, result: PendingAck | None
    ) -> RetryItem:
        if len(self.retry) >= max(self.socket.max_buffer, 1):
            raise BufferFull(self.socket.max_buffer)
        return self.retry.put(event, args, timeout, result)

    # ------------------------------------------------------------ emitting

    async def emit(
        self, event: str, args: tuple[Any, ...], *, volatile: bool, timeout: float | None
    ) -> None:
        """``emit`` of :class:`ClientSocket` and :class:`EmitFlags`."""
        check_event_name(event)
        if self.socket.retries and not volatile:
            self.encode(event, args, 0)  # so that bad arguments fail here, in the caller
            await trio.lowlevel.checkpoint_if_cancelled()
            self._queue_for_retries(event, args, timeout, None)
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        await self._send_or_buffer(self.encode(event, args, None), volatile)

    async def emit_with_ack(
        self, event: str, args: tuple[Any, ...], *, volatile: bool, timeout: float | None
    ) -> Any:
        """``emit_with_ack`` of :class:`ClientSocket` and :class:`EmitFlags`."""
        check_event_name(event)
        if timeout is None:
            timeout = self.socket.ack_timeout
        if self.socket.retries and not volatile:
            self.encode(event, args, 0)
            await trio.lowlevel.checkpoint_if_cancelled()
            result = PendingAck()
            item = self._queue_for_retries(event, args, timeout, result)
            try:
                return ack_value(await result.wait())
            finally:
                self.retry.withdraw(item)  # given up before its first send: it never goes out
        ack_id, pending = self.acks.add()
        outgoing: Outgoing | None = None
        try:
            outgoing = self.encode(event, args, ack_id)
            with trio.move_on_after(math.inf if timeout is None else timeout):
                await self._send_or_buffer(outgoing, volatile)
                return ack_value(await pending.wait())
            raise AckTimeout(f"no acknowledgement of {event!r} within {timeout} s")
        finally:
            self.acks.discard(ack_id)
            if outgoing is not None and outgoing in self.buffer:
                self.buffer.remove(outgoing)
