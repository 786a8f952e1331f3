"""A client socket: one Socket.IO namespace, multiplexed on its manager's connection.

Spec: https://socket.io/docs/v4/socket-io-protocol/ ("Exchange protocol"): each
namespace sends its own CONNECT (with the auth payload) and gets its socket id
from the server's CONNECT answer, or a CONNECT_ERROR ``{message, data}``.
Semantics as ``socket.io-client`` 4.8's ``Socket``:

- ``emit`` while disconnected is buffered and sent, in order, when the socket
  connects again (the buffer is bounded here); ``volatile`` emits are dropped
  instead. Packets already handed to a connection that then breaks are lost,
  unless ``retries`` is set.
- ``ack_timeout`` + ``retries`` (4.6): events go through a queue, one at a time,
  each sent again until acknowledged or ``retries`` more attempts failed
  (at-least-once delivery, in order).
- A pending acknowledgement whose packet was sent fails when the connection is
  lost (:class:`~triosio.Disconnected`); one still in the buffer waits.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

from .._common.handlers import CatchAllRegistry, Handler, call_handler
from .._errors import (
    AckTimeout,
    ConnectError,
    Disconnected,
    DisconnectReason,
    LocalProtocolError,
    TriosioError,
)
from .._proto.sio import RESERVED_EVENTS, SioPacket, SioType, ack_args, ack_value
from .dispatcher import run_handlers, submit
from .stream import Event, EventStream, Overflow

if TYPE_CHECKING:
    from .manager import Manager

log = logging.getLogger("triosio.client")

#: An auth payload, or a (plain or async) function returning one, called at every connect.
Auth = Mapping[str, Any] | Callable[[], Any] | None


class BufferFull(TriosioError):
    """``emit`` while disconnected, and the socket's send buffer is full.

    Attributes:
        max_buffer: The size of the buffer.
    """

    def __init__(self, max_buffer: int) -> None:
        super().__init__(f"the send buffer is full ({max_buffer} packets wait for the connection)")
        self.max_buffer = max_buffer


class _PendingAck:
    """An acknowledgement being waited for."""

    __slots__ = ("args", "done", "error", "sent")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.args: tuple[Any, ...] | None = None
        self.error: BaseException | None = None
        self.sent = False

    def resolve(self, args: tuple[Any, ...]) -> None:
        if not self.done.is_set():
            self.args = args
            self.done.set()

    def fail(self, error: BaseException) -> None:
        if not self.done.is_set():
            self.error = error
            self.done.set()

    async def wait(self) -> tuple[Any, ...]:
        await self.done.wait()
        if self.error is not None:
            raise self.error
        assert self.args is not None
        return self.args


@dataclass(slots=True)
class _Outgoing:
    """An EVENT waiting in the send buffer."""

    name: str
    args: tuple[Any, ...]
    messages: list[str | bytes]
    ack_id: int | None = None


@dataclass(slots=True)
class _RetryItem:
    """An event in the at-least-once queue (``retries``)."""

    name: str
    args: tuple[Any, ...]
    timeout: float | None
    result: _PendingAck | None
    tries: int = 0
    last_error: BaseException | None = field(default=None)


class _Waiter:
    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.error: ConnectError | None = None


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
        await self._socket._emit(event, args, volatile=self._volatile, timeout=self._timeout)

    async def emit_with_ack(self, event: str, *args: Any) -> Any:
        """Emit with these flags and wait for the acknowledgement
        (see :meth:`ClientSocket.emit_with_ack`)."""
        return await self._socket._emit_with_ack(
            event, args, volatile=self._volatile, timeout=self._timeout
        )

    async def send(self, *args: Any) -> None:
        """Emit a ``"message"`` event with these flags."""
        await self.emit("message", *args)


class ClientSocket(CatchAllRegistry):
    """One namespace of a Socket.IO connection. Make them with :meth:`Manager.socket`
    (or get one from :func:`triosio.connect`).

    Events (register with :meth:`on`): ``connect``; ``connect_error`` (a
    :class:`~triosio.ConnectError`); ``disconnect`` (a
    :class:`~triosio.DisconnectReason`); and the legacy names ``connecting``,
    ``connect_failed``, ``error``, ``reconnecting`` (delay, attempt),
    ``reconnect`` (attempt), ``reconnect_failed``. See ``docs/client.md`` for
    when each fires and in what order.

    Attributes:
        manager: The manager whose connection this socket uses.
        namespace: The namespace, e.g. ``"/"`` or ``"/chat"``.
        id: The socket id the server gave at connect (``None`` while disconnected).
        connected: Whether the socket is connected now.
        active: Whether the socket is connected or trying to (re)connect.
        auth: The auth payload, or a function returning it (called at every connect).
        ack_timeout: Default acknowledgement timeout in seconds (``None``: wait).
        retries: How many times an unacknowledged event is sent again.
        max_buffer: The most packets buffered while disconnected.
    """

    def __init__(
        self,
        manager: Manager,
        namespace: str,
        *,
        auth: Auth = None,
        ack_timeout: float | None = None,
        retries: int = 0,
        max_buffer: int = 1000,
    ) -> None:
        super().__init__()
        if not namespace.startswith("/"):
            raise ValueError(f"namespace must start with '/': {namespace!r}")
        if retries < 0:
            raise ValueError("retries must not be negative")
        if max_buffer < 0:
            raise ValueError("max_buffer must not be negative")
        self.manager = manager
        self.namespace = namespace
        self.auth: Auth = auth
        self.ack_timeout = ack_timeout
        self.retries = retries
        self.max_buffer = max_buffer
        self.id: str | None = None
        self.connected = False
        self.active = False
        self._buffer: deque[_Outgoing] = deque()
        self._early_events: list[SioPacket] = []
        self._acks: dict[int, _PendingAck] = {}
        self._next_id = 0
        self._session = 0
        self._connect_sent_on: object | None = None
        self._waiters: list[_Waiter] = []
        self._streams: list[EventStream] = []
        self._retry_queue: deque[_RetryItem] = deque()
        self._retry_lot = trio.lowlevel.ParkingLot()
        self._retry_worker = False

    def __repr__(self) -> str:
        state = "connected" if self.connected else "active" if self.active else "inactive"
        return f"<ClientSocket {self.namespace} id={self.id} {state}>"

    # ------------------------------------------------------------ lifecycle

    async def connect(self) -> None:
        """Connect this namespace (opening the manager's connection if needed).

        Returns once the server accepted the namespace. Does nothing if the socket
        is connected already. If it is cancelled before that, the socket stops
        trying (it becomes inactive again).

        Raises:
            ConnectError: the server refused (with its ``message`` and ``data``),
                or the connection could not be made and the manager gave up.
            RuntimeError: the manager is not running (use ``async with``).
        """
        if self.connected:
            await trio.lowlevel.checkpoint()
            return
        self.manager._check_running()
        waiter = _Waiter()
        self._waiters.append(waiter)
        if not self.active:
            self.active = True
            self.manager._socket_activated(self)
        try:
            await waiter.done.wait()
        except trio.Cancelled:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            if self.active and not self.connected and not self._waiters:
                # Cancelled before the namespace connected: stop trying.
                self._stop(
                    ConnectError("connect() was cancelled"),
                    Disconnected(DisconnectReason.IO_CLIENT_DISCONNECT),
                )
                self.manager._check_idle()
            raise
        if waiter.error is not None:
            raise waiter.error

    async def disconnect(self) -> None:
        """Leave the namespace; stop reconnecting it.

        Sends DISCONNECT if connected and fires ``disconnect`` with
        ``"io client disconnect"``. When no socket of the manager remains
        active, the manager closes its connection. Events still buffered stay
        buffered (they are sent if :meth:`connect` is called again).
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        self._disconnect_now()
        await trio.lowlevel.cancel_shielded_checkpoint()

    def _disconnect_now(self) -> None:
        was_connected = self.connected
        if was_connected:
            self.manager._send_packet(SioPacket(SioType.DISCONNECT, self.namespace))
        error = Disconnected(DisconnectReason.IO_CLIENT_DISCONNECT)
        self._stop(ConnectError("the client disconnected before the namespace connected"), error)
        if was_connected:
            self._emit_reserved("disconnect", DisconnectReason.IO_CLIENT_DISCONNECT)
        self.manager._check_idle()

    def _stop(self, connect_error: ConnectError, ack_error: BaseException) -> None:
        """Become inactive: fail waiters, sent acks and queued retries; end streams."""
        self.active = False
        # A CONNECT that went out unanswered is forgotten: connect() sends another.
        self._connect_sent_on = None
        self._set_disconnected(ack_error)
        for waiter in self._waiters:
            waiter.error = connect_error
            waiter.done.set()
        self._waiters.clear()
        while self._retry_queue:
            item = self._retry_queue.popleft()
            if item.result is not None:
                item.result.fail(ack_error)
        for stream in list(self._streams):
            stream._end()
        self._streams.clear()

    def _set_disconnected(self, error: BaseException) -> None:
        self.connected = False
        self.id = None
        self._early_events.clear()
        for ack_id, pending in list(self._acks.items()):
            if pending.sent:
                del self._acks[ack_id]
                pending.fail(error)
        self._retry_lot.unpark_all()

    # Called by the manager -------------------------------------------------

    async def _resolve_auth(self) -> Any:
        auth = self.auth
        if callable(auth):
            auth = auth()
            if inspect.isawaitable(auth):
                auth = await auth
        if auth is not None and not isinstance(auth, Mapping):
            raise TypeError(f"auth must be a mapping (a JSON object), not {type(auth).__name__}")
        return dict(auth) if auth is not None else None

    def _send_connect(self, auth: Any) -> None:
        self._emit_reserved("connecting")
        self.manager._send_packet(SioPacket(SioType.CONNECT, self.namespace, auth))

    def _connection_lost(self, reason: DisconnectReason) -> None:
        self._connect_sent_on = None
        if not self.connected:
            return
        self._set_disconnected(Disconnected(reason))
        self._emit_reserved("disconnect", reason)

    def _fail(self, error: ConnectError) -> None:
        """A connection attempt failed for good: become inactive."""
        if not self.active:
            return
        self._stop(error, Disconnected(DisconnectReason.TRANSPORT_CLOSE))
        self._emit_reserved("connect_failed", error)

    def _on_packet(self, packet: SioPacket) -> None:
        ptype = packet.type
        if ptype is SioType.EVENT:
            if self.connected:
                self._on_event(packet)
            elif self.active and self._connect_sent_on is not None:
                self._early_events.append(packet)
        elif ptype is SioType.ACK:
            assert packet.id is not None
            pending = self._acks.pop(packet.id, None)
            if pending is not None:
                pending.resolve(tuple(packet.data))
        elif ptype is SioType.CONNECT:
            self._on_connect(packet.data)
        elif ptype is SioType.CONNECT_ERROR:
            self._on_connect_error(packet.data)
        elif ptype is SioType.DISCONNECT:
            self._on_server_disconnect()

    def _on_connect(self, data: Any) -> None:
        if self.connected:
            return
        sid = data.get("sid") if isinstance(data, dict) else None
        if not self.active:
            if isinstance(sid, str):
                # The answer to a CONNECT given up on (disconnect() while it
                # waited): the server made a socket for it. Have it dropped,
                # since a server may ignore our next CONNECT while it is there.
                self.manager._send_packet(SioPacket(SioType.DISCONNECT, self.namespace))
            return
        if not isinstance(sid, str):
            self._on_connect_error(
                {
                    "message": "It seems you are trying to reach a Socket.IO server in v2.x "
                    "with a v3.x client, but they are not compatible"
                }
            )
            return
        self.id = sid
        self.connected = True
        self._session += 1
        early, self._early_events = self._early_events, []
        for packet in early:
            self._on_event(packet)
        while self._buffer:
            self._send_outgoing(self._buffer.popleft())
        self._retry_lot.unpark_all()
        self._emit_reserved("connect")
        for waiter in self._waiters:
            waiter.done.set()
        self._waiters.clear()

    def _on_connect_error(self, data: Any) -> None:
        if not self.active or self.connected:
            return
        if isinstance(data, dict):
            message = data.get("message")
            error = ConnectError(str(message) if message is not None else "", data.get("data"))
        else:
            error = ConnectError(str(data))
        self._emit_reserved("connect_error", error)
        self._fail(error)
        self.manager._check_idle()

    def _on_server_disconnect(self) -> None:
        if not self.connected:
            return
        reason = DisconnectReason.IO_SERVER_DISCONNECT
        self._stop(ConnectError("the server disconnected the socket"), Disconnected(reason))
        self._emit_reserved("disconnect", reason)
        self.manager._check_idle()

    # ------------------------------------------------------------ receiving

    def _on_event(self, packet: SioPacket) -> None:
        data = packet.data
        name: str = data[0]
        args = tuple(data[1:])
        ack = None
        if packet.id is not None:
            ack = partial(self._send_ack, packet.id, self._session, [False])
        event = Event(name, args, self.namespace, ack)
        for stream in list(self._streams):
            stream._push(event)
        dispatcher = self.manager._dispatcher
        if dispatcher.paused:
            # An event that came with the CONNECT reply, while connect() holds
            # the dispatcher: its handlers are chosen when its turn comes, so
            # handlers registered at the top of the `async with` block get it.
            dispatcher.submit(partial(self._run_event, event))
            return
        # Otherwise the handlers are those registered when the event arrives
        # (as in JavaScript): an off() after that does not take it back.
        catch_all = list(self._any)
        handlers = self._take(name)
        if catch_all or handlers:
            dispatcher.submit(partial(self._run_event_handlers, event, catch_all, handlers))

    async def _run_event(self, event: Event) -> None:
        catch_all = list(self._any)
        handlers = self._take(event.name)
        if catch_all or handlers:
            await self._run_event_handlers(event, catch_all, handlers)
        else:
            await trio.lowlevel.checkpoint()

    async def _send_ack(
        self, ack_id: int, session: int, sent: list[bool], args: tuple[Any, ...]
    ) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        if not sent[0]:
            sent[0] = True
            if self.connected and self._session == session:
                self.manager._send_packet(
                    SioPacket(SioType.ACK, self.namespace, list(args), ack_id)
                )
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def _run_event_handlers(
        self, event: Event, catch_all: list[Handler], handlers: list[Handler]
    ) -> None:
        for handler in catch_all:
            try:
                await call_handler(handler, event.name, *event.args)
            except Exception:
                log.exception(
                    "error in a catch-all handler (event %r, namespace %s)",
                    event.name,
                    self.namespace,
                )
        result: Any = None
        acknowledge = bool(handlers) and event.ack_requested
        for i, handler in enumerate(handlers):
            try:
                value = await call_handler(handler, *event.args)
            except Exception:
                log.exception(
                    "error in the handler of %r (namespace %s)", event.name, self.namespace
                )
                if i == 0:
                    acknowledge = False  # no acknowledgement for a failed handler
                continue
            if i == 0:
                result = value
        if acknowledge:
            await event.ack(*ack_args(result))

    def _emit_reserved(self, name: str, *args: Any) -> None:
        submit(self, self.manager._dispatcher, name, args, f"namespace {self.namespace}")

    def events(
        self, *names: str, max_buffer: int = 1024, overflow: Overflow = "error"
    ) -> EventStream:
        """Receive events from the server with ``async for``.

        Example::

            with client.events("news", "chat") as stream:
                async for event in stream:
                    print(event.name, event.args)

        Events are buffered from the moment the stream is made. Handlers
        registered with :meth:`on` still run; each stream gets every event too.

        Args:
            *names: The events to take; every event if none.
            max_buffer: The most events kept waiting for the consumer.
            overflow: ``"error"`` (raise :class:`~triosio.EventStreamOverflow` in
                the consumer once it caught up with the events before the
                overflow) or ``"drop_oldest"``.
        """
        stream = EventStream(frozenset(names), max_buffer, overflow, self._remove_stream)
        self._streams.append(stream)
        return stream

    def _remove_stream(self, stream: EventStream) -> None:
        if stream in self._streams:
            self._streams.remove(stream)

    # ------------------------------------------------------------ emitting

    @property
    def volatile(self) -> EmitFlags:
        """Emit modifier: drop the event if it cannot be sent now (not connected,
        or the connection's send queue is full) instead of buffering it."""
        return EmitFlags(self, True, None)

    def timeout(self, seconds: float) -> EmitFlags:
        """Emit modifier: ``await socket.timeout(5).emit_with_ack("x")``."""
        return EmitFlags(self, False, seconds)

    async def emit(self, event: str, *args: Any) -> None:
        """Send an event to the server.

        Arguments may hold ``bytes``, ``bytearray`` or ``memoryview`` at any depth
        (they travel as binary attachments). While disconnected the event is
        buffered and sent in order on reconnect. Waits only when the connection's
        send queue is full (backpressure).

        Raises:
            LocalProtocolError: a reserved event name, or arguments that cannot be
                encoded.
            BufferFull: disconnected, and ``max_buffer`` packets already wait.
        """
        await self._emit(event, args, volatile=False, timeout=None)

    async def send(self, *args: Any) -> None:
        """Send a ``"message"`` event (``socket.send`` of the reference client)."""
        await self._emit("message", args, volatile=False, timeout=None)

    async def emit_with_ack(self, event: str, *args: Any, timeout: float | None = None) -> Any:
        """Send an event and wait for the server's acknowledgement.

        Returns:
            ``None`` if the server acknowledged with no argument, the argument if
            it sent one, a tuple if it sent several.

        Raises:
            AckTimeout: no acknowledgement within ``timeout`` (or the socket's
                ``ack_timeout``; with ``retries``, after the last attempt).
            Disconnected: the connection was lost after the event was sent (and
                there are no ``retries``), or the application disconnected.
            BufferFull: see :meth:`emit`.
        """
        return await self._emit_with_ack(event, args, volatile=False, timeout=timeout)

    def _check_event(self, event: str) -> None:
        if not isinstance(event, str):
            raise LocalProtocolError(f"event names are strings, not {type(event).__name__}")
        if event in RESERVED_EVENTS:
            raise LocalProtocolError(f"{event!r} is a reserved event name")

    def _encode_event(self, name: str, args: tuple[Any, ...], ack_id: int | None) -> _Outgoing:
        packet = SioPacket(SioType.EVENT, self.namespace, [name, *args], ack_id)
        return _Outgoing(name, args, self.manager._encoder.encode(packet), ack_id)

    def _new_ack_id(self) -> int:
        ack_id = self._next_id
        self._next_id += 1
        return ack_id

    def _writable(self) -> bool:
        return self.connected and self.manager._writable()

    def _send_outgoing(self, outgoing: _Outgoing) -> None:
        if outgoing.ack_id is not None:
            pending = self._acks.get(outgoing.ack_id)
            if pending is not None:
                pending.sent = True
        if self._any_outgoing:
            self.manager._dispatcher.submit(
                partial(
                    run_handlers,
                    list(self._any_outgoing),
                    (outgoing.name, *outgoing.args),
                    f"outgoing catch-all (namespace {self.namespace})",
                )
            )
        self.manager._send_messages(outgoing.messages)

    async def _emit(
        self, event: str, args: tuple[Any, ...], *, volatile: bool, timeout: float | None
    ) -> None:
        self._check_event(event)
        if self.retries and not volatile:
            await trio.lowlevel.checkpoint_if_cancelled()
            self._enqueue_retry(event, args, timeout, None)
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        await self._emit_packet(self._encode_event(event, args, None), volatile)

    async def _emit_packet(self, outgoing: _Outgoing, volatile: bool) -> None:
        # Trio's rule: Cancelled means nothing was sent (or buffered). Every
        # path checks for cancellation before it sends and cannot raise it after.
        if volatile:
            await trio.lowlevel.checkpoint_if_cancelled()
            if self._writable():
                self._send_outgoing(outgoing)
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        if self.connected:
            await self.manager._wait_writable()
            if self.connected:
                self._send_outgoing(outgoing)
                return
        else:
            await trio.lowlevel.checkpoint_if_cancelled()
        if len(self._buffer) >= self.max_buffer:
            raise BufferFull(self.max_buffer)
        self._buffer.append(outgoing)
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def _emit_with_ack(
        self, event: str, args: tuple[Any, ...], *, volatile: bool, timeout: float | None
    ) -> Any:
        self._check_event(event)
        if timeout is None:
            timeout = self.ack_timeout
        if self.retries and not volatile:
            await trio.lowlevel.checkpoint_if_cancelled()
            result = _PendingAck()
            item = self._enqueue_retry(event, args, timeout, result)
            try:
                return ack_value(await result.wait())
            finally:
                if item.tries == 0 and item in self._retry_queue:
                    # Given up before its first send: it never goes out.
                    self._retry_queue.remove(item)
        ack_id = self._new_ack_id()
        outgoing = self._encode_event(event, args, ack_id)
        pending = _PendingAck()
        self._acks[ack_id] = pending
        try:
            with trio.move_on_after(math.inf if timeout is None else timeout):
                await self._emit_packet(outgoing, volatile)
                return ack_value(await pending.wait())
            raise AckTimeout(f"no acknowledgement of {event!r} within {timeout} s")
        finally:
            self._acks.pop(ack_id, None)
            if outgoing in self._buffer:
                self._buffer.remove(outgoing)

    # ------------------------------------------------------------ retries (4.6)

    def _enqueue_retry(
        self, event: str, args: tuple[Any, ...], timeout: float | None, result: _PendingAck | None
    ) -> _RetryItem:
        # Encode once now, so that bad arguments fail in the caller.
        self._encode_event(event, args, 0)
        if len(self._retry_queue) >= max(self.max_buffer, 1):
            raise BufferFull(self.max_buffer)
        item = _RetryItem(event, args, timeout, result)
        self._retry_queue.append(item)
        self._retry_lot.unpark_all()
        if not self._retry_worker:
            self._retry_worker = True
            self.manager._start_task(self._run_retry_queue)
        return item

    async def _run_retry_queue(self) -> None:
        try:
            while True:
                while not self._retry_queue or not self.connected:
                    await self._retry_lot.park()
                item = self._retry_queue[0]
                args = await self._try_once(item)
                if self._retry_queue and self._retry_queue[0] is item:
                    if args is not None:
                        self._retry_queue.popleft()
                        if item.result is not None:
                            item.result.resolve(args)
                    elif item.tries > self.retries:
                        self._retry_queue.popleft()
                        error = AckTimeout(
                            f"no acknowledgement of {item.name!r} after {item.tries} attempts"
                        )
                        error.__cause__ = item.last_error
                        if item.result is not None:
                            item.result.fail(error)
                        else:
                            log.debug("gave up sending %r: %s", item.name, error)
        finally:
            self._retry_worker = False

    async def _try_once(self, item: _RetryItem) -> tuple[Any, ...] | None:
        item.tries += 1
        ack_id = self._new_ack_id()
        pending = _PendingAck()
        self._acks[ack_id] = pending
        timeout = item.timeout if item.timeout is not None else self.ack_timeout
        try:
            self._send_outgoing(self._encode_event(item.name, item.args, ack_id))
            with trio.move_on_after(math.inf if timeout is None else timeout):
                try:
                    return await pending.wait()
                except Disconnected as exc:
                    item.last_error = exc
                    return None
            item.last_error = AckTimeout(f"no acknowledgement within {timeout} s")
            return None
        finally:
            self._acks.pop(ack_id, None)


__all__ = [
    "Auth",
    "BufferFull",
    "ClientSocket",
    "EmitFlags",
    "Handler",
]
