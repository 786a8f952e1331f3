"""Emitting to a cluster from a process that is not a server (``@socket.io/redis-emitter`` 5.1).

What the emitter publishes (§4, §5.4, §5.3 of ``redis-wire.md``), exactly as the
JavaScript emitter writes it:

- ``emit``: MessagePack ``["emitter", {"type": 2, "data", "nsp"}, {"rooms",
  "flags", "except"}]`` on ``<key>#<nsp>#`` (+ ``<room>#`` for exactly one room);
- ``sockets_join``/``sockets_leave``/``disconnect_sockets``: JSON requests
  without ``uid`` or ``requestId`` on ``<key>-request#<nsp>#``;
- ``server_side_emit``: JSON ``{"uid": "emitter", "type": 6, "data"}`` there too.

The same operations for servers with the Redis Streams adapter
(:class:`StreamsWire`): what such a server writes, from the uid ``"emitter"``.

The commands are built here, sans-I/O (:class:`Target` chooses the sockets, a
:class:`Wire` writes the command); thin front ends send them: :class:`Emitter`
and :class:`StreamsEmitter` on :class:`SyncLink` (a blocking socket, for plain
code and threads), :class:`AsyncEmitter` and :class:`AsyncStreamsEmitter` on
coredis (AnyIO: Trio and asyncio). ``triosio.redis`` exports the four.
"""

from __future__ import annotations

import copy
import socket
import ssl
import threading
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, Protocol, Self, final
from urllib.parse import unquote, urlsplit

import coredis

from .._cluster import ca_messages as ca
from .._cluster.channels import EMITTER_UID, Channels
from .._cluster.messages import RequestType
from .._cluster.values import pack, to_json
from .._proto.sio import check_event_name
from .bus import safe_url
from .sharded import MODES, channel_for
from .sharded import encode as sharded_encode
from .stream_entries import encode_entry, stream_for

#: One Redis command, as its arguments: ``(b"PUBLISH", channel, payload)``...
Command = tuple[bytes, ...]


def _rooms(rooms: Iterable[str] | str) -> tuple[str, ...]:
    # One room or several, as the JavaScript ``to(room | room[])``.
    if isinstance(rooms, str):
        return (rooms,)
    out = tuple(rooms)
    for room in out:
        if not isinstance(room, str):
            raise TypeError(f"room names are strings, not {type(room).__name__}")
    return out


def _add(current: tuple[str, ...], more: tuple[str, ...]) -> tuple[str, ...]:
    # A JavaScript Set: insertion order, no duplicates.
    return tuple(dict.fromkeys(current + more))


@dataclass(frozen=True, slots=True)
class Target:
    """Which sockets an operation reaches (sans-I/O); a :class:`Wire` writes the commands."""

    nsp: str = "/"
    rooms: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    #: The flags, in the order they were first set (a JavaScript object's key
    #: order, which decides the MessagePack bytes).
    flag_items: tuple[tuple[str, Any], ...] = ()

    def of(self, nsp: str) -> Target:
        if not isinstance(nsp, str):
            raise TypeError(f"namespace names are strings, not {type(nsp).__name__}")
        if not nsp.startswith("/"):
            nsp = "/" + nsp
        return Target(nsp)

    def to(self, rooms: Iterable[str] | str) -> Target:
        return replace(self, rooms=_add(self.rooms, _rooms(rooms)))

    def except_(self, rooms: Iterable[str] | str) -> Target:
        return replace(self, exclude=_add(self.exclude, _rooms(rooms)))

    def with_flag(self, name: str, value: Any) -> Target:
        # As Object.assign({}, flags, {name: value}): a key set again keeps its place.
        flags = dict(self.flag_items)
        flags[name] = value
        return replace(self, flag_items=tuple(flags.items()))

    def flags(self) -> dict[str, Any]:
        return dict(self.flag_items)


class Wire(Protocol):
    """How one kind of adapter wants each operation written (sans-I/O)."""

    @property
    def key(self) -> str: ...

    def emit(self, t: Target, event: str, args: tuple[Any, ...]) -> Command: ...

    def rooms_change(self, t: Target, join: bool, rooms: tuple[str, ...]) -> Command: ...

    def disconnect(self, t: Target, close: bool) -> Command: ...

    def server_side_emit(self, t: Target, event: str, args: tuple[Any, ...]) -> Command: ...


