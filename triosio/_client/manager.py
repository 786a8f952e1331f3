"""The client manager: one Engine.IO connection, many namespace sockets.

Semantics as ``socket.io-client`` 4.8's ``Manager``. The manager holds the
options, the sockets by namespace and the public API; its
:class:`~.connection.Connection` opens, runs and reopens the connection.

Everything runs in the manager's nursery: the connection loop (one task, so
there is never more than one reconnection in progress), the dispatcher that runs
handlers, and the at-least-once queues of sockets with ``retries``.
"""

from __future__ import annotations

import math
import ssl as _ssl
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import trio

from .._common.handlers import HandlerRegistry
from .._engine.eio_client import TRANSPORTS, Connector, EngineClientOptions, default_connector
from .._proto.backoff import Backoff
from .._proto.sio import Limits, Parser, SioPacket, check_namespace, get_parser
from .connection import CLOSE_TIMEOUT, Connection
from .dispatcher import Dispatcher, fire
from .socket import Auth, ClientSocket


def parse_url(url: str) -> tuple[bool, str, int, str, list[tuple[str, str]]]:
    """Split a server URL into (secure, host, port, namespace, query).

    ``http``/``ws`` are plain, ``https``/``wss`` use TLS; the path is the namespace.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https", "ws", "wss"):
        raise ValueError(f"unsupported URL scheme {parts.scheme!r} (use http, https, ws or wss)")
    if not parts.hostname:
        raise ValueError(f"no host in URL {url!r}")
    secure = scheme in ("https", "wss")
    port = parts.port or (443 if secure else 80)
    namespace = parts.path or "/"
    return secure, parts.hostname, port, namespace, parse_qsl(parts.query, keep_blank_values=True)


class Manager(HandlerRegistry):
    """One connection to a Socket.IO server, shared by namespace sockets.

    Use it as an async context manager; it runs its tasks (the connection, the
    handlers) in a nursery of its own and, on exit, disconnects every socket and
    closes the connection cleanly (within ``CLOSE_TIMEOUT``), then cancels what
    is left. :func:`triosio.connect` makes one for you.

    Example::

        async with triosio.Manager("http://localhost:3000") as manager:
            chat = manager.socket("/chat", auth={"token": "t"})
            await chat.connect()
            await chat.emit("hello")

    Args:
        url: The server, ``http(s)://host[:port]`` (``ws``/``wss`` too). Its query
            string is sent with every request; its path is ignored (namespaces
            are given to :meth:`socket`).
        path: The Engine.IO path on the server.
        transports: ``("polling", "websocket")`` opens with HTTP long-polling and
            upgrades to WebSocket; ``("websocket",)`` uses only WebSocket;
            ``("polling",)`` only polling.
        query: Extra query parameters.
        headers: Extra HTTP headers (polling requests and the WebSocket handshake).
        ssl: The TLS context for ``https``/``wss`` (default: the system's trust
            store, verified).
        connect_timeout: Seconds to open the connection (TCP, TLS, handshake).
        reconnection: Whether to reconnect after the connection is lost.
        reconnection_attempts: Most attempts in a row (``math.inf``: no limit).
        reconnection_delay: First delay, in seconds.
        reconnection_delay_max: Longest delay, in seconds.
        randomization_factor: Jitter, between 0 and 1.
        random: Returns floats in ``[0, 1)`` for the jitter (for tests).
        retry_connect: Whether a failed *first* connection is retried like a lost
            one (as the reference client does). By default it raises at once.
        parser: The Socket.IO parser: ``"json"`` (default), ``"msgpack"`` (needs
            ``triosio[msgpack]``) or a parser object; the server must use the same.
        connector: An async callable ``(host, port, tls) -> trio.abc.Stream`` that
            opens every byte stream (for in-memory tests, proxies...). Default:
            ``trio.open_tcp_stream``, wrapped in ``trio.SSLStream`` for TLS.
        max_message_size: Largest message accepted from the server, in bytes.
    """

    def __init__(
        self,
        url: str,
        *,
        path: str = "/socket.io",
        transports: Sequence[str] = ("polling", "websocket"),
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        ssl: _ssl.SSLContext | None = None,
        connect_timeout: float = 20.0,
        reconnection: bool = True,
        reconnection_attempts: float = math.inf,
        reconnection_delay: float = 1.0,
        reconnection_delay_max: float = 5.0,
        randomization_factor: float = 0.5,
        random: Callable[[], float] | None = None,
        retry_connect: bool = False,
        parser: str | Parser | None = None,
        connector: Connector | None = None,
        max_message_size: int = 16 * 2**20,
    ) -> None:
        super().__init__()
        secure, host, port, _, url_query = parse_url(url)
        transports = tuple(transports)
        if not transports or any(t not in TRANSPORTS for t in transports):
            raise ValueError(f"transports must be 'polling' and/or 'websocket': {transports!r}")
        if ssl is not None and not secure:
            raise ValueError("an ssl context needs an https:// or wss:// URL")
        if reconnection_attempts < 0:
            raise ValueError("reconnection_attempts must not be negative")
        if connect_timeout <= 0:
            raise ValueError("connect_timeout must be positive")
        tls = (ssl or _ssl.create_default_context()) if secure else None
        engine_path = "/" + path.strip("/") + "/" if path.strip("/") else "/"
        self.url = url
        self.connect_timeout = connect_timeout
        self.reconnection = reconnection
        self.reconnection_attempts = reconnection_attempts
        self.retry_connect = retry_connect
        engine_options = EngineClientOptions(
            host=host,
            port=port,
            secure=secure,
            path=engine_path,
            query=tuple(url_query) + tuple((query or {}).items()),
            headers=tuple((headers or {}).items()),
            transports=transports,
            tls=tls,
            connector=connector or default_connector,
            max_message_size=max_message_size,
        )
        the_parser = get_parser(parser)
        limits = Limits(max_payload=max_message_size, max_attachment_bytes=max_message_size)
        backoff = Backoff(
            reconnection_delay, reconnection_delay_max, randomization_factor, random=random
        )
        self._encoder = the_parser.encoder()
        self._connection = Connection(self, engine_options, the_parser, limits, backoff)
        self._sockets: dict[str, ClientSocket] = {}
        self._dispatcher = Dispatcher()
        self._nursery: trio.Nursery | None = None
        self._nursery_cm: Any = None
        self._closed = False

    def __repr__(self) -> str:
        return f"<Manager {self.url} transport={self.transport}>"

    # ------------------------------------------------------------ public

    @property
    def transport(self) -> str | None:
        """The transport in use (``"polling"`` or ``"websocket"``), or ``None``."""
        engine = self._connection.engine
        return engine.transport if engine is not None else None

    @property
    def engine_id(self) -> str | None:
        """The Engine.IO session id of the open connection, or ``None``."""
        engine = self._connection.engine
        return engine.sid if engine is not None else None

    @property
    def is_open(self) -> bool:
        """Whether the Engine.IO connection is open now."""
        engine = self._connection.engine
        return engine is not None and not engine.ended

    def socket(
        self,
        namespace: str = "/",
        *,
        auth: Auth = None,
        ack_timeout: float | None = None,
        retries: int = 0,
        max_buffer: int = 1000,
    ) -> ClientSocket:
        """The socket for ``namespace`` (made on first call, then the same one).

        The socket is not connected yet: ``await socket.connect()``. The options
        apply when the socket is made; later calls return it unchanged.

        Args:
            namespace: The namespace, e.g. ``"/chat"``.
            auth: The CONNECT payload (a dict), or a plain or async function
                returning it, called at every (re)connect.
            ack_timeout: Default timeout of ``emit_with_ack``, in seconds.
            retries: Send an unacknowledged event again up to this many times
                (at-least-once delivery; see ``docs/client.md``).
            max_buffer: The most packets buffered while disconnected.
        """
        check_namespace(namespace)
        sock = self._sockets.get(namespace)
        if sock is None:
            sock = ClientSocket(
                self,
                namespace,
                auth=auth,
                ack_timeout=ack_timeout,
                retries=retries,
                max_buffer=max_buffer,
            )
            self._sockets[namespace] = sock
        return sock

    @property
    def sockets(self) -> dict[str, ClientSocket]:
        """The sockets made so far, by namespace."""
        return dict(self._sockets)

    async def disconnect(self) -> None:
        """Disconnect every socket and close the connection (the manager stays usable)."""
        await trio.lowlevel.checkpoint_if_cancelled()
        for sock in list(self._sockets.values()):
            if sock.active:
                sock._disconnect_now()
        self._check_idle()
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def __aenter__(self) -> Manager:
        if self._nursery is not None or self._closed:
            raise RuntimeError("a Manager can be entered only once")
        self._nursery_cm = trio.open_nursery()
        self._nursery = await self._nursery_cm.__aenter__()
        self._nursery.start_soon(self._dispatcher.run)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        assert self._nursery is not None
        try:
            if not _is_cancellation(exc):
                with trio.move_on_after(CLOSE_TIMEOUT):
                    await self.disconnect()
                    await self._connection.wait_ended()
                    await self._dispatcher.drain()
        finally:
            self._closed = True
            for sock in self._sockets.values():
                sock._close()
            self._nursery.cancel_scope.cancel()
        try:
            return bool(await self._nursery_cm.__aexit__(exc_type, exc, tb))
        except BaseExceptionGroup as group:
            # Our tasks never raise: what is in the group is the body's exception
            # (and cancellations). Let the body's exception through as itself,
            # not wrapped in a group.
            if exc is not None and _only(group, exc):
                return False
            raise

    # ------------------------------------------------------------ for sockets

    def _check_running(self) -> None:
        if self._nursery is None:
            raise RuntimeError("the Manager is not running: use 'async with manager:'")
        if self._closed:
            raise RuntimeError("the Manager is closed")

    def _start_task(self, fn: Callable[[], Any]) -> None:
        self._check_running()
        assert self._nursery is not None
        self._nursery.start_soon(fn)

    def _socket_activated(self, sock: ClientSocket) -> None:
        self._connection.open_for(sock)

    def _wants_connection(self) -> bool:
        return not self._closed and any(s.active for s in self._sockets.values())

    def _check_idle(self) -> None:
        """Close the connection, or stop reconnecting, once no socket is active."""
        if not self._wants_connection():
            self._connection.close()

    def _send_packet(self, packet: SioPacket) -> None:
        self._connection.send(self._encoder.encode(packet))

    def _fire(self, name: str, *args: Any) -> None:
        """Fire a manager event: queue its handlers (``emit`` is for the server)."""
        fire(self, self._dispatcher, name, args, "manager")

    def _fire_on_sockets(self, name: str, *args: Any) -> None:
        """Fire a (legacy) event on every active socket."""
        for sock in self._sockets.values():
            if sock.active:
                sock._fire(name, *args)


def _is_cancellation(exc: BaseException | None) -> bool:
    if isinstance(exc, (trio.Cancelled, KeyboardInterrupt)):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return exc.subgroup((trio.Cancelled, KeyboardInterrupt)) is not None
    return False


def _only(group: BaseExceptionGroup[BaseException], exc: BaseException) -> bool:
    """Whether ``group`` holds nothing but ``exc`` and cancellations."""
    for inner in group.exceptions:
        if isinstance(inner, BaseExceptionGroup):
            if not _only(inner, exc):
                return False
        elif inner is not exc and not isinstance(inner, trio.Cancelled):
            return False
    return True
