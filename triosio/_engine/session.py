"""One Engine.IO session: its nursery, sending, closing and incoming packets.

Spec: https://socket.io/docs/v4/engine-io-protocol/ ("Heartbeat", "Upgrade",
"HTTP long-polling", "WebSocket").

Each session runs in a nursery of its own (``EngineSession.run``), started in
the engine server's sessions nursery. Once the session is on WebSocket, it holds
the reader and writer tasks of that WebSocket; the
application starts its per-client tasks there too (:attr:`EngineSession.nursery`).
Polling requests are served by the HTTP connection tasks, which call into the
session (:meth:`poll`, :meth:`receive_packets`). The heartbeat needs no task
of its own: the server's one timer task (:class:`HeartbeatTimers`) calls
:meth:`EngineSession.on_timer` when a PING or a PONG falls due.

Closing, from any side, goes through :meth:`close_nowait`: it records the first
reason and cancels the nursery (and the processing of a polling POST, which runs
in the HTTP connection's task); :meth:`run` then says goodbye to the client,
reports the reason to the application, once, and closes the transport.

An exception escaping the application's callbacks is logged and closes that one
session (reason "forced close"); it never reaches the server's nursery.

:class:`EngineSession` is assembled from parts, one module each: the heartbeat
(``session_heartbeat.py``), polling (``session_polling.py``) and the upgrade
to WebSocket (``session_upgrade.py``); their shared fields are declared in
``session_state.py``. What is here is the rest, and the hot paths: sending
(:meth:`EngineSession.send_nowait`) and the WebSocket reader.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Protocol

import trio

from .._common.sync import LazyEvent, WriteBatch, set_once, waitable
from .._errors import DisconnectReason, RemoteProtocolError
from .._proto.eio import EioPacket, EioType, decode_ws
from . import packet as P
from .exchange import Request, WebSocket, WebSocketClosed
from .heartbeats import HeartbeatTimers
from .options import EngineOptions
from .packet import OutPacket
from .session_heartbeat import SessionHeartbeat
from .session_polling import SessionPolling
from .session_upgrade import SessionUpgrade

log = logging.getLogger("triosio.engine")


class EngineApp(Protocol):
    """What the Engine.IO server reports to the layer above it (e.g. Socket.IO).

    All three run in the session's own task: ``on_open`` once the session is
    open (start per-client tasks in ``session.nursery``; on a WebSocket, the
    client's messages are read once it returns), ``on_message`` for each
    message in arrival order (awaiting in it slows this client's reads down, and
    only this client's, unless it hands the reading off: see
    :meth:`EngineSession.hand_off_reading`), ``on_close`` once, after the
    session's nursery is done.
    """

    async def on_open(self, session: EngineSession) -> None:
        """A session opened."""
        ...

    async def on_message(self, session: EngineSession, data: str | bytes) -> None:
        """A MESSAGE packet arrived."""
        ...

    async def on_close(self, session: EngineSession, reason: DisconnectReason) -> None:
        """The session ended (its nursery is done), for ``reason``."""
        ...


class EngineSession(SessionHeartbeat, SessionPolling, SessionUpgrade):
    """One client's Engine.IO session.

    Created by the engine server at the handshake; applications get it in
    :meth:`EngineApp.on_open`.

    Attributes:
        sid: The session id (random, from a CSPRNG).
        request: The handshake request (headers, query, client address...).
        transport: ``"polling"`` or ``"websocket"``; changes once on upgrade.
    """

    __slots__ = ()

    def __init__(
        self,
        sid: str,
        request: Request,
        transport: str,
        options: EngineOptions,
        app: EngineApp,
        batch: WriteBatch,
        timers: HeartbeatTimers,
    ) -> None:
        self.sid = sid
        self._batch = batch
        self._timers = timers
        self._timer = None
        self._held = None  # a list while a WriteBatch holds sends
        self.request = request
        self.transport = transport
        self._options = options
        self._app = app
        # A list, not a deque: an empty deque costs 624 bytes per connection.
        self._queue = []
        self._queued_bytes = 0
        self._poll_wake = LazyEvent()
        self._told: LazyEvent | None = None  # see _finish
        self._space = LazyEvent(True)
        self._ws = None
        self._reader = None
        self._reader_scope = None
        self._probing = False
        self._upgrading = False
        self._getting = False
        self._posting = False
        self._pong_deadline = None
        self._ping_held = False
        self._reason = None
        # Made on demand (set_once / waitable): an idle session holds neither.
        self._close_event = None
        self._finished = None
        self._nursery = None
        self._nursery_open = True
        self._inbound = {}  # a dict (as a set): untracked by the GC while empty
        self._inbound_idle = None  # made by the first POST
        self.app_state = None

    # ------------------------------------------------------------ properties

    @property
    def nursery(self) -> trio.Nursery:
        """The session's nursery: tasks started here end with the session."""
        if self._nursery is None:
            raise RuntimeError("the session is not running yet")
        return self._nursery

    @property
    def closed(self) -> bool:
        """Whether the session is closing or closed."""
        return self._reason is not None

    @property
    def close_reason(self) -> DisconnectReason | None:
        """Why the session closed (``None`` while open)."""
        return self._reason

    @property
    def upgrading(self) -> bool:
        """Whether a WebSocket probe has succeeded and the switch is pending."""
        return self._upgrading

    @property
    def writable(self) -> bool:
        """Whether a packet sent now would go out at once (for volatile packets)."""
        ws = self._ws
        if ws is not None:
            return ws.backlog == 0 and not ws.broken
        return self._getting and not self._queue

    @property
    def buffered_bytes(self) -> int:
        """Bytes waiting to be sent to this client."""
        ws = self._ws
        return ws.backlog if ws is not None else self._queued_bytes

    # ------------------------------------------------------------ sending

    def send_nowait(
        self, packets: Sequence[OutPacket], *, volatile: bool = False, force: bool = False
    ) -> bool:
        """Send packets to this client without waiting; they arrive in order.

        When the client's bounded outbound queue is full, a ``volatile`` send is
        dropped and any other send closes the session with reason
        :attr:`DisconnectReason.SLOW_CLIENT` — one slow client never holds up the
        caller. ``force`` skips the limits (for sends that already waited for space).

        Returns:
            Whether the packets were accepted.
        """
        if self._reason is not None:
            return False
        if volatile and not self.writable:
            return False
        ws = self._ws
        if ws is not None:
            if not force and ws.backlog > self._options.max_buffered_bytes:
                self.close_nowait(DisconnectReason.SLOW_CLIENT)
                return False
            if self._batch.depth:
                held = self._held
                if held:
                    held.extend(packets)
                else:
                    self._batch.pending.append(self)
                    self._held = list(packets)
            else:
                ws.write_nowait(packets)
            return True
        queue = self._queue
        if not force and (
            len(queue) >= self._options.max_buffered_packets
            or self._queued_bytes > self._options.max_buffered_bytes
        ):
            self.close_nowait(DisconnectReason.SLOW_CLIENT)
            return False
        for p in packets:
            queue.append(p)
            self._queued_bytes += p.size
        if self._space.is_set() and self._over_limit():
            self._space.clear()
        self._poll_wake.set()
        return True

    def flush_batch(self) -> None:
        """Write what was held during a :class:`WriteBatch` (one write)."""
        held, self._held = self._held, None
        ws = self._ws
        if ws is not None and held and self._reason is None:
            ws.write_nowait(held)

    def _over_limit(self) -> bool:
        return (
            len(self._queue) >= self._options.max_buffered_packets
            or self._queued_bytes > self._options.max_buffered_bytes
        )

    def has_space(self) -> bool:
        """Whether :meth:`wait_for_space` would return at once."""
        if self._reason is not None:
            return True
        ws = self._ws
        if ws is not None:
            return ws.backlog <= self._options.max_buffered_bytes
        return not self._over_limit()

    async def wait_for_space(self) -> None:
        """Wait until this client's outbound queue is below its limits.

        Not a schedule point when there is space already (the hot path of every
        emit): callers that loop must yield by other means.
        """
        while not self.has_space():
            ws = self._ws
            if ws is not None:
                await ws.wait_drained()
            else:
                await self._space.wait()

    async def send(self, data: str | bytes) -> None:
        """Send one MESSAGE, waiting for space in the client's queue if it is full.

        Raises:
            trio.ClosedResourceError: the session is closed.
        """
        await self.wait_for_space()
        if not self.send_nowait([P.message(data)], force=True):
            raise trio.ClosedResourceError("the Engine.IO session is closed")

    # ------------------------------------------------------------ closing

    def close_nowait(self, reason: DisconnectReason = DisconnectReason.FORCED_CLOSE) -> None:
        """Close the session (the first reason given wins). Never waits.

        The session's nursery is cancelled at once (its tasks, and the
        application's tasks in it, end), and so is the handling of a polling
        POST in progress.
        """
        if self._reason is not None:
            return
        self._reason = reason
        self._close_event = set_once(self._close_event)
        self._poll_wake.set()
        self._space.set()
        HeartbeatTimers.cancel(self._timer)
        self._timer = None
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()
        for scope in self._inbound:
            scope.cancel()

    async def close(self, reason: DisconnectReason = DisconnectReason.FORCED_CLOSE) -> None:
        """Close the session and wait until it is fully closed."""
        self.close_nowait(reason)
        await self.wait_closed()

    async def wait_closed(self) -> None:
        """Wait until the session is fully closed."""
        finished = self._finished = waitable(self._finished)
        await finished.wait()

    # ------------------------------------------------------------ lifecycle

    async def run(
        self, *, websocket: WebSocket | None = None, started: Callable[[], None] | None = None
    ) -> None:
        """Run the session until it closes. Started by the engine server.

        ``started`` is called once the session is set up, and not kept.
        """
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                if self._reason is not None:
                    nursery.cancel_scope.cancel()
                opened = trio.current_time()
                if websocket is not None:
                    self._switch_to(websocket)
                if started is not None:
                    started()
                    del started  # nothing of the starter is kept for the session's life
                try:
                    await self._app.on_open(self)
                except Exception:
                    log.exception("error in on_open of session %s", self.sid)
                    self.close_nowait(DisconnectReason.FORCED_CLOSE)
                if self._reason is None:  # pings count from the handshake
                    self._timer = self._timers_at(opened + self._options.ping_interval, ping=True)
                if websocket is not None and self._reason is None:
                    # The reader runs in this task, not a task of its own: an
                    # idle connection holds one task (its stack and context
                    # are most of what the cyclic GC walks per connection).
                    await self._read_websocket(websocket)
                closing = self._close_event = waitable(self._close_event)
                await closing.wait()
        finally:
            self._nursery_open = False
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = trio.current_time() + self._options.shutdown_timeout
                await self._finish()

    async def _finish(self) -> None:
        if self._reason is None:
            # Cancelled from outside: the server is shutting down.
            self.close_nowait(DisconnectReason.SERVER_SHUTTING_DOWN)
        reason = self._reason
        assert reason is not None
        ws = self._ws
        if ws is not None and reason in _SAY_CLOSE and not ws.broken:
            ws.write_nowait([P.CLOSE])
        # The application hears of the close after the last of this client's
        # messages was handled (a POST may still be unwinding in its own task).
        if self._inbound_idle is not None:
            await self._inbound_idle.wait()
        try:
            await self._app.on_close(self, reason)
        except Exception:
            log.exception("error in on_close of session %s", self.sid)
        finally:
            try:
                if (
                    reason is DisconnectReason.SERVER_SHUTTING_DOWN
                    and ws is None
                    and self._told is None
                    and not self._getting
                    and not self._upgrading
                    and self.transport == "polling"
                ):
                    # No long-poll pending to carry the CLOSE: the client's
                    # next GET may (within shutdown_timeout, this scope's
                    # deadline), so that it hears "transport close" rather
                    # than find the server gone ("transport error").
                    told = self._told = LazyEvent()
                    await told.wait()
                if ws is not None:
                    # A framing error's own code (1002, 1007, 1009) overrides
                    # this one: the WebSocket keeps it (native_ws.py).
                    await ws.close(_CLOSE_CODES.get(reason, 1000))
            finally:
                self._finished = set_once(self._finished)

    # ------------------------------------------------------------ incoming

    async def _on_packet(self, packet: EioPacket) -> None:
        if self._pong_deadline is not None and self.overdue():
            return  # too late, even for a pong
        ptype = packet.type
        if ptype is EioType.MESSAGE:
            try:
                await self._app.on_message(self, packet.data)
            except Exception:
                self._app_failed()
        elif ptype is EioType.PONG:
            self._on_pong()
        elif ptype is EioType.CLOSE:
            self.close_nowait(DisconnectReason.TRANSPORT_CLOSE)
        elif ptype is EioType.NOOP:
            pass
        elif ptype is EioType.PING:
            # Engine.IO v4 servers ping; clients only ping to probe a new transport.
            self.close_nowait(DisconnectReason.TRANSPORT_ERROR)
        else:
            self.close_nowait(DisconnectReason.PARSE_ERROR)

    def _app_failed(self) -> None:
        # Called in an ``except`` block: the traceback goes to the log.
        log.exception("error in on_message of session %s", self.sid)
        self.close_nowait(DisconnectReason.FORCED_CLOSE)

    # ------------------------------------------------------------ websocket

    def _writer_for(self, ws: WebSocket) -> None:
        # Writer tasks start on demand: when bytes queue up (or the socket breaks).
        # A bound method, not a closure: one object per connection, not three
        # (each one the cyclic GC walks, see benchmarks/README.md).
        ws.set_writer_starter(self._start_writer)

    def _start_writer(self, ws: WebSocket) -> bool:
        if not self._nursery_open or self._nursery is None:
            return False  # the session is past its nursery: close() flushes
        self._nursery.start_soon(self._write_websocket, ws)
        return True

    def _switch_to(self, ws: WebSocket) -> None:
        self._writer_for(ws)
        self._ws = ws
        self.transport = "websocket"
        if self._queue:
            ws.write_nowait(self.take_queued())
        self._poll_wake.set()

    async def _write_websocket(self, ws: WebSocket) -> None:
        await ws.run_writer()
        if ws.broken and ws is self._ws:
            self.close_nowait(DisconnectReason.TRANSPORT_ERROR)

    # The application may run a handler in the reader's task and, if the
    # handler blocks, keep the task for it: it hands the reading off to a new
    # task (hand_off_reading), and the old reader stops once ``on_message``
    # returns. Readers started so run in a cancel scope of their own, which
    # the application may cancel to stop that handler (reader_scope); the
    # first reader has none (a scope entered for the life of every connection
    # costs ~0.6 KiB, for applications that never need it).

    def reader_scope(self) -> trio.CancelScope | None:
        """From ``on_message``: the cancel scope of the WebSocket's reader task,
        when this is that task and it has one (else None)."""
        reader = self._reader
        if reader is None or reader is not trio.lowlevel.current_task():
            return None
        return self._reader_scope

    def hand_off_reading(self) -> bool:
        """From ``on_message`` in the WebSocket's reader task: start a new
        reader (with a cancel scope of its own) and let this task stop reading
        once ``on_message`` returns, so it may block in it meanwhile.

        Returns False, doing nothing, from any other task (a polling request's)
        or when the session is closing.
        """
        reader = self._reader
        ws = self._ws
        if (
            reader is None
            or reader is not trio.lowlevel.current_task()
            or ws is None
            or self._reason is not None
            or not self._nursery_open
            or self._nursery is None
        ):
            return False
        self._reader = None
        self._nursery.start_soon(self._read_websocket, ws, trio.CancelScope())
        return True

    async def _read_websocket(self, ws: WebSocket, scope: trio.CancelScope | None = None) -> None:
        me = trio.lowlevel.current_task()
        self._reader = me
        self._reader_scope = scope
        limit = self._options.max_http_buffer_size
        on_message = self._app.on_message
        try:
            with scope if scope is not None else _NO_SCOPE:
                while self._reason is None and self._reader is me:
                    message = await ws.receive(limit)
                    if type(message) is str and message[:1] == "4" and self._pong_deadline is None:
                        # A text MESSAGE with no PONG due, the common case: what
                        # _on_packet does for it, without building the packet.
                        try:
                            await on_message(self, message[1:])
                        except Exception:
                            self._app_failed()
                        continue
                    await self._on_packet(decode_ws(message))
        except WebSocketClosed as exc:
            self.close_nowait(_reason_for_close_code(exc.code))
        except RemoteProtocolError as exc:
            log.info("session %s: invalid packet: %s", self.sid, exc)
            self.close_nowait(DisconnectReason.PARSE_ERROR)


_NO_SCOPE = contextlib.nullcontext()

_SAY_CLOSE = frozenset(
    {
        DisconnectReason.FORCED_CLOSE,
        DisconnectReason.SERVER_SHUTTING_DOWN,
        DisconnectReason.FORCED_SERVER_CLOSE,
        DisconnectReason.PING_TIMEOUT,
        DisconnectReason.SLOW_CLIENT,
        DisconnectReason.PAYLOAD_TOO_LARGE,
        DisconnectReason.PARSE_ERROR,
    }
)


# The close frame's code for a session closed by the server (RFC 6455 section
# 7.4.1): an Engine.IO or Socket.IO packet the server could not parse is a
# protocol error of the subprotocol, 1002; a message too big, 1009; the server
# going down, 1001 ("going away"); any other reason is a normal closure, 1000.
_CLOSE_CODES = {
    DisconnectReason.PAYLOAD_TOO_LARGE: 1009,
    DisconnectReason.PARSE_ERROR: 1002,
    DisconnectReason.SERVER_SHUTTING_DOWN: 1001,
}


def _reason_for_close_code(code: int) -> DisconnectReason:
    if code == 1009:
        return DisconnectReason.PAYLOAD_TOO_LARGE
    if code in (1002, 1003, 1007):
        return DisconnectReason.PARSE_ERROR
    # The client closed (1000, 1001...) or the link broke (1006).
    return DisconnectReason.TRANSPORT_CLOSE