@dataclass(frozen=True, slots=True)
class PubSubWire:
    """``@socket.io/redis-emitter`` 5.1 on Redis pub/sub (for ``RedisAdapter``)."""

    key: str = "socket.io"

    def _channels(self, t: Target) -> Channels:
        return Channels.make(self.key, t.nsp, EMITTER_UID)

    @staticmethod
    def _opts(t: Target) -> dict[str, Any]:
        return {"rooms": list(t.rooms), "except": list(t.exclude)}

    def emit(self, t: Target, event: str, args: tuple[Any, ...]) -> Command:
        """The broadcast of ``event`` with ``args``."""
        check_event_name(event)
        packet = {"type": 2, "data": [event, *args], "nsp": t.nsp}
        opts = {"rooms": list(t.rooms), "flags": t.flags(), "except": list(t.exclude)}
        body = pack([EMITTER_UID, packet, opts])
        return b"PUBLISH", self._channels(t).for_rooms(t.rooms), body

    def rooms_change(self, t: Target, join: bool, rooms: tuple[str, ...]) -> Command:
        """REMOTE_JOIN or REMOTE_LEAVE of the targeted sockets."""
        kind = RequestType.REMOTE_JOIN if join else RequestType.REMOTE_LEAVE
        body = {"type": kind.value, "opts": self._opts(t), "rooms": list(rooms)}
        return b"PUBLISH", self._channels(t).request, to_json(body)

    def disconnect(self, t: Target, close: bool) -> Command:
        """REMOTE_DISCONNECT of the targeted sockets."""
        body = {
            "type": RequestType.REMOTE_DISCONNECT.value,
            "opts": self._opts(t),
            "close": bool(close),
        }
        return b"PUBLISH", self._channels(t).request, to_json(body)

    def server_side_emit(self, t: Target, event: str, args: tuple[Any, ...]) -> Command:
        """SERVER_SIDE_EMIT to every server of the namespace (no acknowledgements)."""
        check_event_name(event)
        body = {"uid": EMITTER_UID, "type": RequestType.SERVER_SIDE_EMIT.value}
        body["data"] = [event, *args]
        return b"PUBLISH", self._channels(t).request, to_json(body)


class _ClusterAdapterWire:
    """What the ClusterAdapter-based servers (the streams and sharded adapters)
    send: the same messages; a subclass says how one goes out (``_send``)."""

    __slots__ = ()

    def _send(self, message: dict[str, Any]) -> Command:
        raise NotImplementedError

    def emit(self, t: Target, event: str, args: tuple[Any, ...]) -> Command:
        """BROADCAST of ``event`` with ``args``."""
        check_event_name(event)
        message = ca.broadcast(EMITTER_UID, t.nsp, [event, *args], t.rooms, t.exclude)
        message["data"]["opts"]["flags"] = t.flags()
        return self._send(message)

    def rooms_change(self, t: Target, join: bool, rooms: tuple[str, ...]) -> Command:
        """SOCKETS_JOIN or SOCKETS_LEAVE."""
        return self._send(ca.sockets_rooms(EMITTER_UID, t.nsp, join, t.rooms, t.exclude, rooms))

    def disconnect(self, t: Target, close: bool) -> Command:
        """DISCONNECT_SOCKETS."""
        return self._send(ca.disconnect_sockets(EMITTER_UID, t.nsp, t.rooms, t.exclude, close))

    def server_side_emit(self, t: Target, event: str, args: tuple[Any, ...]) -> Command:
        """SERVER_SIDE_EMIT (no acknowledgements)."""
        check_event_name(event)
        return self._send(ca.server_side_emit(EMITTER_UID, t.nsp, [event, *args]))


