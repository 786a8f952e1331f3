"""Serve triosio as an ASGI application, on a Trio-based ASGI server.

The same Engine.IO sessions and Socket.IO router run behind ASGI as behind the
built-in server (:func:`triosio.serve`); only the HTTP front end differs. The
ASGI server must run on Trio and support the lifespan protocol (the
background tasks — router and sessions — live in the lifespan task). With
Hypercorn's Trio worker::

    # app.py
    import triosio, triosio.asgi
    sio = triosio.Server()
    app = triosio.asgi.ASGIApp(sio)

    # shell
    hypercorn --worker-class trio app:app

Requests under the mounted servers' paths go to them; everything else goes to
``other_app`` (another ASGI app, e.g. your web framework), or gets a 404.

Unlike the built-in server, WebSocket frames are written by the ASGI server,
one ``websocket.send`` per message, so the hot path of :func:`triosio.serve`
(frames built once, direct writes) does not apply here.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from typing import Any, final

import trio

from ._engine.app import App, Mountable, as_app
from ._engine.exchange import Exchange, Headers, Request, WebSocket, WebSocketClosed
from ._engine.packet import OutPacket

__all__ = ["ASGIApp"]

log = logging.getLogger("triosio.asgi")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApplication = Callable[[Scope, Receive, Send], Awaitable[None]]


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


class _HTTPExchange(Exchange):
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

    async def accept_websocket(self, headers: Headers) -> WebSocket:
        """Not a WebSocket request."""
        raise RuntimeError("accept_websocket() on an HTTP request")


class _WebSocketExchange(Exchange):
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

    async def accept_websocket(self, headers: Headers) -> WebSocket:
        """Accept the connection; the returned WebSocket lives until it closes."""
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
        self._drained = trio.Event()
        self._drained.set()
        self.done = trio.Event()
        self._writer_running = False
        self.on_backlog: Callable[[], bool] | None = None

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

    async def run_writer(self) -> None:
        """Send the queued messages, one ``websocket.send`` each, then return."""
        self._writer_running = True
        try:
            while self._queue and not self._closed and not self.broken:
                await self._send_one()
            if not self._queue or self.broken:
                self._drained.set()
        finally:
            self._writer_running = False

    async def _send_one(self) -> None:
        message = self._queue.popleft()
        self.backlog -= len(message)
        key = "text" if isinstance(message, str) else "bytes"
        try:
            await self._send({"type": "websocket.send", key: message})
        except Exception:  # the ASGI server's own error types differ
            self.broken = True

    async def wait_drained(self) -> None:
        """Return once nothing is queued."""
        await self._drained.wait()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Flush (briefly), then close the WebSocket."""
        if self._closed:
            return
        with trio.move_on_after(1):
            if self._writer_running:
                await self.wait_drained()
            else:
                while self._queue and not self.broken:
                    await self._send_one()
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


@final
class ASGIApp:
    """An ASGI application serving triosio servers (and optionally another app).

    Args:
        app: A :class:`triosio.Server`, an :class:`triosio.EngineServer` or an
            :class:`triosio.App` (several servers, static folders).
        other_app: Another ASGI application for requests outside the mounted
            servers' paths (static folders of ``app`` come first).
        shutdown_timeout: Seconds to let sessions say goodbye at shutdown.
    """

    def __init__(
        self,
        app: App | Mountable,
        *,
        other_app: ASGIApplication | None = None,
        shutdown_timeout: float = 5.0,
    ) -> None:
        self.app = as_app(app)
        self.other_app = other_app
        self.shutdown_timeout = shutdown_timeout
        self._running = False

    def _ours(self, path: str) -> bool:
        servers = self.app.servers
        if any(path.startswith(s.path) or path + "/" == s.path for s in servers):
            return True
        return any(static.matches(path) for static in self.app.static)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry point."""
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if kind not in ("http", "websocket"):
            return
        if not self._ours(scope["path"]) and self.other_app is not None:
            await self.other_app(scope, receive, send)
            return
        if kind == "http":
            exchange: _HTTPExchange | _WebSocketExchange = _HTTPExchange(scope, receive, send)
            await self.app.handle(exchange)
            if not exchange.responded:
                await exchange.respond(500, [("content-type", "text/plain")], b"no response")
            return
        ws_exchange = _WebSocketExchange(scope, receive, send)
        await self.app.handle(ws_exchange)
        if ws_exchange.websocket is not None:
            # The session uses this connection from its own tasks: keep the
            # ASGI call alive until it is done with it.
            await ws_exchange.websocket.done.wait()
        elif not ws_exchange.responded:
            await ws_exchange.respond(404, [("content-type", "text/plain")], b"not found")

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "lifespan.startup":
            return
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.app.run)
                self._running = True
                await send({"type": "lifespan.startup.complete"})
                message = await receive()  # lifespan.shutdown
                with trio.move_on_after(self.shutdown_timeout):
                    await self.app.shutdown()
                nursery.cancel_scope.cancel()
        except Exception as exc:
            log.exception("triosio failed in the ASGI lifespan")
            if not self._running:
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            raise
        await send({"type": "lifespan.shutdown.complete"})
