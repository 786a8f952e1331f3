"""One Engine.IO session: its nursery, transports, heartbeat and upgrade.

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
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import trio

from .._common.sync import LazyEvent, WriteBatch
from .._errors import DisconnectReason, RemoteProtocolError
from .._proto.eio import EioPacket, EioType, decode_ws
from . import packet as P
from .exchange import Request, WebSocket, WebSocketClosed
from .heartbeats import HeartbeatTimers, TimerEntry
from .options import EngineOptions
from .packet import OutPacket

log = logging.getLogger("triosio.engine")


class EngineApp(Protocol):
    """What the Engine.IO server reports to the layer above it (e.g. Socket.IO).

    All three run in the session's own task: ``on_open`` once the session is
    open (start per-client tasks in ``session.nursery``), ``on_message`` for each
    message in arrival order (awaiting in it slows this client's reads down, and
    only this client's), ``on_close`` once, after the session's nursery is done.
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


class PollOverlap(Exception):
    """A second GET (or POST) while one is still pending: the session is closed."""


# What ends the long-poll that is pending when the session closes: the client
# asked (its CLOSE packet) → NOOP, as the reference server; otherwise → CLOSE.
def _poll_terminator(reason: DisconnectReason) -> OutPacket:
    return P.NOOP if reason is DisconnectReason.TRANSPORT_CLOSE else P.CLOSE


class EngineSession:
    """One client's Engine.IO session.

    Created by the engine server at the handshake; applications get it in
    :meth:`EngineApp.on_open`.

    Attributes:
        sid: The session id (random, from a CSPRNG).
        request: The handshake request (headers, query, client address...).
        transport: ``"polling"`` or ``"websocket"``; changes once on upgrade.
    """

    __slots__ = (
        "_app",
        "_batch",
        "_close_event",
        "_finished",
        "_getting",
        "_held",
        "_inbound",
        "_inbound_idle",
        "_nursery",
        "_nursery_open",
        "_options",
        "_ping_held",
        "_poll_wake",
        "_pong_deadline",
        "_posting",
        "_probing",
        "_queue",
        "_queued_bytes",
        "_reason",
        "_room",
        "_timer",
        "_timers",
        "_upgrading",
        "_ws",
        "app_state",
        "request",
        "sid",
        "transport",
    )

    def __init__(
        self,
        sid: str,
        request: Request,
        transport: str,
        options: EngineOptions,
        app: EngineApp,
        batch: WriteBatch | None = None,
        timers: HeartbeatTimers | None = None,
    ) -> None:
        self.sid = sid
        self._batch = batch or WriteBatch()
        # None: the session runs a timer task of its own (no server around it).
        self._timers = timers
        self._timer: TimerEntry | None = None
        self._held: list[OutPacket] = []
        self.request = request
        self.transport = transport
        self._options = options
        self._app = app
        # A list, not a deque: an empty deque costs 624 bytes per connection.
        self._queue: list[OutPacket] = []
        self._queued_bytes = 0
        self._poll_wake = LazyEvent()
        self._room = LazyEvent(True)
        self._ws: WebSocket | None = None
        self._probing = False
        self._upgrading = False
        self._getting = False
        self._posting = False
        # When the pending PING's pong is due (None: no PING pending). The one
        # truth about the deadline, so that whatever reaches the session first
        # at that instant — the timer task, a request, a packet — sees it.
        self._pong_deadline: float | None = None
        # A PING fell due during an upgrade's switch: it goes out after it.
        self._ping_held = False
        self._reason: DisconnectReason | None = None
        self._close_event = LazyEvent()
        self._finished = LazyEvent()
        self._nursery: trio.Nursery | None = None
        self._nursery_open = True
        # Cancel scopes of POST bodies being handled (in HTTP connection tasks).
        self._inbound: set[trio.CancelScope] = set()
        self._inbound_idle = LazyEvent(True)
        #: Whatever the application layer keeps for this session.
        self.app_state: Any = None

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
        caller. ``force`` skips the limits (for sends that already waited for room).

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
                if not self._held:
                    self._batch.pending.append(self)
                self._held.extend(packets)
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
        if self._room.is_set() and self._over_limit():
            self._room.clear()
        self._poll_wake.set()
        return True

    def flush_batch(self) -> None:
        """Write what was held during a :class:`WriteBatch` (one write)."""
        held, self._held = self._held, []
        ws = self._ws
        if ws is not None and held and self._reason is None:
            ws.write_nowait(held)

    def _over_limit(self) -> bool:
        return (
            len(self._queue) >= self._options.max_buffered_packets
            or self._queued_bytes > self._options.max_buffered_bytes
        )

    def has_room(self) -> bool:
        """Whether :meth:`wait_for_room` would return at once."""
        if self._reason is not None:
            return True
        ws = self._ws
        if ws is not None:
            return ws.backlog <= self._options.max_buffered_bytes
        return not self._over_limit()

    async def wait_for_room(self) -> None:
        """Wait until this client's outbound queue is below its limits.

        Not a schedule point when there is room already (the hot path of every
        emit): callers that loop must yield by other means.
        """
        while not self.has_room():
            ws = self._ws
            if ws is not None:
                await ws.wait_drained()
            else:
                await self._room.wait()

    async def send(self, data: str | bytes) -> None:
        """Send one MESSAGE, waiting for room in the client's queue if it is full.

        Raises:
            trio.ClosedResourceError: the session is closed.
        """
        await self.wait_for_room()
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
        self._close_event.set()
        self._poll_wake.set()
        self._room.set()
        HeartbeatTimers.cancel(self._timer)
        self._timer = None
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()
        for scope in self._inbound:
            scope.cancel()

    async def close(self, reason: DisconnectReason = DisconnectReason.FORCED_CLOSE) -> None:
        """Close the session and wait until it is fully closed."""
        self.close_nowait(reason)
        await self._finished.wait()

    async def wait_closed(self) -> None:
        """Wait until the session is fully closed."""
        await self._finished.wait()

    # ------------------------------------------------------------ lifecycle

    async def run(self, *, websocket: WebSocket | None = None, started: Callable[[], None]) -> None:
        """Run the session until it closes. Started by the engine server."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                if self._reason is not None:
                    nursery.cancel_scope.cancel()
                opened = trio.current_time()
                timers = self._timers
                if timers is None:
                    timers = self._timers = HeartbeatTimers()
                    nursery.start_soon(timers.run)
                if websocket is not None:
                    self._switch_to(websocket)
                    nursery.start_soon(self._read_websocket, websocket)
                started()
                try:
                    await self._app.on_open(self)
                except Exception:
                    log.exception("error in on_open of session %s", self.sid)
                    self.close_nowait(DisconnectReason.FORCED_CLOSE)
                if self._reason is None:  # pings count from the handshake
                    self._timer = self._timers_at(opened + self._options.ping_interval, ping=True)
                await self._close_event.wait()
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
        await self._inbound_idle.wait()
        try:
            await self._app.on_close(self, reason)
        except Exception:
            log.exception("error in on_close of session %s", self.sid)
        finally:
            try:
                if ws is not None:
                    code = 1009 if reason is DisconnectReason.PAYLOAD_TOO_LARGE else 1000
                    await ws.close(code)
            finally:
                self._finished.set()

    # ------------------------------------------------------------ heartbeat

    def on_timer(self, now: float) -> None:
        """A PING or the pending PONG fell due (called by the timer task)."""
        self._timer = None
        if self._reason is not None:
            return
        deadline = self._pong_deadline
        if self._upgrading:
            # Paused while a probe is switching: the switch's end picks it up.
            self._ping_held = deadline is None
        elif deadline is None:
            self._ping(now)
        elif now >= deadline:
            self.close_nowait(DisconnectReason.PING_TIMEOUT)
        else:  # an upgrade moved the deadline
            self._timer = self._timers_at(deadline)

    def _timers_at(self, when: float, *, ping: bool = False) -> TimerEntry:
        timers = self._timers
        assert timers is not None  # set before the first timer, by run()
        if ping:  # may go a little early, with other sessions' pings
            return timers.at(when, self, min(_PING_SLACK, self._options.ping_interval / 100))
        return timers.at(when, self)

    def _ping(self, now: float) -> None:
        self.send_nowait([P.PING], force=True)
        deadline = self._pong_deadline = now + self._options.ping_timeout
        self._timer = self._timers_at(deadline)

    def _on_pong(self) -> None:
        if self._pong_deadline is None:
            return  # a stray pong starts nothing
        self._pong_deadline = None
        HeartbeatTimers.cancel(self._timer)
        self._timer = self._timers_at(trio.current_time() + self._options.ping_interval, ping=True)

    def _heartbeat_after_switch(self) -> None:
        # The upgrade's switch ended (either way): a PING held back goes out
        # now; a PONG deadline that passed meanwhile was moved by the probe.
        if self._reason is not None:
            return
        if self._ping_held:
            self._ping_held = False
            self._ping(trio.current_time())
        elif self._pong_deadline is not None and self._timer is None:
            self._timer = self._timers_at(self._pong_deadline)

    def overdue(self) -> bool:
        """Close the session if its pong is overdue; return whether it is closed.

        The timer task closes the session at the deadline, but a request or a
        packet that becomes ready at the same instant may be run first: the
        engine calls this before serving anything, so that nothing is served
        past the deadline, whatever the order the scheduler picks.
        """
        deadline = self._pong_deadline
        if (
            deadline is not None
            and self._reason is None
            and not self._upgrading
            and trio.current_time() >= deadline
        ):
            self.close_nowait(DisconnectReason.PING_TIMEOUT)
        return self._reason is not None

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

    async def receive_packets(self, packets: Sequence[EioPacket]) -> None:
        """Handle packets that came in a polling POST body, in order.

        Runs in the caller's task (the HTTP connection's), under a cancel scope
        that closing the session cancels; packets after a close are dropped.
        """
        if not packets or self._reason is not None:
            return
        scope = trio.CancelScope()
        if not self._inbound:
            self._inbound_idle.clear()
        self._inbound.add(scope)
        try:
            with scope:
                for packet in packets:
                    if self.closed:  # a previous packet closed the session
                        break
                    await self._on_packet(packet)
        finally:
            self._inbound.discard(scope)
            if not self._inbound:
                self._inbound_idle.set()

    def begin_post(self) -> None:
        """A POST starts. Raises PollOverlap (and closes) if one is pending."""
        if self._posting:
            self.close_nowait(DisconnectReason.TRANSPORT_ERROR)
            raise PollOverlap("overlapping POST requests")
        self._posting = True

    def end_post(self) -> None:
        """The POST is done."""
        self._posting = False

    # ------------------------------------------------------------ polling

    async def poll(self) -> list[OutPacket]:
        """Wait for packets for a long-polling GET and take them all.

        Returns ``[NOOP]`` while an upgrade is in progress (to release the client
        so it can pause polling). Once the session is closed it returns what was
        still queued followed by ``CLOSE`` (``NOOP`` when the client itself sent
        CLOSE, as the reference server does).

        Raises:
            PollOverlap: a GET was already pending; the session is now closed.
                Raised before the first checkpoint.
        """
        if self._getting:
            self.close_nowait(DisconnectReason.TRANSPORT_ERROR)
            raise PollOverlap("overlapping GET requests")
        self._getting = True
        try:
            while True:
                reason = self._reason
                if reason is not None:
                    return [*self._take_queue(), _poll_terminator(reason)]
                if self._queue:
                    return self._take_queue()
                if self._upgrading or self._ws is not None:
                    return [P.NOOP]
                self._poll_wake.clear()
                await self._poll_wake.wait()
        finally:
            self._getting = False

    def _take_queue(self) -> list[OutPacket]:
        packets = self._queue
        self._queue = []
        self._queued_bytes = 0
        self._room.set()
        return packets

    def take_queued(self) -> list[OutPacket]:
        """Take what is queued now, without waiting (for the handshake response)."""
        return self._take_queue()

    # ------------------------------------------------------------ websocket

    def _writer_for(self, ws: WebSocket) -> None:
        # Writer tasks start on demand: when bytes queue up (or the socket breaks).
        def start() -> bool:
            if not self._nursery_open or self._nursery is None:
                return False  # the session is past its nursery: close() flushes
            self._nursery.start_soon(self._write_websocket, ws)
            return True

        ws.set_writer_starter(start)

    def _switch_to(self, ws: WebSocket) -> None:
        self._writer_for(ws)
        self._ws = ws
        self.transport = "websocket"
        if self._queue:
            ws.write_nowait(self._take_queue())
        self._poll_wake.set()

    async def _write_websocket(self, ws: WebSocket) -> None:
        await ws.run_writer()
        if ws.broken and ws is self._ws:
            self.close_nowait(DisconnectReason.TRANSPORT_ERROR)

    async def _read_websocket(self, ws: WebSocket) -> None:
        limit = self._options.max_http_buffer_size
        on_message = self._app.on_message
        try:
            while self._reason is None:
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

    def can_upgrade(self) -> bool:
        """Whether a WebSocket may start probing this session now."""
        return (
            self._reason is None
            and self._ws is None
            and not self._probing
            and self._nursery is not None
        )

    def start_upgrade(self, ws: WebSocket) -> None:
        """Probe ``ws`` and, if the client completes the upgrade, switch to it."""
        self._probing = True
        self.nursery.start_soon(self._probe, ws)

    async def _probe(self, ws: WebSocket) -> None:
        # The probe: "2probe" → "3probe" (again for each repeated probe), then
        # "5". Anything else, a timeout or a closed socket fails the upgrade: the
        # probe WebSocket is closed and the session stays on polling, as with
        # the reference server. Packets are never taken from a WebSocket before
        # the switch, so nothing can overtake what is still in flight on polling.
        limit = self._options.max_http_buffer_size
        ok = False
        switched = False
        try:
            self._writer_for(ws)
            try:
                with trio.move_on_after(self._options.upgrade_timeout):
                    while True:
                        packet = decode_ws(await ws.receive(limit))
                        if packet.type is EioType.PING and packet.data == "probe":
                            ws.write_nowait([P.PROBE_PONG])
                            if not self._upgrading:
                                self._upgrading = True
                                self._poll_wake.set()  # release a pending GET with NOOP
                            continue
                        ok = self._upgrading and packet.type is EioType.UPGRADE
                        if not ok:
                            log.info(
                                "session %s: upgrade failed: %s packet during the probe",
                                self.sid,
                                packet.type.name,
                            )
                        break
            except (WebSocketClosed, RemoteProtocolError) as exc:
                log.debug("session %s: upgrade failed: %s", self.sid, exc)
            finally:
                if self._upgrading and self._pong_deadline is not None:
                    # A pong that fell due during the switch gets a fresh timeout.
                    now = trio.current_time()
                    if now >= self._pong_deadline:
                        self._pong_deadline = now + self._options.ping_timeout
                self._upgrading = False
                self._probing = False
                if not (ok and self._reason is None):
                    self._heartbeat_after_switch()
            if ok and self._reason is None:
                self._switch_to(ws)
                switched = True
                self._heartbeat_after_switch()  # a held PING goes over the new transport
                await self._read_websocket(ws)
        finally:
            if not switched:
                # Also when cancelled (the session closed during the probe).
                await ws.close(1000 if ok else 1002)


#: How early a PING may go out to share the timer task's wake-up with others.
_PING_SLACK = 0.005

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


def _reason_for_close_code(code: int) -> DisconnectReason:
    if code == 1009:
        return DisconnectReason.PAYLOAD_TOO_LARGE
    if code in (1002, 1003, 1007):
        return DisconnectReason.PARSE_ERROR
    if code == 1006:
        return DisconnectReason.TRANSPORT_CLOSE
    return DisconnectReason.TRANSPORT_CLOSE