@dataclass(frozen=True, slots=True)
class StreamsWire(_ClusterAdapterWire):
    """The messages of ``@socket.io/redis-streams-adapter`` 0.3.x's servers, from ``"emitter"``.

    Broadcasts, joins, leaves and disconnects are entries of the namespace's
    stream (``XADD <stream> MAXLEN ~ <max_len> *``), as a server of that
    adapter writes them; a server-side emit goes by pub/sub on
    ``<channel_prefix>#<nsp>#`` (MessagePack), as theirs do.
    """

    key: str = "socket.io"
    stream_count: int = 1
    channel_prefix: str = "socket.io"
    max_len: int = 10_000
    only_plaintext: bool = False

    def _send(self, message: dict[str, Any]) -> Command:
        stream = stream_for(message["nsp"], self.key, self.stream_count).encode()
        fields = encode_entry(message, self.only_plaintext)
        return (b"XADD", stream, b"MAXLEN", b"~", str(self.max_len).encode(), b"*", *fields)

    def server_side_emit(self, t: Target, event: str, args: tuple[Any, ...]) -> Command:
        """SERVER_SIDE_EMIT (no acknowledgements), by pub/sub."""
        check_event_name(event)
        message = ca.server_side_emit(EMITTER_UID, t.nsp, [event, *args])
        return b"PUBLISH", f"{self.channel_prefix}#{t.nsp}#".encode(), pack(message)


@dataclass(frozen=True, slots=True)
class ShardedWire(_ClusterAdapterWire):
    """The messages of ``createShardedAdapter``'s servers, from ``"emitter"`` (``SPUBLISH``).

    Everything on the namespace's shard channel ``<key>#<nsp>#``, but a
    broadcast to exactly one room with a channel of its own in ``mode``
    (``<key>#<nsp>#<room>#``), as a server of that adapter publishes it; JSON,
    MessagePack when binary is inside.
    """

    key: str = "socket.io"
    mode: str = "dynamic"

    def _send(self, message: dict[str, Any]) -> Command:
        return b"SPUBLISH", channel_for(self.key, self.mode, message), sharded_encode(message)


# ---------------------------------------------------------------- blocking I/O


def _command(*parts: bytes) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


class RedisReplyError(Exception):
    """Redis answered a command with an error."""


class SyncLink:
    """One blocking connection that publishes; thread-safe; reconnects when used again.

    Speaks just enough RESP for ``AUTH``, ``PUBLISH``, ``SPUBLISH`` and
    ``XADD``: plain code needs no event loop to emit.
    """

    def __init__(self, url: str, timeout: float) -> None:
        where = urlsplit(url)
        if where.scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"unsupported Redis URL scheme {where.scheme!r} in {url!r}")
        self._where = where
        self._timeout = timeout
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._reader: Any = None

    def _connect(self) -> None:
        where = self._where
        if where.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self._timeout)
            sock.connect(where.path)
        else:
            host = where.hostname or "127.0.0.1"
            sock = socket.create_connection((host, where.port or 6379), self._timeout)
            if where.scheme == "rediss":
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
        self._sock = sock
        self._reader = sock.makefile("rb")
        if where.password is not None:
            user = unquote(where.username) if where.username else None
            password = unquote(where.password)
            parts = [b"AUTH"] + ([user.encode()] if user else []) + [password.encode()]
            sock.sendall(_command(*parts))
            self._reply()

    def _reply(self) -> bytes:
        line = self._reader.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("Redis closed the connection")
        if line[:1] == b"-":
            raise RedisReplyError(line[1:-2].decode("utf-8", "replace"))
        if line[:1] == b"$" and line[1:2] != b"-":
            # A bulk string (XADD's entry id): its bytes follow.
            size = int(line[1:-2])
            body = self._reader.read(size + 2)
            if len(body) != size + 2:
                raise ConnectionError("Redis closed the connection")
            return bytes(body[:-2])
        return bytes(line[1:-2])

    def send(self, messages: list[Command]) -> None:
        """Send in order; one retry on a fresh connection if the old one was dead."""
        payload = b"".join(_command(*command) for command in messages)
        with self._lock:
            for attempt in (1, 2):
                fresh = self._sock is None
                try:
                    if fresh:
                        self._connect()
                    assert self._sock is not None
                    self._sock.sendall(payload)
                    first = True
                    for _ in messages:
                        try:
                            self._reply()
                        except ConnectionError:
                            if not first:
                                raise
                            raise _Stale from None
                        first = False
                    return
                except _Stale:
                    # Closed before answering anything: a connection Redis
                    # dropped (a restart) and nothing published; try once anew.
                    self.close_locked()
                    if fresh or attempt == 2:
                        raise ConnectionError("Redis closed the connection") from None
                except (OSError, RedisReplyError):
                    self.close_locked()
                    raise

    def close_locked(self) -> None:
        if self._sock is not None:
            try:
                self._reader.close()
                self._sock.close()
            finally:
                self._sock = None
                self._reader = None

    def close(self) -> None:
        with self._lock:
            self.close_locked()


