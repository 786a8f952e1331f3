"""A small scripted Engine.IO v4 / Socket.IO v5 server over in-memory streams.

For client tests under ``trio.testing.MockClock``: the client's ``connector``
option plugs it in (:meth:`ScriptedPeer.connector`), so every byte the client
sends goes through the real client stack (h11 for polling, trio-websocket for
WebSocket) and is parsed here by h11 and wsproto. It is a test double with knobs,
not a server: one process-wide state, no rooms, no limits.

Knobs: ``lockstep`` (streams whose writes wait for the reader) with ``stalled``
(the server stops reading WebSocket messages until ``unstalled`` is set),
``refuse`` (the connector raises OSError, like a dead port), ``close_idle``
(a POST's connection is closed, unanswered, when it is used again), ``pinging``
(stop pinging to trigger the client's ping timeout), ``authorize`` (refuse a
namespace with a CONNECT_ERROR),
``drop_all()`` (cut every connection), ``close_sessions()`` (send CLOSE),
``disconnect_namespace()`` (server-side DISCONNECT), ``emit()`` (server events,
with an optional acknowledgement), ``ignore_acks`` (leave the first n events of a
name unacknowledged).
"""

from __future__ import annotations

import itertools
import ssl
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import h11
import trio
import trio.testing
import wsproto
import wsproto.events as wse
import wsproto.utilities

from triosio._proto import eio
from triosio._proto.eio import EioPacket, EioType, Handshake
from triosio._proto.sio import JSONDecoder, JSONEncoder, SioPacket, SioType

Refusal = tuple[str, Any] | None


@dataclass
class Received:
    """An event the peer received."""

    sid: str
    nsp: str
    name: str
    args: list[Any]
    ack_id: int | None


@dataclass
class _Session:
    sid: str
    transport: str
    outbox: deque[EioPacket] = field(default_factory=deque)
    lot: trio.lowlevel.ParkingLot = field(default_factory=trio.lowlevel.ParkingLot)
    upgrading: bool = False
    closed: bool = False
    namespaces: dict[str, str] = field(default_factory=dict)
    auths: dict[str, Any] = field(default_factory=dict)
    decoder: JSONDecoder = field(default_factory=JSONDecoder)
    streams: list[trio.abc.Stream] = field(default_factory=list)

    def push(self, packet: EioPacket) -> None:
        if not self.closed:
            self.outbox.append(packet)
            self.lot.unpark_all()


class _WS:
    """A server-side WebSocket (wsproto) on a stream, after an h11 upgrade request."""

    def __init__(self, stream: trio.abc.Stream, ws: wsproto.WSConnection) -> None:
        self.stream = stream
        self.ws = ws
        self.lock = trio.Lock()
        self.parts: list[str | bytes] = []

    async def send(self, message: str | bytes) -> None:
        event: wse.Event
        event = wse.TextMessage(message) if isinstance(message, str) else wse.BytesMessage(message)
        try:
            async with self.lock:
                await self.stream.send_all(self.ws.send(event))
        except (
            trio.BrokenResourceError,
            trio.ClosedResourceError,
            wsproto.utilities.LocalProtocolError,
        ):
            pass  # the connection is gone: the reader sees it too

    async def receive(self) -> str | bytes | None:
        try:
            return await self._receive()
        except (
            trio.BrokenResourceError,
            trio.ClosedResourceError,
            wsproto.utilities.LocalProtocolError,
        ):
            return None

    async def _receive(self) -> str | bytes | None:
        while True:
            for event in self.ws.events():
                if isinstance(event, (wse.TextMessage, wse.BytesMessage)):
                    self.parts.append(event.data)
                    if event.message_finished:
                        parts, self.parts = self.parts, []
                        if isinstance(parts[0], str):
                            return "".join(p for p in parts if isinstance(p, str))
                        return b"".join(p for p in parts if isinstance(p, bytes))
                elif isinstance(event, wse.CloseConnection):
                    async with self.lock:
                        await self.stream.send_all(self.ws.send(event.response()))
                    return None
                elif isinstance(event, wse.Ping):
                    async with self.lock:
                        await self.stream.send_all(self.ws.send(event.response()))
            data = await self.stream.receive_some(65536)
            if not data:
                return None
            self.ws.receive_data(data)


