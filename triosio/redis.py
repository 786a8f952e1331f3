"""The Redis adapter: several triosio (and Node.js) servers as one Socket.IO cluster.

Wire-compatible with the JavaScript ``@socket.io/redis-adapter`` 8.3.0 and
``@socket.io/redis-emitter`` 5.1.0, so triosio and Node servers can share one
Redis and reach each other's clients. See ``docs/scaling.md``.

Needs the ``redis`` extra (``pip install 'triosio[redis]'``: coredis and msgpack)::

    from triosio.redis import RedisAdapter

    sio = triosio.Server(adapter=RedisAdapter("redis://127.0.0.1:6379/0"))

How it runs: two Redis connections, as in the reference: one publishes (every
message this server sends goes out through it, in order, from one writer
task), one is subscribed to each namespace's channels. The adapter's tasks
talk to the router only through its inbox and the public operators
(``nsp.local``...), never by touching its tables. A malformed message is
logged and dropped; if Redis goes away, local delivery goes on, one warning is
logged, cross-server messages are dropped meanwhile, and the adapter reconnects
with backoff and subscribes again.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, final
from urllib.parse import urlsplit

import trio

from ._cluster import messages, values
from ._cluster.channels import Channels, new_uid
from ._cluster.messages import Request, RequestType
from ._cluster.values import WireError
from ._common.handlers import call_handler
from ._common.sync import Mailbox
from ._errors import ClusterTimeout, LocalProtocolError
from ._proto.backoff import Backoff
from ._server.cluster import ClusterPort
from ._server.remote import ClusterAcks, ForwardedAck, first_ack_arg, socket_info

try:
    import anyio
    import coredis
    import coredis.exceptions
    from coredis.retry import NoRetryPolicy
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "triosio.redis needs the 'redis' extra: pip install 'triosio[redis]'"
    ) from exc

__all__ = ["RedisAdapter"]

log = logging.getLogger("triosio.redis")

#: Errors that mean "Redis is unreachable" rather than "this message is bad".
_LINK_ERRORS: tuple[type[BaseException], ...] = (
    coredis.exceptions.ConnectionError,
    coredis.exceptions.BusyLoadingError,  # a restarted Redis still loading its data
    TimeoutError,
    OSError,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
)

#: Publishes per pipeline round trip.
_CHUNK = 512


def _link_error(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return all(_link_error(e) for e in exc.exceptions)
    return isinstance(exc, _LINK_ERRORS)


def _describe(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if str(exc) else text


class _Pending:
    """A request of ours that waits for other servers' answers."""

    __slots__ = ("answers", "done", "expected", "items", "key")

    def __init__(self, expected: int, key: str | None) -> None:
        self.expected = expected
        self.key = key  # "sockets", "rooms", or None for server-side acks
        self.answers = 0
        self.items: list[Any] = []
        self.done = trio.Event()

    def answer(self, body: Mapping[Any, Any]) -> None:
        self.answers += 1
        if self.key is None:
            self.items.append(values.plain(body.get("data")))
        else:
            # As Node does: an answer without the list still counts.
            found = body.get(self.key)
            if isinstance(found, list):
                self.items.extend(found)
        if self.answers >= self.expected:
            self.done.set()


class _Namespace:
    """The adapter's state for one namespace: its uid, channels, requests in flight."""

    __slots__ = ("acks", "channels", "name", "pending")

    def __init__(self, key: str, name: str) -> None:
        self.name = name
        self.channels = Channels.make(key, name, new_uid())
        self.pending: dict[str, _Pending] = {}
        self.acks: dict[str, ClusterAcks] = {}