class _Stale(Exception):
    pass


class ClusterSyncLink:
    """:class:`SyncLink` for a Redis Cluster: one connection per node, led by ``MOVED``.

    A command goes to the node last seen serving its channel (the URL's node
    at first); a ``MOVED <slot> <host>:<port>`` answer (the slot lives
    elsewhere, or moved in a failover or resharding) sends it there, and
    remembers where. A node that cannot be reached is forgotten and the command
    asked again of the URL's node. No ``ASK``: Redis serves a shard channel's
    ``SPUBLISH`` on the source node of a migrating slot, then answers
    ``MOVED``. Thread-safe.
    """

    _REDIRECTS = 5

    def __init__(self, url: str, timeout: float) -> None:
        self._seed = SyncLink(url, timeout)  # checks the URL
        where = urlsplit(url)
        self._scheme = where.scheme
        self._userinfo = where.netloc.rpartition("@")[0]
        self._host = where.hostname or "127.0.0.1"
        self._timeout = timeout
        self._lock = threading.Lock()
        self._nodes: dict[str, SyncLink] = {}
        self._route: dict[bytes, str] = {}  # channel -> "host:port"

    def _address(self, moved_to: str) -> str:
        # "host:port"; ":port" means the host we asked (an unknown endpoint),
        # and an IPv6 host needs brackets in a URL.
        host, _, port = moved_to.rpartition(":")
        if not host:
            host = self._host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"{host}:{port}"

    def _node(self, address: str) -> SyncLink:
        link = self._nodes.get(address)
        if link is None:
            auth = self._userinfo + "@" if self._userinfo else ""
            link = SyncLink(f"{self._scheme}://{auth}{address}", self._timeout)
            self._nodes[address] = link
        return link

    def send(self, messages: list[Command]) -> None:
        """Send each command to the node serving its channel, in order."""
        with self._lock:
            for command in messages:
                self._send_one(command)

    def _send_one(self, command: Command) -> None:
        channel = command[1]
        address = self._route.get(channel)
        last: Exception | None = None
        for _ in range(self._REDIRECTS):
            link = self._seed if address is None else self._node(address)
            try:
                link.send([command])
                return
            except RedisReplyError as exc:
                kind, _, rest = str(exc).partition(" ")
                if kind != "MOVED":
                    raise
                last = exc
                address = self._address(rest.rpartition(" ")[2])
                if len(self._route) > 10_000:
                    self._route.clear()  # room channels come and go: no unbounded map
                self._route[channel] = address
            except OSError as exc:
                if address is None:
                    raise
                last = exc
                # That node is gone (a failover?): ask the URL's node anew.
                self._route.pop(channel, None)
                address = None
        raise ConnectionError(f"no node of the Redis Cluster took channel {channel!r}") from last

    def close(self) -> None:
        with self._lock:
            self._seed.close()
            for link in self._nodes.values():
                link.close()
            self._nodes.clear()


class _Targeting:
    """What every emitter shares: choosing the sockets (returns new emitters)."""

    url: str
    _wire: Wire
    _target: Target

    def _derive(self, target: Target) -> Self:
        # The same link and wire: emitters derived from one share its connection.
        new = copy.copy(self)
        new._target = target
        return new

    def of(self, nsp: str) -> Self:
        """The same emitter for namespace ``nsp`` (rooms and flags reset)."""
        return self._derive(self._target.of(nsp))

    def to(self, rooms: Iterable[str] | str) -> Self:
        """Target a room, or several (added to those already targeted)."""
        return self._derive(self._target.to(rooms))

    in_ = to

    def except_(self, rooms: Iterable[str] | str) -> Self:
        """Exclude the sockets of a room, or of several."""
        return self._derive(self._target.except_(rooms))

    @property
    def volatile(self) -> Self:
        """Emit only to clients ready to receive now (the ``volatile`` flag)."""
        return self._derive(self._target.with_flag("volatile", True))

    def compress(self, compress: bool) -> Self:
        """Set the ``compress`` flag of the emitted packets."""
        return self._derive(self._target.with_flag("compress", bool(compress)))

    def __repr__(self) -> str:
        t, name = self._target, type(self).__name__
        where = f"{safe_url(self.url)} key={self._wire.key!r}"
        return f"<{name} {where} nsp={t.nsp!r} rooms={list(t.rooms)}>"


