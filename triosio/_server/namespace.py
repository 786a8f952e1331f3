"""Namespaces: where handlers and middlewares are registered.

A :class:`Namespace` holds configuration only (handlers, middlewares, adapter
listeners); its sockets and rooms live in the router. Broadcast methods return
or use a :class:`BroadcastOperator`.

Dynamic namespaces (``sio.of(re.compile(...))`` or ``sio.of(predicate)``) are
:class:`ParentNamespace` objects: when a client connects to a name they accept,
a child :class:`Namespace` is created; it runs the parent's middlewares and
handlers as well as its own, and a broadcast on the parent reaches every child.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, final

from .._common.handlers import Handler, call_handler
from .._engine.packet import OutPacket
from .._proto.eio import EioType
from .._proto.sio import JSONEncoder, SioPacket, SioType
from .broadcast import BroadcastOperator
from .rooms import ADAPTER_EVENTS, AdapterListener
from .validation import validated

if TYPE_CHECKING:
    from .remote import RemoteSocket
    from .server import Server
    from .socket import Socket

H = TypeVar("H", bound=Handler)

_CONNECTION_EVENTS = frozenset({"connection", "connect"})
_DISCONNECT_EVENTS = frozenset({"disconnect", "disconnecting"})


class _NamespaceBase:
    """What plain and dynamic (parent) namespaces share: handlers and middlewares."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self._connection_handlers: list[Handler] = []
        self._disconnect_handlers: dict[str, list[Handler]] = {}
        self._event_handlers: dict[str, list[Handler]] = {}
        self._middlewares: list[Handler] = []

    def on(self, event: str, handler: H | None = None) -> Any:
        """Register a handler; usable as a decorator.

        - ``"connection"`` (or ``"connect"``): ``handler(socket, auth)`` (or
          ``handler(socket)``) for each socket that connects.
        - ``"disconnecting"`` / ``"disconnect"``: ``handler(socket, reason)``.
        - any other event: ``handler(socket, *args)`` for that event from any
          socket of the namespace (python-socketio style); its return value is
          the acknowledgement. Per-socket handlers (``socket.on``) run first.
          With ``Server(validation=True)`` its type hints (after the socket)
          validate and convert the arguments.
        """

        def register(fn: H) -> H:
            if event in _CONNECTION_EVENTS:
                self._connection_handlers.append(fn)
            elif event in _DISCONNECT_EVENTS:
                self._disconnect_handlers.setdefault(event, []).append(fn)
            else:
                # With validation on, hinted arguments after the socket are checked.
                wrapped = validated(event, fn, skip=1) if self.server.validation else fn
                self._event_handlers.setdefault(event, []).append(wrapped)
            return fn

        if handler is None:
            return register
        return register(handler)

    def use(self, middleware: H) -> H:
        """Run ``middleware(socket)`` before a socket joins this namespace.

        Raise :class:`triosio.ConnectionRefused` in it to refuse the client,
        who gets a CONNECT_ERROR with the message and data. Usable as a decorator.
        """
        self._middlewares.append(middleware)
        return middleware


class _Broadcasting:
    """Broadcast shortcuts, for plain namespaces and dynamic (parent) ones alike.

    On a :class:`ParentNamespace` they reach every child namespace that exists
    when they are called.
    """

    def _operator(self) -> BroadcastOperator:
        raise NotImplementedError

    def to(self, *rooms: str | Iterable[str]) -> BroadcastOperator:
        """Target the sockets in ``rooms`` (a socket in several gets one copy)."""
        return self._operator().to(*rooms)

    in_ = to

    def except_(self, *rooms: str | Iterable[str]) -> BroadcastOperator:
        """Target every socket but those in ``rooms``."""
        return self._operator().except_(*rooms)

    @property
    def volatile(self) -> BroadcastOperator:
        """Emit without guarantee: dropped for clients that cannot take it now."""
        return self._operator().volatile

    @property
    def local(self) -> BroadcastOperator:
        """Only this server's clients."""
        return self._operator().local

    def compress(self, compress: bool) -> BroadcastOperator:
        """``compress(False)``: never compress these packets."""
        return self._operator().compress(compress)

    def timeout(self, seconds: float) -> BroadcastOperator:
        """Acknowledgement timeout for ``emit_with_ack``."""
        return self._operator().timeout(seconds)

    async def emit(self, event: str, *args: Any) -> None:
        """Send ``event`` to every socket."""
        await self._operator().emit(event, *args)

    async def emit_with_ack(
        self, event: str, *args: Any, timeout: float | None = None
    ) -> list[Any]:
        """Send ``event`` to every socket and collect their acknowledgements.

        See :meth:`BroadcastOperator.emit_with_ack`.
        """
        return await self._operator().emit_with_ack(event, *args, timeout=timeout)

    async def send(self, *args: Any) -> None:
        """Emit a ``message`` event."""
        await self.emit("message", *args)

    async def fetch_sockets(self) -> list[Socket | RemoteSocket]:
        """Every socket (a snapshot; other servers' too, with a cluster adapter)."""
        return await self._operator().fetch_sockets()

    async def sockets_join(self, *rooms: str | Iterable[str]) -> None:
        """Make every socket join ``rooms``."""
        await self._operator().sockets_join(*rooms)

    async def sockets_leave(self, *rooms: str | Iterable[str]) -> None:
        """Make every socket leave ``rooms``."""
        await self._operator().sockets_leave(*rooms)

    async def disconnect_sockets(self, close: bool = False) -> None:
        """Disconnect every socket (``close=True``: their whole connection)."""
        await self._operator().disconnect_sockets(close)


