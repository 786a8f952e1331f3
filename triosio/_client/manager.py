"""The client manager: one Engine.IO connection, many namespace sockets, reconnection.

Semantics as ``socket.io-client`` 4.8's ``Manager``: the connection opens when a
socket connects and closes when no socket is active; when it is lost, it is
opened again after a delay from :class:`~triosio._proto.backoff.Backoff`
(``reconnection_delay`` doubled per attempt, jitter ``randomization_factor``,
capped at ``reconnection_delay_max``), up to ``reconnection_attempts`` times;
every active namespace then sends its CONNECT again, with its auth.

Everything runs in the manager's nursery: the connection loop (one task, so
there is never more than one reconnection in progress), the dispatcher that runs
handlers, and the at-least-once queues of sockets with ``retries``.
"""

from __future__ import annotations

import logging
import math
import ssl as _ssl
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import trio

from .._common.handlers import HandlerRegistry
from .._engine.client import (
    TRANSPORTS,
    Connector,
    EngineClient,
    EngineError,
    EngineOptions,
    default_connector,
)
from .._errors import ConnectError, DisconnectReason, RemoteProtocolError
from .._proto.backoff import Backoff
from .._proto.sio import Decoder, Limits, Parser, SioPacket, check_namespace, get_parser
from .dispatcher import Dispatcher, submit
from .socket import Auth, ClientSocket

log = logging.getLogger("triosio.client")

