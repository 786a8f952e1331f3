"""The acceptor: sticky sessions without a proxy.

The supervisor accepts every TCP connection of the port, reads its first
request head (nothing more), and hands the connection's file descriptor to a
worker (:mod:`.fds`): the worker that holds the session named by the request's
``sid`` (session ids name their worker, :func:`.wire.sid_generator`), or the
next worker in turn for a request without one (a handshake). From then on the
worker reads the connection itself; the acceptor costs one ``recv`` and one
``sendmsg`` per connection, nothing per request.

A keep-alive connection may later carry a request of a session that lives in
another worker (a client that pools connections across sessions): that worker
gives the connection back, with the request's bytes, and the acceptor routes
it again (``H11Connection``'s :class:`~triosio._engine.h11server.Sticky`).

While a worker is down (it died; the supervisor restarts it) requests for its
sessions are answered here, as its replacement would: 400, "Session ID
unknown", so its clients reconnect at once (to another worker).

A handshake may ask for a worker with the query parameter
``triosio-worker=N`` (the cluster tests pin their clients so); it is only a
preference: the acceptor never needs it.
"""

from __future__ import annotations

import errno
import itertools
import logging
import socket

import trio

from . import fds
from .wire import asked_worker, head_end, head_sid, worker_of

log = logging.getLogger("triosio.workers")

_UNKNOWN_SID = b'{"code":1,"message":"Session ID unknown"}'
_HAND_TIMEOUT = 5.0
_ACCEPT_RETRY = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}


def _response(status: str, body: bytes, content_type: bytes = b"text/plain") -> bytes:
    return (
        b"HTTP/1.1 " + status.encode() + b"\r\ncontent-type: " + content_type
        + b"\r\ncontent-length: " + str(len(body)).encode()
        + b"\r\nconnection: close\r\n\r\n" + body
    )  # fmt: skip


class Acceptor:
    """Routes the port's connections to the workers.

    Args:
        workers: How many workers (their indexes are ``0 .. workers-1``).
        max_head_size: The largest request head read before routing.
        head_timeout: Seconds a request head may take once its first byte arrived.
        idle_timeout: Seconds a new connection may wait before its first byte.
    """

    def __init__(
        self,
        workers: int,
        *,
        max_head_size: int = 16384,
        head_timeout: float = 10.0,
        idle_timeout: float = 60.0,
    ) -> None:
        self._channels: list[trio.socket.SocketType | None] = [None] * workers
        self._turn = itertools.count()
        self._max_head = max_head_size
        self._head_timeout = head_timeout
        self._idle_timeout = idle_timeout
        #: Connections routed, and connections given back by a worker (counters).
        self.routed = 0
        self.returned = 0

    def attach(self, index: int, channel: socket.socket) -> trio.socket.SocketType:
        """Worker ``index`` is up: route its connections over ``channel``."""
        sock = trio.socket.from_stdlib_socket(channel)
        self._channels[index] = sock
        return sock

    def detach(self, index: int) -> None:
        """Worker ``index`` is down (its sessions are gone)."""
        sock = self._channels[index]
        self._channels[index] = None
        if sock is not None:
            sock.close()

    async def serve_returns(self, index: int, channel: trio.socket.SocketType) -> None:
        """Route the connections worker ``index`` gives back, until it is gone."""
        while True:
            try:
                got = await fds.receive(channel)
            except (OSError, trio.ClosedResourceError):
                return
            if got is None:
                return
            conn, data = got
            self.returned += 1
            await self._route(trio.socket.from_stdlib_socket(conn), data, came_from=index)

    async def serve(
        self,
        listeners: list[trio.SocketListener],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Accept connections until cancelled."""
        async with trio.open_nursery() as nursery:
            for listener in listeners:
                nursery.start_soon(self._accept_loop, listener, nursery)
            task_status.started()

    async def _accept_loop(self, listener: trio.SocketListener, nursery: trio.Nursery) -> None:
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
                nursery.start_soon(self._first_request, stream.socket)

    async def _first_request(self, sock: trio.socket.SocketType) -> None:
        # The same limits as a single process's HTTP server: idle_timeout for
        # the first byte (a browser's preconnection), then head_timeout.
        data = b""
        try:
            with trio.move_on_after(self._idle_timeout):
                data = await sock.recv(65536)
            with trio.move_on_after(self._head_timeout):
                while data and head_end(data) < 0 and len(data) <= self._max_head:
                    chunk = await sock.recv(65536)
                    if not chunk:
                        break
                    data += chunk
        except OSError:
            data = b""
        if not data:
            sock.close()
            return
        # An incomplete or oversized head goes to a worker too: its HTTP server
        # gives the answer (408, 431, 400) a single process would give.
        await self._route(sock, data, came_from=None)

    async def _route(
        self, sock: trio.socket.SocketType, data: bytes, came_from: int | None
    ) -> None:
        try:
            sid = head_sid(data) if head_end(data) >= 0 else None
            owner = worker_of(sid) if sid is not None else None
            if owner is not None:
                # A session of a worker: it holds it, or nobody does (that worker
                # is down, or the id is made up) and the answer is ours to give.
                channel = self._channels[owner] if owner < len(self._channels) else None
                if (
                    channel is None
                    or owner == came_from
                    or not await self._hand(channel, sock, data)
                ):
                    await self._answer(sock, "400 Bad Request", _UNKNOWN_SID, b"application/json")
                return
            # A handshake (or a sid no worker made: any worker answers it), to
            # the worker it asks for if any (tests pin clients so), else in turn.
            asked = asked_worker(data) if sid is None else None
            if asked is not None and 0 <= asked < len(self._channels):
                channel = self._channels[asked]
                if channel is not None and await self._hand(channel, sock, data):
                    return
            for _ in range(len(self._channels)):
                index = next(self._turn) % len(self._channels)
                channel = self._channels[index]
                if channel is not None and await self._hand(channel, sock, data):
                    return
            await self._answer(sock, "503 Service Unavailable", b"no worker is running")
        finally:
            sock.close()

    async def _hand(
        self, channel: trio.socket.SocketType, sock: trio.socket.SocketType, data: bytes
    ) -> bool:
        # A worker that does not take its connections for seconds (stuck, or
        # too busy) counts as gone: a handshake goes to another worker.
        with trio.move_on_after(_HAND_TIMEOUT):
            try:
                await fds.send(channel, sock, data)
            except (OSError, trio.ClosedResourceError):
                return False  # that worker is gone (the supervisor restarts it)
            self.routed += 1
            return True
        log.warning("a worker took no connection for %.0f s", _HAND_TIMEOUT)
        return False

    @staticmethod
    async def _answer(
        sock: trio.socket.SocketType, status: str, body: bytes, content_type: bytes = b"text/plain"
    ) -> None:
        with trio.move_on_after(1.0):
            try:
                await sock.send(_response(status, body, content_type))
            except OSError:
                pass
