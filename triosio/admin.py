"""The server side of the Socket.IO Admin UI (``@socket.io/admin-ui`` 0.5.x).

::

    import triosio
    import triosio.admin

    sio = triosio.Server(cors_allowed_origins=["https://admin.socket.io"])
    triosio.admin.instrument(sio, auth={"username": "admin", "password": "s3cret"})

Then open the Admin UI (hosted at https://admin.socket.io, or the built UI
of the npm package served by your own server: ``docs/operations.md``) and
connect it to the server's URL. It shows the servers, the clients and their
sockets, the rooms, and in development mode every event; from it you can
make sockets join or leave rooms, disconnect them, or emit.

This speaks the protocol of the reference's ``instrument()``: the UI connects
to the admin namespace (``/admin``) with ``{username, password}`` or a
``sessionId`` it got earlier; the server sends ``config``, then the sockets
(``all_sockets``), then their changes (``socket_connected``,
``socket_updated``, ``socket_disconnected``, ``room_joined``, ``room_left``,
``event_received``, ``event_sent``), and every 2 seconds ``server_stats``.
Every message is a broadcast on the admin namespace, so with a cluster
adapter every server's reach the UI, whichever server it is connected to, and
``all_sockets`` holds every server's sockets (``fetch_sockets``). A triosio
server and a Node one instrumented alike show up in the same UI.

What the server does is learnt from its hooks (``_server/hooks.py``): they
queue what is to be told, and the instrument's own task broadcasts it, so no
hook waits. Sockets and rooms are read from the router's snapshots; the UI's
actions go through the broadcast operators (``sockets_join``,
``disconnect_sockets``...), like any application code.

Differences from the reference: the actions ignore a namespace this server
does not have (the reference creates it); ``event_sent`` reports direct emits
only, as ``on_any_outgoing`` does, not each delivery of a broadcast; a
socket's transport change is reported within half a second, not at once; and
the password is compared as given (pass a function for a hashed one).
"""

from __future__ import annotations

import datetime
import hmac
import logging
import math
import os
import socket as _socket
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, final

import trio

from ._common.handlers import call_handler
from ._errors import ConnectionRefused, DisconnectReason, TriosioError
from ._server.broadcast import BroadcastOperator
from ._server.hooks import Hooks
from ._server.namespace import Namespace
from ._server.remote import RemoteSocket
from ._server.server import Server
from ._server.socket import Socket

if TYPE_CHECKING:
    from ._engine.packet import OutPacket
    from ._engine.session import EngineSession

__all__ = ["Admin", "instrument"]

log = logging.getLogger("triosio.admin")

#: What ``auth`` may be: ``False`` (no login), ``{"username": ..., "password": ...}``,
#: or a function of the UI's auth payload answering whether it may connect.
Auth = Literal[False] | Mapping[str, str] | Callable[[Mapping[str, Any]], Any]

#: How often server_stats go out (the reference's period).
STATS_INTERVAL = 2.0
#: How often sockets that connected over polling are checked for an upgrade.
UPGRADE_CHECK = 0.5
#: Messages waiting for the admin task; past that, new ones are dropped.
QUEUE_SIZE = 10_000
#: How long a login's session id lets the UI reconnect without the password.
SESSION_LIFETIME = 24 * 3600.0
_MAX_SESSIONS = 10_000

_ACTIONS = ("EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE", "MDISCONNECT")


def _now() -> str:
    """The time as JavaScript's ``JSON.stringify(new Date())`` writes it."""
    now = datetime.datetime.now(datetime.UTC)
    return now.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _plain(value: Any, depth: int = 0) -> Any:
    """``value`` made of what the parser carries (JSON values and bytes).

    ``socket.data`` may hold anything; what JSON cannot carry is shown as
    text, so that one odd value cannot stop the whole socket list.
    """
    if value is None or isinstance(value, str | bool | int | bytes):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if depth >= 16:
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v, depth + 1) for v in value]
    return str(value)


def _address(headers: Mapping[str, Any], address: str) -> Any:
    # The client's address as the reference shows it: behind a proxy, the
    # address it reported.
    return headers.get("cf-connecting-ip") or headers.get("x-forwarded-for") or address


def serialize(socket: Socket | RemoteSocket) -> dict[str, Any]:
    """A socket as the Admin UI expects it (the reference's ``serialize``)."""
    data = socket.data if isinstance(socket.data, Mapping) else {}
    own = data.get("_admin")
    own = own if isinstance(own, Mapping) else {}
    if isinstance(socket, Socket):
        client_id: Any = socket.session.sid[:12]
        transport: Any = socket.session.transport
    else:
        client_id = own.get("clientId")
        transport = own.get("transport")
    h = socket.handshake
    headers = dict(h.headers)
    return {
        "id": socket.id,
        "clientId": client_id,
        "transport": transport,
        "nsp": socket.nsp.name,
        "data": _plain({k: v for k, v in data.items() if k != "_admin"}),
        "handshake": {
            "address": _address(headers, h.address),
            "headers": headers,
            "query": dict(h.query),
            "issued": h.issued,
            "secure": h.secure,
            "time": h.time,
            "url": h.url,
            "xdomain": h.xdomain,
        },
        # The socket's own room first, as socket.io lists it.
        "rooms": [socket.id, *sorted(r for r in socket.rooms if r != socket.id)],
    }


