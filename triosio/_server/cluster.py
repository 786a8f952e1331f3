"""Scale-out, seen from the server: the adapter interface and the two ways
between a server and its cluster adapter.

- :class:`Adapter`: what the server asks of an adapter (``Server(adapter=...)``,
  e.g. ``triosio.redis.RedisAdapter``).
- :class:`Cluster`: the server's side. The Socket.IO layer (broadcast
  operators, namespaces) calls its hooks; without an adapter they do nothing
  or answer for this server alone.
- :class:`SessionStore` (with :class:`SharedSession` and ``Deliver``): what an
  adapter that shares sessions and the packet log offers, as its
  ``session_store``, for connection state recovery across servers.
- :class:`ClusterPort`: all an adapter may ask of its server. It never touches
  the router's tables: a broadcast from another server goes to the router like
  a local one (encoded once, on arrival), and join, leave, fetch and
  disconnect requests run through the router's methods.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, final

import trio

from .._common.handlers import Handler
from .._errors import LocalProtocolError
from .._proto.sio import SioType
from .recovery import Deliver, SessionStore, SharedSession, stamp, stream_position
from .remote import ClusterAcks, ForwardedAck, RemoteSocket

if TYPE_CHECKING:
    from .._engine.packet import OutPacket
    from .namespace import Namespace
    from .server import Server
    from .socket import Socket


__all__ = [
    "Adapter",
    "Cluster",
    "ClusterPort",
    "Deliver",
    "SessionStore",
    "SharedSession",
]


class Adapter(Protocol):
    """What :class:`~triosio.Server` asks of a cluster adapter.

    ``Server(adapter=...)`` starts :meth:`run` before it accepts clients.
    Namespaces are named by their string; ``data`` is ``[event, *args]``.
    """

    async def run(
        self, port: ClusterPort, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Connect, subscribe, and serve the other servers' requests until cancelled.

        ``port`` is all the adapter may ask of its server.
        """

    def namespace_created(self, name: str) -> None:
        """A namespace appeared after :meth:`run` started (subscribe to it)."""

    async def publish_broadcast(
        self,
        nsp: str,
        data: list[Any],
        rooms: frozenset[str],
        exclude: frozenset[str],
        volatile: bool,
    ) -> None:
        """Pass a broadcast on to the other servers (waits only for queue room)."""

    def publish_rooms(
        self,
        nsp: str,
        rooms: frozenset[str],
        exclude: frozenset[str],
        change: frozenset[str],
        join: bool,
    ) -> None:
        """Make the other servers' selected sockets join or leave ``change``."""

    def publish_disconnect(
        self, nsp: str, rooms: frozenset[str], exclude: frozenset[str], close: bool
    ) -> None:
        """Disconnect the other servers' selected sockets."""

    async def broadcast_with_ack(
        self,
        nsp: str,
        data: list[Any],
        rooms: frozenset[str],
        exclude: frozenset[str],
        volatile: bool,
        timeout: float,
    ) -> ClusterAcks:
        """Send a broadcast that wants acknowledgements; collect them in the result."""
        ...

    async def fetch_sockets(
        self, nsp: str, rooms: frozenset[str], exclude: frozenset[str]
    ) -> list[Mapping[str, Any]]:
        """The other servers' selected sockets, as ``{id, handshake, rooms, data}``."""
        ...

    async def all_rooms(self, nsp: str) -> set[str]:
        """The rooms of the other servers."""
        ...

    async def server_count(self, nsp: str) -> int:
        """How many servers serve namespace ``nsp``, this one included."""
        ...

    async def server_side_emit(self, nsp: str, data: list[Any]) -> None:
        """Send a server-side event to the other servers."""

    async def server_side_emit_with_ack(
        self, nsp: str, data: list[Any], timeout: float | None
    ) -> list[Any]:
        """Send a server-side event and return one answer per other server."""
        ...


