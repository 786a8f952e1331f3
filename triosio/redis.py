"""The Redis adapter: several triosio (and Node.js) servers as one Socket.IO cluster.

Wire-compatible with the JavaScript ``@socket.io/redis-adapter`` 8.3.0 and
``@socket.io/redis-emitter`` 5.1.0 (:class:`RedisAdapter`, pub/sub), and with
``@socket.io/redis-streams-adapter`` 0.3.x (:class:`RedisStreamsAdapter`,
Redis Streams), so triosio and Node servers can share one Redis and reach each
other's clients. See ``docs/scaling.md`` for which to choose.

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

from collections.abc import Mapping
from typing import Any, final

from ._server.cluster import Deliver, SessionStore, SharedSession

try:
    from ._cluster.ca_messages import broadcast as _broadcast_message
    from ._cluster.ca_node import ClusterAdapterNode
    from ._cluster.node import ClusterNode
    from ._redis import sessions as _sessions
    from ._redis.bus import RedisBus, safe_url
    from ._redis.emitter import (
        AsyncEmitter,
        AsyncShardedEmitter,
        AsyncStreamsEmitter,
        Emitter,
        ShardedEmitter,
        StreamsEmitter,
    )
    from ._redis.sharded import ShardedRedisAdapter
    from ._redis.stream_entries import stream_for as _stream_for
    from ._redis.streams import RedisStreamsTransport
except ModuleNotFoundError as exc:  # pragma: no cover - exercised only without the extra
    if exc.name not in ("anyio", "coredis", "msgpack"):
        raise
    raise ImportError(
        "triosio.redis needs the 'redis' extra: pip install 'triosio[redis]'"
    ) from exc

__all__ = [
    "AsyncEmitter",
    "AsyncShardedEmitter",
    "AsyncStreamsEmitter",
    "Emitter",
    "RedisAdapter",
    "RedisStreamsAdapter",
    "ShardedEmitter",
    "ShardedRedisAdapter",
    "StreamsEmitter",
]


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


@final
class RedisStreamsAdapter(ClusterAdapterNode):
    """Connects a :class:`triosio.Server` to the other servers of a cluster through Redis Streams.

    Speaks the wire format of the JavaScript ``@socket.io/redis-streams-adapter``
    0.3.x, so Node.js servers using it are peers. Broadcasts, joins, leaves and
    disconnects go through a Redis stream, which every server reads from the
    last entry it read: a Redis restart (or a lost connection) loses none of
    what is in the stream, and delivers none twice. Requests that want
    answers (fetch_sockets, server-side emits, broadcasts with
    acknowledgements) go by pub/sub. Needs Redis 5 or later.

    Args:
        url: The Redis URL (``redis://[[user]:password@]host:port/db``,
            ``rediss://`` for TLS, ``unix://``).
        stream_name: The stream's name (the JavaScript ``streamName``); every
            server of a cluster must use the same.
        stream_count: Spread the namespaces over this many streams,
            ``<stream_name>-<i>`` (``streamCount``; 1: one stream, named
            ``stream_name``). The same on every server.
        channel_prefix: The prefix of the pub/sub channels (``channelPrefix``).
        max_len: Keep about this many entries per stream (``maxLen``, the
            ``MAXLEN ~`` of every XADD). A server that falls further behind
            misses the oldest; sessions older than that cannot be recovered.
        read_count: Entries read at once (``readCount``).
        block_time: Seconds one read waits for new entries (``blockTimeInMs``).
        only_plaintext: Write every entry as JSON, binary values as
            ``{"type": "Buffer", "data": [...]}`` (``onlyPlaintext``).
        requests_timeout: Seconds to wait for the other servers' answers to
            ``fetch_sockets`` and ``server_side_emit_with_ack`` (5 s, as the
            reference).
        max_queued: Messages waiting to be written before emitting tasks wait;
            while Redis is unreachable, broadcasts beyond it are dropped.
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
        stream_name: str = "socket.io",
        stream_count: int = 1,
        channel_prefix: str = "socket.io",
        max_len: int = 10_000,
        read_count: int = 100,
        block_time: float = 5.0,
        only_plaintext: bool = False,
        requests_timeout: float = 5.0,
        max_queued: int = 10_000,
        reconnect_delay: float = 0.2,
        reconnect_delay_max: float = 5.0,
        connect_timeout: float = 5.0,
        **redis_options: Any,
    ) -> None:
        transport = RedisStreamsTransport(
            url,
            stream_name=stream_name,
            stream_count=stream_count,
            channel_prefix=channel_prefix,
            max_len=max_len,
            read_count=read_count,
            block_ms=max(int(block_time * 1000), 1),
            only_plaintext=only_plaintext,
            requests_timeout=requests_timeout,
            max_queued=max_queued,
            reconnect=(reconnect_delay, reconnect_delay_max),
            connect_timeout=connect_timeout,
            redis_options=redis_options,
        )
        super().__init__(transport, requests_timeout=requests_timeout)
        self.url = url
        self.stream_name = stream_name
        self.stream_count = stream_count
        self._streams = transport

    # Connection state recovery across processes: the server's shared store
    # (``session_store``); sessions and offsets as Node's adapter keeps them
    # (see _redis/sessions.py and docs/architecture.md).

    @property
    def session_store(self) -> SessionStore:
        """What a server with connection state recovery keeps its sessions in.

        With it, offsets are the stream's entry ids, and a client that drops
        from one server (triosio or Node) is recovered by another.
        """
        return _StreamsStore(self)

    async def _persist_session(self, session: Mapping[str, Any], ttl_ms: int) -> None:
        """Keep a dropped socket's ``{sid, pid, rooms, data}`` in Redis for ``ttl_ms``.

        Written by the adapter's writer task, after the broadcasts queued before.
        """
        if self._streams.client is None:
            raise RuntimeError("the adapter is not running")
        key = _sessions.session_key(session["pid"])
        value = _sessions.encode_session(session)
        await self._streams.send_command(b"SET", key, value, b"PX", str(ttl_ms).encode())

    async def _restore_session(self, nsp: str, pid: str, offset: str) -> dict[str, Any] | None:
        """Take the session of ``pid`` back, with the broadcasts of ``nsp`` after ``offset``."""
        taken = await self._take_session(nsp, pid, offset)
        return None if taken is None else taken[0]

    async def _take_session(
        self, nsp: str, pid: str, offset: str
    ) -> tuple[dict[str, Any], str, str | None] | None:
        stream = _stream_for(nsp, self.stream_name, self.stream_count)
        taken = await self._streams.call(
            lambda client: _sessions.take_session(client, stream, nsp, pid, offset)
        )
        if taken is None:
            return None
        return taken[0], taken[1], self._streams.started_after.get(stream.encode())

    async def _publish_logged(
        self,
        nsp: str,
        data: list[Any],
        rooms: frozenset[str],
        exclude: frozenset[str],
        deliver: Deliver,
    ) -> None:
        uid = self._link(nsp).uid
        await self._streams.publish_logged(
            _broadcast_message(uid, nsp, data, rooms, exclude, False), deliver
        )

    def __repr__(self) -> str:
        return (
            f"<RedisStreamsAdapter {safe_url(self.url)} stream={self.stream_name!r}"
            f" count={self.stream_count}>"
        )


@final
class _StreamsStore:
    """:class:`RedisStreamsAdapter` as a server's shared session store."""

    __slots__ = ("_adapter",)

    def __init__(self, adapter: RedisStreamsAdapter) -> None:
        self._adapter = adapter

    async def persist_session(self, session: Mapping[str, Any], ttl_ms: int) -> None:
        await self._adapter._persist_session(session, ttl_ms)

    async def restore_session(self, nsp: str, pid: str, offset: str) -> SharedSession | None:
        taken = await self._adapter._take_session(nsp, pid, offset)
        if taken is None:
            return None
        session, upto, floor = taken
        return SharedSession(
            sid=session["sid"],
            pid=session["pid"],
            rooms=frozenset(session["rooms"]),
            data=session["data"],
            offset=offset,
            missed=[(str(p[-1]), p) for p in session["missedPackets"]],
            upto=upto,
            floor=floor,
        )

    async def publish_logged(
        self,
        nsp: str,
        data: list[Any],
        rooms: frozenset[str],
        exclude: frozenset[str],
        deliver: Deliver,
    ) -> None:
        await self._adapter._publish_logged(nsp, data, rooms, exclude, deliver)
