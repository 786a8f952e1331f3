"""The ASGI front end's transport: requests and WebSockets of an ASGI server.

:class:`ASGIHTTPExchange` and :class:`ASGIWebSocketExchange` are the
:class:`~triosio._engine.exchange.Exchange` of an ASGI ``http`` or
``websocket`` connection, and :class:`ASGIWebSocket` the accepted WebSocket,
so the Engine.IO server and its sessions run over ASGI unchanged. The public
face, :class:`triosio.asgi.ASGIApp`, routes each ASGI call to one of them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from typing import Any, final

import trio

from .deflate import PerMessageDeflate
from .exchange import Exchange, Headers, Request, WebSocket, WebSocketClosed
from .packet import OutPacket

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def _request(scope: Scope) -> Request:
    raw_path = scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else scope["path"]
    path = path.partition("?")[0]
    headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
    if scope["type"] == "websocket" and not any(k == "upgrade" for k, _ in headers):
        headers.append(("upgrade", "websocket"))  # some servers drop hop-by-hop headers
    client = scope.get("client")
    return Request(
        method=scope.get("method", "GET"),
        path=path,
        query_string=scope.get("query_string", b"").decode("latin-1"),
        headers=headers,
        client=(str(client[0]), int(client[1])) if client else None,
        secure=scope.get("scheme") in ("https", "wss"),
    )


def _raw(headers: Headers) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]


class ASGIHTTPExchange(Exchange):
    """One ASGI ``http`` request."""

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.request = _request(scope)
        self._receive = receive
        self._send = send
        self._body_done = False
        self.responded = False

    async def body(self) -> AsyncIterator[bytes]:
        """The request body, chunk by chunk."""
        while not self._body_done:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise trio.BrokenResourceError("client disconnected")
            chunk = message.get("body", b"")
            self._body_done = not message.get("more_body", False)
            if chunk:
                yield bytes(chunk)

    async def respond(self, status: int, headers: Headers, body: bytes = b"") -> None:
        """Send the whole response."""
        self.responded = True
        all_headers = list(headers)
        if not any(k.lower() == "content-length" for k, _ in headers):
            all_headers.append(("content-length", str(len(body))))
        await self._send(
            {"type": "http.response.start", "status": status, "headers": _raw(all_headers)}
        )
        await self._send({"type": "http.response.body", "body": body})

    async def wait_client_gone(self) -> None:
        """Return when the ASGI server reports ``http.disconnect``."""
        async for _ in self.body():
            pass
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                return

    async def accept_websocket(
        self, headers: Headers, deflate: PerMessageDeflate | None = None, *, hold: bool = False
    ) -> WebSocket:
        """Not a WebSocket request."""
        raise RuntimeError("accept_websocket() on an HTTP request")


class ASGIWebSocketExchange(Exchange):
    """One ASGI ``websocket`` connection, before it is accepted."""

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.request = _request(scope)
        self._scope = scope
        self._receive = receive
        self._send = send
        self.websocket: ASGIWebSocket | None = None
        self.responded = False

    async def body(self) -> AsyncIterator[bytes]:
        """A WebSocket handshake has no body."""
        empty: tuple[bytes, ...] = ()
        for chunk in empty:
            yield chunk

    async def respond(self, status: int, headers: Headers, body: bytes = b"") -> None:
        """Refuse the WebSocket with an HTTP response (or a bare close)."""
        self.responded = True
        message = await self._receive()  # websocket.connect
        if message["type"] != "websocket.connect":
            return
        if "websocket.http.response" in self._scope.get("extensions", {}):
            all_headers = [*headers, ("content-length", str(len(body)))]
            await self._send(
                {
                    "type": "websocket.http.response.start",
                    "status": status,
                    "headers": _raw(all_headers),
                }
            )
            await self._send({"type": "websocket.http.response.body", "body": body})
        else:
            await self._send({"type": "websocket.close", "code": 1008})

    async def wait_client_gone(self) -> None:
        """Not used for WebSocket requests."""
        await trio.sleep_forever()

    async def accept_websocket(
        self, headers: Headers, deflate: PerMessageDeflate | None = None, *, hold: bool = False
    ) -> WebSocket:
        """Accept the connection; the returned WebSocket lives until it closes.

        ``deflate`` is not used: the ASGI server frames the messages, and
        negotiates compression itself (uvicorn's ``ws_per_message_deflate``).
        ``hold`` is not used either: the answer goes out at once.
        """
        message = await self._receive()
        if message["type"] != "websocket.connect":
            raise WebSocketClosed(1006, "the client left during the handshake")
        await self._send({"type": "websocket.accept", "headers": _raw(headers)})
        self.responded = True
        self.websocket = ASGIWebSocket(self._receive, self._send)
        return self.websocket


@final
class ASGIWebSocket(WebSocket):
    """An accepted ASGI WebSocket, as an Engine.IO session uses it."""

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self._queue: deque[str | bytes] = deque()
        self.backlog = 0
        self.broken = False
        self._closed = False
        self._drained: trio.Event = trio.Event()
        self._drained.set()
        self.done = trio.Event()
        self._writer_running = False
        self.start_writer: Callable[[WebSocket], bool] | None = None

    async def receive(self, max_size: int) -> str | bytes:
        """The next message (see :meth:`WebSocket.receive`)."""
        message = await self._receive()
        kind = message["type"]
        if kind == "websocket.disconnect":
            raise WebSocketClosed(int(message.get("code", 1005)))
        if kind != "websocket.receive":
            raise WebSocketClosed(1002, f"unexpected ASGI message {kind}")
        data: str | bytes | None = message.get("text")
        if data is None:
            data = message.get("bytes") or b""
        if len(data) > max_size:
            raise WebSocketClosed(1009, "message too big")
        return data

    def write_nowait(self, packets: Sequence[OutPacket]) -> None:
        """Queue the packets' messages for the writer task."""
        if self._closed or self.broken:
            return
        for packet in packets:
            message = packet.ws_message
            self._queue.append(message)
            self.backlog += len(message)
        if self._drained.is_set():
            self._drained = trio.Event()
        self._need_writer()

    async def _write_some(self) -> None:
        """Send one queued message (one ``websocket.send``)."""
        message = self._queue.popleft()
        self.backlog -= len(message)
        key = "text" if isinstance(message, str) else "bytes"
        try:
            await self._send({"type": "websocket.send", key: message})
        except Exception:  # the ASGI server's own error types differ
            self.broken = True

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Flush (briefly), then close the WebSocket."""
        if self._closed:
            return
        with trio.move_on_after(1):
            await self._flush()
            if not self.broken:
                try:
                    await self._send({"type": "websocket.close", "code": code, "reason": reason})
                except Exception:
                    self.broken = True
        await self.abort()

    async def abort(self) -> None:
        """Forget the connection; the ASGI call returns."""
        self._closed = True
        self._queue.clear()
        self._drained.set()
        self.done.set()
        await trio.lowlevel.checkpoint()
