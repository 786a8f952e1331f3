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
from collections.abc import Awaitable, Callable
from typing import final

import trio

from ._engine.app import App, Mountable, as_app
from ._engine.asgi_transport import (
    ASGIHTTPExchange,
    ASGIWebSocketExchange,
    Receive,
    Scope,
    Send,
)

__all__ = ["ASGIApp"]

log = logging.getLogger("triosio.asgi")

ASGIApplication = Callable[[Scope, Receive, Send], Awaitable[None]]


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
            exchange = ASGIHTTPExchange(scope, receive, send)
            await self.app.handle(exchange)
            if not exchange.responded:
                await exchange.respond(500, [("content-type", "text/plain")], b"no response")
            return
        ws_exchange = ASGIWebSocketExchange(scope, receive, send)
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