@final
class Cluster:
    """The server's hooks into its cluster adapter (no-ops without one).

    Args:
        server: The server.
        adapter: Its adapter, or None for one process.
    """

    __slots__ = ("adapter", "port")

    def __init__(self, server: Server, adapter: Adapter | None) -> None:
        self.adapter = adapter
        self.port = ClusterPort(server)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the adapter (``Server.run`` starts this when there is one)."""
        assert self.adapter is not None
        await self.adapter.run(self.port, task_status=task_status)

    def namespace_created(self, name: str) -> None:
        """A namespace appeared: the adapter subscribes to it."""
        if self.adapter is not None:
            self.adapter.namespace_created(name)

    async def publish(
        self,
        nsp: str,
        event: str,
        args: tuple[Any, ...],
        rooms: frozenset[str],
        exclude: frozenset[str],
        volatile: bool,
    ) -> None:
        """Pass a broadcast on to the other servers.

        Waits only while the adapter's queue of messages to publish is full.
        """
        if self.adapter is not None:
            await self.adapter.publish_broadcast(nsp, [event, *args], rooms, exclude, volatile)

    async def publish_logged(
        self,
        nsp: Namespace,
        store: SessionStore,
        data: list[Any],
        packets: Sequence[OutPacket],
        rooms: frozenset[str],
        exclude: frozenset[str],
    ) -> None:
        """A recoverable packet, with a shared store: written to the cluster's
        log first; this server's clients get it once its offset is known.

        ``packets`` were encoded with the placeholder last (so it was checked
        it can be encoded); the store's task writes the offset over it (or
        encodes again) and hands the router the result: the router does no
        I/O and waits for none. Waits only for the store's queue room.
        """
        await store.publish_logged(
            nsp.name, data, rooms, exclude, _local_delivery(nsp, data, packets, rooms, exclude)
        )

    async def broadcast_with_ack(
        self,
        nsp: str,
        event: str,
        args: tuple[Any, ...],
        rooms: frozenset[str],
        exclude: frozenset[str],
        volatile: bool,
        timeout: float,
    ) -> ClusterAcks | None:
        """Send a broadcast with acknowledgements to the other servers; None alone.

        The caller waits on the result's ``done`` and calls its ``forget()``.
        """
        if self.adapter is None:
            return None
        return await self.adapter.broadcast_with_ack(
            nsp, [event, *args], rooms, exclude, volatile, timeout
        )

    async def fetch_sockets(
        self, nsp: Namespace, rooms: frozenset[str], exclude: frozenset[str]
    ) -> list[RemoteSocket]:
        """The other servers' sockets selected by ``rooms`` / ``exclude``."""
        if self.adapter is None:
            return []
        found = await self.adapter.fetch_sockets(nsp.name, rooms, exclude)
        sockets = [RemoteSocket.from_wire(nsp, raw) for raw in found]
        return [s for s in sockets if s is not None]

    async def all_rooms(self, nsp: str) -> set[str]:
        """The rooms of the other servers (none alone)."""
        if self.adapter is None:
            await trio.lowlevel.checkpoint()
            return set()
        return await self.adapter.all_rooms(nsp)

    async def server_count(self, nsp: str) -> int:
        """How many servers serve namespace ``nsp`` (1 without an adapter)."""
        if self.adapter is None:
            await trio.lowlevel.checkpoint()
            return 1
        return await self.adapter.server_count(nsp)

    def publish_rooms(
        self,
        nsp: str,
        rooms: frozenset[str],
        exclude: frozenset[str],
        change: frozenset[str],
        join: bool,
    ) -> None:
        """Pass ``sockets_join`` / ``sockets_leave`` on to the other servers."""
        if self.adapter is not None:
            self.adapter.publish_rooms(nsp, rooms, exclude, change, join)

    def publish_disconnect(
        self, nsp: str, rooms: frozenset[str], exclude: frozenset[str], close: bool
    ) -> None:
        """Pass ``disconnect_sockets`` on to the other servers."""
        if self.adapter is not None:
            self.adapter.publish_disconnect(nsp, rooms, exclude, close)

    async def server_side_emit(self, nsp: str, event: str, args: tuple[Any, ...]) -> None:
        """Send a server-side event to the other servers (nothing alone)."""
        if self.adapter is not None:
            await self.adapter.server_side_emit(nsp, [event, *args])
        else:
            await trio.lowlevel.checkpoint()

    async def server_side_emit_with_ack(
        self, nsp: str, event: str, args: tuple[Any, ...], timeout: float | None
    ) -> list[Any]:
        """Send a server-side event and collect the other servers' answers."""
        if self.adapter is not None:
            return await self.adapter.server_side_emit_with_ack(nsp, [event, *args], timeout)
        await trio.lowlevel.checkpoint()
        return []


