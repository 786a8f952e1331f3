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

import inspect
import json
import logging
import secrets
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

import trio

from .._common.sync import WriteBatch
from .._errors import DisconnectReason, PayloadTooLarge, RemoteProtocolError
from .._proto.eio import EioType, Handshake, PayloadReader, encode_open
from .exchange import Exchange, Headers, Request, RequestAborted, WebSocket
from .heartbeats import HeartbeatTimers
from .packet import OutPacket
from .session import EngineApp, EngineSession, PollOverlap

log = logging.getLogger("triosio.engine")

ERROR_MESSAGES = {
    0: "Transport unknown",
    1: "Session ID unknown",
    2: "Bad handshake method",
    3: "Bad request",
    4: "Forbidden",
    5: "Unsupported protocol version",
}

#: ``cors_allowed_origins``: ``None`` (same origin only), ``"*"``, a list of origins,
#: or a callable taking the Origin header and returning whether it is allowed.
CorsOrigins = None | Literal["*"] | Sequence[str] | Callable[[str], bool]
AllowRequest = Callable[[Request], "bool | Awaitable[bool]"]


@dataclass(frozen=True, slots=True)
class CookieOptions:
    """The optional session cookie set on handshake responses (as engine.io's ``cookie``).

    Attributes:
        name: Cookie name.
        path: Cookie path.
        http_only: Add ``HttpOnly``.
        same_site: ``"Lax"``, ``"Strict"``, ``"None"`` or ``None`` to leave it out.
        secure: Add ``Secure``.
        max_age: ``Max-Age`` in seconds, or ``None`` for a session cookie.
    """

    name: str = "io"
    path: str = "/"
    http_only: bool = True
    same_site: str | None = "Lax"
    secure: bool = False
    max_age: int | None = None

    def header(self, sid: str) -> str:
        """The Set-Cookie header value for ``sid``."""
        parts = [f"{self.name}={sid}", f"Path={self.path}"]
        if self.http_only:
            parts.append("HttpOnly")
        if self.same_site:
            parts.append(f"SameSite={self.same_site}")
        if self.secure:
            parts.append("Secure")
        if self.max_age is not None:
            parts.append(f"Max-Age={self.max_age}")
        return "; ".join(parts)


