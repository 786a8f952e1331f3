"""The server-side socket: one client's connection to one namespace."""

from __future__ import annotations

import logging
import time
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, final, overload

import trio

from .._common import ids
from .._common.handlers import CatchAllRegistry, H, Handler, call_handler
from .._common.sync import LazyEvent, waitable
from .._errors import AckTimeout, Disconnected, DisconnectReason
from .._proto.sio import SioType, check_event_name
from .acks import GONE, PendingAcks
from .hooks import AckOutcome, wait_for_space
from .lifecycle import SocketState
from .ratelimit import RateLimit, TokenBucket
from .validation import validated

if TYPE_CHECKING:
    from .._engine.exchange import Request
    from .._engine.session import EngineSession
    from .broadcast import BroadcastOperator
    from .dispatch import Client
    from .namespace import Namespace
    from .recovery import Restored

log = logging.getLogger("triosio.server")


_NO_EXTRA: Mapping[str, Any] = types.MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Handshake:
    """What the client sent when it connected (``socket.handshake``).

    Attributes:
        headers: Request headers of the Engine.IO handshake (lower-case names).
        query: Query parameters of the Engine.IO handshake.
        auth: The CONNECT payload (``{}`` when the client sent none).
        address: The client's IP address.
        time: When the client connected, as text.
        issued: When the client connected, in milliseconds since the epoch.
        url: The request URL of the handshake.
        secure: Whether the connection is TLS.
        xdomain: Whether the request came from another origin.
        extra: Any other fields (those of a socket of another server, with a
            cluster adapter).
    """

    headers: Mapping[str, str]
    query: Mapping[str, str]
    auth: Mapping[str, Any]
    address: str
    time: str
    issued: int
    url: str
    secure: bool
    xdomain: bool = False
    extra: Mapping[str, Any] = field(default_factory=lambda: _NO_EXTRA)

    @classmethod
    def from_request(cls, request: Request, auth: Mapping[str, Any]) -> Handshake:
        """The handshake of a client connected by ``request`` that sent ``auth``."""
        return cls(
            headers=HeaderMap(request.headers),
            query=request.query,
            auth=auth,
            address=request.client[0] if request.client else "",
            time=_time_text(int(request.time)),
            issued=int(request.time * 1000),
            url=request.url,
            secure=request.secure,
            xdomain=request.header("origin") is not None,
        )


_last_time: tuple[int, str] = (-1, "")


def _time_text(seconds: int) -> str:
    # Formatted once per second, not per connection (localtime and strftime
    # cost a few microseconds, each connection's handshake pays them).
    global _last_time
    if _last_time[0] != seconds:
        text = time.strftime("%a %b %d %Y %H:%M:%S GMT%z", time.localtime(seconds))
        _last_time = (seconds, text)
    return _last_time[1]


class HeaderMap(Mapping[str, str]):
    """Request headers by name, as a read-only mapping over the request's list.

    Repeated headers read as one value joined with ``", "``. A view, not a
    copy: each socket keeps its handshake, and memory per connection counts.
    """

    __slots__ = ("_pairs",)

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs = pairs

    def __getitem__(self, name: str) -> str:
        values = [v for k, v in self._pairs if k == name]
        if not values:
            raise KeyError(name)
        return ", ".join(values)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(k for k, _ in self._pairs))

    def __len__(self) -> int:
        return len({k for k, _ in self._pairs})

    def __repr__(self) -> str:
        return f"HeaderMap({dict(self)!r})"


def new_socket_id() -> str:
    """A random socket id (distinct from the Engine.IO session id, as in v5)."""
    return ids.token_urlsafe(15)


def new_private_id() -> str:
    """A random private session id (``pid``), for connection state recovery."""
    return ids.token_urlsafe(15)