class _Health:
    """Whether Redis is reachable; one warning per outage, one line when it is back.

    The subscriber is the judge: it reconnects (with backoff) until Redis
    answers. The publisher reports failures too, and does not try while the
    subscriber is disconnected.
    """

    __slots__ = ("_url", "dropped", "pub_failed", "sub_ok", "warned")

    def __init__(self, url: str) -> None:
        self._url = url
        self.sub_ok = False
        self.pub_failed = False
        self.warned = False
        self.dropped = 0

    def fail(self, which: str, exc: BaseException) -> None:
        if which == "sub":
            self.sub_ok = False
        else:
            self.pub_failed = True
        if not self.warned:
            self.warned = True
            log.warning(
                "Redis at %s is unreachable (%s): messages to and from the other servers "
                "are dropped until it is back; this server's own clients are served as "
                "usual. Reconnecting with backoff.",
                self._url,
                _describe(exc),
            )

    def ok(self, which: str) -> None:
        if which == "sub":
            self.sub_ok = True
            self.pub_failed = False  # reachable again: let the publisher try at once
        else:
            self.pub_failed = False
        if self.warned and self.sub_ok and not self.pub_failed:
            self.warned = False
            log.warning(
                "Redis at %s is back: subscribed again; %d cluster messages were dropped "
                "while it was unreachable.",
                self._url,
                self.dropped,
            )
            self.dropped = 0


class _Malformed:
    """Logs dropped messages, at most one line a second (a flood must not flood the log)."""

    __slots__ = ("_last", "_suppressed")

    def __init__(self) -> None:
        self._last = -math.inf
        self._suppressed = 0

    def report(self, channel: bytes, why: str) -> None:
        now = trio.current_time()
        if now - self._last < 1.0:
            self._suppressed += 1
            return
        more = (
            f" ({self._suppressed} more dropped since the last report)" if self._suppressed else ""
        )
        log.warning(
            "dropped a malformed message on %s: %s%s",
            channel.decode("utf-8", "replace")[:200],
            why,
            more,
        )
        self._last = now
        self._suppressed = 0


