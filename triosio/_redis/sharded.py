"""Redis 7 sharded pub/sub (SPUBLISH, SSUBSCRIBE; Redis Cluster) as a ClusterAdapter transport.

What ``createShardedAdapter`` of ``@socket.io/redis-adapter`` 8.3 does, on its
wire (socket.io-adapter's ``ClusterAdapter`` messages, :mod:`.._cluster.ca_messages`):

- every message of namespace ``nsp`` goes to the shard channel
  ``<prefix>#<nsp>#``; answers to a requester go to ``<prefix>#<nsp>#<uid>#``;
- in the "dynamic" subscription modes, a broadcast to exactly one room without
  acknowledgements goes to ``<prefix>#<nsp>#<room>#`` instead, and each server
  subscribes to the channels of the rooms it has ("dynamic": public rooms
  only, a room of 20 characters counting as a socket's own; "dynamic-private":
  every room). A room's channel lives on one shard, so broadcasts to busy
  rooms spread over the cluster;
- JSON (``{`` at byte 0), except messages that may hold binary and do
  (broadcasts, acks, fetch answers, server-side emits): MessagePack;
- the server count is ``PUBSUB SHARDNUMSUB <prefix>#<nsp>#``.

One writer task publishes everything in order, pipelined: each message is
queued on a connection to the node of its channel's slot (coredis's map of
slots), all nodes at once, and the replies are read in order; ``MOVED`` and
``ASK`` are asked again through coredis's cluster client, which follows them.
The sharded subscriber reconnects with backoff and subscribes again when a node
restarts or a replica takes over.
Like pub/sub, it is at-most-once: messages published while a shard is away
are lost (and logged once).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, final

import coredis
import coredis.exceptions
import trio
from coredis._utils import hash_slot

from .._cluster.ca_messages import MessageType
from .._cluster.ca_node import ClusterAdapterNode, Receive
from .._cluster.values import jsonable, load_message, pack, to_json, unpack
from .._common.sync import Mailbox
from .._errors import LocalProtocolError
from .._proto.backoff import Backoff
from .._server.cluster import ClusterPort
from .bus import _CHUNK, _describe, _link_error, safe_url

log = logging.getLogger("triosio.redis")

#: Subscription modes of ``createShardedAdapter``.
MODES = ("static", "dynamic", "dynamic-private")

_MAY_HOLD_BINARY = frozenset(
    {
        MessageType.BROADCAST,
        MessageType.BROADCAST_ACK,
        MessageType.FETCH_SOCKETS_RESPONSE,
        MessageType.SERVER_SIDE_EMIT,
        MessageType.SERVER_SIDE_EMIT_RESPONSE,
    }
)


def _has_binary(value: Any) -> bool:
    if isinstance(value, bytes | bytearray | memoryview):
        return True
    if isinstance(value, list | tuple):
        return any(_has_binary(v) for v in value)
    if isinstance(value, dict):
        return any(_has_binary(v) for v in value.values())
    return False


def encode(message: Mapping[str, Any]) -> bytes:
    """As the sharded adapter encodes: MessagePack only when binary is inside."""
    if message.get("type") in _MAY_HOLD_BINARY and _has_binary(message.get("data")):
        try:
            return pack(message)
        except LocalProtocolError:
            return pack(jsonable(message))
    return to_json(message)


def decode(payload: bytes) -> object:
    """JSON if it starts with ``{``, else MessagePack (raises WireError)."""
    if payload[:1] == b"{":
        return load_message(payload)
    return unpack(payload)


def looks_like_a_socket_id(room: str) -> bool:
    """The reference's test of a private room: 20 characters."""
    return len(room) == 20


def has_own_channel(mode: str, room: str) -> bool:
    """Whether ``room``'s single-room broadcasts have a channel of their own in ``mode``."""
    return mode == "dynamic-private" or (mode == "dynamic" and not looks_like_a_socket_id(room))


def channel_for(prefix: str, mode: str, message: Mapping[str, Any]) -> bytes:
    """The shard channel a message goes to (for servers and emitters alike).

    ``<prefix>#<nsp>#<room>#`` for a broadcast to exactly one room with a
    channel of its own (no acks), ``<prefix>#<nsp>#`` for everything else.
    """
    nsp = str(message.get("nsp", "/"))
    data = message.get("data")
    if (
        mode != "static"
        and message.get("type") == MessageType.BROADCAST
        and isinstance(data, dict)
        and "requestId" not in data
    ):
        rooms = data.get("opts", {}).get("rooms", [])
        if len(rooms) == 1 and has_own_channel(mode, rooms[0]):
            return f"{prefix}#{nsp}#{rooms[0]}#".encode()
    return f"{prefix}#{nsp}#".encode()


@final
class ShardedTransport:
    """The sharded adapter's transport (a :class:`~triosio._cluster.ca_node.Transport`).

    Args:
        url: A Redis Cluster node's URL (the others are discovered).
        channel_prefix: ``channelPrefix``.
        mode: ``subscriptionMode``: "static", "dynamic" or "dynamic-private".
        requests_timeout: Seconds allowed for ``SHARDNUMSUB``.
        max_queued: Messages waiting to be published before publishers wait.
        reconnect: The first and the longest delay between reconnections.
        connect_timeout: Seconds allowed to open a connection.
        redis_options: More options for ``coredis.RedisCluster.from_url``.
    """

    def __init__(
        self,
        url: str,
        *,
        channel_prefix: str,
        mode: str,
        requests_timeout: float,
        max_queued: int,
        reconnect: tuple[float, float],
        connect_timeout: float,
        redis_options: Mapping[str, Any],
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"subscription_mode must be one of {MODES}, not {mode!r}")
        self._url = url
        self._prefix = channel_prefix
        self.mode = mode
        self._requests_timeout = requests_timeout
        self._reconnect = reconnect
        self._options = {
            "decode_responses": False,
            "connect_timeout": connect_timeout,
            "stream_timeout": max(requests_timeout, 10.0),
            **redis_options,
        }
        self._outbox: Mailbox[tuple[bytes, bytes]] = Mailbox(max_queued)
        self._channels: set[bytes] = set()  # every channel to be subscribed to
        self._changes: Mailbox[tuple[bool, bytes]] = Mailbox(1 << 20)
        self._client: Any = None
        self._tasks = trio.CancelScope()
        self._stopping = False
        self.port: ClusterPort | None = None  # see bind()
        self._namespaces: list[str] = []
        self._warned = False
        self.dropped = 0

    # ------------------------------------------------------------ channels

    def _main(self, nsp: str) -> bytes:
        return f"{self._prefix}#{nsp}#".encode()

    def _room_channel(self, nsp: str, room: str) -> bytes:
        return f"{self._prefix}#{nsp}#{room}#".encode()

    def separate_channel(self, room: str) -> bool:
        """Whether ``room``'s single-room broadcasts have a channel of their own."""
        return has_own_channel(self.mode, room)

    def _want(self, channel: bytes) -> None:
        if channel not in self._channels:
            self._channels.add(channel)
            self._changes.put_nowait((True, channel))

    def add_namespace(self, nsp: str, uid: str) -> None:
        """Receive ``nsp``'s messages and the answers to ``uid``. Never waits."""
        self._want(self._main(nsp))
        self._want(f"{self._prefix}#{nsp}#{uid}#".encode())
        self._namespaces.append(nsp)
        if self.port is not None:
            self._watch(nsp)

    def bind(self, port: ClusterPort) -> None:
        """Follow the rooms of the server's namespaces (the dynamic modes subscribe to them)."""
        self.port = port
        for nsp in self._namespaces:
            self._watch(nsp)

    def _watch(self, nsp: str) -> None:
        if self.mode == "static" or self.port is None:
            return
        rooms = self.port.watch_rooms(
            nsp,
            lambda room: self.room_created(nsp, room),
            lambda room: self.room_deleted(nsp, room),
        )
        for room in rooms:
            self.room_created(nsp, room)

    def room_created(self, nsp: str, room: str) -> None:
        """A room appeared on this server: subscribe to its channel (dynamic modes)."""
        if self.mode != "static" and self.separate_channel(room):
            self._want(self._room_channel(nsp, room))

    def room_deleted(self, nsp: str, room: str) -> None:
        """A room is gone from this server: unsubscribe from its channel."""
        channel = self._room_channel(nsp, room)
        if channel in self._channels:
            self._channels.discard(channel)
            self._changes.put_nowait((False, channel))

    # ------------------------------------------------------------ running

    async def run(
        self, receive: Receive, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Connect, subscribe, pass every message to ``receive``, until cancelled."""
        # As in RedisBus.run: on cancellation coredis must see its subscriber
        # closed before its connections, so our tasks end first (in
        # `self._tasks`) while the client lives on in a shielded scope, bounded
        # in time.
        closing = trio.CancelScope(shield=True)
        self._stopping = False
        async with trio.open_nursery() as guard:
            await guard.start(self._serve, receive, closing)
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                self._stopping = True
                self._tasks.cancel()
                closing.deadline = trio.current_time() + 3.0

    async def _serve(
        self,
        receive: Receive,
        closing: trio.CancelScope,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        backoff = Backoff(*self._reconnect, jitter=0.5)
        started = False
        with closing:
            while not self._stopping:
                with warnings.catch_warnings():
                    # coredis 6.9's RedisCluster.from_url hands its pool the
                    # startup node as a dict, which that pool then calls deprecated.
                    warnings.filterwarnings("ignore", "Use coredis.connection.TCPLocation")
                    client = coredis.RedisCluster.from_url(self._url, **self._options)
                try:
                    # Opening it reads the cluster's slots: no node answering
                    # means no client yet; the server goes on alone meanwhile.
                    async with client:
                        self._client = client
                        backoff.reset()
                        try:
                            with self._new_tasks():
                                async with trio.open_nursery() as nursery:
                                    nursery.start_soon(self._writer)
                                    await nursery.start(self._subscriber, client, receive)
                                    started = True
                                    task_status.started()
                        finally:
                            self._client = None
                except Exception as exc:
                    if not _link_error(exc) and not isinstance(
                        exc, coredis.exceptions.RedisClusterError
                    ):
                        raise
                    self._fail(exc)
                finally:
                    # coredis 6.9's cluster client never closes its layout's
                    # error stream (a ResourceWarning later, in the collector).
                    layout = getattr(client.connection_pool, "cluster_layout", None)
                    for stream in getattr(layout, "_error_stream", ()):
                        stream.close()
                if not started:
                    started = True
                    task_status.started()
                with self._new_tasks():
                    await trio.sleep(backoff.duration())

    def _new_tasks(self) -> trio.CancelScope:
        # What run() cancels when it ends: the current attempt, or the wait.
        self._tasks = trio.CancelScope()
        if self._stopping:
            self._tasks.cancel()
        return self._tasks

    async def _subscriber(
        self,
        client: Any,
        receive: Receive,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        backoff = Backoff(*self._reconnect, jitter=0.5)
        started = False
        while True:
            try:
                async with client.sharded_pubsub(ignore_subscribe_messages=True) as pubsub:
                    # Everything wanted so far, then the changes as they come.
                    self._changes.take_all()
                    if self._channels:
                        await pubsub.subscribe(*sorted(self._channels))
                    self._ok()
                    backoff.reset()
                    if not started:
                        started = True
                        task_status.started()
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._apply_changes, pubsub)
                        while True:
                            message = await pubsub.get_message()
                            if message is not None:
                                await self._on_message(message, receive)
            except Exception as exc:
                if not _link_error(exc):
                    log.error("the sharded subscriber failed; reconnecting", exc_info=exc)
                self._fail(exc)
            if not started:
                started = True
                task_status.started()
            await trio.sleep(backoff.duration())

    async def _apply_changes(self, pubsub: Any) -> None:
        while True:
            for subscribe, channel in await self._changes.get_batch():
                if subscribe:
                    await pubsub.subscribe(channel)
                else:
                    await pubsub.unsubscribe(channel)

    @staticmethod
    async def _on_message(message: Mapping[str, Any], receive: Receive) -> None:
        channel, payload = message.get("channel"), message.get("data")
        if isinstance(channel, bytes) and isinstance(payload, bytes) and payload:
            await receive(channel, lambda: decode(payload), None)

    def _fail(self, exc: BaseException) -> None:
        if not self._warned:
            self._warned = True
            log.warning(
                "Redis Cluster at %s is unreachable (%s): messages to and from the other "
                "servers are dropped until it is back; this server's own clients are "
                "served as usual. Reconnecting with backoff.",
                safe_url(self._url),
                _describe(exc),
            )

    def _ok(self) -> None:
        if self._warned:
            self._warned = False
            log.warning(
                "Redis Cluster at %s is back: subscribed again; %d cluster messages were "
                "dropped meanwhile.",
                safe_url(self._url),
                self.dropped,
            )
            self.dropped = 0

    # ------------------------------------------------------------ publishing

    def _channel_of(self, message: Mapping[str, Any]) -> bytes:
        return channel_for(self._prefix, self.mode, message)

    async def publish(self, message: dict[str, Any]) -> None:
        """Queue ``message`` for the writer; waits only while the queue is full."""
        await self._outbox.put((self._channel_of(message), encode(message)))

    def publish_nowait(self, message: dict[str, Any]) -> None:
        """Queue ``message`` whatever the queue holds."""
        self._outbox.put_nowait((self._channel_of(message), encode(message)))

    def publish_response(self, requester: str, message: dict[str, Any]) -> None:
        """Queue an answer for the server ``requester`` (on its own channel)."""
        channel = self._room_channel(str(message.get("nsp", "/")), requester)
        self._outbox.put_nowait((channel, encode(message)))

    async def _writer(self) -> None:
        # The only task that publishes: other servers see what we publish to a
        # channel in the order we queued it.
        while True:
            batch = await self._outbox.get_batch()
            for start in range(0, len(batch), _CHUNK):
                chunk = [batch[i] for i in range(start, min(start + _CHUNK, len(batch)))]
                await self._publish_chunk(chunk)

    async def _publish_chunk(self, chunk: list[tuple[bytes, bytes]]) -> None:
        """SPUBLISH every message of ``chunk``: one round trip per node, not per message.

        Every message is queued on a connection to the node serving its
        channel's slot (all nodes' requests in flight at once, each
        connection's replies read in order), then the replies are awaited in
        order. A channel lives on one slot, so its messages keep their order on
        one connection. ``MOVED`` / ``ASK`` (a resharding, a failover the layout
        has not caught up with) are asked again one by one, in order, through
        the cluster client, which follows them and updates its map of slots. A
        node out of reach costs the messages for it (at most once); its errors
        go to the layout, which reads the cluster's slots again (a promoted
        replica).
        """
        client = self._client
        pool = client.connection_pool
        layout = pool.cluster_layout
        by_node: dict[Any, list[int]] = {}
        for index, (channel, _) in enumerate(chunk):
            node = layout.node_for_slot(hash_slot(channel))
            by_node.setdefault(node, []).append(index)
        requests: list[tuple[Any, Any] | None] = [None] * len(chunk)
        failed: list[tuple[Any, BaseException]] = []
        for node, indices in by_node.items():
            try:
                async with pool.acquire(node=node) as connection:
                    for index in indices:
                        channel, payload = chunk[index]
                        requests[index] = (
                            node,
                            connection.create_request(b"SPUBLISH", channel, payload),
                        )
            except Exception as exc:
                if not _link_error(exc):
                    raise
                failed.append((node, exc))
                self.dropped += len(indices)
        again: list[int] = []
        for index, sent in enumerate(requests):
            if sent is None:
                continue
            try:
                await sent[1]
            except (coredis.exceptions.MovedError, coredis.exceptions.AskError):
                again.append(index)
            except Exception as exc:
                if _link_error(exc):
                    failed.append((sent[0], exc))
                    self.dropped += 1
                else:
                    log.warning("Redis refused a publish: %s", _describe(exc))
        for index in again:
            channel, payload = chunk[index]
            try:
                await client.spublish(channel, payload)
            except Exception as exc:
                if not _link_error(exc):
                    log.warning("Redis refused a publish: %s", _describe(exc))
                    continue
                failed.append((None, exc))
                self.dropped += 1
        if failed:
            for node, error in failed[:2]:
                # Two errors make coredis's layout monitor read the slots again.
                layout.report_errors(node, error)
            self._fail(failed[0][1])

    async def server_count(self, nsp: str) -> int:
        """``PUBSUB SHARDNUMSUB`` of the namespace's channel; 1 when out of reach."""
        if self._client is None:
            return 1
        channel = self._main(nsp)
        try:
            with trio.fail_after(self._requests_timeout):
                reply = await self._client.pubsub_shardnumsub(channel)
            return max(int(reply.get(channel, 0)), 1)
        except Exception as exc:
            if not _link_error(exc) and not isinstance(exc, trio.TooSlowError):
                raise
            log.debug("PUBSUB SHARDNUMSUB failed: %s", _describe(exc))
            return 1


if TYPE_CHECKING:
    from .._cluster.ca_node import Transport

    def _conforms(transport: ShardedTransport) -> Transport:
        return transport


@final
class ShardedRedisAdapter(ClusterAdapterNode):
    """Connects a :class:`triosio.Server` to a cluster through Redis 7 sharded pub/sub.

    Speaks the wire format of ``createShardedAdapter`` of the JavaScript
    ``@socket.io/redis-adapter`` 8.3.0, so Node.js servers using it are peers
    (with the same ``channel_prefix`` and ``subscription_mode``). Made for Redis
    Cluster, where plain pub/sub sends every message to every node: a shard
    channel lives on one node. Needs a Redis 7 Cluster (for one Redis, use
    :class:`RedisAdapter`). At most once, as pub/sub: what is published while
    a shard is away is lost, and the adapter reconnects and goes on.

    Args:
        url: The URL of one node of the Redis Cluster (the others are
            discovered): ``redis://[[user]:password@]host:port``.
        channel_prefix: ``channelPrefix``; the same on every server.
        subscription_mode: ``subscriptionMode``: "static" (two channels per
            namespace), "dynamic" (the default: also a channel per public room,
            for single-room broadcasts) or "dynamic-private" (a channel per
            room, sockets' own rooms included).
        requests_timeout: Seconds to wait for the other servers' answers to
            ``fetch_sockets`` and ``server_side_emit_with_ack``.
        max_queued: Messages waiting to be published before emitting tasks wait.
        reconnect_delay: First delay before reconnecting, in seconds.
        reconnect_delay_max: Longest delay between reconnection attempts.
        connect_timeout: Seconds allowed to open a connection.
        **redis_options: More options for ``coredis.RedisCluster.from_url``.

    Raises:
        ValueError: An unknown ``subscription_mode``.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:7000",
        *,
        channel_prefix: str = "socket.io",
        subscription_mode: str = "dynamic",
        requests_timeout: float = 5.0,
        max_queued: int = 10_000,
        reconnect_delay: float = 0.2,
        reconnect_delay_max: float = 5.0,
        connect_timeout: float = 5.0,
        **redis_options: Any,
    ) -> None:
        transport = ShardedTransport(
            url,
            channel_prefix=channel_prefix,
            mode=subscription_mode,
            requests_timeout=requests_timeout,
            max_queued=max_queued,
            reconnect=(reconnect_delay, reconnect_delay_max),
            connect_timeout=connect_timeout,
            redis_options=redis_options,
        )
        super().__init__(transport, requests_timeout=requests_timeout)
        self._sharded = transport
        self.url = url
        self.channel_prefix = channel_prefix
        self.subscription_mode = subscription_mode

    async def run(
        self, port: ClusterPort, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Connect, then serve the other servers until cancelled (``Server.run`` starts this)."""
        self._sharded.bind(port)
        await super().run(port, task_status=task_status)

    def __repr__(self) -> str:
        return (
            f"<ShardedRedisAdapter {safe_url(self.url)} prefix={self.channel_prefix!r}"
            f" mode={self.subscription_mode!r}>"
        )