@final
class Namespace(_NamespaceBase, _Broadcasting):
    """A Socket.IO namespace (``sio.of("/chat")``; ``sio`` itself is ``"/"``).

    Attributes:
        name: The namespace name, e.g. ``"/chat"``.
        server: The :class:`triosio.Server`.
        parent: The dynamic namespace that created it, if any.
    """

    def __init__(self, server: Server, name: str, parent: ParentNamespace | None = None) -> None:
        super().__init__(server)
        self.name = name
        self.parent = parent
        self._ack_ids = itertools.count()
        self._adapter_listeners: dict[str, list[AdapterListener]] = {}

    def __repr__(self) -> str:
        return f"<Namespace {self.name}>"

    # ------------------------------------------------------------ internals

    def next_ack_id(self) -> int:
        """A fresh acknowledgement id, unique within this namespace."""
        return next(self._ack_ids)

    def encode(
        self, ptype: SioType, data: Any, ack_id: int | None, compress: bool = True
    ) -> list[OutPacket]:
        """Encode a packet of this namespace as Engine.IO MESSAGE packets, once.

        ``compress=False``: an emit's ``compress(False)``, kept by the packets.
        """
        frames = self.server.encoder.encode(SioPacket(ptype, self.name, data, ack_id))
        return [OutPacket(EioType.MESSAGE, frame, compress) for frame in frames]

    def encode_ack(self, args: list[Any], ack_id: int) -> list[OutPacket]:
        """:meth:`encode` for an ACK answering ``ack_id`` (an id received, so valid).

        The default JSON encoder has a shorter path for it
        (:meth:`JSONEncoder.encode_ack`): a handler's acknowledgement is on the
        echo round trip's path.
        """
        encoder = self.server.encoder
        if type(encoder) is JSONEncoder:
            frames = encoder.encode_ack(self.name, args, ack_id)
        else:
            frames = encoder.encode(SioPacket(SioType.ACK, self.name, args, ack_id))
        return [OutPacket(EioType.MESSAGE, frame) for frame in frames]

    def _chain(self) -> list[_NamespaceBase]:
        return [self.parent, self] if self.parent is not None else [self]

    def middlewares(self) -> list[Handler]:
        """Connection middlewares: the parent's first, then this namespace's."""
        return [m for ns in self._chain() for m in ns._middlewares]

    # The parent's handlers come first, as in the reference, where a child
    # namespace starts with copies of its parent's listeners.

    def connection_handlers(self) -> list[Handler]:
        """``connection`` handlers: the parent's first, then this namespace's."""
        return [h for ns in self._chain() for h in ns._connection_handlers]

    def event_handlers(self, event: str) -> list[Handler]:
        """Namespace-level handlers of ``event``: the parent's first."""
        if self.parent is None:  # the usual case, looked up for every event
            own = self._event_handlers.get(event)
            return list(own) if own else []
        return [h for ns in self._chain() for h in ns._event_handlers.get(event, ())]

    def disconnect_handlers(self, event: str) -> list[Handler]:
        """Namespace-level ``disconnecting`` / ``disconnect`` handlers: the parent's first."""
        return [h for ns in self._chain() for h in ns._disconnect_handlers.get(event, ())]

    def _operator(self) -> BroadcastOperator:
        return BroadcastOperator((self,))

    # ------------------------------------------------------------ state

    @property
    def sockets(self) -> Mapping[str, Socket]:
        """The connected sockets, by id (a snapshot of the router's table)."""
        return self.server.router.sockets(self.name)

    @property
    def adapter(self) -> AdapterView:
        """Rooms and adapter events (``nsp.adapter.on("join-room", fn)``)."""
        return AdapterView(self)

    async def server_side_emit(self, event: str, *args: Any) -> None:
        """Emit to the other servers of the cluster (a no-op with one process)."""
        await self.server.cluster.server_side_emit(self.name, event, args)

    async def server_side_emit_with_ack(
        self, event: str, *args: Any, timeout: float | None = None
    ) -> list[Any]:
        """Emit to the other servers and collect their acknowledgements."""
        return await self.server.cluster.server_side_emit_with_ack(self.name, event, args, timeout)

    def on_server_side(self, event: str, handler: H | None = None) -> Any:
        """Handle ``event`` from other servers' ``server_side_emit`` (cluster only).

        ``handler(*args)``; with ``server_side_emit_with_ack`` the first
        handler's return value is this server's answer. Usable as a decorator;
        see :meth:`triosio.Server.on_server_side_of`.
        """
        return self.server.on_server_side_of(self.name, event, handler)