@final
class RedisAdapter:
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
        if requests_timeout <= 0:
            raise ValueError("requests_timeout must be positive")
        self.url = url
        self.key_prefix = key_prefix
        self.requests_timeout = requests_timeout
        self.publish_on_specific_response_channel = publish_on_specific_response_channel
        self._redis_options = {
            "decode_responses": False,
            "connect_timeout": connect_timeout,
            "stream_timeout": max(requests_timeout, 10.0),
            "retry_policy": NoRetryPolicy(),
            **redis_options,
        }
        self._reconnect = (reconnect_delay, reconnect_delay_max)
        self._outbox: Mailbox[tuple[bytes, bytes]] = Mailbox(max_queued)
        self._namespaces: dict[str, _Namespace] = {}
        self._by_pattern: dict[bytes, _Namespace] = {}
        self._by_channel: dict[bytes, tuple[_Namespace, bool]] = {}
        self._health = _Health(_safe_url(url))
        self._malformed = _Malformed()
        self._server: ClusterPort | None = None
        self._pub: Any = None
        self._pubsub: Any = None
        self._nursery: trio.Nursery | None = None

    def __repr__(self) -> str:
        return f"<RedisAdapter {_safe_url(self.url)} key={self.key_prefix!r}>"

    # ------------------------------------------------------------ running

    async def run(
        self, server: ClusterPort, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Connect and subscribe; then serve until cancelled (``Server.run`` starts this).

        Reports started once subscribed, or once the first attempt failed (then
        it keeps trying in the background: the server serves its own clients).
        """
        if self._server is not None:
            raise RuntimeError("a RedisAdapter serves one server, once")
        self._server = server
        for name in server.namespace_names():
            self._add_namespace(name)
        # On cancellation, coredis must see its subscriber closed before its
        # connections (else its clean-up writes to a closed connection and
        # raises): our tasks end in `tasks` first, while the connections live
        # on in a shielded scope, bounded in time.
        tasks = trio.CancelScope()
        closing = trio.CancelScope(shield=True)
        async with trio.open_nursery() as guard:
            await guard.start(self._serve, tasks, closing)
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                tasks.cancel()
                closing.deadline = trio.current_time() + 3.0

    async def _serve(
        self,
        tasks: trio.CancelScope,
        closing: trio.CancelScope,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        pub = coredis.Redis.from_url(self.url, **self._redis_options)
        sub = coredis.Redis.from_url(self.url, **self._redis_options)
        with closing:
            async with pub, sub:
                self._pub = pub
                with tasks:
                    async with trio.open_nursery() as nursery:
                        self._nursery = nursery
                        nursery.start_soon(self._writer)
                        await nursery.start(self._subscriber, sub)
                        task_status.started()

    def namespace_created(self, name: str) -> None:
        """Subscribe to a namespace created after the start (the server calls this)."""
        link = self._add_namespace(name)
        if link is not None and self._nursery is not None and self._pubsub is not None:
            self._nursery.start_soon(self._subscribe_late, self._pubsub, link)

    def _add_namespace(self, name: str) -> _Namespace | None:
        if name in self._namespaces:
            return None
        link = self._namespaces[name] = _Namespace(self.key_prefix, name)
        channels = link.channels
        self._by_pattern[channels.pattern] = link
        self._by_channel[channels.request] = (link, True)
        self._by_channel[channels.response] = (link, False)
        self._by_channel[channels.specific_response] = (link, False)
        return link

    @property
    def uids(self) -> Mapping[str, str]:
        """This server's uid in each namespace (they appear in every message it sends)."""
        return {name: link.channels.uid for name, link in self._namespaces.items()}

    # ------------------------------------------------------------ subscriber

    async def _subscribe(self, pubsub: Any, link: _Namespace) -> None:
        # The order of the reference (§1): the pattern, then the three channels.
        channels = link.channels
        await pubsub.psubscribe(channels.pattern)
        await pubsub.subscribe(channels.request, channels.response, channels.specific_response)

    async def _subscribe_late(self, pubsub: Any, link: _Namespace) -> None:
        try:
            await self._subscribe(pubsub, link)
        except Exception as exc:
            # The connection broke meanwhile: the reconnection subscribes it.
            log.debug("subscribing to %s failed: %s", link.name, _describe(exc))

    async def _subscriber(
        self, client: Any, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        backoff = Backoff(*self._reconnect, jitter=0.5)
        started = False
        while True:
            try:
                if not self._health.sub_ok:
                    await self._probe()
                async with client.pubsub(
                    retry_policy=None,
                    ignore_subscribe_messages=True,
                    subscription_timeout=max(self.requests_timeout, 5.0),
                ) as pubsub:
                    # Set first: a namespace created meanwhile subscribes itself.
                    self._pubsub = pubsub
                    for link in list(self._namespaces.values()):
                        await self._subscribe(pubsub, link)
                    self._health.ok("sub")
                    backoff.reset()
                    if not started:
                        started = True
                        task_status.started()
                    while True:
                        message = await pubsub.get_message()
                        if message is not None:
                            await self._on_message(message)
            except Exception as exc:
                if not _link_error(exc) and not self._health.warned:
                    # Not a network fault (a refused password...): the details, once.
                    log.error("the Redis subscriber failed; reconnecting", exc_info=exc)
                self._health.fail("sub", exc)
                # A connection that is still subscribed must not go back to the
                # pool: a second one subscribed to the request channel would make
                # every peer wait for an answer too many (§6).
                client.connection_pool.disconnect()
            finally:
                self._pubsub = None
            if not started:
                started = True
                task_status.started()
            await trio.sleep(backoff.duration())

    async def _on_message(self, message: Mapping[str, Any]) -> None:
        channel = message.get("channel")
        payload = message.get("data")
        if not isinstance(channel, bytes) or not isinstance(payload, bytes):
            return
        try:
            if message.get("type") == "pmessage":
                link = self._by_pattern.get(message.get("pattern") or b"")
                if link is not None:
                    await self._on_broadcast(link, channel, payload)
                return
            found = self._by_channel.get(channel)
            if found is None:
                return
            link, is_request = found
            if is_request:
                await self._on_request(link, payload)
            else:
                self._on_response(link, payload)
        except WireError as exc:
            self._malformed.report(channel, str(exc))
        except Exception:
            # Never let one message stop the subscriber.
            log.exception("error handling a message on %s", channel.decode("utf-8", "replace"))

    # ------------------------------------------------------------ incoming

    async def _on_broadcast(self, link: _Namespace, channel: bytes, payload: bytes) -> None:
        room = link.channels.room_of(channel)
        if room is None:
            return
        server = self._server
        assert server is not None
        # As Node: a room this server does not have is skipped without decoding.
        if room and not server.has_room(link.name, room):
            return
        broadcast = messages.decode_broadcast(payload, link.name)
        if broadcast is None or broadcast.uid == link.channels.uid:
            return  # another namespace's, or our own echo
        try:
            await server.deliver(
                link.name,
                broadcast.data,
                broadcast.rooms,
                broadcast.exclude,
                broadcast.volatile,
                values.plain,
            )
        except LocalProtocolError as exc:
            raise WireError(f"cannot pass the broadcast on: {exc}") from None

    async def _on_request(self, link: _Namespace, payload: bytes) -> None:
        request = messages.parse_request(values.load_message(payload), link.name)
        if request is None:
            return
        kind = request.type
        own = link.channels.uid
        if kind in (RequestType.SOCKETS, RequestType.ALL_ROOMS, RequestType.REMOTE_FETCH):
            if request.request_id in link.pending:
                return  # our own request
            await self._answer_query(link, request)
        elif kind in (
            RequestType.REMOTE_JOIN,
            RequestType.REMOTE_LEAVE,
            RequestType.REMOTE_DISCONNECT,
        ):
            # Our own were applied here when sent (so that the caller sees them
            # done when it returns): the echo is skipped.
            if request.uid != own:
                await self._apply_remote(link, request)
        elif kind is RequestType.SERVER_SIDE_EMIT:
            if request.uid != own:
                self._server_side_event(link, request)
        elif (
            kind is RequestType.BROADCAST
            and request.request_id not in link.acks
            and request.uid != own
        ):
            await self._forward_broadcast(link, request)

    async def _answer_query(self, link: _Namespace, request: Request) -> None:
        server = self._server
        request_id = request.request_id
        assert request_id is not None and server is not None
        channel = link.channels.response_for(request.uid, self.publish_on_specific_response_channel)
        if request.type is RequestType.ALL_ROOMS:
            rooms = server.rooms(link.name)
            await self._publish(channel, messages.encode_rooms_response(request_id, rooms))
            return
        sockets = await server.sockets(link.name, request.rooms, request.exclude)
        if request.type is RequestType.SOCKETS:
            ids = [s.id for s in sockets]
            await self._publish(channel, messages.encode_sockets_response(request_id, ids))
        else:
            info = [socket_info(s) for s in sockets]
            await self._publish(channel, messages.encode_fetch_response(request_id, info))

    async def _apply_remote(self, link: _Namespace, request: Request) -> None:
        server = self._server
        assert server is not None and self._nursery is not None
        kind = request.type
        rooms, exclude = request.rooms, request.exclude
        if request.legacy:
            # One socket, by id: its own room selects it.
            sid = request.sid or ""
            if server.socket(link.name, sid) is None:
                return
            rooms, exclude = frozenset({sid}), frozenset()
        if kind is RequestType.REMOTE_JOIN or kind is RequestType.REMOTE_LEAVE:
            join = kind is RequestType.REMOTE_JOIN
            change = frozenset(request.change)
            await server.change_rooms(link.name, rooms, exclude, change, join)
        else:
            # It waits for every socket to be gone: not here, in the subscriber.
            self._nursery.start_soon(
                _quietly, server.disconnect, link.name, rooms, exclude, request.close
            )
        if request.legacy and request.request_id is not None:
            channel = link.channels.response_for(
                request.uid, self.publish_on_specific_response_channel
            )
            await self._publish(channel, messages.encode_done_response(request.request_id))

    def _server_side_event(self, link: _Namespace, request: Request) -> None:
        assert self._server is not None and self._nursery is not None
        event = request.data[0]
        handlers = self._server.server_side_handlers(link.name, event)
        if not handlers:
            return  # as in the reference: nobody listens, nobody answers
        args = values.plain(request.data[1:])
        self._nursery.start_soon(self._run_server_side, link, request, handlers, args)

    async def _run_server_side(
        self,
        link: _Namespace,
        request: Request,
        handlers: list[Callable[..., Any]],
        args: list[Any],
    ) -> None:
        event = request.data[0]
        answer: list[Any] = []
        for handler in handlers:
            try:
                value = await call_handler(handler, *args)
            except Exception:
                log.exception("error in server-side handler of %r in %s", event, link.name)
                continue
            if not answer:
                answer.append(value)
        if request.request_id is not None and answer:
            # Always the shared response channel (§5.3).
            ack = messages.encode_server_side_ack(request.request_id, first_ack_arg(answer[0]))
            await self._publish(link.channels.response, ack)

    async def _forward_broadcast(self, link: _Namespace, request: Request) -> None:
        request_id = request.request_id
        assert request_id is not None and self._server is not None
        channel = link.channels.response_for(request.uid, self.publish_on_specific_response_channel)

        def on_count(count: int) -> None:
            self._publish_nowait(channel, messages.encode_client_count(request_id, count))

        def on_ack(value: Any) -> None:
            self._publish_nowait(channel, messages.encode_broadcast_ack(request_id, value))

        try:
            ack = await self._server.deliver_with_ack(
                link.name,
                request.data,
                request.rooms,
                request.exclude,
                request.volatile,
                on_count,
                on_ack,
                values.plain,
            )
        except LocalProtocolError as exc:
            on_count(0)  # sent to nobody: the requester need not wait for us
            raise WireError(f"cannot pass the broadcast on: {exc}") from None
        assert self._nursery is not None
        # The requester forgets the request after its timeout (§5.5); so do we.
        wait = request.timeout if request.timeout is not None else self.requests_timeout
        self._nursery.start_soon(_forget_later, ack, wait)

    def _on_response(self, link: _Namespace, payload: bytes) -> None:
        response = messages.parse_response(values.load_message(payload))
        if response is None:
            return
        acks = link.acks.get(response.request_id)
        if acks is not None:
            if response.type == RequestType.BROADCAST_CLIENT_COUNT:
                count = response.body.get("clientCount")
                if isinstance(count, int) and not isinstance(count, bool):
                    acks.client_count(count)
            elif response.type == RequestType.BROADCAST_ACK:
                acks.ack(values.plain(response.body.get("packet")))
            return
        pending = link.pending.get(response.request_id)
        if pending is not None:
            pending.answer(response.body)
        # Otherwise an answer to another server's request: not ours to read.

    # ------------------------------------------------------------ outgoing

    async def _publish(self, channel: bytes, payload: bytes) -> None:
        await self._outbox.put((channel, payload))

    def _publish_nowait(self, channel: bytes, payload: bytes) -> None:
        self._outbox.put_nowait((channel, payload))

    async def _writer(self) -> None:
        backoff = Backoff(*self._reconnect, jitter=0.5)
        retry_at = -math.inf
        health = self._health
        while True:
            batch = await self._outbox.get_batch()
            if not health.sub_ok or (
                health.pub_failed
                and (trio.current_time() < retry_at or not await self._reachable())
            ):
                # Redis is away: the subscriber reconnects; nothing to try here.
                if health.pub_failed and trio.current_time() >= retry_at:
                    retry_at = trio.current_time() + backoff.duration()
                health.dropped += len(batch)
                continue
            for start in range(0, len(batch), _CHUNK):
                chunk = [batch[i] for i in range(start, min(start + _CHUNK, len(batch)))]
                try:
                    # Queued on one connection in order, then awaited before the
                    # next chunk: other servers see our messages in the order we
                    # sent them (§8.5). Connection-level requests cost half of what
                    # a pipeline does per round trip.
                    async with self._pub.connection_pool.acquire() as connection:
                        requests = [
                            connection.create_request(b"PUBLISH", channel, payload)
                            for channel, payload in chunk
                        ]
                    for request in requests:
                        await request
                except Exception as exc:
                    if _link_error(exc):
                        health.fail("pub", exc)
                        retry_at = trio.current_time() + backoff.duration()
                        health.dropped += len(batch) - start
                        break
                    log.warning("Redis refused a publish: %s", _describe(exc))
                else:
                    if health.pub_failed:
                        backoff.reset()
                        health.ok("pub")

    async def _reachable(self) -> bool:
        try:
            await self._probe()
        except OSError:
            return False
        return True

    async def _probe(self) -> None:
        # Whether Redis accepts connections at all, before coredis tries: a
        # connection that coredis fails to open leaves unclosed streams behind
        # (ResourceWarnings), one per attempt for as long as Redis is away.
        # Raises OSError when it does not.
        where = urlsplit(self.url)
        with trio.move_on_after(self._redis_options["connect_timeout"] or 5.0) as scope:
            if where.scheme == "unix":
                stream: trio.abc.Stream = await trio.open_unix_socket(where.path)
            else:
                stream = await trio.open_tcp_stream(
                    where.hostname or "127.0.0.1", where.port or 6379
                )
            await stream.aclose()
        if scope.cancelled_caught:
            raise OSError(f"no answer from {_safe_url(self.url)}")

    async def _numsub(self, link: _Namespace) -> int:
        # §6: how many servers (subscriber connections) serve the namespace.
        if not self._health.sub_ok:
            return 1  # Redis is out of reach: the other servers are too
        try:
            with trio.fail_after(self.requests_timeout):
                reply = await self._pub.pubsub_numsub(link.channels.request)
            count = reply.get(link.channels.request, 0)
            return int(count)
        except Exception as exc:
            if not _link_error(exc) and not isinstance(exc, trio.TooSlowError):
                raise
            # Redis is out of reach: the other servers are too.
            log.debug("PUBSUB NUMSUB failed: %s", _describe(exc))
            return 1

    def _link(self, nsp: str) -> _Namespace:
        link = self._namespaces.get(nsp)
        if link is None:
            link = self._add_namespace(nsp)
            assert link is not None
        return link

    # ------------------------------------------------------------ what the server calls

    async def publish_broadcast(
        self,
        nsp: str,
        data: list[Any],
        rooms: frozenset[str],
        exclude: frozenset[str],
        volatile: bool,
    ) -> None:
        """Send a broadcast to the other servers (§4): encoded once, here."""
        link = self._link(nsp)
        payload = messages.encode_broadcast(link.channels.uid, nsp, data, rooms, exclude, volatile)
        await self._outbox.put((link.channels.for_rooms(rooms), payload))

    def publish_rooms(
        self,
        nsp: str,
        rooms: frozenset[str],
        exclude: frozenset[str],
        change: frozenset[str],
        join: bool,
    ) -> None:
        """REMOTE_JOIN / REMOTE_LEAVE to the other servers (§5.4)."""
        link = self._link(nsp)
        payload = messages.encode_remote_rooms(link.channels.uid, join, rooms, exclude, change)
        self._publish_nowait(link.channels.request, payload)

    def publish_disconnect(
        self, nsp: str, rooms: frozenset[str], exclude: frozenset[str], close: bool
    ) -> None:
        """REMOTE_DISCONNECT to the other servers (§5.4)."""
        link = self._link(nsp)
        payload = messages.encode_remote_disconnect(link.channels.uid, rooms, exclude, close)
        self._publish_nowait(link.channels.request, payload)

    async def broadcast_with_ack(
        self,
        nsp: str,
        data: list[Any],
        rooms: frozenset[str],
        exclude: frozenset[str],
        volatile: bool,
        timeout: float,
    ) -> ClusterAcks:
        """A BROADCAST request (§5.5); the result collects the remote answers.

        The caller must call ``forget()`` on it when it stops waiting.
        """
        link = self._link(nsp)
        request_id = new_uid()

        def forget() -> None:
            link.acks.pop(request_id, None)

        acks = ClusterAcks(forget)
        timeout_ms = timeout * 1000
        payload = messages.encode_broadcast_request(
            link.channels.uid,
            request_id,
            nsp,
            data,
            rooms,
            exclude,
            int(timeout_ms) if timeout_ms == int(timeout_ms) else timeout_ms,
            volatile,
        )
        link.acks[request_id] = acks
        try:
            await self._publish(link.channels.request, payload)
            # After publishing, as the reference does (§5.5).
            acks.expect_servers(await self._numsub(link) - 1)
        except BaseException:
            acks.forget()
            raise
        return acks

    async def _ask(
        self,
        link: _Namespace,
        what: str,
        key: str | None,
        payload: Callable[[str], bytes],
        timeout: float,
    ) -> list[Any]:
        expected = await self._numsub(link) - 1
        if expected <= 0:
            return []
        request_id = new_uid()
        pending = link.pending[request_id] = _Pending(expected, key)
        try:
            await self._publish(link.channels.request, payload(request_id))
            with trio.move_on_after(timeout):
                await pending.done.wait()
        finally:
            del link.pending[request_id]
        if not pending.done.is_set():
            raise ClusterTimeout(what, pending.items, expected=expected, received=pending.answers)
        return pending.items

    async def fetch_sockets(
        self, nsp: str, rooms: frozenset[str], exclude: frozenset[str]
    ) -> list[Mapping[str, Any]]:
        """REMOTE_FETCH (§5.1): the other servers' sockets, as they describe them."""
        link = self._link(nsp)
        uid = link.channels.uid
        found = await self._ask(
            link,
            "fetch_sockets",
            "sockets",
            lambda rid: messages.encode_fetch(uid, rid, rooms, exclude),
            self.requests_timeout,
        )
        return [s for s in found if isinstance(s, dict)]

    async def all_rooms(self, nsp: str) -> set[str]:
        """ALL_ROOMS (§5.2): the rooms of the other servers."""
        link = self._link(nsp)
        uid = link.channels.uid
        found = await self._ask(
            link,
            "all_rooms",
            "rooms",
            lambda rid: messages.encode_all_rooms(uid, rid),
            self.requests_timeout,
        )
        rooms: set[str] = set()
        for room in found:
            try:
                rooms.add(values.js_string(room))
            except WireError:
                continue
        return rooms

    async def server_count(self, nsp: str) -> int:
        """``PUBSUB NUMSUB`` of the namespace's request channel (§6)."""
        return max(await self._numsub(self._link(nsp)), 1)

    async def server_side_emit(self, nsp: str, data: list[Any]) -> None:
        """SERVER_SIDE_EMIT without acknowledgement (§5.3)."""
        link = self._link(nsp)
        await self._publish(
            link.channels.request, messages.encode_server_side_emit(link.channels.uid, data)
        )

    async def server_side_emit_with_ack(
        self, nsp: str, data: list[Any], timeout: float | None
    ) -> list[Any]:
        """SERVER_SIDE_EMIT with a requestId: one answer per other server (§5.3)."""
        link = self._link(nsp)
        uid = link.channels.uid
        return await self._ask(
            link,
            "server_side_emit_with_ack",
            None,
            lambda rid: messages.encode_server_side_emit(uid, data, rid),
            self.requests_timeout if timeout is None else timeout,
        )


def _safe_url(url: str) -> str:
    # Never log a password.
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.rpartition("@")[2]
    return scheme + sep + rest


async def _quietly(fn: Callable[..., Any], *args: Any) -> None:
    try:
        await fn(*args)
    except Exception:
        log.exception("error applying a request from another server")


async def _forget_later(ack: ForwardedAck, seconds: float) -> None:
    await trio.sleep(seconds)
    ack.forget()


if TYPE_CHECKING:
    from ._server.cluster import Adapter

    def _conforms(adapter: RedisAdapter) -> Adapter:
        # mypy checks that RedisAdapter is what Server(adapter=...) expects.
        return adapter