@final
class ClusterPort:
    """All a cluster adapter may ask of its server.

    Namespaces are named by their string; ``data`` is ``[event, *args]``.
    """

    __slots__ = ("_server",)

    def __init__(self, server: Server) -> None:
        self._server = server

    def namespace_names(self) -> list[str]:
        """The names of the server's namespaces so far."""
        return self._server.registry.names()

    def has_room(self, nsp: str, room: str) -> bool:
        """Whether this server has sockets in ``room`` of ``nsp``."""
        return self._server.router.has_room(nsp, room)

    def rooms(self, nsp: str) -> list[str]:
        """This server's rooms in ``nsp`` (a snapshot)."""
        return list(self._server.router.room_members(nsp))

    def watch_rooms(
        self, nsp: str, created: Callable[[str], None], deleted: Callable[[str], None]
    ) -> list[str]:
        """Call ``created(room)``/``deleted(room)`` as rooms of ``nsp`` come and go here.

        They run in the router task (quick, never raising). Returns the rooms
        there now; no room can come between that snapshot and the first call.
        """
        namespace = self._server.registry.get(nsp)
        if namespace is None:
            return []
        namespace.adapter.on("create-room", created)
        namespace.adapter.on("delete-room", deleted)
        return self.rooms(nsp)

    def server_side_handlers(self, nsp: str, event: str) -> list[Handler]:
        """The handlers of a server-side ``event`` in ``nsp`` (``on_server_side``)."""
        return self._server.server_side_handlers(nsp, event)

    def spawn(self, fn: Callable[..., Any], *args: Any) -> None:
        """Start ``fn(*args)`` in the server's nursery (its errors are logged)."""
        self._server._spawn(fn, args)

    async def deliver(
        self,
        nsp: str,
        data: list[Any],
        rooms: frozenset[str],
        exclude: frozenset[str],
        volatile: bool,
        convert: Callable[[Any], Any],
        offset: str | None = None,
    ) -> None:
        """Broadcast another server's packet to this server's selected sockets.

        Encoded once, here. ``convert`` turns values the encoder refuses (a
        timestamp, NaN...) into what a Node server would send; it runs only
        when the plain encode fails. ``offset``: its place in the cluster's
        shared log (a stream entry id), if it has one.

        Raises:
            LocalProtocolError: the data cannot be encoded even after conversion.
        """
        router = self._server.router
        if router.recovery is not None and router.recovery.store is not None:
            # The cluster's log is the offsets' source: the entry id goes last
            # (as Node's adapter does), and the router keeps it at that position.
            position = None if volatile or offset is None else stream_position(offset)
            if position is None:
                packets = self._encode(nsp, data, None, convert)
            else:
                packets = self._encode(nsp, [*data, offset], None, convert)
            await router.broadcast(nsp, packets, rooms, exclude, volatile, position=position)
            return
        # Logged here like a local broadcast when connection state recovery is
        # on: this server's offset, this server's log.
        logged = router.recovery is not None and not volatile
        if logged:
            assert router.recovery is not None
            data = [*data, router.recovery.placeholder]
        packets = self._encode(nsp, data, None, convert)
        await router.broadcast(nsp, packets, rooms, exclude, volatile, logged=logged)

    async def deliver_with_ack(
        self,
        nsp: str,
        data: list[Any],
        rooms: frozenset[str],
        exclude: frozenset[str],
        volatile: bool,
        on_count: Callable[[int], None],
        on_ack: Callable[[Any], None],
        convert: Callable[[Any], Any],
    ) -> ForwardedAck:
        """:meth:`deliver` for a broadcast that wants acknowledgements.

        ``on_count(n)`` learns how many sockets got it, ``on_ack(value)`` each
        answer; forget the result when the requester stops waiting.

        Raises:
            LocalProtocolError: the data cannot be encoded (nothing was sent).
        """
        namespace = self._server.registry.get(nsp)
        if namespace is None:
            raise LocalProtocolError(f"no namespace {nsp!r} here")
        ack = ForwardedAck(namespace.next_ack_id(), on_count, on_ack)
        packets = self._encode(nsp, data, ack.id, convert)
        await self._server.router.broadcast(nsp, packets, rooms, exclude, volatile, ack)
        return ack

    def _encode(
        self, nsp: str, data: list[Any], ack_id: int | None, convert: Callable[[Any], Any]
    ) -> list[Any]:
        try:
            return self._server.encode_for(nsp, SioType.EVENT, data, ack_id)
        except LocalProtocolError:
            return self._server.encode_for(nsp, SioType.EVENT, convert(data), ack_id)

    async def sockets(
        self, nsp: str, rooms: frozenset[str], exclude: frozenset[str]
    ) -> list[Socket]:
        """This server's sockets of ``nsp`` selected by ``rooms`` / ``exclude``."""
        return await self._server.router.select(nsp, rooms, exclude)

    def socket(self, nsp: str, sid: str) -> Socket | None:
        """This server's socket ``sid`` of ``nsp``, if connected."""
        return self._server.router.sockets(nsp).get(sid)

    async def change_rooms(
        self,
        nsp: str,
        rooms: frozenset[str],
        exclude: frozenset[str],
        change: frozenset[str],
        join: bool,
    ) -> None:
        """Make this server's selected sockets join (or leave) the rooms ``change``."""
        router = self._server.router
        if join:
            await router.join_selected(nsp, rooms, exclude, change)
        else:
            await router.leave_selected(nsp, rooms, exclude, change)

    async def disconnect(
        self, nsp: str, rooms: frozenset[str], exclude: frozenset[str], close: bool
    ) -> None:
        """Disconnect this server's selected sockets; return once they are gone."""
        chosen = await self._server.router.disconnect_selected(nsp, rooms, exclude, close, None)
        for socket in chosen:
            await socket.wait_disconnected()


def _local_delivery(
    nsp: Namespace,
    data: list[Any],
    packets: Sequence[OutPacket],
    rooms: frozenset[str],
    exclude: frozenset[str],
) -> Deliver:
    # What the store's task calls with the packet's offset (None: it has none).
    router = nsp.server.router
    recovery = router.recovery
    assert recovery is not None
    placeholder = recovery.placeholder
    compress = all(packet.compress for packet in packets)

    def deliver(offset: str | None) -> None:
        position = None if offset is None else stream_position(offset)
        # (An emit's compress(False) is kept: stamp copies it, encode is told.)
        if offset is None or position is None:
            out: Sequence[OutPacket] = nsp.encode(SioType.EVENT, data, None, compress)
        else:
            out = stamp(packets, placeholder, offset) or nsp.encode(
                SioType.EVENT, [*data, offset], None, compress
            )
        try:
            router.broadcast_nowait(nsp.name, out, rooms, exclude, position=position)
        except trio.ClosedResourceError:
            pass  # the server stopped

    return deliver
