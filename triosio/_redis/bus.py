"""Redis pub/sub as the cluster's bus.

Two Redis connections, as in the reference (§1, §8 of ``redis-wire.md``): one
publishes (every message this server sends goes out through it, in order,
from one writer task), one is subscribed to each namespace's channels and
patterns. If Redis goes away, one warning is logged, messages are dropped
meanwhile (and counted), and the bus reconnects with backoff and subscribes
again.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, final
from urllib.parse import urlsplit

import anyio
import coredis
import coredis.exceptions
import trio
from coredis.retry import NoRetryPolicy

from .._cluster.bus import Receiver
from .._common.sync import Mailbox
from .._proto.backoff import Backoff

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


def safe_url(url: str) -> str:
    """``url`` without its password, for logs and reprs."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.rpartition("@")[2]
    return scheme + sep + rest


class _Health:
    """Whether Redis is reachable; one warning per outage, one line when it is back.

    The subscriber is the judge: it reconnects (with backoff) until Redis
    answers. The publisher reports failures too, and does not try while the
    subscriber is disconnected.
    """

    __slots__ = ("_url", "dropped", "outage", "pub_failed", "sub_ok", "warned")

    def __init__(self, url: str) -> None:
        self._url = url
        self.sub_ok = False
        self.pub_failed = False
        self.warned = False
        self.dropped = 0
        #: What happens to cluster messages meanwhile, for the warning.
        self.outage = "messages to and from the other servers are dropped until it is back"

    def fail(self, which: str, exc: BaseException) -> None:
        if which == "sub":
            self.sub_ok = False
        else:
            self.pub_failed = True
        if not self.warned:
            self.warned = True
            log.warning(
                "Redis at %s is unreachable (%s): %s; this server's own clients are "
                "served as usual. Reconnecting with backoff.",
                self._url,
                _describe(exc),
                self.outage,
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


@final
class RedisBus:
    """The cluster's messages through Redis pub/sub (a :class:`~triosio._cluster.bus.Bus`).

    Args:
        url: The Redis URL.
        requests_timeout: Seconds allowed for ``PUBSUB NUMSUB`` (and, with
            margin, for Redis to answer at all).
        max_queued: Messages waiting to be published before :meth:`publish` waits.
        reconnect: The first and the longest delay between reconnection attempts.
        connect_timeout: Seconds allowed to open a Redis connection.
        redis_options: More options for ``coredis.Redis.from_url``.
    """

    def __init__(
        self,
        url: str,
        *,
        requests_timeout: float,
        max_queued: int,
        reconnect: tuple[float, float],
        connect_timeout: float,
        redis_options: Mapping[str, Any],
    ) -> None:
        self._url = url
        self._requests_timeout = requests_timeout
        self._redis_options = {
            "decode_responses": False,
            "connect_timeout": connect_timeout,
            "stream_timeout": max(requests_timeout, 10.0),
            "retry_policy": NoRetryPolicy(),
            **redis_options,
        }
        self._reconnect = reconnect
        self._outbox: Mailbox[tuple[bytes, bytes]] = Mailbox(max_queued)
        # (patterns, channels) per subscribe() call, subscribed in that order.
        self._subscriptions: list[tuple[Sequence[bytes], Sequence[bytes]]] = []
        self._health = _Health(safe_url(url))
        self._receive: Receiver | None = None
        self._pub: Any = None
        self._pubsub: Any = None
        self._nursery: trio.Nursery | None = None

    # ------------------------------------------------------------ running

    async def run(
        self, receive: Receiver, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Connect and subscribe; then pass every message to ``receive`` until cancelled.

        Reports started once subscribed, or once the first attempt failed
        (then it keeps trying in the background).
        """
        self._receive = receive
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
        pub = coredis.Redis.from_url(self._url, **self._redis_options)
        sub = coredis.Redis.from_url(self._url, **self._redis_options)
        with closing:
            async with pub, sub:
                self._pub = pub
                with tasks:
                    async with trio.open_nursery() as nursery:
                        self._nursery = nursery
                        nursery.start_soon(self._writer)
                        await nursery.start(self._subscriber, sub)
                        task_status.started()

    # ------------------------------------------------------------ subscriber

    def subscribe(self, patterns: Sequence[bytes], channels: Sequence[bytes]) -> None:
        """Subscribe now if connected, and at every (re)connection."""
        entry = (patterns, channels)
        self._subscriptions.append(entry)
        if self._nursery is not None and self._pubsub is not None:
            self._nursery.start_soon(self._subscribe_late, self._pubsub, entry)

    @staticmethod
    async def _subscribe(pubsub: Any, entry: tuple[Sequence[bytes], Sequence[bytes]]) -> None:
        patterns, channels = entry
        if patterns:
            await pubsub.psubscribe(*patterns)
        if channels:
            await pubsub.subscribe(*channels)

    async def _subscribe_late(
        self, pubsub: Any, entry: tuple[Sequence[bytes], Sequence[bytes]]
    ) -> None:
        try:
            await self._subscribe(pubsub, entry)
        except Exception as exc:
            # The connection broke meanwhile: the reconnection subscribes it.
            log.debug("subscribing to %r failed: %s", entry, _describe(exc))

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
                    subscription_timeout=max(self._requests_timeout, 5.0),
                ) as pubsub:
                    # Set first: a namespace created meanwhile subscribes itself.
                    self._pubsub = pubsub
                    for entry in list(self._subscriptions):
                        await self._subscribe(pubsub, entry)
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
        if message.get("type") == "pmessage":
            subscription = message.get("pattern")
            if not isinstance(subscription, bytes):
                return
        else:
            subscription = channel
        assert self._receive is not None
        await self._receive(subscription, channel, payload)

    # ------------------------------------------------------------ publisher

    async def publish(self, channel: bytes, payload: bytes) -> None:
        """Queue a message for the writer; waits only while the queue is full."""
        await self._outbox.put((channel, payload))

    def publish_nowait(self, channel: bytes, payload: bytes) -> None:
        """Queue a message for the writer, whatever the queue holds."""
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

    # ------------------------------------------------------------ reachability

    def describe_outage(self, text: str) -> None:
        """Say what happens to cluster messages while Redis is away, in the outage warning."""
        self._health.outage = text

    @property
    def connected(self) -> bool:
        """Whether the subscriber is connected (Redis reachable, as far as we know)."""
        return self._health.sub_ok

    async def reachable(self) -> bool:
        """Whether Redis accepts connections now (a probe that leaves nothing open)."""
        return await self._reachable()

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
        where = urlsplit(self._url)
        with trio.move_on_after(self._redis_options["connect_timeout"] or 5.0) as scope:
            if where.scheme == "unix":
                stream: trio.abc.Stream = await trio.open_unix_socket(where.path)
            else:
                stream = await trio.open_tcp_stream(
                    where.hostname or "127.0.0.1", where.port or 6379
                )
            await stream.aclose()
        if scope.cancelled_caught:
            raise OSError(f"no answer from {safe_url(self._url)}")

    async def subscriber_count(self, channel: bytes) -> int:
        """``PUBSUB NUMSUB`` of ``channel`` (§6); 1 while Redis is out of reach."""
        if not self._health.sub_ok:
            return 1  # Redis is out of reach: the other servers are too
        try:
            with trio.fail_after(self._requests_timeout):
                reply = await self._pub.pubsub_numsub(channel)
            count = reply.get(channel, 0)
            return int(count)
        except Exception as exc:
            if not _link_error(exc) and not isinstance(exc, trio.TooSlowError):
                raise
            # Redis is out of reach: the other servers are too.
            log.debug("PUBSUB NUMSUB failed: %s", _describe(exc))
            return 1


if TYPE_CHECKING:
    from .._cluster.bus import Bus

    def _conforms(bus: RedisBus) -> Bus:
        # mypy checks that RedisBus is what a ClusterNode expects.
        return bus
