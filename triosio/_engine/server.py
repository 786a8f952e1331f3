"""The Engine.IO v4 server: handshakes, polling requests, WebSocket upgrades.

Spec: https://socket.io/docs/v4/engine-io-protocol/ ("Handshake", "Upgrade",
"HTTP long-polling"). Error answers follow the reference server (engine.io 6):
HTTP 400 (403 for code 4) with ``{"code": N, "message": "..."}``:

====  ==============================  =============================================
code  message                         when
====  ==============================  =============================================
0     Transport unknown               ``transport`` missing or not enabled
1     Session ID unknown              ``sid`` names no session
2     Bad handshake method            a handshake that is not a GET
3     Bad request                     bad/missing ``EIO``, transport mismatch, bad body
4     Forbidden                       ``allow_request`` or the Origin check refused
5     Unsupported protocol version    ``EIO=3``
====  ==============================  =============================================

The server knows nothing of Socket.IO: it reports to an :class:`EngineApp`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, Iterable, Sequence

import trio

from .._common.sync import WriteBatch
from .._errors import DisconnectReason, PayloadTooLarge, RemoteProtocolError
from .._proto.eio import EioType, Handshake, PayloadReader, encode_open
from .deflate import HTTPCompression, choose_encoding, http_compress
from .exchange import Exchange, Headers, Request, RequestAborted, WebSocket
from .heartbeats import HeartbeatTimers
from .options import EngineOptions, cors_headers, preflight_headers, request_allowed
from .packet import OutPacket
from .session import EngineApp, EngineSession
from .session_polling import PollOverlap

log = logging.getLogger("triosio.engine")

ERROR_MESSAGES = {
    0: "Transport unknown",
    1: "Session ID unknown",
    2: "Bad handshake method",
    3: "Bad request",
    4: "Forbidden",
    5: "Unsupported protocol version",
}


class EngineServer:
    """An Engine.IO v4 server application, to mount in :func:`triosio.serve`.

    Use it directly for raw Engine.IO (no Socket.IO); :class:`triosio.Server`
    has one inside. Serve it with ``triosio.serve(server, ...)`` or mount it in
    a :class:`triosio.App` with other servers.

    Args:
        app: Receives sessions, messages and closes (see :class:`EngineApp`).
        **options: The options of ``EngineOptions`` (``ping_interval``,
            ``ping_timeout``, ``max_http_buffer_size``, ``cors_allowed_origins``,
            ...); see the Engine.IO guide for each one and its default.

    Raises:
        TypeError: an unknown option.
        ValueError: an option out of range.
    """

    def __init__(self, app: EngineApp, **options: object) -> None:
        self.app = app
        self.options = EngineOptions(**options)  # type: ignore[arg-type]
        self.sessions: dict[str, EngineSession] = {}
        self._nursery: trio.Nursery | None = None
        self._shutting_down = False
        # Long-poll GETs being served, so that shutdown can let them deliver CLOSE.
        self._polls = 0
        self._polls_idle = trio.Event()
        self._polls_idle.set()
        #: Shared by the sessions; the layer above wraps bursts of sends in it.
        self.write_batch = WriteBatch()
        # Every session's PINGs and PONG deadlines, from one task.
        self._heartbeats = HeartbeatTimers()

    @property
    def path(self) -> str:
        """The URL path prefix this server answers (``/engine.io/`` by default)."""
        return self.options.path

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Hold the sessions' nursery; cancelling this closes every session."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self._shutting_down = False
            nursery.start_soon(self._heartbeats.run)
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                self._nursery = None

    async def shutdown(self) -> None:
        """Refuse new sessions, close every session, and wait until they are gone.

        Each client is sent a CLOSE packet: over its WebSocket, or as the answer
        to its pending long-poll GET (which this waits for as well, with any
        POST being answered), or to its next GET when none is pending (waited
        for within ``shutdown_timeout``).
        """
        self._shutting_down = True
        sessions = list(self.sessions.values())
        for session in sessions:
            session.close_nowait(DisconnectReason.SERVER_SHUTTING_DOWN)
        for session in sessions:
            await session.wait_closed()
        await self._polls_idle.wait()

    # ------------------------------------------------------------ HTTP entry

    async def handle(self, exchange: Exchange) -> None:
        """Answer one HTTP request for this server's path."""
        request = exchange.request
        cors = cors_headers(self.options, request)
        if self._nursery is None:
            await _unavailable(exchange, cors or [], "server not running")
            return
        if request.method == "OPTIONS":
            if cors is None or self.options.cors_allowed_origins is None:
                await _json_error(exchange, 4, [])
            else:
                await exchange.respond(204, cors + preflight_headers(request))
            return
        if cors is None:
            await _json_error(exchange, 4, [])
            return
        query = request.query
        transport = query.get("transport")
        if transport not in self.options.transports:
            await _json_error(exchange, 0, cors)
            return
        eio = query.get("EIO")
        if eio == "3":
            await _json_error(exchange, 5, cors)
            return
        if eio != "4":
            await _json_error(exchange, 3, cors)
            return
        sid = query.get("sid")
        upgrade = request.is_websocket_upgrade
        if upgrade and transport != "websocket":
            # Never serve a WebSocket handshake as a poll (it would eat packets).
            await _json_error(exchange, 3, cors)
            return
        if sid is not None:
            session = self.sessions.get(sid)
            if (
                session is not None
                and session.awaits_last_poll
                and request.method == "GET"
                and transport == "polling"
            ):
                # The server is shutting down; this client's next GET is what
                # its closing session waits for, to carry the CLOSE.
                await self._poll(exchange, session, cors)
                return
            if session is None or session.overdue():
                # A closing session is already gone for new requests, as in the
                # reference (it stays in the table only while it says goodbye).
                await _json_error(exchange, 1, cors)
                return
            if transport == "websocket":
                if not upgrade:
                    await _json_error(exchange, 3, cors)
                    return
                await self._upgrade(exchange, session, cors)
                return
            if session.transport != "polling":
                await _json_error(exchange, 3, cors)
                return
            if request.method == "GET":
                await self._poll(exchange, session, cors)
            elif request.method == "POST":
                await self._post(exchange, session, cors)
            else:
                await _json_error(exchange, 3, cors)
            return
        if request.method != "GET":
            await _json_error(exchange, 2, cors)
            return
        if transport == "websocket" and not upgrade:
            await _json_error(exchange, 3, cors)
            return
        if self._stopping():
            await _unavailable(exchange, cors, "server shutting down")
            return
        if not await request_allowed(self.options, request):
            await _json_error(exchange, 4, cors)
            return
        if self._stopping():
            # The server began to stop while an async allow_request ran.
            await _unavailable(exchange, cors, "server shutting down")
            return
        await self._handshake(exchange, transport, cors)

    def _stopping(self) -> bool:
        return self._shutting_down or self._nursery is None

    # ------------------------------------------------------------ handshake

    def _new_sid(self) -> str:
        while True:
            sid = self.options.session_id_generator()
            if sid not in self.sessions:
                return sid

    def _open_packet(self, sid: str, upgrades: Iterable[str]) -> OutPacket:
        options = self.options
        return OutPacket(
            EioType.OPEN,
            encode_open(
                Handshake(
                    sid=sid,
                    upgrades=tuple(upgrades),
                    ping_interval=round(options.ping_interval * 1000),
                    ping_timeout=round(options.ping_timeout * 1000),
                    max_payload=options.max_http_buffer_size,
                )
            )[1:],
        )

    async def _handshake(self, exchange: Exchange, transport: str, cors: Headers) -> None:
        assert self._nursery is not None
        request = exchange.request
        sid = self._new_sid()
        headers = list(cors)
        if self.options.cookie is not None:
            headers.append(("set-cookie", self.options.cookie.header(sid)))
        session = EngineSession(
            sid, request, transport, self.options, self.app, self.write_batch, self._heartbeats
        )
        if transport == "websocket":
            # The 101 is held and leaves with OPEN, in one write, when the
            # session takes the WebSocket over: the client hears OPEN once the
            # session is set up. (Its task starts when this one is done with the
            # connection: what the client sends meanwhile waits in the socket.)
            ws = await exchange.accept_websocket(headers, self.options.deflate, hold=True)
            session.send_nowait([self._open_packet(sid, ())], force=True)
            self.sessions[sid] = session
            await self._start_soon(session, ws)
            return
        upgrades = ("websocket",) if self._may_upgrade() else ()
        self.sessions[sid] = session
        # Queue OPEN first so that it is the first packet whatever on_open sends.
        session.send_nowait([self._open_packet(sid, upgrades)], force=True)
        await self._start(session, None)
        await exchange.respond(
            200, headers + _TEXT_HEADERS, _payload(session.take_queued()).encode("utf-8")
        )

    def _may_upgrade(self) -> bool:
        return self.options.allow_upgrades and "websocket" in self.options.transports

    async def _start(self, session: EngineSession, ws: WebSocket | None) -> None:
        try:
            if self._nursery is None:
                raise RuntimeError("the server stopped")
            await self._nursery.start(self._run_session, session, ws)
        except BaseException:
            # The session never ran: it owns nothing yet but the WebSocket.
            if self.sessions.get(session.sid) is session:
                del self.sessions[session.sid]
            if ws is not None:
                await ws.abort()
            raise

    async def _start_soon(self, session: EngineSession, ws: WebSocket) -> None:
        # A WebSocket session needs nothing from its task before the HTTP task
        # lets go of the connection: start_soon spares what start costs (a
        # nursery and a task status per connection).
        try:
            if self._nursery is None:
                raise RuntimeError("the server stopped")
            self._nursery.start_soon(self._run_session, session, ws)
        except BaseException:
            if self.sessions.get(session.sid) is session:
                del self.sessions[session.sid]
            await ws.abort()
            raise

    async def _run_session(
        self,
        session: EngineSession,
        ws: WebSocket | None,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        # Hold no reference to task_status for the session's life: through it,
        # trio keeps the finished HTTP task that started the session (memory).
        # Started with start_soon (a WebSocket), there is none to call.
        started = None
        if task_status is not trio.TASK_STATUS_IGNORED:
            status = [task_status]
            started = lambda: status.pop().started()  # noqa: E731
        del task_status
        try:
            await session.run(websocket=ws, started=started)
        except Exception:
            # A bug must cost one session, never the server (the session's own
            # callbacks are guarded; this is the last line).
            log.exception("session %s crashed", session.sid)
        finally:
            if self.sessions.get(session.sid) is session:
                del self.sessions[session.sid]

    # ------------------------------------------------------------ polling

    async def _poll(self, exchange: Exchange, session: EngineSession, cors: Headers) -> None:
        if self._polls == 0:
            self._polls_idle = trio.Event()
        self._polls += 1
        try:
            packets: list[OutPacket] | None = None
            overlap = False
            async with trio.open_nursery() as nursery:

                async def watch() -> None:
                    # A client that gives up its pending GET ends the session.
                    await exchange.wait_client_gone()
                    session.close_nowait(DisconnectReason.TRANSPORT_ERROR)
                    nursery.cancel_scope.cancel()

                nursery.start_soon(watch)
                try:
                    packets = await session.poll()
                except PollOverlap:
                    overlap = True
                nursery.cancel_scope.cancel()
            if overlap:
                # The first GET gets CLOSE; this one a 400 (engine.io answers so).
                await _json_error(exchange, 3, cors)
            elif packets is not None:
                body = _payload(packets).encode("utf-8")
                headers = cors + _TEXT_HEADERS
                compression = self.options.compression
                if (
                    compression is not None
                    and len(body) >= compression.threshold
                    and any(p.compress for p in packets)
                ):
                    body, headers = _compressed(exchange.request, body, headers, compression)
                await exchange.respond(200, headers, body)
        finally:
            self._polls -= 1
            if self._polls == 0:
                self._polls_idle.set()

    async def _post(self, exchange: Exchange, session: EngineSession, cors: Headers) -> None:
        # Counted with the GETs: a shutdown waits for a POST's answer too (cut
        # off, its client would report a transport error instead of the close).
        if self._polls == 0:
            self._polls_idle = trio.Event()
        self._polls += 1
        try:
            await self._post_body(exchange, session, cors)
        finally:
            self._polls -= 1
            if self._polls == 0:
                self._polls_idle.set()

    async def _post_body(self, exchange: Exchange, session: EngineSession, cors: Headers) -> None:
        request = exchange.request
        content_type = (request.header("content-type") or "").lower()
        if content_type.startswith("application/octet-stream"):
            # Engine.IO v4 polling bodies are text; binary is base64 inside them
            # (engine.io 6.6.7 answers 400 and closes the session, CVE-2026-59725).
            session.close_nowait(DisconnectReason.TRANSPORT_ERROR)
            await _json_error(exchange, 3, cors, close=True)
            return
        limit = self.options.max_http_buffer_size
        length = request.header("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            session.close_nowait(DisconnectReason.PAYLOAD_TOO_LARGE)
            await exchange.respond(413, [*cors, ("connection", "close")])
            return
        try:
            session.begin_post()
        except PollOverlap:
            await _json_error(exchange, 3, cors)
            return
        try:
            reader = PayloadReader(
                max_packets=self.options.max_packets_per_payload, max_payload=limit
            )
            # Once the session closes (possibly because of a packet of this very
            # body) the rest of the body is read and dropped, and the answer is
            # still "ok": the client learns of the close from its GET.
            chunks = exchange.body()
            try:
                async for chunk in chunks:
                    await session.receive_packets(reader.feed(chunk))
            finally:
                if isinstance(chunks, AsyncGenerator):
                    await chunks.aclose()  # now, not whenever the GC gets to it
            await session.receive_packets(reader.close())
        except PayloadTooLarge:
            session.close_nowait(DisconnectReason.PAYLOAD_TOO_LARGE)
            await exchange.respond(413, [*cors, ("connection", "close")])
            return
        except RemoteProtocolError as exc:
            log.info("session %s: invalid polling payload: %s", session.sid, exc)
            session.close_nowait(DisconnectReason.PARSE_ERROR)
            await _json_error(exchange, 3, cors, close=True)
            return
        except (RequestAborted, trio.BrokenResourceError):
            # The client left in the middle of its POST (engine.io: "transport error").
            session.close_nowait(DisconnectReason.TRANSPORT_ERROR)
            raise
        finally:
            session.end_post()
        await exchange.respond(200, cors + _TEXT_HEADERS, b"ok")

    # ------------------------------------------------------------ upgrade

    async def _upgrade(self, exchange: Exchange, session: EngineSession, cors: Headers) -> None:
        ws = await exchange.accept_websocket(cors, self.options.deflate)
        if not self._may_upgrade() or not session.can_upgrade():
            # A second WebSocket for an upgraded (or upgrading) session: accepted,
            # then closed, leaving the first one alone.
            await ws.close(1008, "session already upgraded")
            return
        session.start_upgrade(ws)


_TEXT_HEADERS: Headers = [
    ("content-type", "text/plain; charset=UTF-8"),
    ("cache-control", "no-store"),
]


def _compressed(
    request: Request, body: bytes, headers: Headers, compression: HTTPCompression
) -> tuple[bytes, Headers]:
    # As engine.io's httpCompression: gzip or deflate if the client takes it.
    # (Vary tells caches the body depends on Accept-Encoding.)
    encoding = choose_encoding(request.header("accept-encoding"))
    if encoding is None:
        return body, headers
    body = http_compress(body, encoding, compression.level)
    return body, [*headers, ("content-encoding", encoding), ("vary", "Accept-Encoding")]


def _payload(packets: Sequence[OutPacket]) -> str:
    if len(packets) == 1:
        return packets[0].poll_text
    return "\x1e".join([p.poll_text for p in packets])


async def _json_error(exchange: Exchange, code: int, cors: Headers, *, close: bool = False) -> None:
    body = json.dumps({"code": code, "message": ERROR_MESSAGES[code]}, separators=(",", ":"))
    status = 403 if code == 4 else 400
    headers = [*cors, ("content-type", "application/json")]
    if close:
        headers.append(("connection", "close"))
    await exchange.respond(status, headers, body.encode("utf-8"))


async def _unavailable(exchange: Exchange, cors: Headers, message: str) -> None:
    # Not an Engine.IO error code: the client's reconnection logic retries later.
    # CORS headers let a browser read it; the connection is not kept.
    await exchange.respond(
        503,
        [*cors, ("content-type", "text/plain; charset=UTF-8"), ("connection", "close")],
        message.encode(),
    )
