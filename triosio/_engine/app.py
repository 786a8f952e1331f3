"""The HTTP application of the built-in server: mounted servers, static files, 404.

:class:`App` routes each request by URL path: to the Engine.IO / Socket.IO
servers mounted at their paths (longest prefix first), then to static folders
(longest prefix first), and answers 404 elsewhere. :func:`serve` runs it on TCP
(or on listeners you pass, such as in-memory ones in tests).
"""

from __future__ import annotations

import errno
import logging
import mimetypes
import os
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import unquote

import trio

from .exchange import Exchange
from .h11server import HTTPLimits, Sticky, serve_stream

log = logging.getLogger("triosio.http")

_MAX_STATIC_FILE = 64 * 1024 * 1024


@runtime_checkable
class Mountable(Protocol):
    """Something :class:`App` can mount: an Engine.IO or Socket.IO server."""

    @property
    def path(self) -> str:
        """The URL path prefix it answers, e.g. ``/socket.io/``."""
        ...

    async def handle(self, exchange: Exchange) -> None:
        """Answer one request under :attr:`path`."""
        ...

    async def run(self, *, task_status: trio.TaskStatus[None] = ...) -> None:
        """Run background tasks until cancelled."""
        ...

    async def shutdown(self) -> None:
        """Close every session (the server is shutting down) and wait for them."""
        ...


class StaticFiles:
    """Serves the files of one folder under a URL prefix.

    ``GET``/``HEAD`` only; ``index.html`` for folders (a folder asked for
    without its trailing slash is redirected to it, so that relative links in
    the page work); content types from the file name. Paths that climb out of
    the folder (``..``, encoded or not, or a symlink pointing outside) are
    answered 404; only regular files inside the folder are served.

    Args:
        prefix: URL prefix, e.g. ``/`` or ``/static/``.
        directory: The folder to serve.
    """

    def __init__(self, prefix: str, directory: str | os.PathLike[str]) -> None:
        if not prefix.startswith("/"):
            raise ValueError("a static prefix must start with '/'")
        self.prefix = prefix if prefix.endswith("/") else prefix + "/"
        self.root = Path(directory).resolve()
        if not self.root.is_dir():
            raise ValueError(f"not a folder: {directory}")

    def matches(self, path: str) -> bool:
        """Whether ``path`` is under this prefix."""
        return path.startswith(self.prefix) or path + "/" == self.prefix

    def _resolve(self, path: str) -> tuple[Path, str] | None:
        # The file to serve and the name its content type comes from (the name
        # asked for, as a web server does, not the target of a symlink).
        rel = unquote(path[len(self.prefix) :]) if path.startswith(self.prefix) else ""
        if "\x00" in rel or "\\" in rel:
            return None
        parts = [p for p in rel.split("/") if p not in ("", ".")]
        if any(p == ".." for p in parts):
            return None
        resolved = self._inside(self.root.joinpath(*parts))
        name = parts[-1] if parts else ""
        if resolved is not None and resolved.is_dir():
            # index.html may be a symlink too: it is checked like any file.
            resolved = self._inside(resolved / "index.html")
            name = "index.html"
        if resolved is None or not resolved.is_file():
            return None
        return resolved, name

    def _inside(self, target: Path) -> Path | None:
        try:
            resolved = target.resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if resolved != self.root and self.root not in resolved.parents:
            return None  # a symlink escaping the folder
        return resolved

    async def handle(self, exchange: Exchange) -> None:
        """Answer a request under :attr:`prefix`."""
        request = exchange.request
        if request.method not in ("GET", "HEAD"):
            await exchange.respond(
                405, [("allow", "GET, HEAD"), ("content-type", "text/plain")], b"method not allowed"
            )
            return
        path = request.path
        if path + "/" == self.prefix:
            location = self.prefix + ("?" + request.query_string if request.query_string else "")
            await exchange.respond(301, [("location", location)])
            return
        found = await trio.to_thread.run_sync(self._resolve, path)
        if found is None:
            await _not_found(exchange)
            return
        target, name = found
        try:
            body = await trio.to_thread.run_sync(_read_file, target)
        except OSError:
            body = None
        if body is None:
            await _not_found(exchange)
            return
        ctype = content_type(name)
        headers = [("content-type", ctype), ("cache-control", "no-cache")]
        if request.method == "HEAD":
            headers.append(("content-length", str(len(body))))
            body = b""
        await exchange.respond(200, headers, body)


def _read_file(path: Path) -> bytes | None:
    # In a worker thread: a large file or a slow disk must not stall the loop.
    with path.open("rb") as f:
        if os.fstat(f.fileno()).st_size > _MAX_STATIC_FILE:
            return None
        return f.read()


def content_type(name: str) -> str:
    """The Content-Type for a file name (UTF-8 for text types)."""
    ctype, _ = mimetypes.guess_type(name)
    if name.endswith((".js", ".mjs")):
        ctype = "text/javascript"
    ctype = ctype or "application/octet-stream"
    if ctype.startswith("text/") or ctype in ("application/json", "image/svg+xml"):
        ctype += "; charset=utf-8"
    return ctype