@final
class Socket(CatchAllRegistry):
    """One client's connection to one namespace (``socket`` in handlers).

    Created by triosio when a client connects; you get it in ``connection``
    handlers. Its methods talk to the router, which owns rooms and delivery.

    Attributes:
        id: The socket id (random; one per namespace connection).
        nsp: The :class:`Namespace`.
        handshake: What the client sent when it connected.
        data: A dict for the application's own per-socket data.
        recovered: Whether this socket got back the session of one that lost
            its connection (connection state recovery): its id, rooms and
            ``data``, and the packets it missed. Set before the middlewares run.
    """

    # Slots: an application's own per-socket data goes in ``data``.
    # ``state`` and ``reason`` change only in lifecycle.py; ``_tasks``,
    # ``_ready`` and ``_finished`` are the lifecycle's and the dispatcher's;
    # ``pid`` and ``_mark`` are connection state recovery's (the mark: the
    # log position from which everything for it was sent to it, set by the
    # router as it registers the socket).
    __slots__ = (
        "_early_rooms",
        "_finished",
        "_mark",
        "_middlewares",
        "_rate_limits",
        "_ready",
        "_tasks",
        "acks",
        "client",
        "data",
        "handshake",
        "id",
        "nsp",
        "pid",
        "reason",
        "recovered",
        "session",
        "state",
    )

    def __init__(
        self,
        nsp: Namespace,
        client: Client,
        handshake: Handshake,
        restored: Restored | None = None,
    ) -> None:
        super().__init__()
        self.nsp = nsp
        self.client = client
        self.session: EngineSession = client.session
        self.handshake = handshake
        self._mark = 0
        # Rooms joined before registration (in a middleware): the connecting
        # task's, until the router takes them with the socket (register).
        self._early_rooms: tuple[str, ...] = ()
        if restored is not None:
            self.id = restored.sid
            self.pid: str | None = restored.pid
            self.data: dict[str, Any] = restored.data
            self.recovered = True
        else:
            self.id = new_socket_id()
            self.pid = new_private_id() if nsp.server.router.recovery is not None else None
            self.data = {}
            self.recovered = False
        #: The acknowledgements the client owes (their one owner).
        self.acks = PendingAcks(self.id)
        self.state = SocketState.CONNECTING
        self.reason: DisconnectReason | None = None
        self._middlewares: tuple[Handler, ...] = ()  # copy on write (see _any)
        # Per-event token buckets (``on(..., rate_limit=...)``); empty: no check.
        self._rate_limits: dict[str, TokenBucket] = {}
        # Cancel scopes of this socket's handlers and tasks, with the task of each.
        self._tasks: dict[trio.CancelScope, trio.lowlevel.Task] = {}
        # Set once the connection handlers have run: events wait for it.
        self._ready = LazyEvent()
        # Set once the disconnect handlers have run.
        self._finished: LazyEvent | None = None  # made on demand (sync.waitable)

    def __repr__(self) -> str:
        return f"<Socket {self.id} nsp={self.nsp.name} {self.state.value}>"

    @overload
    def on(self, event: str, *, rate_limit: RateLimit | None = None) -> Callable[[H], H]: ...

    @overload
    def on(self, event: str, handler: H, *, rate_limit: RateLimit | None = None) -> H: ...

    def on(
        self, event: str, handler: Handler | None = None, *, rate_limit: RateLimit | None = None
    ) -> Any:
        """Add a handler for ``event``; usable as a decorator (``@socket.on("news")``).

        The handler may be a plain function or ``async def``; it is called with
        the event's arguments, and its return value is the acknowledgement when
        the client asked for one. ``rate_limit`` (a :class:`triosio.RateLimit`)
        bounds how often this socket may send ``event``: past it the event is
        dropped (with an error acknowledgement) or the socket disconnected,
        as the limit's policy says. With ``Server(validation=True)``, the
        handler's type hints validate and convert the event's arguments (see
        the server guide).
        """
        if rate_limit is not None:
            if not isinstance(rate_limit, RateLimit):
                raise TypeError("rate_limit must be a triosio.RateLimit")
            self._rate_limits[event] = TokenBucket(rate_limit, trio.current_time())
        if not self.nsp.server.validation:
            return super().on(event) if handler is None else super().on(event, handler)

        def register(fn: H) -> H:
            super(Socket, self).on(event, validated(event, fn))
            return fn

        return register if handler is None else register(handler)

    # ------------------------------------------------------------ state

    @property
    def connected(self) -> bool:
        """Whether the socket is connected."""
        return self.state is SocketState.CONNECTED

    @property
    def disconnected(self) -> bool:
        """Whether the socket is disconnecting or disconnected."""
        return self.state in (SocketState.DISCONNECTING, SocketState.DISCONNECTED)

    @property
    def rooms(self) -> frozenset[str]:
        """The rooms this socket is in, its own id included (a snapshot)."""
        if self.state is SocketState.CONNECTING:
            return frozenset((self.id, *self._early_rooms))
        return self.nsp.server.router.rooms_of(self.nsp.name, self.id)

    @property
    def conn(self) -> EngineSession:
        """The underlying Engine.IO session (transport, close...)."""
        return self.session

    def _check_open(self) -> None:
        if self.state is not SocketState.CONNECTED:
            raise Disconnected(
                self.reason or DisconnectReason.SERVER_NAMESPACE_DISCONNECT,
                f"socket {self.id} is not connected",
            )

    # ------------------------------------------------------------ emitting

    async def emit(self, event: str, *args: Any) -> None:
        """Send ``event`` with ``args`` to this client.

        ``bytes`` anywhere in ``args`` travel as binary. Waits only when this
        client's outbound queue is full (backpressure), never for other clients.

        Raises:
            Disconnected: the socket is not connected.
            LocalProtocolError: ``event`` is reserved or ``args`` cannot be encoded.
        """
        await self._emit(event, args, None, volatile=False)

    async def send(self, *args: Any) -> None:
        """Emit a ``message`` event (``socket.send`` of the reference API)."""
        await self._emit("message", args, None, volatile=False)

    async def _emit(
        self,
        event: str,
        args: tuple[Any, ...],
        ack_id: int | None,
        *,
        volatile: bool,
        compress: bool = True,
    ) -> None:
        check_event_name(event)
        self._check_open()
        recovery = self.nsp.server.router.recovery
        # Connection state recovery keeps what is neither volatile nor waiting
        # for an ack; the router writes its offset over the placeholder.
        logged = recovery is not None and ack_id is None and not volatile
        if logged:
            assert recovery is not None
            packets = self.nsp.encode(
                SioType.EVENT, [event, *args, recovery.placeholder], None, compress
            )
        else:
            packets = self.nsp.encode(SioType.EVENT, [event, *args], ack_id, compress)
        if self._any_outgoing:
            for listener in list(self._any_outgoing):
                try:
                    await call_handler(listener, event, *args)
                except Exception:
                    log.exception("error in on_any_outgoing listener of socket %s", self.id)
        server = self.nsp.server
        hooks = server.hooks
        if not volatile and not self.session.has_space():
            await wait_for_space(self.session, hooks)
        store = recovery.store if logged and recovery is not None else None
        if store is not None:
            # Recovery with a shared store: through the cluster's log, as a
            # broadcast to its own room (as Node does), for its offset.
            await server.cluster.publish_logged(
                self.nsp, store, [event, *args], packets, frozenset((self.id,)), frozenset()
            )
        else:
            await server.router.emit(self, packets, volatile, logged)
        if hooks is not None:
            hooks.event_sent(self, event, args, packets)

    async def emit_with_ack(self, event: str, *args: Any, timeout: float | None = None) -> Any:
        """Send ``event`` and wait for the client's acknowledgement.

        Returns:
            The ack: ``None`` for no argument, the argument, or a tuple of them.

        Raises:
            AckTimeout: no ack within ``timeout`` seconds.
            Disconnected: the socket disconnected first.
        """
        return await self._emit_with_ack(event, args, timeout, True)

    async def _emit_with_ack(
        self, event: str, args: tuple[Any, ...], timeout: float | None, compress: bool
    ) -> Any:
        ack_id = self.nsp.next_ack_id()
        result: list[Any] = []
        done = trio.Event()

        def receive(_sid: str, value: Any) -> None:
            result.append(value)
            done.set()

        hooks = self.nsp.server.hooks
        started = hooks.ack_started(self.nsp.name, event, self) if hooks is not None else None
        outcome = AckOutcome.CANCELLED
        self.acks.expect(ack_id, receive)
        try:
            try:
                await self._emit(event, args, ack_id, volatile=False, compress=compress)
            except Disconnected:
                outcome = AckOutcome.DISCONNECTED
                raise
            with trio.move_on_after(timeout if timeout is not None else float("inf")):
                await done.wait()
            if not result:
                outcome = AckOutcome.TIMEOUT
                raise AckTimeout(f"no acknowledgement of {event!r} within {timeout} s")
            if result[0] is GONE:
                outcome = AckOutcome.DISCONNECTED
                raise Disconnected(self.reason or DisconnectReason.TRANSPORT_CLOSE)
            outcome = AckOutcome.ACKED
            return result[0]
        finally:
            self.acks.forget(ack_id, receive)
            if hooks is not None:
                hooks.ack_ended(started, outcome)

    def timeout(self, seconds: float) -> _SocketTimeout:
        """``await socket.timeout(5).emit_with_ack(...)``, as in the reference API."""
        return _SocketTimeout(self, seconds)

    @property
    def volatile(self) -> _SocketVolatile:
        """``await socket.volatile.emit(...)``: dropped if the client cannot take it now."""
        return _SocketVolatile(self)

    def compress(self, compress: bool) -> Socket | _SocketUncompressed:
        """``await socket.compress(False).emit(...)``: never compress this packet.

        Packets are compressed by default where the transport negotiated it
        (permessage-deflate, or a polling response at or above its threshold);
        ``compress(True)`` is the socket itself.
        """
        return self if compress else _SocketUncompressed(self)

    # ------------------------------------------------------------ broadcasting

    @property
    def broadcast(self) -> BroadcastOperator:
        """Every socket of the namespace but this one."""
        return self.nsp._operator().except_(self.id)

    def to(self, *rooms: str | Iterable[str]) -> BroadcastOperator:
        """Sockets in ``rooms``, but not this one (as ``socket.to`` in the reference)."""
        return self.nsp._operator().to(*rooms).except_(self.id)

    in_ = to

    def except_(self, *rooms: str | Iterable[str]) -> BroadcastOperator:
        """Every socket but this one and those in ``rooms``."""
        return self.nsp._operator().except_(self.id).except_(*rooms)

    # ------------------------------------------------------------ rooms

    async def join(self, *rooms: str | Iterable[str]) -> None:
        """Join one or more rooms (``join("a")``, ``join("a", "b")``, ``join(["a"])``)."""
        await self._rooms(_flatten(rooms), join=True)

    async def leave(self, *rooms: str | Iterable[str]) -> None:
        """Leave one or more rooms."""
        await self._rooms(_flatten(rooms), join=False)

    async def _rooms(self, rooms: list[str], *, join: bool) -> None:
        if self.state is SocketState.CONNECTING:
            # In a middleware, as in the reference: the socket is in these
            # rooms from its registration on, before its CONNECT reply goes out.
            await trio.lowlevel.checkpoint()
            if self.state is SocketState.CONNECTING:
                early = dict.fromkeys(self._early_rooms)
                for room in rooms:
                    if join:
                        early[room] = None
                    else:
                        early.pop(room, None)
                self._early_rooms = tuple(early)
                return
        router = self.nsp.server.router
        if join:
            await router.join(self, rooms)
        else:
            await router.leave(self, rooms)

    # ------------------------------------------------------------ middleware

    def use(self, middleware: H) -> H:
        """Run ``middleware(event, args)`` on every incoming event first.

        ``args`` is a list the middleware may change. Raising drops the event and
        reports the exception to this socket's ``error`` handlers (or the log).
        """
        self._middlewares = (*self._middlewares, middleware)
        return middleware

    # ------------------------------------------------------------ tasks

    def start_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Start a task that is cancelled when this socket disconnects."""
        self.session.nursery.start_soon(self._run_task, fn, args)

    async def _run_task(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        with trio.CancelScope() as scope:
            self._tasks[scope] = trio.lowlevel.current_task()
            try:
                if self.state is SocketState.CONNECTED:
                    await fn(*args)
            except Exception:
                log.exception("error in a task of socket %s", self.id)
            finally:
                del self._tasks[scope]

    # ------------------------------------------------------------ disconnecting

    async def disconnect(self, close: bool = False) -> None:
        """Disconnect this socket from its namespace; return once it is done.

        The client gets a DISCONNECT packet (``socket.io-client`` reports
        "io server disconnect" and does not reconnect) after everything emitted
        to it before; here the reason is
        :attr:`~triosio.DisconnectReason.SERVER_NAMESPACE_DISCONNECT`. In-flight
        handlers of this socket are cancelled, except the one calling this
        method; ``disconnecting`` and ``disconnect`` handlers run.

        With ``close=True``, every namespace of this client is disconnected that
        way, then the underlying connection is closed; a task of this client
        that calls it (a handler) is cancelled at its next checkpoint, like
        every task of the connection.
        """
        if self.state is not SocketState.CONNECTED:
            await trio.lowlevel.checkpoint()
            return
        router = self.nsp.server.router
        caller = trio.lowlevel.current_task()
        if close:
            await router.close_client(self.client, caller)
        else:
            # The DISCONNECT packet after everything emitted before it; then
            # (nothing can cancel in between) the close sequence starts.
            await router.emit(self, self.nsp.encode(SioType.DISCONNECT, None, None), False)
            self.client.closer.request(self, DisconnectReason.SERVER_NAMESPACE_DISCONNECT, caller)
        finished = self._finished = waitable(self._finished)
        await finished.wait()

    async def wait_disconnected(self) -> DisconnectReason:
        """Wait until this socket is disconnected; return why."""
        finished = self._finished = waitable(self._finished)
        await finished.wait()
        assert self.reason is not None
        return self.reason


def _flatten(rooms: tuple[str | Iterable[str], ...]) -> list[str]:
    out: list[str] = []
    for room in rooms:
        if isinstance(room, str):
            out.append(room)
        else:
            out.extend(room)
    return out


class _SocketTimeout:
    __slots__ = ("_seconds", "_socket")

    def __init__(self, socket: Socket, seconds: float) -> None:
        self._socket = socket
        self._seconds = seconds

    async def emit_with_ack(self, event: str, *args: Any) -> Any:
        return await self._socket.emit_with_ack(event, *args, timeout=self._seconds)


class _SocketVolatile:
    __slots__ = ("_socket",)

    def __init__(self, socket: Socket) -> None:
        self._socket = socket

    async def emit(self, event: str, *args: Any) -> None:
        await self._socket._emit(event, args, None, volatile=True)


class _SocketUncompressed:
    __slots__ = ("_socket",)

    def __init__(self, socket: Socket) -> None:
        self._socket = socket

    async def emit(self, event: str, *args: Any) -> None:
        await self._socket._emit(event, args, None, volatile=False, compress=False)

    async def send(self, *args: Any) -> None:
        await self._socket._emit("message", args, None, volatile=False, compress=False)

    async def emit_with_ack(self, event: str, *args: Any, timeout: float | None = None) -> Any:
        return await self._socket._emit_with_ack(event, args, timeout, False)
