"""The Engine.IO v4 client: one connection (one session id) to a server.

Spec: https://socket.io/docs/v4/engine-io-protocol/ ("Handshake", "Heartbeat",
"Upgrade", "HTTP long-polling", "WebSocket"); behaviour as ``engine.io-client`` 6.

- Handshake: ``GET {path}?EIO=4&transport=polling&t=...`` (or, websocket-only, a
  WebSocket to ``...&transport=websocket`` whose first message is the OPEN packet).
- Polling: a long-poll GET and a POST on two separate keep-alive connections, so
  both may be in flight; queued packets go out batched in one POST, below the
  server's ``maxPayload``. Binary messages travel as ``b`` + base64.
- Upgrade: a WebSocket with the session id, ``2probe`` -> ``3probe``; then polling
  pauses (the in-flight GET and POST finish, nothing new starts), ``5`` goes over
  the WebSocket, and it carries everything from then on. A failed probe leaves
  the connection on polling.
- Heartbeat: the server pings, the client answers pong; if no ping comes for
  ``pingInterval + pingTimeout`` the connection is dead ("ping timeout").

The layer above talks to this one through a narrow interface: messages and pings
come in through two plain callbacks, :meth:`EngineClient.send` queues outgoing
messages without waiting, and :meth:`EngineClient.run` returns the reason the
connection ended. This module knows nothing of Socket.IO.
"""

from __future__ import annotations

import itertools
import logging
from collections import deque
from collections.abc import Callable, Iterable
from urllib.parse import urlencode

import trio
import trio_websocket

from .._common import ids
from .._errors import DisconnectReason, InvalidHandshake, RemoteProtocolError
from .._proto import eio
from .._proto.eio import EioPacket, EioType, Handshake
from .eio_client_http import Connector, HttpConnection, HttpError, default_connector
from .eio_client_options import POLLING, TRANSPORTS, WEBSOCKET, EngineClientOptions
from .eio_client_ws import ClientWebSocket, WebSocketError

__all__ = [
    "TRANSPORTS",
    "Connector",
    "EngineClient",
    "EngineClientOptions",
    "EngineError",
    "default_connector",
]

log = logging.getLogger("triosio.client")

#: How long the server has to answer ``2probe`` before the upgrade is given up.
PROBE_TIMEOUT = 10.0


class EngineError(Exception):
    """The Engine.IO connection could not be opened, or failed."""