async def _not_found(exchange: Exchange) -> None:
    await exchange.respond(404, [("content-type", "text/plain")], b"not found")


class App:
    """An HTTP application: servers mounted at their paths, static folders, 404 elsewhere.

    Args:
        *servers: Socket.IO / Engine.IO servers; each answers under its ``path``.
        static: URL prefix → folder, e.g. ``{"/": "public"}``.
    """

    def __init__(
        self,
        *servers: Mountable,
        static: Mapping[str, str | os.PathLike[str]] | None = None,
    ) -> None:
        paths = [s.path for s in servers]
        if len(set(paths)) != len(paths):
            raise ValueError(f"two servers mounted at the same path: {paths}")
        self.servers: Sequence[Mountable] = sorted(servers, key=lambda s: -len(s.path))
        self.static = sorted(
            (StaticFiles(prefix, folder) for prefix, folder in (static or {}).items()),
            key=lambda s: -len(s.prefix),
        )

    @property
    def path(self) -> str:
        """Everything: an App answers at ``/``."""
        return "/"

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run every mounted server's background tasks."""
        async with trio.open_nursery() as nursery:
            for server in self.servers:
                await nursery.start(server.run)
            task_status.started()

    async def shutdown(self) -> None:
        """Close every session of every mounted server, and wait for them."""
        async with trio.open_nursery() as nursery:
            for server in self.servers:
                nursery.start_soon(server.shutdown)

    async def handle(self, exchange: Exchange) -> None:
        """Route one request."""
        path = exchange.request.path
        for server in self.servers:
            if path.startswith(server.path) or path + "/" == server.path:
                await server.handle(exchange)
                return
        for static in self.static:
            if static.matches(path):
                await static.handle(exchange)
                return
        await _not_found(exchange)


def as_app(app: App | Mountable) -> App:
    """Wrap a bare server in an :class:`App`."""
    return app if isinstance(app, App) else App(app)


async def serve(
    app: App | Mountable,
    host: str | None = "127.0.0.1",
    port: int = 5000,
    *,
    listeners: Sequence[trio.abc.Listener[trio.abc.Stream]] | None = None,
    ssl_context: object | None = None,
    limits: HTTPLimits | None = None,
    task_status: trio.TaskStatus[list[trio.abc.Listener[trio.abc.Stream]]] = (
        trio.TASK_STATUS_IGNORED
    ),
) -> None:
    """Serve ``app`` over HTTP/1.1 (polling and WebSocket) until cancelled.

    Start it with ``await nursery.start(triosio.serve, app, host, port)`` to get the
    listeners once they listen (``port=0`` picks a free port). Cancelling it
    closes every session (each client gets a close packet), within a bounded time.

    Args:
        app: A :class:`triosio.Server`, an :class:`EngineServer`, or an :class:`App`.
        host: Address to listen on (``None``: every interface).
        port: TCP port.
        listeners: Serve these instead of opening TCP listeners (e.g. in-memory).
        ssl_context: An ``ssl.SSLContext`` to serve HTTPS/WSS.
        limits: Request size and timeout limits (:class:`HTTPLimits`).
    """
    the_app = as_app(app)
    http_limits = limits or HTTPLimits()
    if listeners is None:
        tcp = await trio.open_tcp_listeners(port, host=host)
        listeners = list(tcp)
    if ssl_context is not None:
        import ssl

        assert isinstance(ssl_context, ssl.SSLContext)
        listeners = [
            trio.SSLListener(listener, ssl_context, https_compatible=True) for listener in listeners
        ]

    async def handler(stream: trio.abc.Stream, client: tuple[str, int] | None = None) -> None:
        await _serve_connection(the_app, http_limits, stream, client)

    loops = [
        partial(_accept_batches, listener, handler)
        if type(listener) is trio.SocketListener
        and listener.socket.family in (socket.AF_INET, socket.AF_INET6)
        else partial(_accept_loop, listener, handler)
        for listener in listeners
    ]
    served = list(listeners)
    await _serve_app(the_app, loops, lambda: task_status.started(served))


class Handoff(Sticky, Protocol):
    """Where a worker process gets its connections (``triosio run --workers N``)."""

    async def receive(self) -> tuple[trio.SocketStream, bytes]:
        """The next connection handed to this worker, and the bytes already read from it."""
        ...


