"""The built-in HTTP/1.1 server: h11 on Trio streams, and the WebSocket handshake.

One task per TCP connection reads requests in turn (keep-alive), hands each to
the application as an :class:`Exchange`, and after a WebSocket handshake gives
the stream away (the Engine.IO session owns it from then on).

Limits against slow or abusive clients: a request head must arrive within
``head_timeout`` of its first byte (slowloris), an idle keep-alive connection is
closed after ``idle_timeout``, a head is at most ``max_head_size`` bytes and
``max_headers`` header lines, and a body must keep arriving (``body_timeout``
between chunks) and be whole within ``request_timeout`` (a body trickled a byte
at a time just inside ``body_timeout`` is cut there).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import re
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import unquote_plus

import h11
import trio

from .deflate import PerMessageDeflate, negotiate
from .exchange import Exchange, Headers, Request, RequestAborted, WebSocket
from .native_ws import NativeWebSocket

log = logging.getLogger("triosio.http")

_RECV_SIZE = 65536
_REASONS = {
    101: "Switching Protocols",
    200: "OK",
    204: "No Content",
    304: "Not Modified",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Payload Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass(frozen=True, slots=True)
class HTTPLimits:
    """Limits of the built-in HTTP server.

    Attributes:
        max_head_size: Largest request head (request line and headers), bytes.
        max_headers: Most header lines in one request.
        head_timeout: Seconds a request head may take once its first byte arrived.
        idle_timeout: Seconds an idle keep-alive connection is kept open.
        body_timeout: Seconds the server waits for the next chunk of a body.
        request_timeout: Seconds a whole request body may take from its head
            (Node's ``requestTimeout``, also 300 s by default).
    """

    max_head_size: int = 16384
    max_headers: int = 100
    head_timeout: float = 10.0
    idle_timeout: float = 60.0
    body_timeout: float = 30.0
    request_timeout: float = 300.0


class Sticky(Protocol):
    """Which requests a worker process serves (``triosio run --workers N``).

    A worker receives whole connections from the acceptor, which routed them
    by the ``sid`` of their first request. A later request of the same
    keep-alive connection may name a session of another worker: the
    connection then goes back to the acceptor, with that request's bytes,
    to be routed again (see ``docs/architecture.md``).
    """

    def mine(self, sid: str) -> bool:
        """Whether session ``sid`` lives (or would live) in this process."""
        ...

    async def give_back(self, stream: trio.SocketStream, data: bytes) -> None:
        """Hand the connection and the bytes read from it back to the acceptor."""
        ...


def query_sid(query: str) -> str | None:
    """The ``sid`` parameter of a query string, or None."""
    if "sid=" not in query:
        return None
    for part in query.split("&"):
        if part.startswith("sid="):
            return unquote_plus(part[4:])
    return None


class _Abort(Exception):
    """Stop serving this connection (after answering, when possible)."""


class _BodyAborted(_Abort, RequestAborted):
    """The request body stopped: the client left, stalled or broke the framing."""


class H11Exchange(Exchange):
    """One request on a connection served by :class:`H11Connection`."""

    def __init__(self, connection: H11Connection, request: Request) -> None:
        self.request = request
        self._conn = connection
        self.responded = False
        self.upgraded = False
        self._started = trio.current_time()

    async def body(self) -> AsyncGenerator[bytes, None]:
        """The request body, chunk by chunk."""
        conn = self._conn
        if conn.fast:
            return  # a GET without Content-Length or Transfer-Encoding (see _fast_head)
        limits = conn.limits
        # The whole body by this time, however steadily it trickles.
        deadline = self._started + limits.request_timeout
        while True:
            try:
                event = conn.h11.next_event()
            except h11.RemoteProtocolError as exc:
                # e.g. the client closed the connection in the middle of the body
                raise _BodyAborted(f"request body broken: {exc}") from None
            if event is h11.NEED_DATA:
                chunk_deadline = trio.current_time() + limits.body_timeout
                with trio.move_on_at(min(chunk_deadline, deadline)) as scope:
                    await conn.receive()
                if scope.cancelled_caught:
                    raise _BodyAborted("request body timed out")
                continue
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return
            else:
                raise _BodyAborted(f"unexpected {type(event).__name__} in a request body")

    async def respond(self, status: int, headers: Headers, body: bytes = b"") -> None:
        """Send the whole response, with Content-Length."""
        if self.responded:
            raise RuntimeError("this request was already answered")
        self.responded = True
        await self._conn.send_response(status, headers, body)

    async def wait_client_gone(self) -> None:
        """Return when the client closes its end (a pending long-poll aborted)."""
        await self._conn.wait_eof()

    async def accept_websocket(
        self, headers: Headers, deflate: PerMessageDeflate | None = None, *, hold: bool = False
    ) -> WebSocket:
        """Answer 101 and return the WebSocket; the stream is given away.

        The opening handshake (RFC 6455 section 4.2) is checked and answered
        here, on the request h11 already parsed; the frames are read by
        :class:`~triosio._engine.wsframes.FrameReader`. With ``deflate``, the
        client's permessage-deflate offer, if any is acceptable, is accepted.
        """
        conn = self._conn
        problem = _handshake_problem(self.request)
        if problem is not None:
            await self.respond(
                400, [("content-type", "text/plain"), ("connection", "close")], problem.encode()
            )
            raise _Abort(f"invalid websocket handshake: {problem}")
        key = self.request.header("sec-websocket-key") or ""
        accept = base64.b64encode(hashlib.sha1((key + _WS_GUID).encode("ascii")).digest())
        response = [
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            ("sec-websocket-accept", accept.decode("ascii")),
            *headers,
        ]
        negotiated = None
        if deflate is not None:
            agreed = negotiate(self.request.header("sec-websocket-extensions"), deflate)
            if agreed is not None:
                response.append(("sec-websocket-extensions", agreed[0]))
                negotiated = agreed[1]
        self.responded = True
        if conn.fast:
            data = _head_bytes(101, response, trusted=3)
        else:
            try:
                data = conn.h11.send(h11.InformationalResponse(status_code=101, headers=response))
            except h11.LocalProtocolError as exc:
                raise _Abort(f"cannot switch protocols: {exc}") from None
        if not hold:
            await conn.send_bytes(data or b"")
        self.upgraded = True
        trailing = conn.rest if conn.fast else bytes(conn.h11.trailing_data[0])
        ws = NativeWebSocket(conn.stream, trailing, negotiated)
        if hold:
            ws.hold(data or b"")
        return ws


_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# A request head as _fast_head accepts it: a GET of a target of visible ASCII,
# HTTP/1.1, header lines of a token name and a value of visible ASCII, spaces
# and tabs (no obs-fold, no obs-text, no bare CR or LF), the empty line.
_FAST_HEAD = re.compile(
    rb"GET ([\x21-\x7e]+) HTTP/1\.1\r\n"
    rb"((?:[-!#$%&'*+.^_`|~0-9A-Za-z]+:[ \t]*(?:[\x21-\x7e][\x20-\x7e\t]*)?\r\n)*)"
    rb"\r\n"
)
# Headers that _fast_head leaves to h11: a body, or an expectation of one.
_FAST_REFUSED = frozenset({b"content-length", b"transfer-encoding", b"expect"})


def _head_bytes(status: int, headers: Headers, trusted: int = 0) -> bytes:
    """A response head, written as h11 writes one (for the fast path).

    Each header is checked as h11 checks them, except the first ``trusted``
    (made here, of known-good characters).
    """
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\n"]
    for i, (name, value) in enumerate(headers):
        if i >= trusted and not (_SAFE_FIELD.fullmatch(name) and _SAFE_VALUE.fullmatch(value)):
            raise _Abort(f"cannot send header {name!r}")
        lines.append(f"{name}: {value}\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("latin-1")


_SAFE_FIELD = re.compile(r"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
_SAFE_VALUE = re.compile(
    r"(?:[\x21-\x7e\x80-\xff](?:[\x20-\x7e\x80-\xff\t]*[\x21-\x7e\x80-\xff])?)?"
)

# Header names, and the values of headers that most clients send alike, are
# shared between requests rather than decoded anew for each: every session
# keeps its handshake request, and memory per idle connection counts.
_SHARED_VALUES = frozenset(
    {
        b"accept",
        b"accept-encoding",
        b"accept-language",
        b"cache-control",
        b"connection",
        b"host",
        b"origin",
        b"pragma",
        b"sec-websocket-extensions",
        b"sec-websocket-version",
        b"upgrade",
        b"user-agent",
    }
)
_texts: dict[bytes, str] = {}


def _text(raw: bytes) -> str:
    text = _texts.get(raw)
    if text is None:
        if len(_texts) >= 4096:
            _texts.clear()  # bounded, whatever clients send
        text = _texts[raw] = raw.decode("latin-1")
    return text


def _name(raw: bytes) -> str:
    # h11 gives names lower-cased already.
    return _text(raw) if len(raw) <= 64 else raw.decode("latin-1")


def _value(name: bytes, raw: bytes) -> str:
    if name in _SHARED_VALUES and len(raw) <= 256:
        return _text(raw)
    return raw.decode("latin-1")


def _handshake_problem(request: Request) -> str | None:
    """What is wrong with a WebSocket opening handshake, or None."""
    tokens = {t.strip().lower() for t in (request.header("connection") or "").split(",")}
    if request.method != "GET":
        return "a websocket handshake is a GET"
    if "upgrade" not in tokens or (request.header("upgrade") or "").lower() != "websocket":
        return "missing 'Connection: Upgrade' / 'Upgrade: websocket'"
    if request.header("sec-websocket-version") != "13":
        return "unsupported Sec-WebSocket-Version (13 expected)"
    try:
        nonce = base64.b64decode(request.header("sec-websocket-key") or "", validate=True)
    except (binascii.Error, ValueError):
        nonce = b""
    if len(nonce) != 16:
        return "invalid Sec-WebSocket-Key"
    return None


class H11Connection:
    """Serves the requests of one HTTP/1.1 connection."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        handler: Callable[[H11Exchange], Awaitable[None]],
        limits: HTTPLimits,
        *,
        client: tuple[str, int] | None = None,
        secure: bool = False,
        prefix: bytes = b"",
        sticky: Sticky | None = None,
    ) -> None:
        self.stream = stream
        self.handler = handler
        self.limits = limits
        self.client = client
        self.secure = secure
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_head_size)
        self._eof = False
        self.sticky = sticky
        # The raw head of the request being served (to give it back, see Sticky).
        self._event: h11.Request | None = None
        # The first request was a WebSocket upgrade parsed by _fast_head, not
        # h11: the connection is upgraded or closed after the answer.
        self.fast = False
        self.rest = b""  # what followed that request's head
        # The first read of a fresh connection may go through _fast_head.
        self._try_fast = not prefix and sticky is None
        if prefix:
            self.h11.receive_data(prefix)

    async def receive(self) -> int:
        """Read more bytes into h11; returns how many (0 at EOF)."""
        if self._eof:
            raise _Abort("connection closed")
        try:
            data = await self.stream.receive_some(_RECV_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        if not data:
            self._eof = True
        self.h11.receive_data(data if isinstance(data, bytes) else bytes(data))
        return len(data)

    def _read_now(self) -> bytes | None:
        """What a plain TCP socket holds already (b"" at EOF), or None."""
        stream = self.stream
        if type(stream) is not trio.SocketStream:
            return None
        try:
            data = os.read(stream.socket.fileno(), _RECV_SIZE)
        except OSError:  # BlockingIOError: nothing yet; else receive_some says
            return None
        if not data:
            self._eof = True
            self.h11.receive_data(b"")
        return data

    async def _receive_raw(self) -> bytes:
        try:
            data = await self.stream.receive_some(_RECV_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        if not data:
            self._eof = True
            self.h11.receive_data(b"")
        return bytes(data)

    def _fast_head(self, data: bytes) -> Request | None:
        """The request, if ``data`` is one whole, plain WebSocket upgrade GET.

        h11 parses a request head as a general HTTP/1.1 parser must, which is
        most of the CPU of a WebSocket connection's set-up besides the system
        calls. The request of nearly every WebSocket client arrives whole in
        the first read and is simple: that one is parsed here, strictly (one
        regular expression for the whole head: only visible ASCII in the
        target and values, token names, no folding, exactly one Host, no
        body). Anything else returns None and goes to h11, which answers
        malformed input as before; the limits are the same (a head larger
        than ``max_head_size`` or with more than ``max_headers`` lines is
        left to h11, which refuses it).
        """
        end = data.find(b"\r\n\r\n")
        limits = self.limits
        if end < 0 or end + 4 > limits.max_head_size:
            return None
        match = _FAST_HEAD.fullmatch(data, 0, end + 4)
        if match is None:
            return None
        lines = match[2].split(b"\r\n")
        lines.pop()  # the empty string after the last CRLF
        if len(lines) > limits.max_headers:
            return None
        headers: Headers = []
        hosts = 0
        upgrade = False
        for line in lines:
            raw_name, _, raw_value = line.partition(b":")
            raw_name = raw_name.lower()
            raw_value = raw_value.strip(b" \t")
            if raw_name in _FAST_REFUSED:
                return None
            if raw_name == b"host":
                hosts += 1
            elif raw_name == b"upgrade":
                upgrade = raw_value.lower() == b"websocket"
            headers.append((_name(raw_name), _value(raw_name, raw_value)))
        if hosts != 1 or not upgrade:
            return None
        self.fast = True
        self.rest = data[end + 4 :]
        path, _, query = match[1].decode("ascii").partition("?")
        return Request(
            method="GET",
            path=path,
            query_string=query,
            headers=headers,
            client=self.client,
            secure=self.secure,
        )

    async def wait_eof(self) -> None:
        """Return when the peer closes; bytes it sends meanwhile are kept for h11."""
        kept = 0
        while not self._eof:
            if kept > self.limits.max_head_size:
                # A client pipelining that much behind a long-poll gets no more
                # reads (bounded memory); the poll still ends normally.
                await trio.sleep_forever()
            kept += await self.receive()

    async def send_bytes(self, data: bytes) -> None:
        """Write raw bytes (raises _Abort if the peer is gone)."""
        try:
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise _Abort("connection lost while sending") from None

    async def send_response(self, status: int, headers: Headers, body: bytes) -> None:
        """Send a complete response through h11."""
        names = {k.lower() for k, _ in headers}
        all_headers = list(headers)
        if "content-length" not in names:
            all_headers.append(("content-length", str(len(body))))
        if self.fast:
            # A refused upgrade: the connection closes after the answer (as
            # h11 does it after a refused upgrade, PAUSED).
            if "connection" not in names:
                all_headers.append(("connection", "close"))
            await self.send_bytes(_head_bytes(status, all_headers) + body)
            return
        try:
            data = self.h11.send(
                h11.Response(
                    status_code=status,
                    headers=all_headers,
                    reason=_REASONS.get(status, "").encode(),
                )
            )
            assert data is not None
            if body and self.h11.our_state is h11.SEND_BODY:
                data += self.h11.send(h11.Data(data=body)) or b""
            data += self.h11.send(h11.EndOfMessage()) or b""
        except h11.LocalProtocolError as exc:
            raise _Abort(f"cannot send response: {exc}") from None
        await self.send_bytes(data)

    async def _next_request(self) -> Request | None:
        # The first byte of a head starts head_timeout; it may already be here,
        # pipelined behind the previous request.
        started = bool(self.h11.trailing_data[0])
        timeout = self.limits.head_timeout if started else self.limits.idle_timeout
        deadline = trio.current_time() + timeout
        if self._try_fast:
            self._try_fast = False
            # The request is usually in the socket already when this task
            # starts: read it without a cancel scope and a wait, if so.
            data = self._read_now()
            if data is None:
                with trio.move_on_at(deadline):
                    data = await self._receive_raw()
                if data is None:
                    return None  # idle until idle_timeout: closed without an answer
            if not data:
                return None
            request = self._fast_head(data)
            if request is not None:
                return request
            # Anything else, malformed input included, goes to h11 as before.
            self.h11.receive_data(data)
            started = True
            deadline = trio.current_time() + self.limits.head_timeout
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:
                status = exc.error_status_hint
                if "too long" in str(exc).lower() or "too big" in str(exc).lower():
                    status = 431
                await self._error_and_close(status, str(exc))
                return None
            if event is h11.NEED_DATA:
                if self._eof:
                    return None
                with trio.move_on_at(deadline) as scope:
                    await self.receive()
                if scope.cancelled_caught:
                    if started:
                        await self._error_and_close(408, "request head timed out")
                    return None
                if not started and self.h11.their_state is h11.IDLE:
                    # The first byte of a head arrived: the whole head gets head_timeout.
                    started = True
                    deadline = trio.current_time() + self.limits.head_timeout
                continue
            if isinstance(event, h11.Request):
                if len(event.headers) > self.limits.max_headers:
                    await self._error_and_close(431, "too many header lines")
                    return None
                # h11's own limit only covers a head still incomplete: one that
                # arrives whole in a single read is measured here.
                size = len(event.method) + len(event.target) + 12
                size += sum(len(k) + len(v) + 4 for k, v in event.headers)
                if size > self.limits.max_head_size:
                    await self._error_and_close(431, "request head too large")
                    return None
                if self.sticky is not None:
                    self._event = event  # kept only where it may be given back
                target = event.target.decode("latin-1")
                path, _, query = target.partition("?")
                headers = [(_name(k), _value(k, v)) for k, v in event.headers]
                return Request(
                    method=event.method.decode("ascii"),
                    path=path,
                    query_string=query,
                    headers=headers,
                    client=self.client,
                    secure=self.secure,
                )
            return None  # ConnectionClosed, or PAUSED after a refused upgrade

    async def _error_and_close(self, status: int, message: str) -> None:
        log.debug("closing connection from %s: %s", self.client, message)
        if self.h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            try:
                body = message.encode("utf-8", "replace")
                await self.send_response(
                    status, [("content-type", "text/plain"), ("connection", "close")], body
                )
            except _Abort:
                pass

    async def serve(self) -> bool:
        """Serve requests until the connection closes or is given away.

        Returns:
            True if a WebSocket took the stream over (the caller must not close it).
        """
        exchange: H11Exchange | None = None
        try:
            while True:
                request = await self._next_request()
                if request is None:
                    return False
                if self.sticky is not None and not self._keep(request):
                    await self._give_back()
                    return True
                exchange = H11Exchange(self, request)
                try:
                    await self.handler(exchange)
                except _Abort:
                    raise
                except Exception:
                    # A bug in an application must cost one request, not the server.
                    log.exception("error while handling %s %s", request.method, request.path)
                    if not exchange.responded:
                        await exchange.respond(
                            500,
                            [("content-type", "text/plain"), ("connection", "close")],
                            b"internal server error",
                        )
                    return exchange.upgraded
                if exchange.upgraded:
                    return True
                if not exchange.responded:
                    await exchange.respond(500, [("content-type", "text/plain")], b"no response")
                if not await self._finish_cycle():
                    return False
        except _Abort as exc:
            log.debug("connection from %s ended: %s", self.client, exc)
            return exchange is not None and exchange.upgraded

    def _keep(self, request: Request) -> bool:
        assert self.sticky is not None
        sid = query_sid(request.query_string)
        return sid is None or self.sticky.mine(sid)

    async def _give_back(self) -> None:
        # The request as it arrived (h11 lower-cases header names, which HTTP
        # allows), then every byte h11 holds unread behind it: its body and
        # anything pipelined.
        event = self._event
        assert event is not None and self.sticky is not None
        stream = self.stream
        assert isinstance(stream, trio.SocketStream)
        head = [event.method, b" ", event.target, b" HTTP/", event.http_version, b"\r\n"]
        for name, value in event.headers.raw_items():
            head += [name, b": ", value, b"\r\n"]
        head.append(b"\r\n")
        await self.sticky.give_back(stream, b"".join(head) + bytes(self.h11.trailing_data[0]))

    async def _finish_cycle(self) -> bool:
        if self.h11.our_state is not h11.DONE:
            return False  # e.g. we answered "connection: close": nothing to skip
        # Skip whatever the handler left unread of the request body (bounded).
        skipped = 0
        while self.h11.their_state is h11.SEND_BODY:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError:
                return False
            if event is h11.NEED_DATA:
                with trio.move_on_after(self.limits.body_timeout) as scope:
                    await self.receive()
                if scope.cancelled_caught:
                    return False
            elif isinstance(event, h11.Data):
                skipped += len(event.data)
                if skipped > 1 << 20:
                    return False
            else:
                break
        if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
            self.h11.start_next_cycle()
            return True
        return False


async def serve_stream(
    stream: trio.abc.Stream,
    handler: Callable[[H11Exchange], Awaitable[None]],
    limits: HTTPLimits,
    *,
    prefix: bytes = b"",
    sticky: Sticky | None = None,
    client: tuple[str, int] | None = None,
) -> None:
    """Serve one connection; close it unless a WebSocket (or the acceptor) took it over.

    ``prefix``: bytes already read from the connection (by the acceptor).
    ``client``: the peer's address, if known already (else asked of the socket).
    """
    secure = isinstance(stream, trio.SSLStream)
    inner = stream.transport_stream if isinstance(stream, trio.SSLStream) else stream
    if client is None and isinstance(inner, trio.SocketStream):
        try:
            peer = inner.socket.getpeername()
            client = (str(peer[0]), int(peer[1]))
        except (OSError, IndexError, TypeError):
            client = None
    conn = H11Connection(
        stream, handler, limits, client=client, secure=secure, prefix=prefix, sticky=sticky
    )
    given_away = False
    try:
        given_away = await conn.serve()
    finally:
        if not given_away:
            await trio.aclose_forcefully(stream)