class _SyncEmitter(_Targeting):
    # Blocking front end: each operation is sent (and answered) before it returns.

    def __init__(self, url: str, wire: Wire, link: SyncLink | ClusterSyncLink) -> None:
        self.url = url
        self._link = link
        self._wire = wire
        self._target = Target()

    def emit(self, event: str, *args: Any) -> None:
        """Emit ``event`` with ``args`` to the targeted clients on every server.

        Raises:
            triosio.LocalProtocolError: A reserved event name, or arguments
                MessagePack cannot carry.
            OSError: Redis cannot be reached.
        """
        self._link.send([self._wire.emit(self._target, event, args)])

    def sockets_join(self, rooms: Iterable[str] | str) -> None:
        """Make the targeted sockets, on every server, join ``rooms``."""
        self._link.send([self._wire.rooms_change(self._target, True, _rooms(rooms))])

    def sockets_leave(self, rooms: Iterable[str] | str) -> None:
        """Make the targeted sockets, on every server, leave ``rooms``."""
        self._link.send([self._wire.rooms_change(self._target, False, _rooms(rooms))])

    def disconnect_sockets(self, close: bool = False) -> None:
        """Disconnect the targeted sockets; ``close`` closes their connections too."""
        self._link.send([self._wire.disconnect(self._target, close)])

    def server_side_emit(self, event: str, *args: Any) -> None:
        """Emit ``event`` to the servers themselves (their ``on`` handlers; no acks)."""
        self._link.send([self._wire.server_side_emit(self._target, event, args)])

    def close(self) -> None:
        """Close the connection (it opens again if the emitter is used again)."""
        self._link.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@final