#: How long leaving the manager waits for the connection to close cleanly and
#: for the handlers of the last events (``disconnect``) to run.
CLOSE_TIMEOUT = 2.0
#: ``emit`` waits while this many messages wait to be written (backpressure).
HIGH_WATER = 1024


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
        self._backoff = Backoff(
            reconnection_delay, reconnection_delay_max, randomization_factor, random=random
        )
        self._engine_options = EngineOptions(
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
        self._parser: Parser = get_parser(parser)
        self._limits = Limits(max_payload=max_message_size, max_attachment_bytes=max_message_size)
        self._encoder = self._parser.encoder()
        self._decoder: Decoder = self._parser.decoder(self._limits)
        self._sockets: dict[str, ClientSocket] = {}
        self._dispatcher = Dispatcher()
        self._nursery: trio.Nursery | None = None
        self._nursery_cm: Any = None
        self._engine: EngineClient | None = None
        self._loop_scope: trio.CancelScope | None = None
        self._loop_done = trio.Event()
        self._loop_done.set()
        self._closed = False

    def __repr__(self) -> str:
        return f"<Manager {self.url} transport={self.transport}>"

    # ------------------------------------------------------------ public

    @property
    def transport(self) -> str | None:
        """The transport in use (``"polling"`` or ``"websocket"``), or ``None``."""
        return self._engine.transport if self._engine is not None else None

    @property
    def engine_id(self) -> str | None:
        """The Engine.IO session id of the open connection, or ``None``."""
        return self._engine.sid if self._engine is not None else None

    @property
    def is_open(self) -> bool:
        """Whether the Engine.IO connection is open now."""
        return self._engine is not None and not self._engine.ended

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
                    await self._loop_done.wait()
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
        engine = self._engine
        if engine is not None and not engine.ended:
            if not engine.closing:
                self._start_task(partial(self._connect_sockets, engine, [sock], 0))
            # else: the loop opens a new connection once this one has closed.
        elif self._loop_done.is_set():
            self._loop_done = trio.Event()
            self._start_task(self._connection_loop)

    def _wants_connection(self) -> bool:
        return not self._closed and any(s.active for s in self._sockets.values())

    def _check_idle(self) -> None:
        """Close the connection, or stop reconnecting, once no socket is active."""
        if self._wants_connection():
            return
        engine = self._engine
        if engine is not None and not engine.ended:
            engine.close()
            assert self._nursery is not None
            self._nursery.start_soon(self._close_deadline, engine)
        elif self._loop_scope is not None:
            self._loop_scope.cancel()

    async def _close_deadline(self, engine: EngineClient) -> None:
        await trio.sleep(CLOSE_TIMEOUT)
        engine.abort(DisconnectReason.FORCED_CLOSE)

    def _send_packet(self, packet: SioPacket) -> None:
        self._send_messages(self._encoder.encode(packet))

    def _send_messages(self, messages: Iterable[str | bytes]) -> None:
        if self._engine is not None:
            self._engine.send(messages)

    def _writable(self) -> bool:
        engine = self._engine
        return (
            engine is not None
            and not engine.ended
            and not engine.ping_expired
            and engine.pending < HIGH_WATER
        )

    async def _wait_writable(self) -> None:
        engine = self._engine
        if engine is not None:
            await engine.wait_writable(HIGH_WATER)
        await trio.lowlevel.checkpoint()

    def _emit(self, name: str, *args: Any) -> None:
        submit(self, self._dispatcher, name, args, "manager")

    def _emit_sockets(self, name: str, *args: Any) -> None:
        for sock in self._sockets.values():
            if sock.active:
                sock._emit_reserved(name, *args)

    # ------------------------------------------------------------ the connection

    async def _connection_loop(self) -> None:
        backoff = self._backoff
        backoff.reset()
        retrying = False
        try:
            with trio.CancelScope() as self._loop_scope:
                while self._wants_connection():
                    attempt = 0
                    if retrying:
                        if backoff.attempts >= self.reconnection_attempts:
                            self._give_up(reconnect_failed=True)
                            return
                        delay = backoff.duration()
                        attempt = backoff.attempts
                        self._emit_sockets("reconnecting", delay, attempt)
                        await trio.sleep(delay)
                        if not self._wants_connection():
                            return
                        self._emit("reconnect_attempt", attempt)
                    outcome = await self._connection(attempt)
                    if isinstance(outcome, ConnectError):
                        if retrying:
                            self._emit("reconnect_error", outcome)
                        if not self.reconnection or not (retrying or self.retry_connect):
                            self._give_up(error=outcome)
                            return
                    elif outcome is DisconnectReason.IO_CLIENT_DISCONNECT:
                        # We closed it (no socket was active); a socket became
                        # active again meanwhile: open a new one right away.
                        retrying = False
                        continue
                    elif not self.reconnection:
                        for sock in list(self._sockets.values()):
                            sock._not_reconnecting(outcome)
                        return
                    retrying = True
        finally:
            self._loop_scope = None
            self._loop_done.set()

    def _give_up(
        self, *, reconnect_failed: bool = False, error: ConnectError | None = None
    ) -> None:
        if reconnect_failed:
            self._emit("reconnect_failed")
            self._emit_sockets("reconnect_failed")
            error = ConnectError(f"gave up reconnecting after {self._backoff.attempts} attempts")
        assert error is not None
        for sock in list(self._sockets.values()):
            sock._fail(error)

    async def _connection(self, attempt: int) -> ConnectError | DisconnectReason:
        """One connection: open it, run it until it ends; return why it ended."""
        async with trio.open_nursery() as nursery:
            engine = EngineClient(
                self._engine_options,
                nursery,
                self._on_engine_message,
                partial(self._emit, "ping"),
                partial(self._emit, "upgrade"),
            )
            try:
                with trio.fail_after(self.connect_timeout):
                    await engine.open()
            except (EngineError, trio.TooSlowError) as exc:
                if isinstance(exc, trio.TooSlowError):
                    message = f"timed out after {self.connect_timeout} s"
                else:
                    message = str(exc)
                error = ConnectError(message)
                error.__cause__ = exc
                self._on_open_failed(error)
                nursery.cancel_scope.cancel()
                return error
            self._engine = engine
            self._decoder = self._parser.decoder(self._limits)
            self._emit("open")
            nursery.start_soon(self._connect_sockets, engine, None, attempt)
            reason = await engine.run()
            nursery.cancel_scope.cancel()
        self._engine = None
        self._decoder.reset()
        failure = engine.error
        if reason not in (DisconnectReason.PARSE_ERROR, DisconnectReason.TRANSPORT_ERROR):
            failure = None
        if failure is not None:
            self._emit("error", failure)
        if reason is DisconnectReason.FORCED_CLOSE:
            reason = DisconnectReason.IO_CLIENT_DISCONNECT
        for sock in list(self._sockets.values()):
            sock._connection_lost(reason)
            if failure is not None and sock.active:
                sock._emit_reserved("error", failure)
        self._emit("close", reason)
        return reason

    def _on_open_failed(self, error: ConnectError) -> None:
        self._emit("error", error)
        for sock in self._sockets.values():
            if sock.active and not sock.connected:
                sock._emit_reserved("connect_error", error)

    async def _connect_sockets(
        self, engine: EngineClient, only: list[ClientSocket] | None, attempt: int
    ) -> None:
        """Send CONNECT for each active socket (after awaiting every auth callable)."""
        candidates = only if only is not None else list(self._sockets.values())
        socks = [s for s in candidates if s._claim_connect(engine)]
        ready: list[tuple[ClientSocket, Any]] = []
        for sock in socks:
            try:
                ready.append((sock, await sock._resolve_auth()))
            except Exception as exc:
                log.exception("the auth function of namespace %s failed", sock.namespace)
                error = ConnectError(f"the auth function failed: {exc!r}")
                error.__cause__ = exc
                sock._emit_reserved("connect_error", error)
                sock._fail(error)
                self._check_idle()
        if engine.ended or self._engine is not engine:
            return
        # From here on, no checkpoint: every CONNECT is queued, then "reconnect"
        # fires, before any answer can be handled.
        for sock, auth in ready:
            sock._send_connect(engine, auth)
        if attempt:
            self._backoff.reset()
            self._emit("reconnect", attempt)
            self._emit_sockets("reconnect", attempt)

    def _on_engine_message(self, data: str | bytes) -> None:
        engine = self._engine
        try:
            packet = self._decoder.feed(data)
        except RemoteProtocolError as exc:
            log.warning("closing the connection: the server sent a bad packet: %s", exc)
            if engine is not None:
                engine.abort(DisconnectReason.PARSE_ERROR, exc)
            return
        if packet is None:
            return
        sock = self._sockets.get(packet.nsp)
        if sock is None:
            return
        try:
            sock._on_packet(packet)
        except Exception as exc:  # a bug of ours: never let it reach the engine's tasks
            log.exception("error handling %r", packet)
            if engine is not None:
                engine.abort(DisconnectReason.TRANSPORT_ERROR, exc)


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