@dataclass(frozen=True)
class EngineOptions:
    """Options of the Engine.IO server; ``docs/engine.md`` explains each one.

    Times are in seconds. Where the reference server (engine.io 6) has the same
    option, the default is its default.

    Attributes:
        path: URL path prefix the server answers (a trailing ``/`` is added).
        ping_interval: Seconds between two PINGs the server sends.
        ping_timeout: Seconds the client has to answer a PING with a PONG.
        upgrade_timeout: Seconds a WebSocket probe may take to complete the upgrade.
        max_http_buffer_size: Largest polling POST body and largest WebSocket
            message, in bytes (also sent to clients as ``maxPayload``).
        max_packets_per_payload: Most packets in one polling POST body.
        transports: The transports clients may use: ``"polling"``, ``"websocket"``.
        allow_upgrades: Whether polling sessions may upgrade to WebSocket.
        cors_allowed_origins: ``None`` (same origin only), ``"*"``, a list of
            origins, or a callable taking the ``Origin`` header and returning
            whether it is allowed. Also checked on WebSocket handshakes.
        cors_credentials: Send ``Access-Control-Allow-Credentials: true``.
        cookie: The session cookie set on handshakes, or ``None`` for none.
        allow_request: ``allow_request(request) -> bool`` (or an awaitable of it),
            asked before each handshake; ``False`` refuses it (403, code 4).
        max_buffered_packets: Most packets queued for a polling client.
        max_buffered_bytes: Most bytes queued for a client (polling queue, or
            WebSocket bytes not yet taken by the kernel or TLS).
        shutdown_timeout: Seconds a closing session may spend saying goodbye.
        session_id_generator: Makes session ids (default: 120 random bits from
            :mod:`secrets`, URL-safe base64, 20 characters).
    """

    path: str = "/engine.io/"
    ping_interval: float = 25.0
    ping_timeout: float = 20.0
    upgrade_timeout: float = 10.0
    max_http_buffer_size: int = 1_000_000
    max_packets_per_payload: int = 1000
    transports: tuple[str, ...] = ("polling", "websocket")
    allow_upgrades: bool = True
    cors_allowed_origins: CorsOrigins = None
    cors_credentials: bool = False
    cookie: CookieOptions | None = None
    allow_request: AllowRequest | None = None
    max_buffered_packets: int = 4096
    max_buffered_bytes: int = 4 * 1024 * 1024
    shutdown_timeout: float = 2.0
    session_id_generator: Callable[[], str] = field(default=lambda: secrets.token_urlsafe(15))

    def __post_init__(self) -> None:
        if not self.path.startswith("/"):
            raise ValueError("path must start with '/'")
        if not self.path.endswith("/"):
            object.__setattr__(self, "path", self.path + "/")
        for name in ("ping_interval", "ping_timeout", "upgrade_timeout", "shutdown_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        unknown = set(self.transports) - {"polling", "websocket"}
        if unknown or not self.transports:
            raise ValueError(f"transports must be 'polling' and/or 'websocket', not {unknown}")


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
        to its pending long-poll GET (which this waits for as well).
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
        cors = self._cors_headers(request)
        if self._nursery is None:
            await _unavailable(exchange, cors or [], "server not running")
            return
        if request.method == "OPTIONS":
            if cors is None or self.options.cors_allowed_origins is None:
                await _json_error(exchange, 4, [])
            else:
                await exchange.respond(204, cors + self._preflight_headers(request))
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
        if not await self._allowed(request):
            await _json_error(exchange, 4, cors)
            return
        if self._stopping():
            # The server began to stop while an async allow_request ran.
            await _unavailable(exchange, cors, "server shutting down")
            return
        await self._handshake(exchange, transport, cors)

    def _stopping(self) -> bool:
        return self._shutting_down or self._nursery is None

    async def _allowed(self, request: Request) -> bool:
        hook = self.options.allow_request
        if hook is None:
            return True
        try:
            result = hook(request)
            if inspect.isawaitable(result):
                result = await result
        except Exception:
            log.exception("allow_request raised; refusing the request")
            return False
        return bool(result)

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
            ws = await exchange.accept_websocket(headers)
            # Queued, not written: the session writes it when it takes the
            # WebSocket over, so the client hears OPEN once the session is set up.
            session.send_nowait([self._open_packet(sid, ())], force=True)
            self.sessions[sid] = session
            await self._start(session, ws)
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

    async def _run_session(
        self, session: EngineSession, ws: WebSocket | None, *, task_status: trio.TaskStatus[None]
    ) -> None:
        # Hold no reference to task_status for the session's life: through it,
        # trio keeps the finished HTTP task that started the session (memory).
        status = [task_status]
        del task_status
        try:
            await session.run(websocket=ws, started=lambda: status.pop().started())
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
                await exchange.respond(200, cors + _TEXT_HEADERS, body)
        finally:
            self._polls -= 1
            if self._polls == 0:
                self._polls_idle.set()

    async def _post(self, exchange: Exchange, session: EngineSession, cors: Headers) -> None:
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
        ws = await exchange.accept_websocket(cors)
        if not self._may_upgrade() or not session.can_upgrade():
            # A second WebSocket for an upgraded (or upgrading) session: accepted,
            # then closed, leaving the first one alone.
            await ws.close(1008, "session already upgraded")
            return
        session.start_upgrade(ws)

    # ------------------------------------------------------------ CORS

    def _origin_allowed(self, origin: str, request: Request) -> bool:
        allowed = self.options.cors_allowed_origins
        if allowed is None:
            # Same origin only: the Origin's host[:port] must be the Host header.
            host = request.header("host")
            return host is not None and _same_host(origin, host)
        if allowed == "*":
            return True
        if callable(allowed):
            try:
                return bool(allowed(origin))
            except Exception:
                log.exception("cors_allowed_origins callable raised; refusing %r", origin)
                return False
        return origin in allowed

    def _cors_headers(self, request: Request) -> Headers | None:
        """CORS response headers, ``[]`` for a request without Origin, None if refused."""
        origin = request.header("origin")
        if origin is None:
            return []
        if not self._origin_allowed(origin, request):
            return None
        allowed = self.options.cors_allowed_origins
        if allowed is None:
            return []  # same origin: the browser needs no CORS headers
        headers: Headers = []
        if allowed == "*" and not self.options.cors_credentials:
            headers.append(("access-control-allow-origin", "*"))
        else:
            headers.append(("access-control-allow-origin", origin))
            headers.append(("vary", "Origin"))
        if self.options.cors_credentials:
            headers.append(("access-control-allow-credentials", "true"))
        return headers

    def _preflight_headers(self, request: Request) -> Headers:
        headers = [("access-control-allow-methods", "GET,HEAD,PUT,PATCH,POST,DELETE")]
        asked = request.header("access-control-request-headers")
        if asked:
            headers.append(("access-control-allow-headers", asked))
        headers.append(("content-length", "0"))
        return headers


_TEXT_HEADERS: Headers = [
    ("content-type", "text/plain; charset=UTF-8"),
    ("cache-control", "no-store"),
]


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


_DEFAULT_PORTS = {"http": ":80", "https": ":443", "ws": ":80", "wss": ":443"}


def _same_host(origin: str, host: str) -> bool:
    # Compares host[:port], ignoring the scheme (a TLS-terminating proxy in front
    # of us makes an https page talk to a plain-HTTP server under the same name)
    # and an explicit default port of the Origin's scheme on either side.
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    default = _DEFAULT_PORTS.get(parts.scheme)
    if default is None or not parts.netloc:
        return False  # e.g. "null" (sandboxed frames, file: pages)
    return parts.netloc.lower().removesuffix(default) == host.lower().removesuffix(default)