class Emitter(_SyncEmitter):
    """Emits to the clients of a cluster's servers from plain (synchronous) code.

    Speaks the wire format of ``@socket.io/redis-emitter`` 5.1.0 on Redis
    pub/sub, so triosio servers with :class:`RedisAdapter` and Node.js servers
    with ``@socket.io/redis-adapter`` both obey it. Blocking: each call
    publishes before it returns (a worker thread, a script, a WSGI view). From
    Trio or asyncio code use :class:`AsyncEmitter`. Thread-safe; the
    connection opens on first use and again after Redis dropped it::

        emitter = Emitter("redis://127.0.0.1:6379/0")
        emitter.to("room1").emit("news", {"id": 1})
        emitter.of("/admin").sockets_join("audit")

    Like Redis pub/sub itself it is at-most-once: what is published while no
    server is subscribed reaches nobody.

    Args:
        url: The Redis URL (``redis://[[user]:password@]host:port/db``,
            ``rediss://``, ``unix://``).
        key_prefix: The servers' channel prefix (``RedisAdapter``'s ``key_prefix``).
        timeout: Seconds allowed to connect and for each reply.

    Raises:
        ValueError: The URL's scheme is not one of the above.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        key_prefix: str = "socket.io",
        timeout: float = 5.0,
    ) -> None:
        super().__init__(url, PubSubWire(key_prefix), SyncLink(url, timeout))


def _streams_wire(
    stream_name: str, stream_count: int, channel_prefix: str, max_len: int, only_plaintext: bool
) -> StreamsWire:
    if stream_count < 1 or max_len < 1:
        raise ValueError("stream_count and max_len must be at least 1")
    return StreamsWire(stream_name, stream_count, channel_prefix, max_len, only_plaintext)


@final
class StreamsEmitter(_SyncEmitter):
    """:class:`Emitter` for servers with :class:`RedisStreamsAdapter` (plain, blocking code).

    Writes what a server of ``@socket.io/redis-streams-adapter`` 0.3.x writes
    (that package has no emitter of its own), from the uid ``"emitter"``:
    broadcasts, joins, leaves and disconnects are entries of the namespace's
    stream, so servers that were away read them when they are back, within
    ``max_len``; ``server_side_emit`` goes by pub/sub (at-most-once). Node.js
    servers with that adapter obey it too. The options must be the servers'::

        emitter = StreamsEmitter("redis://127.0.0.1:6379/0")
        emitter.to("room1").emit("news", {"id": 1})

    Args:
        url: The Redis URL.
        stream_name: The servers' ``stream_name``.
        stream_count: The servers' ``stream_count``.
        channel_prefix: The servers' ``channel_prefix``.
        max_len: ``MAXLEN ~`` of every XADD (the servers' ``max_len``).
        only_plaintext: Always JSON in the entries (the servers' ``only_plaintext``).
        timeout: Seconds allowed to connect and for each reply.

    Raises:
        ValueError: The URL's scheme, ``stream_count`` or ``max_len``.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        stream_name: str = "socket.io",
        stream_count: int = 1,
        channel_prefix: str = "socket.io",
        max_len: int = 10_000,
        only_plaintext: bool = False,
        timeout: float = 5.0,
    ) -> None:
        wire = _streams_wire(stream_name, stream_count, channel_prefix, max_len, only_plaintext)
        super().__init__(url, wire, SyncLink(url, timeout))


def _sharded_wire(channel_prefix: str, subscription_mode: str) -> ShardedWire:
    if subscription_mode not in MODES:
        raise ValueError(f"subscription_mode must be one of {MODES}, not {subscription_mode!r}")
    return ShardedWire(channel_prefix, subscription_mode)


@final
class ShardedEmitter(_SyncEmitter):
    """:class:`Emitter` for servers with :class:`ShardedRedisAdapter` (plain, blocking code).

    Publishes with ``SPUBLISH`` on a Redis Cluster what a server of
    ``createShardedAdapter`` (``@socket.io/redis-adapter`` 8.3) publishes, from
    the uid ``"emitter"`` (the JavaScript emitter has no sharded mode), so
    triosio and Node.js servers with that adapter obey it. Each command goes
    to the node serving its channel (one connection per node, found by the
    cluster's ``MOVED`` answers). At most once, as sharded pub/sub. The
    options must be the servers'::

        emitter = ShardedEmitter("redis://10.0.0.1:7000", subscription_mode="dynamic")
        emitter.to("room1").emit("news", {"id": 1})

    Args:
        url: One node of the Redis Cluster.
        channel_prefix: The servers' ``channel_prefix``.
        subscription_mode: The servers' ``subscription_mode``: "static",
            "dynamic" or "dynamic-private" (it decides a room's channel).
        timeout: Seconds allowed to connect and for each reply.

    Raises:
        ValueError: The URL's scheme, or an unknown ``subscription_mode``.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:7000",
        *,
        channel_prefix: str = "socket.io",
        subscription_mode: str = "dynamic",
        timeout: float = 5.0,
    ) -> None:
        wire = _sharded_wire(channel_prefix, subscription_mode)
        super().__init__(url, wire, ClusterSyncLink(url, timeout))


class _AsyncLink:
    # One coredis client (AnyIO: Trio or asyncio), open between __aenter__/__aexit__.
    def __init__(
        self, url: str, timeout: float, options: dict[str, Any], cluster: bool = False
    ) -> None:
        self.url = url
        self.cluster = cluster
        self.options = {
            "decode_responses": False,
            "connect_timeout": timeout,
            "stream_timeout": timeout,
            **options,
        }
        self.client: Any = None

    async def send(self, command: Command) -> None:
        if self.client is None:
            raise RuntimeError("use the emitter as `async with <emitter> as e:`")
        if command[0] == b"SPUBLISH":
            # The cluster client sends it to the node serving the channel's slot.
            await self.client.spublish(command[1], command[2])
            return
        async with self.client.connection_pool.acquire() as connection:
            request = connection.create_request(*command)
        await request


class _AsyncEmitter(_Targeting):
    # Async front end (coredis on AnyIO): each operation awaited until Redis took it.

    def __init__(
        self, url: str, wire: Wire, timeout: float, options: dict[str, Any], cluster: bool = False
    ) -> None:
        self.url = url
        self._link = _AsyncLink(url, timeout, options, cluster)
        self._wire = wire
        self._target = Target()

    async def __aenter__(self) -> Self:
        kind = coredis.RedisCluster if self._link.cluster else coredis.Redis
        with warnings.catch_warnings():
            # coredis 6.9's RedisCluster.from_url hands its pool the startup
            # node as a dict, which that pool then calls deprecated.
            warnings.filterwarnings("ignore", "Use coredis.connection.TCPLocation")
            client = kind.from_url(self.url, **self._link.options)
        await client.__aenter__()
        self._link.client = client
        return self

    async def __aexit__(self, *exc: object) -> None:
        client, self._link.client = self._link.client, None
        if client is not None:
            await client.__aexit__(None, None, None)
            # coredis 6.9's cluster client never closes its layout's error
            # stream (a ResourceWarning later, in the garbage collector).
            layout = getattr(client.connection_pool, "cluster_layout", None)
            for stream in getattr(layout, "_error_stream", ()):
                stream.close()

    async def emit(self, event: str, *args: Any) -> None:
        """Emit ``event`` with ``args`` to the targeted clients on every server."""
        await self._link.send(self._wire.emit(self._target, event, args))

    async def sockets_join(self, rooms: Iterable[str] | str) -> None:
        """Make the targeted sockets, on every server, join ``rooms``."""
        await self._link.send(self._wire.rooms_change(self._target, True, _rooms(rooms)))

    async def sockets_leave(self, rooms: Iterable[str] | str) -> None:
        """Make the targeted sockets, on every server, leave ``rooms``."""
        await self._link.send(self._wire.rooms_change(self._target, False, _rooms(rooms)))

    async def disconnect_sockets(self, close: bool = False) -> None:
        """Disconnect the targeted sockets; ``close`` closes their connections too."""
        await self._link.send(self._wire.disconnect(self._target, close))

    async def server_side_emit(self, event: str, *args: Any) -> None:
        """Emit ``event`` to the servers themselves (their ``on`` handlers; no acks)."""
        await self._link.send(self._wire.server_side_emit(self._target, event, args))


@final
class AsyncEmitter(_AsyncEmitter):
    """:class:`Emitter` for async code, Trio or asyncio (coredis on AnyIO).

    Open it with ``async with``; every operation is awaited until Redis has
    taken the message::

        async with AsyncEmitter("redis://127.0.0.1:6379/0") as emitter:
            await emitter.to("room1").emit("news", {"id": 1})

    Args:
        url: The Redis URL.
        key_prefix: The servers' channel prefix.
        timeout: Seconds allowed to connect and for each reply.
        **redis_options: More options for ``coredis.Redis.from_url``.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        key_prefix: str = "socket.io",
        timeout: float = 5.0,
        **redis_options: Any,
    ) -> None:
        super().__init__(url, PubSubWire(key_prefix), timeout, redis_options)


