"""The Redis adapter: several triosio (and Node.js) servers as one Socket.IO cluster.

Wire-compatible with the JavaScript ``@socket.io/redis-adapter`` 8.3.0 and
``@socket.io/redis-emitter`` 5.1.0, so triosio and Node servers can share one
Redis and reach each other's clients. See ``docs/scaling.md``.

Needs the ``redis`` extra (``pip install 'triosio[redis]'``: coredis, anyio
and msgpack)::

    from triosio.redis import RedisAdapter

    sio = triosio.Server(adapter=RedisAdapter("redis://127.0.0.1:6379/0"))

How it is built: the cluster protocol (what a server does with the others'
broadcasts, requests and responses, and how it asks its own) is
``triosio._cluster``'s, and reaches the server only through its
``ClusterPort``; this module wires it to Redis pub/sub (``triosio._redis.bus``:
two connections, one writer that publishes in order, one subscriber, and the
reconnection). A malformed message is logged and dropped; if Redis goes away,
local delivery goes on, one warning is logged, cross-server messages are
dropped meanwhile, and the adapter reconnects with backoff and subscribes again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any, Self, final

try:
    import coredis

    from ._cluster.node import ClusterNode
    from ._redis.bus import RedisBus, safe_url
    from ._redis.emitter import SyncLink, Target
except ModuleNotFoundError as exc:  # pragma: no cover - exercised only without the extra
    if exc.name not in ("anyio", "coredis", "msgpack"):
        raise
    raise ImportError(
        "triosio.redis needs the 'redis' extra: pip install 'triosio[redis]'"
    ) from exc

__all__ = ["AsyncEmitter", "Emitter", "RedisAdapter"]


@final
class RedisAdapter(ClusterNode):
    """Connects a :class:`triosio.Server` to the other servers of a cluster through Redis.

    Speaks the wire format of the JavaScript ``@socket.io/redis-adapter`` 8.3.0,
    so Node.js servers using it, and ``@socket.io/redis-emitter``, are peers.
    One adapter serves one server: pass it as ``Server(adapter=...)``.

    Args:
        url: The Redis URL (``redis://[[user]:password@]host:port/db``,
            ``rediss://`` for TLS, ``unix://``).
        key_prefix: The channel prefix (the JavaScript option ``key``); every
            server of a cluster must use the same.
        requests_timeout: Seconds to wait for the other servers' answers to
            ``fetch_sockets``, ``all_rooms`` and ``server_side_emit_with_ack``
            (the JavaScript ``requestsTimeout``, 5 s).
        publish_on_specific_response_channel: Answer each request on the
            requester's own response channel (the JavaScript option of that name).
        max_queued: Messages waiting to be published before emitting tasks wait.
        reconnect_delay: First delay before reconnecting, in seconds.
        reconnect_delay_max: Longest delay between reconnection attempts.
        connect_timeout: Seconds allowed to open a Redis connection.
        **redis_options: More options for ``coredis.Redis.from_url``
            (``password``, ``ssl_context``...).
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        key_prefix: str = "socket.io",
        requests_timeout: float = 5.0,
        publish_on_specific_response_channel: bool = False,
        max_queued: int = 10_000,
        reconnect_delay: float = 0.2,
        reconnect_delay_max: float = 5.0,
        connect_timeout: float = 5.0,
        **redis_options: Any,
    ) -> None:
        bus = RedisBus(
            url,
            requests_timeout=requests_timeout,
            max_queued=max_queued,
            reconnect=(reconnect_delay, reconnect_delay_max),
            connect_timeout=connect_timeout,
            redis_options=redis_options,
        )
        super().__init__(
            bus,
            key_prefix=key_prefix,
            requests_timeout=requests_timeout,
            publish_on_specific_response_channel=publish_on_specific_response_channel,
        )
        self.url = url

    def __repr__(self) -> str:
        return f"<RedisAdapter {safe_url(self.url)} key={self.key_prefix!r}>"


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
