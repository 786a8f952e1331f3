"""The Socket.IO server: namespaces, the router, and the Engine.IO server under them."""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, final, overload

import trio

from .._common.handlers import Handler
from .._engine.exchange import Exchange
from .._engine.packet import OutPacket
from .._engine.server import EngineServer
from .._proto.eio import EioType
from .._proto.sio import Limits, Parser, SioPacket, SioType, get_parser
from .broadcast import BroadcastOperator
from .cluster import Adapter, Cluster
from .dispatch import EngineBridge
from .hooks import Hooks, combine
from .namespace import Namespace, ParentNamespace
from .ratelimit import RateLimit
from .recovery import ConnectionStateRecovery, RecoveryState
from .registry import NamespaceMatcher, NamespaceRegistry
from .remote import RemoteSocket
from .router import Router
from .validation import require_engine

if TYPE_CHECKING:
    from .socket import Socket

log = logging.getLogger("triosio.server")

H = TypeVar("H", bound=Handler)
T = TypeVar("T")


@final
class Server:
    """A Socket.IO server (protocol v5 over Engine.IO v4).

    Run it with ``await triosio.serve(sio, host, port)`` (or mount it in an
    :class:`triosio.App` / the ASGI adapter). The server object is itself the
    main namespace ``"/"`` for handlers and broadcasts (``sio.on``, ``sio.emit``,
    ``sio.to(room)``...); other namespaces come from :meth:`of`.

    Args:
        path: URL path of the Socket.IO endpoint.
        parser: ``"json"`` (default), ``"msgpack"`` (needs ``triosio[msgpack]``)
            or a parser object.
        connect_timeout: Seconds a client has to connect a namespace after the
            Engine.IO handshake before it is closed.
        async_handlers: Run each event's handlers in a task of its own instead of
            one client's events in order (see the server guide).
        max_pending_events: Events of one client waiting for its handlers before
            triosio stops reading from that client.
        ack_timeout: Default timeout of broadcast ``emit_with_ack``.
        max_attachments: Most binary attachments in one packet.
        max_depth: Deepest JSON nesting accepted from clients.
        max_int_digits: Most digits of a JSON integer accepted from clients.
        router_capacity: Router inbox size before emitting tasks wait.
        adapter: A cluster adapter (``triosio.redis.RedisAdapter``), or None for
            one process; see ``docs/scaling.md``.
        connection_state_recovery: Turns connection state recovery on: a client
            that loses its connection briefly gets back its socket id, rooms,
            ``data`` and every packet it missed (:class:`triosio.ConnectionStateRecovery`;
            off when None). Within this process only, whatever the adapter.
        rate_limit: A :class:`triosio.RateLimit` on every event each client
            sends (all its namespaces together); None: no limit. Per event:
            ``socket.on(event, handler, rate_limit=...)``.
        validation: Validate and convert event arguments by the handlers'
            type hints (pydantic 2, ``pip install 'triosio[validation]'``); an
            event that does not fit gets an error acknowledgement and never
            reaches the handler. Off: hints are not looked at.
        **engine_options: Engine.IO options: ``ping_interval``, ``ping_timeout``,
            ``max_http_buffer_size``, ``cors_allowed_origins``, ``transports``...
            (see :class:`triosio.EngineServer`).
    """

    def __init__(
        self,
        *,
        path: str = "/socket.io/",
        parser: str | Parser = "json",
        connect_timeout: float = 45.0,
        async_handlers: bool = False,
        max_pending_events: int = 64,
        ack_timeout: float | None = None,
        max_attachments: int = 10,
        max_depth: int = 32,
        max_int_digits: int = 100,
        router_capacity: int = 4096,
        adapter: Adapter | None = None,
        connection_state_recovery: ConnectionStateRecovery | None = None,
        rate_limit: RateLimit | None = None,
        validation: bool = False,
        **engine_options: Any,
    ) -> None:
        self.engine = EngineServer(EngineBridge(self), path=path, **engine_options)
        self.parser = get_parser(parser)
        self.encoder = self.parser.encoder()
        self.limits = Limits(
            max_attachments=max_attachments,
            max_attachment_bytes=self.engine.options.max_http_buffer_size * max_attachments,
            max_depth=max_depth,
            max_int_digits=max_int_digits,
            max_payload=self.engine.options.max_http_buffer_size,
        )
        self.connect_timeout = connect_timeout
        if rate_limit is not None and not isinstance(rate_limit, RateLimit):
            raise TypeError("rate_limit must be a triosio.RateLimit")
        #: The limit on each client's incoming events (None: none).
        self.rate_limit = rate_limit
        if validation:
            require_engine()
        #: Whether handlers' type hints validate event arguments.
        self.validation = validation
        self.async_handlers = async_handlers
        self.max_pending_events = max_pending_events
        self.ack_timeout = ack_timeout
        #: The connection state recovery options (None: off).
        self.connection_state_recovery = connection_state_recovery
        recovery = None
        if connection_state_recovery is not None:
            recovery = RecoveryState(connection_state_recovery)
            recovery.check_parser(lambda data: self.encode_for("/", SioType.EVENT, data))
        self.router = Router(
            router_capacity,
            spawn=self._spawn,
            write_batch=self.engine.write_batch,
            recovery=recovery,
        )
        self.adapter = adapter
        if recovery is not None and adapter is not None:
            # An adapter that shares sessions and the packet log across the
            # cluster (the Redis Streams adapter): recovery goes through it.
            recovery.store = getattr(adapter, "session_store", None)
        #: The server's side of scale-out (hooks into the adapter, if any).
        self.cluster = Cluster(self, adapter)
        #: What the instruments hear (``triosio.admin``, ``.metrics``, ``.tracing``);
        #: None, the default, costs nothing (see ``_server/hooks.py``).
        self.hooks: Hooks | None = None
        #: The namespaces (their one owner).
        self.registry = NamespaceRegistry(self, self._namespace_created)
        # Server-side event handlers, by (namespace, event) (see on_server_side).
        self._server_side: dict[tuple[str, str], list[Handler]] = {}
        self._nursery: trio.Nursery | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._main = self.of("/")

    def __repr__(self) -> str:
        return f"<triosio.Server {self.path}>"

    # ------------------------------------------------------------ running

    @property
    def path(self) -> str:
        """The URL path of the endpoint (``/socket.io/`` by default)."""
        return self.engine.path

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the router and the sessions until cancelled (``serve`` does this)."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self._token = trio.lowlevel.current_trio_token()
            await nursery.start(self.router.run)
            if self.hooks is not None:
                await nursery.start(self.hooks.run)
            if self.adapter is not None:
                await nursery.start(self.cluster.run)
            await nursery.start(self.engine.run)
            task_status.started()

    async def handle(self, exchange: Exchange) -> None:
        """Answer one HTTP request under :attr:`path`."""
        await self.engine.handle(exchange)

    async def shutdown(self) -> None:
        """Disconnect every client (reason "server shutting down") and wait for them."""
        await self.engine.shutdown()

    def _add_hooks(self, hooks: Hooks) -> None:
        # For triosio's instruments: from now on ``hooks`` hears what the
        # server does, with those added before; its tasks start now if the
        # server runs, else with it.
        self.hooks = self.router.hooks = combine(self.hooks, hooks)
        if self._nursery is not None:
            self._nursery.start_soon(_logged, hooks.run, ())

    def _namespace_created(self, name: str) -> None:
        self.cluster.namespace_created(name)
        if self.hooks is not None:
            nsp = self.registry.get(name)
            if nsp is not None:
                self.hooks.namespace_created(nsp)

    def _spawn(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        if self._nursery is not None:
            self._nursery.start_soon(_logged, fn, args)

    @property
    def trio_token(self) -> trio.lowlevel.TrioToken:
        """The Trio token of the thread the server runs in (for other threads)."""
        if self._token is None:
            raise RuntimeError("the server is not running")
        return self._token

    def run_from_thread(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """From another thread: run ``await fn(*args, **kwargs)`` in the server's Trio thread.

        For example ``sio.run_from_thread(sio.emit, "news", item)`` or
        ``sio.run_from_thread(sio.to("room").emit, "news", item)``. Blocks the
        calling thread until it is done and returns its result (or raises its
        exception). Calls from one thread run in the order they are made. Not
        for the server's own thread (Trio raises ``RuntimeError`` there).

        Raises:
            RuntimeError: the server is not running.
        """
        call = functools.partial(fn, *args, **kwargs)
        return trio.from_thread.run(call, trio_token=self.trio_token)

    # ------------------------------------------------------------ namespaces

    @overload
    def of(self, name: str) -> Namespace: ...

    @overload
    def of(self, name: NamespaceMatcher) -> ParentNamespace: ...

    def of(self, name: str | NamespaceMatcher) -> Namespace | ParentNamespace:
        """The namespace ``name``, created if needed; or a dynamic namespace.

        ``name`` may be a string (``"/chat"``), a compiled regex, or a predicate
        ``fn(name, auth) -> bool`` (plain or async): clients may then connect to
        any namespace it accepts (see :class:`ParentNamespace`).
        """
        if isinstance(name, str):
            return self.registry.of(name)
        if isinstance(name, re.Pattern) or callable(name):
            return self.registry.dynamic(name)
        raise TypeError("of() takes a name, a compiled regex or a predicate")

    @property
    def namespaces(self) -> Mapping[str, Namespace]:
        """Every namespace created so far, by name (dynamic children included)."""
        return self.registry.snapshot()

    def encode_for(
        self, name: str, ptype: SioType, data: Any, ack_id: int | None = None
    ) -> list[OutPacket]:
        """Encode a packet for namespace ``name`` (which may not exist)."""
        frames = self.encoder.encode(SioPacket(ptype, name, data, ack_id))
        return [OutPacket(EioType.MESSAGE, frame) for frame in frames]

    # ------------------------------------------------------------ main namespace

    @property
    def sockets(self) -> Namespace:
        """The main namespace (``io.sockets`` in the reference API)."""
        return self._main

    def on(self, event: str, handler: H | None = None) -> Any:
        """``on`` of the main namespace (``"connection"``, events...)."""
        return self._main.on(event, handler)

    def use(self, middleware: H) -> H:
        """A connection middleware for the main namespace."""
        self._main.use(middleware)
        return middleware

    def to(self, *rooms: str | Iterable[str]) -> BroadcastOperator:
        """Target the sockets of the main namespace in ``rooms``."""
        return self._main.to(*rooms)

    in_ = to

    def except_(self, *rooms: str | Iterable[str]) -> BroadcastOperator:
        """Every socket of the main namespace but those in ``rooms``."""
        return self._main.except_(*rooms)

    @property
    def volatile(self) -> BroadcastOperator:
        """Volatile broadcast on the main namespace."""
        return self._main.volatile

    @property
    def local(self) -> BroadcastOperator:
        """Broadcast to this server's clients only."""
        return self._main.local

    def compress(self, compress: bool) -> BroadcastOperator:
        """``compress(False)``: never compress these packets."""
        return self._main.compress(compress)

    def timeout(self, seconds: float) -> BroadcastOperator:
        """Acknowledgement timeout for a broadcast ``emit_with_ack``."""
        return self._main.timeout(seconds)

    async def emit(self, event: str, *args: Any) -> None:
        """Send ``event`` to every socket of the main namespace."""
        await self._main.emit(event, *args)

    async def emit_with_ack(
        self, event: str, *args: Any, timeout: float | None = None
    ) -> list[Any]:
        """Broadcast ``event`` on the main namespace and collect acknowledgements."""
        return await self._main.emit_with_ack(event, *args, timeout=timeout)

    async def send(self, *args: Any) -> None:
        """Emit a ``message`` event on the main namespace."""
        await self._main.send(*args)

    async def fetch_sockets(self) -> list[Socket | RemoteSocket]:
        """Every socket of the main namespace (other servers' too, with an adapter)."""
        return await self._main.fetch_sockets()

    async def sockets_join(self, *rooms: str | Iterable[str]) -> None:
        """Make every socket of the main namespace join ``rooms``."""
        await self._main.sockets_join(*rooms)

    async def sockets_leave(self, *rooms: str | Iterable[str]) -> None:
        """Make every socket of the main namespace leave ``rooms``."""
        await self._main.sockets_leave(*rooms)

    async def disconnect_sockets(self, close: bool = False) -> None:
        """Disconnect every socket of the main namespace."""
        await self._main.disconnect_sockets(close)

    async def server_side_emit(self, event: str, *args: Any) -> None:
        """Emit ``event`` to the other servers of the cluster (no-op alone)."""
        await self.cluster.server_side_emit("/", event, args)

    async def server_side_emit_with_ack(
        self, event: str, *args: Any, timeout: float | None = None
    ) -> list[Any]:
        """Emit to the other servers and collect their acknowledgements."""
        return await self.cluster.server_side_emit_with_ack("/", event, args, timeout)

    # ------------------------------------------------------------ cluster
    # Everything that crosses processes goes through the adapter (DESIGN rule 9);
    # without one, these are no-ops or answer for this server alone.

    def on_server_side(self, event: str, handler: H | None = None) -> Any:
        """Handle ``event`` sent by *other servers* with ``server_side_emit``.

        Main namespace; see :meth:`Namespace.on_server_side`. Usable as a decorator.
        """
        return self.on_server_side_of("/", event, handler)

    def on_server_side_of(self, nsp: str, event: str, handler: H | None = None) -> Any:
        """Register a server-side event handler for namespace ``nsp``.

        ``handler(*args)`` (plain or ``async def``) runs once per server-side
        event from another server of the cluster (never for this server's own).
        When the sender asked for acknowledgements, the first handler's return
        value is this server's answer (one value per server; of a tuple, the
        first item). Handlers of one event run one after the other, in a task of
        the adapter; an exception is logged.
        """

        def register(fn: H) -> H:
            if not callable(fn):
                raise TypeError("handlers must be callable")
            self._server_side.setdefault((nsp, event), []).append(fn)
            return fn

        return register if handler is None else register(handler)

    def server_side_handlers(self, nsp: str, event: str) -> list[Handler]:
        """The server-side handlers of ``event`` in namespace ``nsp`` (for adapters)."""
        return list(self._server_side.get((nsp, event), ()))


async def _logged(fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...]) -> None:
    try:
        await fn(*args)
    except Exception:
        log.exception("error in background task %r", fn)
