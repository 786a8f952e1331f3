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

from typing import Any, final

try:
    from ._cluster.node import ClusterNode
    from ._redis.bus import RedisBus, safe_url
    from ._redis.emitter import AsyncEmitter, Emitter
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