@final
class ParentNamespace(_NamespaceBase, _Broadcasting):
    """A dynamic namespace: a pattern or predicate that creates child namespaces.

    Attributes:
        matcher: The compiled regex or the predicate ``fn(name, auth) -> bool``.
    """

    def __init__(
        self,
        server: Server,
        matcher: re.Pattern[str] | Callable[[str, Mapping[str, Any]], Any],
    ) -> None:
        super().__init__(server)
        self.matcher = matcher
        # Filled by the namespace registry, its one owner.
        self._children: dict[str, Namespace] = {}
        self.name = f"<dynamic {getattr(matcher, 'pattern', matcher)!r}>"

    async def matches(self, name: str, auth: Mapping[str, Any]) -> bool:
        """Whether a client may create namespace ``name``."""
        if isinstance(self.matcher, re.Pattern):
            return self.matcher.fullmatch(name) is not None
        return bool(await call_handler(self.matcher, name, auth))

    @property
    def children(self) -> Mapping[str, Namespace]:
        """The child namespaces created so far, by name (a snapshot)."""
        return dict(self._children)

    def _operator(self) -> BroadcastOperator:
        return BroadcastOperator(tuple(self._children.values()))


class AdapterView:
    """A namespace's rooms (read-only) and its adapter events."""

    __slots__ = ("_nsp",)

    def __init__(self, nsp: Namespace) -> None:
        self._nsp = nsp

    def on(self, event: str, listener: AdapterListener | None = None) -> Any:
        """Listen to ``create-room``, ``delete-room``, ``join-room``, ``leave-room``.

        ``listener(room)`` for create/delete, ``listener(room, sid)`` for
        join/leave. Listeners run in the router task: keep plain functions quick;
        ``async def`` listeners are started as background tasks.
        """

        def register(fn: AdapterListener) -> AdapterListener:
            if event not in ADAPTER_EVENTS:
                raise ValueError(f"unknown adapter event {event!r}")
            self._nsp._adapter_listeners.setdefault(event, []).append(fn)
            return fn

        if listener is None:
            return register
        return register(listener)

    def off(self, event: str, listener: AdapterListener | None = None) -> None:
        """Remove a listener (or all listeners of ``event``)."""
        listeners = self._nsp._adapter_listeners
        if listener is None:
            listeners.pop(event, None)
        elif listener in listeners.get(event, []):
            listeners[event].remove(listener)

    async def all_rooms(self) -> set[str]:
        """Every room of the namespace on every server of the cluster (this one alone without)."""
        nsp = self._nsp
        return set(nsp.server.router.room_members(nsp.name)) | await nsp.server.cluster.all_rooms(
            nsp.name
        )

    async def server_count(self) -> int:
        """How many servers of the cluster serve this namespace (1 without an adapter)."""
        return await self._nsp.server.cluster.server_count(self._nsp.name)

    @property
    def rooms(self) -> Mapping[str, frozenset[str]]:
        """room → socket ids (a snapshot)."""
        return self._nsp.server.router.room_members(self._nsp.name)

    @property
    def sids(self) -> Mapping[str, frozenset[str]]:
        """socket id → rooms (a snapshot)."""
        return self._nsp.server.router.socket_rooms(self._nsp.name)