class EngineClient:
    """One Engine.IO client connection.

    Call :meth:`open` (the handshake), then :meth:`run` until the connection
    ends; :meth:`run` always releases every resource, and so does :meth:`open`
    when it fails. Resources opened by :meth:`open` and not yet handed to
    :meth:`run` are released by :meth:`aclose`.

    Args:
        options: Where and how to connect.
        nursery: Holds the WebSocket tasks; must outlive the connection.
        on_message: Called with each MESSAGE (``str`` or ``bytes``), in order.
        on_ping: Called when the server pings.
        on_upgrade: Called with the transport name after an upgrade.
    """

    def __init__(
        self,
        options: EngineClientOptions,
        nursery: trio.Nursery,
        on_message: Callable[[str | bytes], None],
        on_ping: Callable[[], None] | None = None,
        on_upgrade: Callable[[str], None] | None = None,
    ) -> None:
        for name in options.transports:
            if name not in TRANSPORTS:
                raise ValueError(f"unknown transport {name!r} (use 'polling' or 'websocket')")
        if not options.transports:
            raise ValueError("transports must not be empty")
        self.options = options
        self._nursery = nursery
        self._on_message = on_message
        self._on_ping = on_ping
        self._on_upgrade = on_upgrade
        self.handshake: Handshake | None = None
        #: The current transport, ``"polling"`` or ``"websocket"``.
        self.transport: str = options.transports[0]
        #: Why the connection ended (set when it ends).
        self.reason: DisconnectReason | None = None
        #: The error behind the end, if there was one.
        self.error: BaseException | None = None
        self._queue: deque[EioPacket] = deque()
        self._in_flight = 0
        self._early: list[EioPacket] = []
        self._get = HttpConnection(
            options.connector, options.host, options.port, options.tls, options.max_message_size
        )
        self._post = HttpConnection(
            options.connector, options.host, options.port, options.tls, options.max_message_size
        )
        self._ws: ClientWebSocket | None = None
        self._wake_writer = trio.lowlevel.ParkingLot()
        self._drained = trio.lowlevel.ParkingLot()
        self._ended = trio.Event()
        self._closing = False
        self._pausing = False
        self._poll_idle = trio.Event()
        self._post_idle = trio.Event()
        self._ping_deadline = 0.0
        self._t_prefix = ids.token_hex(3)
        self._t_counter = itertools.count()

    # ------------------------------------------------------------ public

    @property
    def sid(self) -> str | None:
        """The Engine.IO session id, once open."""
        return self.handshake.sid if self.handshake else None

    @property
    def pending(self) -> int:
        """Messages queued or being written, not yet handed to the network."""
        return len(self._queue) + self._in_flight

    @property
    def closing(self) -> bool:
        """Whether :meth:`close` was called (the CLOSE packet is queued or sent)."""
        return self._closing

    @property
    def ended(self) -> bool:
        """Whether the connection has ended (or is ending)."""
        return self.reason is not None

    @property
    def ping_expired(self) -> bool:
        """Whether the heartbeat deadline passed (the connection is about to end)."""
        return self.handshake is not None and trio.current_time() > self._ping_deadline

    async def open(self) -> Handshake:
        """Connect and perform the handshake; release everything on failure.

        Raises:
            EngineError: the connection failed or the server answered wrongly.
        """
        try:
            if self.transport == POLLING:
                handshake = await self._open_polling()
            else:
                handshake = await self._open_websocket()
        except BaseException:
            await self.aclose()
            raise
        self.handshake = handshake
        self._reset_ping_deadline()
        return handshake

    async def run(self) -> DisconnectReason:
        """Run the connection until it ends; return why. Releases every resource."""
        assert self.handshake is not None, "open() first"
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._heartbeat)
                if self.transport == POLLING:
                    nursery.start_soon(self._poll_loop)
                    nursery.start_soon(self._post_loop)
                    if WEBSOCKET in self.options.transports and WEBSOCKET in (
                        self.handshake.upgrades
                    ):
                        nursery.start_soon(self._upgrade, nursery)
                else:
                    nursery.start_soon(self._ws_reader)
                    nursery.start_soon(self._ws_writer)
                early, self._early = self._early, []
                for packet in early:
                    self._on_packet(packet)
                await self._ended.wait()
                nursery.cancel_scope.cancel()
        finally:
            if self.reason is None:
                self.reason = DisconnectReason.FORCED_CLOSE
            self._ended.set()
            self._drained.unpark_all()
            with trio.CancelScope(shield=True):
                await self.aclose()
        return self.reason

    def send(self, messages: Iterable[str | bytes]) -> None:
        """Queue messages, in order, without waiting (dropped once the connection ended)."""
        if self._closing or self.reason is not None:
            return
        for message in messages:
            self._queue.append(EioPacket(EioType.MESSAGE, message))
        self._wake_writer.unpark_all()

    async def wait_writable(self, high_water: int) -> None:
        """Wait until fewer than ``high_water`` messages are pending, or the end."""
        while self.pending >= high_water and self.reason is None:
            await self._drained.park()

    def close(self) -> None:
        """End the connection gracefully: send what is queued, then a CLOSE packet.

        :meth:`run` returns ``DisconnectReason.FORCED_CLOSE`` once it is sent.
        """
        if self._closing or self.reason is not None:
            return
        self._queue.append(eio.CLOSE)
        self._closing = True
        self._wake_writer.unpark_all()

    def abort(self, reason: DisconnectReason, error: BaseException | None = None) -> None:
        """End the connection now, for ``reason`` (the first reason given wins)."""
        if self.reason is None:
            self.reason = reason
            self.error = error
        self._ended.set()
        self._wake_writer.unpark_all()
        self._drained.unpark_all()

    async def aclose(self) -> None:
        """Close every stream this connection opened (idempotent)."""
        ws, self._ws = self._ws, None
        try:
            await self._get.aclose()
        finally:
            try:
                await self._post.aclose()
            finally:
                if ws is not None:
                    await ws.aclose()

    # ------------------------------------------------------------ handshake

    def _target(self, transport: str, *, sid: bool = True) -> str:
        query = list(self.options.query)
        query.append(("EIO", str(eio.PROTOCOL)))
        query.append(("transport", transport))
        if sid and self.handshake is not None:
            query.append(("sid", self.handshake.sid))
        if transport == POLLING:
            query.append(("t", f"{self._t_prefix}{next(self._t_counter):x}"))
        return self.options.path + "?" + urlencode(query)

    async def _request(
        self, conn: HttpConnection, method: str, target: str, body: bytes = b""
    ) -> str:
        headers = self.options.request_headers()
        if method == "POST":
            headers.append(("Content-Type", "text/plain;charset=UTF-8"))
        try:
            status, response_headers, payload = await conn.request(method, target, headers, body)
        except HttpError as exc:
            raise EngineError(str(exc)) from exc
        self.options.store_cookies(response_headers)
        if status != 200:
            detail = payload[:200].decode("utf-8", "replace")
            raise EngineError(f"{method} answered with HTTP {status}: {detail}")
        try:
            return payload.decode("utf-8")
        except UnicodeDecodeError:
            raise EngineError("response is not valid UTF-8") from None

    async def _open_polling(self) -> Handshake:
        body = await self._request(self._get, "GET", self._target(POLLING, sid=False))
        try:
            packets = eio.decode_payload(body)
        except RemoteProtocolError as exc:
            raise EngineError(f"bad handshake response: {exc}") from exc
        handshake = self._decode_open(packets[0])
        self._early.extend(packets[1:])
        return handshake

    async def _open_websocket(self) -> Handshake:
        ws = self._ws = ClientWebSocket()
        await self._ws_connect(ws, sid=False)
        try:
            frame = await ws.get_message()
        except trio_websocket.ConnectionClosed as exc:
            raise EngineError("websocket closed before the handshake") from exc
        try:
            packet = eio.decode_ws(frame)
        except RemoteProtocolError as exc:
            raise EngineError(f"bad handshake message: {exc}") from exc
        return self._decode_open(packet)

    async def _ws_connect(self, ws: ClientWebSocket, *, sid: bool) -> None:
        opts = self.options
        try:
            await ws.open(
                self._nursery,
                opts.connector,
                opts.host,
                opts.port,
                opts.tls,
                opts.host_header,
                self._target(WEBSOCKET, sid=sid),
                [h for h in self.options.request_headers() if h[0] != "Host"],
                opts.max_message_size,
            )
        except WebSocketError as exc:
            raise EngineError(str(exc)) from exc

    @staticmethod
    def _decode_open(packet: EioPacket) -> Handshake:
        if packet.type is not EioType.OPEN or not isinstance(packet.data, str):
            raise EngineError(f"expected an OPEN packet, got {packet.type.name}")
        try:
            return eio.decode_open(packet.data)
        except InvalidHandshake as exc:
            raise EngineError(f"bad handshake: {exc}") from exc

    # ------------------------------------------------------------ receiving

    def _reset_ping_deadline(self) -> None:
        assert self.handshake is not None
        wait = (self.handshake.ping_interval + self.handshake.ping_timeout) / 1000
        self._ping_deadline = trio.current_time() + wait

    def _on_packet(self, packet: EioPacket) -> None:
        if self.reason is not None:
            return
        ptype = packet.type
        if ptype is EioType.MESSAGE:
            self._on_message(packet.data)
        elif ptype is EioType.PING:
            self._reset_ping_deadline()
            if not self._closing:
                self._queue.append(eio.PONG)
                self._wake_writer.unpark_all()
            if self._on_ping is not None:
                self._on_ping()
        elif ptype is EioType.CLOSE:
            self.abort(DisconnectReason.TRANSPORT_CLOSE)
        # NOOP, a stray PONG/OPEN/UPGRADE: nothing to do.

    async def _heartbeat(self) -> None:
        while True:
            await trio.sleep_until(self._ping_deadline)
            if trio.current_time() >= self._ping_deadline:
                self.abort(DisconnectReason.PING_TIMEOUT)
                return

    async def _poll_loop(self) -> None:
        try:
            while not self._pausing:
                body = await self._request(self._get, "GET", self._target(POLLING))
                try:
                    packets = eio.decode_payload(body)
                except RemoteProtocolError as exc:
                    self.abort(DisconnectReason.PARSE_ERROR, exc)
                    return
                for packet in packets:
                    self._on_packet(packet)
        except EngineError as exc:
            self.abort(DisconnectReason.TRANSPORT_ERROR, exc)
        finally:
            self._poll_idle.set()

    # ------------------------------------------------------------ sending

    def _take_batch(self) -> list[EioPacket]:
        # As engine.io-client: everything queued, cut below maxPayload (at least one).
        assert self.handshake is not None
        limit = self.handshake.max_payload
        batch: list[EioPacket] = []
        size = 0
        while self._queue:
            part = len(eio.encode_payload_part(self._queue[0]).encode("utf-8"))
            if batch and limit and size + 1 + part > limit:
                break
            size += part + (1 if batch else 0)
            batch.append(self._queue.popleft())
        return batch

    async def _post_loop(self) -> None:
        try:
            while True:
                while not self._queue and not self._pausing:
                    await self._wake_writer.park()
                if self._pausing:
                    return
                batch = self._take_batch()
                self._in_flight = len(batch)
                body = eio.encode_payload(batch).encode("utf-8")
                response = await self._request(self._post, "POST", self._target(POLLING), body)
                self._in_flight = 0
                self._drained.unpark_all()
                if response != "ok":
                    log.debug("unexpected answer to a POST: %r", response[:100])
                if batch[-1].type is EioType.CLOSE:
                    self.abort(DisconnectReason.FORCED_CLOSE)
                    return
        except EngineError as exc:
            self.abort(DisconnectReason.TRANSPORT_ERROR, exc)
        finally:
            self._post_idle.set()

    async def _ws_writer(self) -> None:
        ws = self._ws
        assert ws is not None
        try:
            while True:
                while not self._queue:
                    await self._wake_writer.park()
                packet = self._queue.popleft()
                self._in_flight = 1
                await ws.send_message(eio.encode_ws(packet))
                self._in_flight = 0
                self._drained.unpark_all()
                if packet.type is EioType.CLOSE:
                    self.abort(DisconnectReason.FORCED_CLOSE)
                    return
        except trio_websocket.ConnectionClosed as exc:
            self.abort(DisconnectReason.TRANSPORT_CLOSE, exc)

    async def _ws_reader(self) -> None:
        ws = self._ws
        assert ws is not None
        try:
            while True:
                frame = await ws.get_message()
                try:
                    packet = eio.decode_ws(frame, max_payload=self.options.max_message_size)
                except RemoteProtocolError as exc:
                    self.abort(DisconnectReason.PARSE_ERROR, exc)
                    return
                self._on_packet(packet)
        except trio_websocket.ConnectionClosed as exc:
            self.abort(DisconnectReason.TRANSPORT_CLOSE, exc)

    # ------------------------------------------------------------ upgrade

    async def _upgrade(self, nursery: trio.Nursery) -> None:
        ws = ClientWebSocket()
        switched = False
        try:
            with trio.move_on_after(PROBE_TIMEOUT) as probe:
                await self._ws_connect(ws, sid=True)
                await ws.send_message(eio.encode_ws(eio.PROBE_PING))
                frame = await ws.get_message()
                if eio.decode_ws(frame) != eio.PROBE_PONG:
                    raise EngineError(f"unexpected answer to the probe: {frame!r:.50}")
            if probe.cancelled_caught:
                raise EngineError("no answer to the probe in time")
            if self._closing or self.reason is not None:
                return
            # Pause polling: let the in-flight GET and POST finish, start no new one.
            self._pausing = True
            self._wake_writer.unpark_all()
            await self._poll_idle.wait()
            await self._post_idle.wait()
            if self.ended:
                return
            await ws.send_message(eio.encode_ws(eio.UPGRADE))
            self._ws = ws
            self.transport = WEBSOCKET
            switched = True
            nursery.start_soon(self._ws_reader)
            nursery.start_soon(self._ws_writer)
            await self._get.aclose()
            await self._post.aclose()
            if self._on_upgrade is not None:
                self._on_upgrade(WEBSOCKET)
        except (EngineError, RemoteProtocolError, trio_websocket.ConnectionClosed) as exc:
            if self._pausing:
                # Polling is already paused: the connection cannot go on.
                self.abort(DisconnectReason.TRANSPORT_ERROR, exc)
            else:
                log.debug("upgrade to websocket failed: %r", exc)
        finally:
            if not switched:
                with trio.CancelScope(shield=True):
                    await ws.aclose()