@final
class AsyncStreamsEmitter(_AsyncEmitter):
    """:class:`StreamsEmitter` for async code, Trio or asyncio (coredis on AnyIO).

    Open it with ``async with``::

        async with AsyncStreamsEmitter("redis://127.0.0.1:6379/0") as emitter:
            await emitter.to("room1").emit("news", {"id": 1})

    Args:
        url: The Redis URL.
        stream_name: The servers' ``stream_name``.
        stream_count: The servers' ``stream_count``.
        channel_prefix: The servers' ``channel_prefix``.
        max_len: ``MAXLEN ~`` of every XADD.
        only_plaintext: Always JSON in the entries.
        timeout: Seconds allowed to connect and for each reply.
        **redis_options: More options for ``coredis.Redis.from_url``.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        stream_name: str = "socket.io",
        stream_count: int = 1,
        channel_prefix: str = "socket.io",
        max_len: int = 10_000,
        only_plaintext: bool = False,
        timeout: float = 5.0,
        **redis_options: Any,
    ) -> None:
        wire = _streams_wire(stream_name, stream_count, channel_prefix, max_len, only_plaintext)
        super().__init__(url, wire, timeout, redis_options)


@final
class AsyncShardedEmitter(_AsyncEmitter):
    """:class:`ShardedEmitter` for async code, Trio or asyncio (coredis's cluster client).

    Open it with ``async with``::

        async with AsyncShardedEmitter("redis://10.0.0.1:7000") as emitter:
            await emitter.to("room1").emit("news", {"id": 1})

    Args:
        url: One node of the Redis Cluster.
        channel_prefix: The servers' ``channel_prefix``.
        subscription_mode: The servers' ``subscription_mode``.
        timeout: Seconds allowed to connect and for each reply.
        **redis_options: More options for ``coredis.RedisCluster.from_url``.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:7000",
        *,
        channel_prefix: str = "socket.io",
        subscription_mode: str = "dynamic",
        timeout: float = 5.0,
        **redis_options: Any,
    ) -> None:
        wire = _sharded_wire(channel_prefix, subscription_mode)
        super().__init__(url, wire, timeout, redis_options, cluster=True)
