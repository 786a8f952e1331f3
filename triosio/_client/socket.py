"""A client socket: one Socket.IO namespace, multiplexed on its manager's connection.

Spec: https://socket.io/docs/v4/socket-io-protocol/ ("Exchange protocol"): each
namespace sends its own CONNECT (with the auth payload) and gets its socket id
from the server's CONNECT answer, or a CONNECT_ERROR ``{message, data}``.
Semantics as ``socket.io-client`` 4.8's ``Socket``.

This module holds the socket's lifecycle (its states and transitions are in
:mod:`.lifecycle`) and its public API. What it sends is the job of its
:class:`~.outbox.Outbox` (buffer, acknowledgements, retries), what it receives
that of its :class:`~.incoming.Incoming` (streams, handlers).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import trio

from .._common.handlers import CatchAllRegistry, call_handler
from .._errors import ConnectError, Disconnected, DisconnectReason
from .._proto.sio import SioPacket, SioType
from .dispatcher import fire
from .incoming import Incoming
from .lifecycle import SocketState, Step, next_state
from .outbox import EmitFlags, Outbox
from .stream import EventStream, Overflow

if TYPE_CHECKING:
    from .manager import Manager

#: An auth payload, or a (plain or async) function returning one, called at every connect.
Auth = Mapping[str, Any] | Callable[[], Any] | None

_DISCONNECTED = SocketState.DISCONNECTED
_CONNECTING = SocketState.CONNECTING
_CONNECTED = SocketState.CONNECTED


class _Waiter:
    """A caller of :meth:`ClientSocket.connect`, waiting for the outcome."""

    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.error: ConnectError | None = None


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
        recovered: Whether the last connect got the previous session back
            (connection state recovery, when the server has it on): the same
            ``id``, rooms and data, and the events missed while away.
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
        self.recovered = False
        # Connection state recovery: the private session id from the server's
        # CONNECT reply and the offset of the last event received, both sent
        # with the next CONNECT (a server without recovery sends no pid).
        self._pid: str | None = None
        self._last_offset: str | None = None
        self._state = _DISCONNECTED
        # The connection this socket's CONNECT is for (sent, or waiting for its
        # auth), so that it goes out once per connection.
        self._connecting_on: object | None = None
        self._waiters: list[_Waiter] = []
        self._outbox = Outbox(self)
        self._incoming = Incoming(self)

    def __repr__(self) -> str:
        return f"<ClientSocket {self.namespace} id={self.id} {self._state.value}>"

    @property
    def connected(self) -> bool:
        """Whether the socket is connected now."""
        return self._state is _CONNECTED

    @property
    def active(self) -> bool:
        """Whether the socket is connected or trying to (re)connect."""
        return self._state is not _DISCONNECTED

    def _advance(self, step: Step) -> None:
        # The only writer of the socket's state: the table in lifecycle.py says
        # where each step leads, and refuses a step it does not allow.
        self._state = next_state(self._state, step)

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
        if self._state is _DISCONNECTED:
            self._advance(Step.START)
            self.manager._socket_activated(self)
        try:
            await waiter.done.wait()
        except trio.Cancelled:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            if self._state is _CONNECTING and not self._waiters:
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
            self._fire("disconnect", DisconnectReason.IO_CLIENT_DISCONNECT)
        self.manager._check_idle()

    def _stop(self, connect_error: ConnectError, ack_error: BaseException) -> None:
        """Become inactive: fail waiters, sent acks and queued retries; end streams."""
        self._advance(Step.STOPPED)
        # A CONNECT that went out unanswered is forgotten: connect() sends another.
        self._connecting_on = None
        self._left_connection(ack_error)
        for waiter in self._waiters:
            waiter.error = connect_error
            waiter.done.set()
        self._waiters.clear()
        self._outbox.retry.fail_all(ack_error)
        self._incoming.end_streams()

    def _left_connection(self, error: BaseException) -> None:
        self.id = None
        self._incoming.disconnected()
        self._outbox.disconnected(error)

    # Called by the manager -------------------------------------------------

    def _claim_connect(self, connection: object) -> bool:
        """Whether this socket is to send its CONNECT on ``connection``; if so,
        the CONNECT is now claimed for it (another caller gets ``False``)."""
        if self._state is not _CONNECTING or self._connecting_on is connection:
            return False
        self._connecting_on = connection
        return True

    async def _resolve_auth(self) -> Any:
        auth = self.auth
        if callable(auth):
            auth = await call_handler(auth)
        if auth is not None and not isinstance(auth, Mapping):
            raise TypeError(f"auth must be a mapping (a JSON object), not {type(auth).__name__}")
        return dict(auth) if auth is not None else None

    def _send_connect(self, connection: object, auth: Any) -> None:
        """Send the CONNECT claimed for ``connection``, unless the socket stopped
        (or connected) while its auth was awaited."""
        if self._state is _CONNECTING and self._connecting_on is connection:
            if self._pid is not None:
                # As the reference client: the app's own auth keys win.
                recovery: dict[str, Any] = {"pid": self._pid}
                if self._last_offset is not None:
                    recovery["offset"] = self._last_offset
                auth = {**recovery, **(auth or {})}
            self._fire("connecting")
            self.manager._send_packet(SioPacket(SioType.CONNECT, self.namespace, auth))

    def _connection_lost(self, reason: DisconnectReason) -> None:
        self._connecting_on = None
        if self._state is not _CONNECTED:
            return
        self._advance(Step.LOST)
        self._left_connection(Disconnected(reason))
        self._fire("disconnect", reason)

    def _not_reconnecting(self, reason: DisconnectReason) -> None:
        """The connection was lost and is not opened again (``reconnection=False``)."""
        # A socket that was connected just stops (it had its "disconnect"); one
        # that someone waits to see connected failed.
        error = ConnectError(f"connection lost: {reason}")
        if self._waiters:
            self._fail(error)
        elif self.active:
            self._stop(error, Disconnected(reason))

    def _fail(self, error: ConnectError) -> None:
        """A connection attempt failed for good: become inactive."""
        if not self.active:
            return
        self._stop(error, Disconnected(DisconnectReason.TRANSPORT_CLOSE))
        self._fire("connect_failed", error)

    def _close(self) -> None:
        """The manager closed: nothing will ever be sent or answered any more."""
        error = Disconnected(DisconnectReason.IO_CLIENT_DISCONNECT)
        self._stop(ConnectError("the client is closed"), error)
        self._outbox.acks.fail_all(error)

    def _on_packet(self, packet: SioPacket) -> None:
        ptype = packet.type
        if ptype is SioType.EVENT:
            if self._state is _CONNECTED:
                self._incoming.deliver(packet)
            elif self._state is _CONNECTING and self._connecting_on is not None:
                self._incoming.hold(packet)
        elif ptype is SioType.ACK:
            assert packet.id is not None
            self._outbox.acks.resolve(packet.id, tuple(packet.data))
        elif ptype is SioType.CONNECT:
            self._on_connect(packet.data)
        elif ptype is SioType.CONNECT_ERROR:
            self._on_connect_error(packet.data)
        elif ptype is SioType.DISCONNECT:
            self._on_server_disconnect()

    def _on_connect(self, data: Any) -> None:
        if self._state is _CONNECTED:
            return
        sid = data.get("sid") if isinstance(data, dict) else None
        if self._state is _DISCONNECTED:
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
        pid = data.get("pid")
        if not isinstance(pid, str):
            pid = None
        self.recovered = pid is not None and pid == self._pid
        if not self.recovered:
            self._last_offset = None  # an offset of another session means nothing
        self._pid = pid
        self.id = sid
        self._advance(Step.ACCEPTED)
        self._incoming.connected()  # events that came early, then the buffer
        self._outbox.connected()
        self._fire("connect")
        for waiter in self._waiters:
            waiter.done.set()
        self._waiters.clear()

    def _on_connect_error(self, data: Any) -> None:
        if self._state is not _CONNECTING:
            return
        if isinstance(data, dict):
            message = data.get("message")
            error = ConnectError(str(message) if message is not None else "", data.get("data"))
        else:
            error = ConnectError(str(data))
        self._fire("connect_error", error)
        self._fail(error)
        self.manager._check_idle()

    def _on_server_disconnect(self) -> None:
        if self._state is not _CONNECTED:
            return
        reason = DisconnectReason.IO_SERVER_DISCONNECT
        self._stop(ConnectError("the server disconnected the socket"), Disconnected(reason))
        self._fire("disconnect", reason)
        self.manager._check_idle()

    def _fire(self, name: str, *args: Any) -> None:
        """Fire a socket event: queue its handlers (``emit`` is for the server)."""
        fire(self, self.manager._dispatcher, name, args, f"namespace {self.namespace}")

    # ------------------------------------------------------------ receiving

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
        return self._incoming.open_stream(frozenset(names), max_buffer, overflow)

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
        send queue is full (backpressure). Cancelled, it sent nothing.

        Raises:
            LocalProtocolError: a reserved event name, or arguments that cannot be
                encoded.
            BufferFull: disconnected, and ``max_buffer`` packets already wait.
        """
        await self._outbox.emit(event, args, volatile=False, timeout=None)

    async def send(self, *args: Any) -> None:
        """Send a ``"message"`` event (``socket.send`` of the reference client)."""
        await self._outbox.emit("message", args, volatile=False, timeout=None)

    async def emit_with_ack(self, event: str, *args: Any, timeout: float | None = None) -> Any:
        """Send an event and wait for the server's acknowledgement.

        Cancelled before the event went out, it sent nothing; after, only the
        wait for the acknowledgement is given up.

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
        return await self._outbox.emit_with_ack(event, args, volatile=False, timeout=timeout)


__all__ = ["Auth", "ClientSocket"]