async def serve_handoffs(
    app: App | Mountable,
    handoff: Handoff,
    *,
    limits: HTTPLimits | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the connections an acceptor hands over, as :func:`serve` serves a listener.

    Cancelling it closes every session, like :func:`serve`.
    """
    the_app = as_app(app)
    http_limits = limits or HTTPLimits()

    async def loop(nursery: trio.Nursery) -> None:
        while True:
            stream, prefix = await handoff.receive()
            nursery.start_soon(_serve_handed, the_app, http_limits, stream, prefix, handoff)

    await _serve_app(the_app, [loop], task_status.started)


async def _serve_app(
    the_app: App,
    loops: Sequence[Callable[[trio.Nursery], Awaitable[None]]],
    started: Callable[[], None],
) -> None:
    # The servers run in a scope shielded from our caller's cancellation, so that
    # on cancellation the sessions can still say goodbye (over the very HTTP
    # connections that are serving their polls); then that scope is cancelled too.
    inner = trio.CancelScope(shield=True)
    async with trio.open_nursery() as nursery:
        await nursery.start(_run_shielded, inner, the_app, loops)
        started()
        try:
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                with trio.move_on_after(_SHUTDOWN_GRACE):
                    await the_app.shutdown()
                inner.cancel()


_SHUTDOWN_GRACE = 5.0


async def _run_shielded(
    scope: trio.CancelScope,
    app: App,
    loops: Sequence[Callable[[trio.Nursery], Awaitable[None]]],
    *,
    task_status: trio.TaskStatus[None],
) -> None:
    with scope:
        async with trio.open_nursery() as nursery:
            await nursery.start(app.run)
            for loop in loops:
                nursery.start_soon(loop, nursery)
            task_status.started()


_ACCEPT_RETRY = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}


async def _accept_loop(
    listener: trio.abc.Listener[trio.abc.Stream],
    handler: Callable[[trio.abc.Stream], Awaitable[None]],
    nursery: trio.Nursery,
) -> None:
    # Not trio.serve_listeners: it closes each stream when its handler returns, and
    # a WebSocket handshake hands the stream over to a session that outlives it.
    async with listener:
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:
                if exc.errno in _ACCEPT_RETRY:
                    log.error("accept failed (%s); retrying in 100 ms", exc)
                    await trio.sleep(0.1)
                    continue
                raise
            nursery.start_soon(handler, stream)


# Errors of accept() that concern one connection only (as trio's listener has them).
_ACCEPT_SKIP = {
    getattr(errno, name)
    for name in (
        "EPERM",
        "ECONNABORTED",
        "EPROTO",
        "ENETDOWN",
        "ENOPROTOOPT",
        "EHOSTDOWN",
        "ENONET",
        "EHOSTUNREACH",
        "EOPNOTSUPP",
        "ENETUNREACH",
        "ENOSR",
        "ESOCKTNOSUPPORT",
        "EPROTONOSUPPORT",
        "ETIMEDOUT",
        "ECONNRESET",
    )
    if hasattr(errno, name)
}
#: Most connections accepted per wake-up before the loop yields to the others.
_ACCEPT_BATCH = 64


async def _accept_batches(
    listener: trio.SocketListener,
    handler: Callable[[trio.abc.Stream, tuple[str, int] | None], Awaitable[None]],
    nursery: trio.Nursery,
) -> None:
    # A TCP listener: every connection pending when the socket is readable is
    # accepted in one go, with non-blocking accept() calls on a duplicate of
    # its descriptor, where trio's listener.accept() costs a wait (or a
    # schedule point), a context manager and a failing accept() per
    # connection; the peer's address comes with it (no getpeername()).
    # Measured at 5,000 connections, 100 in flight: benchmarks/README.md.
    raw = socket.socket(fileno=os.dup(listener.socket.fileno()))
    raw.setblocking(False)
    try:
        async with listener:
            while True:
                await trio.lowlevel.wait_readable(raw)
                if listener.socket.fileno() < 0:
                    # The listener was closed (by its owner): accept no more,
                    # as trio's accept() would raise ClosedResourceError.
                    return
                for _ in range(_ACCEPT_BATCH):
                    try:
                        conn, address = raw.accept()
                    except BlockingIOError:
                        break
                    except OSError as exc:
                        if exc.errno in _ACCEPT_SKIP:
                            continue
                        if exc.errno in _ACCEPT_RETRY:
                            log.error("accept failed (%s); retrying in 100 ms", exc)
                            await trio.sleep(0.1)
                            break
                        raise
                    try:
                        stream = trio.SocketStream(trio.socket.from_stdlib_socket(conn))
                    except BaseException:
                        conn.close()
                        raise
                    client = (str(address[0]), int(address[1])) if address else None
                    nursery.start_soon(handler, stream, client)
                else:
                    await trio.lowlevel.checkpoint()  # more are waiting: let others run
    finally:
        raw.close()


async def _serve_handed(
    app: App, limits: HTTPLimits, stream: trio.SocketStream, prefix: bytes, sticky: Sticky
) -> None:
    try:
        await serve_stream(stream, app.handle, limits, prefix=prefix, sticky=sticky)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    except Exception:
        log.exception("unexpected error on an HTTP connection")


async def _serve_connection(
    app: App, limits: HTTPLimits, stream: trio.abc.Stream, client: tuple[str, int] | None = None
) -> None:
    try:
        await serve_stream(stream, app.handle, limits, client=client)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    except Exception:
        log.exception("unexpected error on an HTTP connection")