def _packets_bytes(packets: Sequence[OutPacket]) -> int:
    return sum(len(p.data) for p in packets)


@final
class Admin(Hooks):
    """The Admin UI's side in a server; made by :func:`instrument`.

    Attributes:
        namespace: The admin namespace the UI connects to.
        server_id: How this server is named in the UI.
        features: What the UI may do and show (``config.supportedFeatures``).
    """

    def __init__(
        self,
        sio: Server,
        *,
        auth: Auth,
        mode: Literal["development", "production"] = "development",
        read_only: bool = False,
        namespace: str = "/admin",
        server_id: str | None = None,
    ) -> None:
        if mode not in ("development", "production"):
            raise ValueError(f"mode must be 'development' or 'production', not {mode!r}")
        if auth is not False and not (isinstance(auth, Mapping) or callable(auth)):
            raise TypeError("auth must be False, {'username': ..., 'password': ...} or a function")
        if isinstance(auth, Mapping) and not {"username", "password"} <= set(auth):
            raise ValueError("auth needs a 'username' and a 'password'")
        self._sio = sio
        self._auth = auth
        self._development = mode == "development"
        self._read_only = read_only
        self.server_id = server_id or _default_server_id(sio)
        self.features = [] if read_only else list(_ACTIONS)
        self.features.append("AGGREGATED_EVENTS")
        if self._development:
            self.features.append("ALL_EVENTS")
        self._hostname = _socket.gethostname()
        self._started: float | None = None
        self._sessions: dict[str, float] = {}
        self._send, self._receive = trio.open_memory_channel[tuple[str, tuple[Any, ...]]](
            QUEUE_SIZE
        )
        self._dropped = 0
        # Counts for the next server_stats (the UI's connection and traffic charts).
        self._opened = 0
        self._closed: dict[str, int] = {}
        self._packets_in = self._bytes_in = self._packets_out = self._bytes_out = 0
        # Sockets that connected over polling, until their transport changes.
        self._polling: dict[tuple[str, str], tuple[Socket, str]] = {}
        self.namespace = sio.of(namespace)
        self.namespace.use(self._authenticate)
        self.namespace.on("connection", self._connected)
        if self._development:
            for nsp in sio.namespaces.values():
                self.namespace_created(nsp)

    # ------------------------------------------------------------ the admin namespace

    async def _authenticate(self, socket: Socket) -> None:
        if self._auth is False:
            return
        given = socket.handshake.auth
        if self._session_valid(given.get("sessionId")):
            return
        if isinstance(self._auth, Mapping):
            ok = _same(given.get("username"), self._auth["username"])
            ok = _same(given.get("password"), self._auth["password"]) and ok
        else:
            ok = bool(await call_handler(self._auth, dict(given)))
        if not ok:
            raise ConnectionRefused("invalid credentials")

    def _session_valid(self, session_id: Any) -> bool:
        if not isinstance(session_id, str):
            return False
        expires = self._sessions.get(session_id)
        if expires is None:
            return False
        if expires < trio.current_time():
            del self._sessions[session_id]
            return False
        return True

    def _new_session(self) -> str:
        if len(self._sessions) >= _MAX_SESSIONS:
            del self._sessions[next(iter(self._sessions))]  # the oldest
        session_id = os.urandom(8).hex()
        self._sessions[session_id] = trio.current_time() + SESSION_LIFETIME
        return session_id

    async def _connected(self, socket: Socket) -> None:
        if not self._read_only:
            self._register_actions(socket)
        if self._auth is not False and not self._session_valid(
            socket.handshake.auth.get("sessionId")
        ):
            # Logged in with credentials: a session id for the UI's reconnections.
            await socket.emit("session", self._new_session())
        await socket.emit("config", {"supportedFeatures": self.features})
        if self._development:
            await socket.emit("all_sockets", await self._all_sockets())
        # This server at once; the others' within STATS_INTERVAL.
        await socket.emit("server_stats", self._stats([]))

    async def _all_sockets(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for nsp in self._sio.namespaces.values():
            try:
                sockets = await nsp.fetch_sockets()
            except TriosioError:  # another server did not answer: ours at least
                sockets = await nsp.local.fetch_sockets()
            found.extend(serialize(s) for s in sockets)
        return found

    def _register_actions(self, socket: Socket) -> None:
        # The UI's actions on a selection: every socket of a namespace, or
        # those in the room ``target`` (the UI names one socket by its id).
        # Arguments are checked here: whatever arrives that does not fit is
        # ignored.

        async def emit(*args: Any) -> None:
            nsp, target, event, *rest = (*args, None, None, None)[: max(len(args), 3)]
            namespace = self._namespace(nsp)
            if namespace is None or not isinstance(event, str):
                return
            try:
                await self._select(namespace, target).emit(event, *rest)
            except TriosioError as exc:
                log.info("admin: emit of %r refused: %s", event, exc)

        async def join(*args: Any) -> None:
            await rooms(args, join=True)

        async def leave(*args: Any) -> None:
            await rooms(args, join=False)

        async def rooms(args: tuple[Any, ...], *, join: bool) -> None:
            nsp, room, target = (*args, None, None, None)[:3]
            namespace = self._namespace(nsp)
            if namespace is None or not isinstance(room, str):
                return
            selection = self._select(namespace, target)
            if join:
                await selection.sockets_join(room)
            else:
                await selection.sockets_leave(room)

        async def disconnect(*args: Any) -> None:
            nsp, close, target = (*args, None, None, None)[:3]
            namespace = self._namespace(nsp)
            if namespace is not None:
                await self._select(namespace, target).disconnect_sockets(close is True)

        socket.on("emit", emit)
        socket.on("join", join)
        socket.on("leave", leave)
        socket.on("_disconnect", disconnect)

    def _namespace(self, name: Any) -> Namespace | None:
        return self._sio.namespaces.get(name) if isinstance(name, str) else None

    @staticmethod
    def _select(namespace: Namespace, target: Any) -> BroadcastOperator:
        if isinstance(target, str) and target:
            return namespace.in_(target)
        return namespace.except_()

    # ------------------------------------------------------------ the admin task

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Broadcast what the hooks queued, the server's stats, and upgrades."""
        self._started = trio.current_time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._forward)
            nursery.start_soon(self._every_stats_interval)
            if self._development:
                nursery.start_soon(self._watch_upgrades)
            task_status.started()

    async def _forward(self) -> None:
        async for event, args in self._receive:
            try:
                await self.namespace.emit(event, *args)
            except TriosioError as exc:  # a value the parser cannot carry
                log.warning("admin: could not send %s: %s", event, exc)

    async def _every_stats_interval(self) -> None:
        while True:
            events = self._aggregated()
            if self._listened():
                await self.namespace.emit("server_stats", self._stats(events))
            await trio.sleep(STATS_INTERVAL)

    async def _watch_upgrades(self) -> None:
        while True:
            await trio.sleep(UPGRADE_CHECK)
            for key, (socket, transport) in list(self._polling.items()):
                now = socket.session.transport
                if now != transport:
                    del self._polling[key]
                    own = socket.data.get("_admin")
                    if isinstance(own, dict):
                        own["transport"] = now
                    self._tell("socket_updated", {"id": socket.id, "nsp": key[0], "transport": now})

    def _listened(self) -> bool:
        # Nobody can hear it: no UI here, and no other server to pass it on.
        return self._sio.adapter is not None or bool(
            self._sio.router.socket_count(self.namespace.name)
        )

    def _tell(self, event: str, *args: Any) -> None:
        """Queue a broadcast to the UIs; never waits (hooks call it)."""
        if not self._listened():
            return
        try:
            self._send.send_nowait((event, args))
        except trio.WouldBlock:
            self._dropped += 1
            if self._dropped == 1:
                log.warning("admin: the UI cannot keep up; dropping its messages")

    def _stats(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        sio = self._sio
        sessions = list(sio.engine.sessions.values())
        started = self._started if self._started is not None else trio.current_time()
        return {
            "serverId": self.server_id,
            "hostname": self._hostname,
            "pid": os.getpid(),
            "uptime": trio.current_time() - started,
            "clientsCount": len(sessions),
            "pollingClientsCount": sum(1 for s in sessions if s.transport == "polling"),
            "aggregatedEvents": events,
            "namespaces": [
                {"name": name, "socketsCount": sio.router.socket_count(name)}
                for name in sio.namespaces
            ],
        }

    def _aggregated(self) -> list[dict[str, Any]]:
        # The counts since the last call, stamped with this second (the UI
        # sums them in 10-second bars).
        stamp = int(time.time()) * 1000
        counts: list[tuple[str, str | None, int]] = [
            ("rawConnection", None, self._opened),
            *(("rawDisconnection", reason, n) for reason, n in self._closed.items()),
            ("packetsIn", None, self._packets_in),
            ("bytesIn", None, self._bytes_in),
            ("packetsOut", None, self._packets_out),
            ("bytesOut", None, self._bytes_out),
        ]
        self._opened = 0
        self._closed = {}
        self._packets_in = self._bytes_in = self._packets_out = self._bytes_out = 0
        events: list[dict[str, Any]] = []
        for kind, sub, count in counts:
            if count:
                event: dict[str, Any] = {"timestamp": stamp, "type": kind, "count": count}
                if sub is not None:
                    event["subType"] = sub
                events.append(event)
        return events

    # ------------------------------------------------------------ hooks (all modes)

    def connection_opened(self, session: EngineSession) -> None:
        self._opened += 1

    def connection_closed(self, session: EngineSession, reason: DisconnectReason) -> None:
        self._closed[reason.value] = self._closed.get(reason.value, 0) + 1

    def message_received(self, data: str | bytes) -> None:
        self._packets_in += 1
        self._bytes_in += len(data)

    def ack_sent(self, socket: Socket, packets: Sequence[OutPacket]) -> None:
        self._packets_out += len(packets)
        self._bytes_out += _packets_bytes(packets)

    def broadcast_sent(
        self, nsp: str, packets: Sequence[OutPacket], delivered: int, dropped: int
    ) -> None:
        self._packets_out += delivered * len(packets)
        self._bytes_out += delivered * _packets_bytes(packets)

    # ------------------------------------------------------------ hooks (development)

    def namespace_created(self, nsp: Namespace) -> None:
        if not self._development:
            return
        name = nsp.name
        nsp.adapter.on(
            "join-room", lambda room, sid: self._tell("room_joined", name, room, sid, _now())
        )
        nsp.adapter.on(
            "leave-room", lambda room, sid: self._tell("room_left", name, room, sid, _now())
        )

    def socket_connected(self, socket: Socket) -> None:
        if not self._development:
            return
        session = socket.session
        # Where the reference keeps them, so that other servers' fetch_sockets
        # (which carries socket.data) can show them too.
        socket.data["_admin"] = {"clientId": session.sid[:12], "transport": session.transport}
        if session.transport == "polling":
            self._polling[(socket.nsp.name, socket.id)] = (socket, "polling")
        try:
            serialized = serialize(socket)
        except Exception:  # a hook must not stop the connect sequence
            log.exception("admin: could not describe socket %s", socket.id)
            return
        self._tell("socket_connected", serialized, _now())

    def socket_disconnected(self, socket: Socket, reason: DisconnectReason) -> None:
        if not self._development:
            return
        self._polling.pop((socket.nsp.name, socket.id), None)
        self._tell("socket_disconnected", socket.nsp.name, socket.id, reason.value, _now())

    def event_received(self, socket: Socket, event: str, args: list[Any]) -> None:
        if self._development and socket.nsp is not self.namespace:
            self._tell("event_received", socket.nsp.name, socket.id, [event, *args], _now())

    def event_sent(
        self, socket: Socket, event: str, args: tuple[Any, ...], packets: Sequence[OutPacket]
    ) -> None:
        self._packets_out += len(packets)
        self._bytes_out += _packets_bytes(packets)
        if self._development and socket.nsp is not self.namespace:
            self._tell("event_sent", socket.nsp.name, socket.id, [event, *args], _now())


def _same(given: Any, expected: str) -> bool:
    # Compared in constant time: the answer must not tell how much matched.
    return isinstance(given, str) and hmac.compare_digest(given.encode(), expected.encode())


def _default_server_id(sio: Server) -> str:
    # One process per server: with a cluster, several may share a host.
    host = _socket.gethostname()
    return f"{host}#{os.getpid()}" if sio.adapter is not None else host


def instrument(
    sio: Server,
    *,
    auth: Auth,
    mode: Literal["development", "production"] = "development",
    read_only: bool = False,
    namespace: str = "/admin",
    server_id: str | None = None,
) -> Admin:
    """Let the Socket.IO Admin UI watch (and act on) ``sio``.

    Call it before serving. The UI connects to ``namespace``.

    Args:
        sio: The server.
        auth: Who may connect: ``{"username": ..., "password": ...}``, a
            function (plain or async) given the UI's auth payload that
            returns whether it may, or ``False`` for anyone (only behind a
            trusted network). Required, as in the reference.
        mode: ``"development"`` shows every socket, room and event;
            ``"production"`` only the servers' stats and the connection and
            traffic charts, and costs less.
        read_only: The UI may look but not act (join, leave, disconnect, emit).
        namespace: The admin namespace.
        server_id: This server's name in the UI (default: the host name,
            with ``#pid`` when the server has a cluster adapter).

    Returns:
        The :class:`Admin` instrument.
    """
    admin = Admin(
        sio,
        auth=auth,
        mode=mode,
        read_only=read_only,
        namespace=namespace,
        server_id=server_id,
    )
    sio._add_hooks(admin)
    return admin