class ScriptedPeer:
    """The server double. Create it with a nursery that outlives the client.

    Args:
        nursery: Runs the per-connection tasks.
        ping_interval: Milliseconds between pings.
        ping_timeout: Milliseconds (sent in the handshake).
        max_payload: Sent in the handshake.
        upgrades: Offered upgrades.
    """

    def __init__(
        self,
        nursery: trio.Nursery,
        *,
        ping_interval: int = 25000,
        ping_timeout: int = 20000,
        max_payload: int = 1_000_000,
        upgrades: tuple[str, ...] = ("websocket",),
        lockstep: bool = False,
    ) -> None:
        self.nursery = nursery
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.max_payload = max_payload
        self.upgrades = upgrades
        self.lockstep = lockstep
        self.stalled = False
        self.unstalled = trio.Event()
        self.refuse = False
        self.close_idle = False
        self.pinging = True
        self.authorize: Callable[[str, Any], Refusal] = lambda nsp, auth: None
        self.ignore_acks: dict[str, float] = {}
        self.sessions: dict[str, _Session] = {}
        self.received: list[Received] = []
        self.connects: list[tuple[str, Any]] = []
        self.connections: list[tuple[str, int, ssl.SSLContext | None]] = []
        self.requests: list[tuple[str, str]] = []
        self.request_headers: list[dict[str, str]] = []
        self.posts: list[str] = []
        self.pongs = 0
        self.changed = trio.lowlevel.ParkingLot()
        self._ids = itertools.count()
        self._pending_acks: dict[int, trio.MemorySendChannel[list[Any]]] = {}
        self._encoder = JSONEncoder()
        self._streams: set[trio.abc.Stream] = set()

    # ---------------------------------------------------------------- knobs

    async def connector(self, host: str, port: int, tls: ssl.SSLContext | None) -> trio.abc.Stream:
        """The client's ``connector``: a fresh in-memory connection to this peer."""
        await trio.lowlevel.checkpoint()
        self.connections.append((host, port, tls))
        if self.refuse:
            raise OSError(111, "Connection refused")
        if self.lockstep:  # writes block until the other side reads
            client, server = trio.testing.lockstep_stream_pair()
        else:
            client, server = trio.testing.memory_stream_pair()
        self._streams.add(server)
        self.nursery.start_soon(self._serve, server)
        return client

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds (re-checked whenever the peer's state changes)."""
        while not predicate():
            await self.changed.park()

    def _changed(self) -> None:
        self.changed.unpark_all()

    async def drop_all(self) -> None:
        """Cut every connection abruptly (as a crashed server) and forget all sessions."""
        for session in self.sessions.values():
            session.closed = True
            session.lot.unpark_all()
        self.sessions.clear()
        for stream in list(self._streams):
            await trio.aclose_forcefully(stream)
        self._streams.clear()
        self._changed()

    def close_sessions(self) -> None:
        """Send a CLOSE packet on every session."""
        for session in self.sessions.values():
            session.push(eio.CLOSE)

    def disconnect_namespace(self, nsp: str) -> None:
        """Server-side disconnect of ``nsp`` on every session."""
        for session in self.sessions.values():
            if session.namespaces.pop(nsp, None) is not None:
                self._send(session, SioPacket(SioType.DISCONNECT, nsp))

    def emit(self, name: str, *args: Any, nsp: str = "/") -> None:
        """Send an event to every session connected to ``nsp``."""
        for session in self.sessions.values():
            if nsp in session.namespaces:
                self._send(session, SioPacket(SioType.EVENT, nsp, [name, *args]))

    async def emit_with_ack(self, name: str, *args: Any, nsp: str = "/") -> list[Any]:
        """Send an event to the one session on ``nsp`` and wait for its acknowledgement."""
        (session,) = [s for s in self.sessions.values() if nsp in s.namespaces]
        ack_id = next(self._ids)
        send, receive = trio.open_memory_channel[list[Any]](1)
        self._pending_acks[ack_id] = send
        self._send(session, SioPacket(SioType.EVENT, nsp, [name, *args], ack_id))
        return await receive.receive()

    def send_raw(self, message: str | bytes) -> None:
        """Send one Engine.IO MESSAGE (already encoded Socket.IO) to every session."""
        for session in self.sessions.values():
            session.push(EioPacket(EioType.MESSAGE, message))

    def events(self, name: str | None = None) -> list[Received]:
        """The events received so far (named ``name``, if given)."""
        return [r for r in self.received if name is None or r.name == name]

    # ---------------------------------------------------------------- Engine.IO

    def _new_session(self, transport: str) -> _Session:
        sid = f"eio{next(self._ids)}"
        session = _Session(sid, transport)
        self.sessions[sid] = session
        self.nursery.start_soon(self._heartbeat, session)
        self._changed()
        return session

    def _open_packet(self, session: _Session) -> str:
        upgrades = self.upgrades if session.transport == "polling" else ()
        handshake = Handshake(
            session.sid, upgrades, self.ping_interval, self.ping_timeout, self.max_payload
        )
        return eio.encode_open(handshake)

    async def _heartbeat(self, session: _Session) -> None:
        while not session.closed:
            await trio.sleep(self.ping_interval / 1000)
            if self.pinging and not session.closed:
                session.push(eio.PING)

    def _send(self, session: _Session, packet: SioPacket) -> None:
        for message in self._encoder.encode(packet):
            session.push(EioPacket(EioType.MESSAGE, message))

    def _on_packet(self, session: _Session, packet: EioPacket) -> None:
        if packet.type is EioType.PONG:
            self.pongs += 1
        elif packet.type is EioType.CLOSE:
            session.closed = True
            session.lot.unpark_all()
            self.sessions.pop(session.sid, None)
        elif packet.type is EioType.MESSAGE:
            sio = session.decoder.feed(packet.data)
            if sio is not None:
                self._on_sio(session, sio)
        self._changed()

    def _on_sio(self, session: _Session, packet: SioPacket) -> None:
        nsp = packet.nsp
        if packet.type is SioType.CONNECT:
            self.connects.append((nsp, packet.data))
            refusal = self.authorize(nsp, packet.data)
            if refusal is not None:
                message, data = refusal
                payload = (
                    {"message": message} if data is None else {"message": message, "data": data}
                )
                self._send(session, SioPacket(SioType.CONNECT_ERROR, nsp, payload))
                return
            sid = f"sio{next(self._ids)}"
            session.namespaces[nsp] = sid
            session.auths[nsp] = packet.data
            self._send(session, SioPacket(SioType.CONNECT, nsp, {"sid": sid}))
        elif packet.type is SioType.DISCONNECT:
            session.namespaces.pop(nsp, None)
        elif packet.type is SioType.EVENT:
            name, *args = packet.data
            sid = session.namespaces.get(nsp, "?")
            self.received.append(Received(sid, nsp, name, args, packet.id))
            ignore = self.ignore_acks.get(name, 0)
            if ignore:
                self.ignore_acks[name] = ignore - 1
            elif packet.id is not None:
                self._send(session, SioPacket(SioType.ACK, nsp, args, packet.id))
        elif packet.type is SioType.ACK:
            assert packet.id is not None
            channel = self._pending_acks.pop(packet.id, None)
            if channel is not None:
                channel.send_nowait(packet.data)

    # ---------------------------------------------------------------- HTTP

    async def _serve(self, stream: trio.abc.Stream) -> None:
        conn = h11.Connection(h11.SERVER)
        stale = False
        try:
            while True:
                request = await self._next(conn, stream)
                if not isinstance(request, h11.Request) or stale:
                    return
                target = request.target.decode()
                query = dict(parse_qsl(urlsplit(target).query))
                self.requests.append((request.method.decode(), target))
                headers = {k.decode().lower(): v.decode() for k, v in request.headers}
                self.request_headers.append(headers)
                if headers.get("upgrade", "").lower() == "websocket":
                    await self._websocket(stream, conn, request, query)
                    return
                body = b""
                while True:
                    event = await self._next(conn, stream)
                    if isinstance(event, h11.Data):
                        body += event.data
                    elif isinstance(event, h11.EndOfMessage):
                        break
                    else:
                        return
                status, payload = await self._http(request.method.decode(), query, body, stream)
                data = payload.encode()
                response = h11.Response(
                    status_code=status,
                    headers=[
                        ("Content-Type", "text/plain; charset=UTF-8"),
                        ("Content-Length", str(len(data))),
                    ],
                )
                await stream.send_all(conn.send(response) + conn.send(h11.Data(data=data)))
                await stream.send_all(conn.send(h11.EndOfMessage()))
                if conn.our_state is not h11.DONE:
                    return
                conn.start_next_cycle()
                # close_idle: the next request on this connection finds it closed,
                # as when the server closed an idle keep-alive connection.
                stale = self.close_idle and request.method == b"POST"
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
            return
        finally:
            self._streams.discard(stream)
            await trio.aclose_forcefully(stream)

    @staticmethod
    async def _next(conn: h11.Connection, stream: trio.abc.Stream) -> Any:
        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            conn.receive_data(await stream.receive_some(65536))

    async def _http(
        self, method: str, query: dict[str, str], body: bytes, stream: trio.abc.Stream
    ) -> tuple[int, str]:
        sid = query.get("sid")
        if sid is None:
            if method != "GET" or query.get("transport") != "polling" or query.get("EIO") != "4":
                return 400, "bad handshake"
            session = self._new_session("polling")
            return 200, self._open_packet(session)
        session = self.sessions.get(sid)
        if session is None or session.transport != "polling":
            return 400, '{"code":1,"message":"Session ID unknown"}'
        session.streams.append(stream)
        if method == "POST":
            text = body.decode()
            self.posts.append(text)
            for packet in eio.decode_payload(text):
                self._on_packet(session, packet)
            return 200, "ok"
        while not session.outbox and not session.closed and not session.upgrading:
            await session.lot.park()
        if session.closed and not session.outbox:
            return 400, "closed"
        if session.upgrading and not session.outbox:
            return 200, eio.encode_payload([eio.NOOP])
        packets = list(session.outbox)
        session.outbox.clear()
        return 200, eio.encode_payload(packets)

    # ---------------------------------------------------------------- WebSocket

    async def _websocket(
        self,
        stream: trio.abc.Stream,
        conn: h11.Connection,
        request: h11.Request,
        query: dict[str, str],
    ) -> None:
        ws = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
        ws.initiate_upgrade_connection(request.headers, request.target)
        await stream.send_all(ws.send(wse.AcceptConnection()))
        trailing, _ = conn.trailing_data
        if trailing:
            ws.receive_data(trailing)
        sock = _WS(stream, ws)
        sid = query.get("sid")
        if sid is None:
            session = self._new_session("websocket")
            await sock.send(self._open_packet(session))
        else:
            found = self.sessions.get(sid)
            if found is None:
                return
            session = found
            if await sock.receive() != "2probe":
                return
            await sock.send("3probe")
            session.upgrading = True
            session.lot.unpark_all()
            if await sock.receive() != "5":
                return
            session.transport = "websocket"
            session.upgrading = False
            self._changed()
        session.streams.append(stream)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._ws_writer, session, sock)
            while True:
                if self.stalled:  # stop reading: the client's writes back up
                    await self.unstalled.wait()
                message = await sock.receive()
                if message is None or session.closed:
                    break
                self._on_packet(session, eio.decode_ws(message))
            nursery.cancel_scope.cancel()

    async def _ws_writer(self, session: _Session, sock: _WS) -> None:
        while True:
            while not session.outbox:
                if session.closed:
                    return
                await session.lot.park()
            packet = session.outbox.popleft()
            await sock.send(eio.encode_ws(packet))
