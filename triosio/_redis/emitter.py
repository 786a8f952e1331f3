"""Emitting to a cluster from a process that is not a server (``@socket.io/redis-emitter`` 5.1).

What the emitter publishes (§4, §5.4, §5.3 of ``redis-wire.md``), exactly as the
JavaScript emitter writes it:

- ``emit``: MessagePack ``["emitter", {"type": 2, "data", "nsp"}, {"rooms",
  "flags", "except"}]`` on ``<key>#<nsp>#`` (+ ``<room>#`` for exactly one room);
- ``sockets_join``/``sockets_leave``/``disconnect_sockets``: JSON requests
  without ``uid`` or ``requestId`` on ``<key>-request#<nsp>#``;
- ``server_side_emit``: JSON ``{"uid": "emitter", "type": 6, "data"}`` there too.

The messages are built here, sans-I/O (:class:`Target`); two thin front ends
send them: :class:`Emitter` on :class:`SyncLink` (a blocking socket, for plain
code and threads) and :class:`AsyncEmitter` on coredis (AnyIO: Trio and asyncio).
``triosio.redis`` exports both.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, Self, final
from urllib.parse import unquote, urlsplit

import coredis

from .._cluster.channels import EMITTER_UID, Channels
from .._cluster.messages import RequestType
from .._cluster.values import pack, to_json
from .._proto.sio import check_event_name
from .bus import safe_url

#: A message to publish: (channel, payload).
Message = tuple[bytes, bytes]


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
    """Which sockets an operation reaches; builds the messages (sans-I/O)."""

    key: str = "socket.io"
    nsp: str = "/"
    rooms: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    volatile: bool = False
    compress: bool | None = None

    def of(self, nsp: str) -> Target:
        if not isinstance(nsp, str):
            raise TypeError(f"namespace names are strings, not {type(nsp).__name__}")
        if not nsp.startswith("/"):
            nsp = "/" + nsp
        return Target(self.key, nsp)

    def to(self, rooms: Iterable[str] | str) -> Target:
        return replace(self, rooms=_add(self.rooms, _rooms(rooms)))

    def except_(self, rooms: Iterable[str] | str) -> Target:
        return replace(self, exclude=_add(self.exclude, _rooms(rooms)))

    def _channels(self) -> Channels:
        return Channels.make(self.key, self.nsp, EMITTER_UID)

    def _opts(self) -> dict[str, Any]:
        return {"rooms": list(self.rooms), "except": list(self.exclude)}

    def emit(self, event: str, args: tuple[Any, ...]) -> Message:
        """The broadcast of ``event`` with ``args``."""
        check_event_name(event)
        flags: dict[str, Any] = {}
        if self.compress is not None:
            flags["compress"] = self.compress
        if self.volatile:
            flags["volatile"] = True
        packet = {"type": 2, "data": [event, *args], "nsp": self.nsp}
        opts = {"rooms": list(self.rooms), "flags": flags, "except": list(self.exclude)}
        return self._channels().for_rooms(self.rooms), pack([EMITTER_UID, packet, opts])

    def rooms_change(self, join: bool, rooms: Iterable[str] | str) -> Message:
        """REMOTE_JOIN or REMOTE_LEAVE of the targeted sockets."""
        kind = RequestType.REMOTE_JOIN if join else RequestType.REMOTE_LEAVE
        body = {"type": kind.value, "opts": self._opts(), "rooms": list(_rooms(rooms))}
        return self._channels().request, to_json(body)

    def disconnect(self, close: bool) -> Message:
        """REMOTE_DISCONNECT of the targeted sockets."""
        body = {
            "type": RequestType.REMOTE_DISCONNECT.value,
            "opts": self._opts(),
            "close": bool(close),
        }
        return self._channels().request, to_json(body)

    def server_side_emit(self, event: str, args: tuple[Any, ...]) -> Message:
        """SERVER_SIDE_EMIT to every server of the namespace (no acknowledgements)."""
        check_event_name(event)
        body = {"uid": EMITTER_UID, "type": RequestType.SERVER_SIDE_EMIT.value}
        body["data"] = [event, *args]
        return self._channels().request, to_json(body)


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

    Speaks just enough RESP for ``AUTH`` and ``PUBLISH``: plain code needs
    no event loop to emit.
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
        return bytes(line[1:-2])

    def publish(self, messages: list[Message]) -> None:
        """Publish in order; one retry on a fresh connection if the old one was dead."""
        payload = b"".join(_command(b"PUBLISH", ch, body) for ch, body in messages)
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


class _Targeting:
    """What both emitters share: choosing the sockets (returns new emitters)."""

    _target: Target

    def _derive(self, target: Target) -> Self:
        raise NotImplementedError

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
        return self._derive(replace(self._target, volatile=True))

    def compress(self, compress: bool) -> Self:
        """Set the ``compress`` flag of the emitted packets."""
        return self._derive(replace(self._target, compress=bool(compress)))


@final
class Emitter(_Targeting):
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
        _link: SyncLink | None = None,
        _target: Target | None = None,
    ) -> None:
        self.url = url
        self._link = _link if _link is not None else SyncLink(url, timeout)
        self._target = _target if _target is not None else Target(key_prefix)

    def _derive(self, target: Target) -> Self:
        return type(self)(self.url, _link=self._link, _target=target)

    def emit(self, event: str, *args: Any) -> None:
        """Emit ``event`` with ``args`` to the targeted clients on every server.

        Raises:
            triosio.LocalProtocolError: A reserved event name, or arguments
                MessagePack cannot carry.
            OSError: Redis cannot be reached.
        """
        self._link.publish([self._target.emit(event, args)])

    def sockets_join(self, rooms: Iterable[str] | str) -> None:
        """Make the targeted sockets, on every server, join ``rooms``."""
        self._link.publish([self._target.rooms_change(True, rooms)])

    def sockets_leave(self, rooms: Iterable[str] | str) -> None:
        """Make the targeted sockets, on every server, leave ``rooms``."""
        self._link.publish([self._target.rooms_change(False, rooms)])

    def disconnect_sockets(self, close: bool = False) -> None:
        """Disconnect the targeted sockets; ``close`` closes their connections too."""
        self._link.publish([self._target.disconnect(close)])

    def server_side_emit(self, event: str, *args: Any) -> None:
        """Emit ``event`` to the servers themselves (their ``on`` handlers; no acks)."""
        self._link.publish([self._target.server_side_emit(event, args)])

    def close(self) -> None:
        """Close the connection (it opens again if the emitter is used again)."""
        self._link.close()

    def __enter__(self) -> Emitter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        t = self._target
        return f"<Emitter {safe_url(self.url)} key={t.key!r} nsp={t.nsp!r} rooms={list(t.rooms)}>"


class _AsyncLink:
    # One coredis client (AnyIO: Trio or asyncio), open between __aenter__/__aexit__.
    def __init__(self, url: str, timeout: float, options: dict[str, Any]) -> None:
        self.url = url
        self.options = {
            "decode_responses": False,
            "connect_timeout": timeout,
            "stream_timeout": timeout,
            **options,
        }
        self.client: Any = None

    async def publish(self, channel: bytes, payload: bytes) -> None:
        if self.client is None:
            raise RuntimeError("use the AsyncEmitter as `async with AsyncEmitter(...) as e:`")
        await self.client.publish(channel, payload)


@final
class AsyncEmitter(_Targeting):
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
        _link: _AsyncLink | None = None,
        _target: Target | None = None,
        **redis_options: Any,
    ) -> None:
        self.url = url
        self._link = _link if _link is not None else _AsyncLink(url, timeout, redis_options)
        self._target = _target if _target is not None else Target(key_prefix)

    def _derive(self, target: Target) -> Self:
        return type(self)(self.url, _link=self._link, _target=target)

    async def __aenter__(self) -> AsyncEmitter:
        client = coredis.Redis.from_url(self.url, **self._link.options)
        await client.__aenter__()
        self._link.client = client
        return self

    async def __aexit__(self, *exc: object) -> None:
        client, self._link.client = self._link.client, None
        if client is not None:
            await client.__aexit__(None, None, None)

    async def emit(self, event: str, *args: Any) -> None:
        """Emit ``event`` with ``args`` to the targeted clients on every server."""
        await self._link.publish(*self._target.emit(event, args))

    async def sockets_join(self, rooms: Iterable[str] | str) -> None:
        """Make the targeted sockets, on every server, join ``rooms``."""
        await self._link.publish(*self._target.rooms_change(True, rooms))

    async def sockets_leave(self, rooms: Iterable[str] | str) -> None:
        """Make the targeted sockets, on every server, leave ``rooms``."""
        await self._link.publish(*self._target.rooms_change(False, rooms))

    async def disconnect_sockets(self, close: bool = False) -> None:
        """Disconnect the targeted sockets; ``close`` closes their connections too."""
        await self._link.publish(*self._target.disconnect(close))

    async def server_side_emit(self, event: str, *args: Any) -> None:
        """Emit ``event`` to the servers themselves (their ``on`` handlers; no acks)."""
        await self._link.publish(*self._target.server_side_emit(event, args))

    def __repr__(self) -> str:
        t = self._target
        return (
            f"<AsyncEmitter {safe_url(self.url)} key={t.key!r} nsp={t.nsp!r} rooms={list(t.rooms)}>"
        )
