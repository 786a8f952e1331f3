"""Redis Streams (plus pub/sub for requests) as a ``ClusterAdapter`` transport.

What ``@socket.io/redis-streams-adapter`` 0.3.x does, on its wire:

- broadcasts, joins, leaves and disconnects are entries of a Redis stream
  (:mod:`.stream_entries`), added with ``XADD ... MAXLEN ~ <max_len>`` by one
  writer task, in order, and read by one reader task per stream with
  ``XREAD BLOCK``. A reader remembers the id of the last entry it read and
  goes on from there after any disconnection, so a Redis restart loses
  nothing that is in the stream, and nothing is read twice;
- requests that want answers (broadcasts with acks, server-side emits,
  fetch_sockets) go by pub/sub on ``<prefix>#<nsp>#``, MessagePack, and answers
  to ``<prefix>#<nsp>#<requester uid>#``, through :class:`~.bus.RedisBus`
  (which also counts servers: the subscribers of ``<prefix>#<nsp>#``).

While Redis is unreachable, the bus logs the outage (once) and drops pub/sub
messages; stream messages wait in the writer's queue (up to ``max_queued``,
then new broadcasts are dropped and counted) and are written once Redis is
back. Messages the writer had sent when the connection broke, without an
answer, are not sent again: they may or may not be in the stream, and
sending them twice could deliver them twice.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar, final

import coredis
import coredis.exceptions
import trio
from coredis.retry import NoRetryPolicy

from .._cluster.ca_node import Receive
from .._cluster.values import jsonable, pack, unpack
from .._common.sync import Mailbox
from .._errors import LocalProtocolError
from .._proto.backoff import Backoff
from .bus import RedisBus, _describe, _link_error, safe_url
from .stream_entries import decode_entry, encode_entry, is_ephemeral, stream_for, stream_names

log = logging.getLogger("triosio.redis")

T = TypeVar("T")

#: Seconds the writer may go on writing what was queued, once the adapter stops.
_FLUSH_GRACE = 2.0
#: XADDs per pipelined round trip.
_CHUNK = 256

#: What :meth:`RedisStreamsTransport.publish_logged` is told once an entry's
#: id is known (its offset), or None if it has none.
Deliver: TypeAlias = Callable[[str | None], None]
#: A queued message: ``(stream, entry fields, deliver)``; or, with the stream
#: ``_COMMAND``, a whole other command (a session to store), kept in line.
_Item: TypeAlias = tuple[bytes, list[bytes], Deliver | None]
_COMMAND = b""


def _order(entry_id: bytes) -> tuple[int, int]:
    ms, _, seq = entry_id.partition(b"-")
    return int(ms), int(seq or b"0")


def _pack(message: Mapping[str, Any]) -> bytes:
    try:
        return pack(message)
    except LocalProtocolError:
        # A handler's answer MessagePack cannot carry: its JSON form, as Node would see it.
        return pack(jsonable(message))


@final
class RedisStreamsTransport:
    """The streams adapter's transport (a :class:`~triosio._cluster.ca_node.Transport`).

    Args:
        url: The Redis URL.
        stream_name: The stream (``streamName``), or the prefix of the streams.
        stream_count: How many streams (``streamCount``); namespaces are spread over them.
        channel_prefix: The pub/sub channel prefix (``channelPrefix``).
        max_len: ``MAXLEN ~`` of every XADD (``maxLen``).
        read_count: Entries per XREAD (``readCount``).
        block_ms: How long one XREAD waits for entries (``blockTimeInMs``).
        only_plaintext: Always JSON in entries, binary as Buffer objects (``onlyPlaintext``).
        requests_timeout: Seconds allowed for ``PUBSUB NUMSUB``.
        max_queued: Messages waiting to be written before emitting tasks wait.
        reconnect: The first and the longest delay between reconnection attempts.
        connect_timeout: Seconds allowed to open a Redis connection.
        redis_options: More options for ``coredis.Redis.from_url``.
    """

    def __init__(
        self,
        url: str,
        *,
        stream_name: str,
        stream_count: int,
        channel_prefix: str,
        max_len: int,
        read_count: int,
        block_ms: int,
        only_plaintext: bool,
        requests_timeout: float,
        max_queued: int,
        reconnect: tuple[float, float],
        connect_timeout: float,
        redis_options: Mapping[str, Any],
    ) -> None:
        if stream_count < 1:
            raise ValueError("stream_count must be at least 1")
        if max_len < 1 or read_count < 1 or block_ms < 1:
            raise ValueError("max_len, read_count and block_ms must be positive")
        self.stream_name = stream_name
        self.stream_count = stream_count
        self.channel_prefix = channel_prefix
        self.max_len = max_len
        self.read_count = read_count
        self.block_ms = block_ms
        self.only_plaintext = only_plaintext
        self._url = url
        self._reconnect = reconnect
        self._bus = RedisBus(
            url,
            requests_timeout=requests_timeout,
            max_queued=max_queued,
            reconnect=reconnect,
            connect_timeout=connect_timeout,
            redis_options=redis_options,
        )
        self._bus.describe_outage(
            "broadcasts, joins, leaves and disconnects wait to be written to the stream, "
            "requests to and from the other servers are dropped, until it is back"
        )
        self._redis_options = {
            "decode_responses": False,
            "connect_timeout": connect_timeout,
            # Longer than an XREAD may block.
            "stream_timeout": max(requests_timeout, 10.0, block_ms / 1000 + 5.0),
            "retry_policy": NoRetryPolicy(),
            **redis_options,
        }
        self._outbox: Mailbox[_Item] = Mailbox(max_queued)
        self._public: dict[str, bytes] = {}
        # Connection state recovery (publish_logged): our entries whose id the
        # writer got, per stream, in id order, waiting for the reader to reach
        # them; how many were sent without an answer yet; and an event set
        # each time the writer got answers.
        self._own: set[bytes] = set()
        self._pending: dict[bytes, deque[tuple[tuple[int, int], str, Deliver]]] = {}
        self._in_flight = 0
        self._answered = trio.Event()
        #: Per stream, the entry id its reader started after (older entries
        #: never reach this server but from the stream itself).
        self.started_after: dict[bytes, str] = {}
        self._receive: Receive | None = None
        self._down = False
        #: Stream messages dropped because the queue was full while Redis was away.
        self.dropped = 0
        #: Stream messages in flight when the connection broke (maybe lost, never resent).
        self.uncertain = 0
        #: The client the writer uses (for the session store too), once running.
        self.client: Any = None
        self._nursery: trio.Nursery | None = None
        self._writing = False
        self._idle: trio.Event | None = None

    # ------------------------------------------------------------ running

    async def run(
        self, receive: Receive, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Connect, subscribe, read the streams; pass every message to ``receive``."""
        self._receive = receive
        # As in RedisBus.run: tasks end first, connections close after, shielded.
        tasks = trio.CancelScope()
        closing = trio.CancelScope(shield=True)
        async with trio.open_nursery() as guard:
            await guard.start(self._bus.run, self._on_pubsub)
            await guard.start(self._serve, tasks, closing)
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                # What was queued before the end (sessions stored by a
                # graceful shutdown, last broadcasts) is written first, briefly.
                with trio.CancelScope(shield=True) as grace:
                    grace.deadline = trio.current_time() + _FLUSH_GRACE
                    while (self._outbox or self._writing) and not self._down:
                        self._idle = trio.Event()
                        await self._idle.wait()
                tasks.cancel()
                closing.deadline = trio.current_time() + 3.0

    async def _serve(
        self,
        tasks: trio.CancelScope,
        closing: trio.CancelScope,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        # One connection per stream reader (an XREAD BLOCK holds its connection),
        # as the reference duplicates its client per stream; one for writing.
        writer = coredis.Redis.from_url(self._url, **self._redis_options)
        names = stream_names(self.stream_name, self.stream_count)
        readers = [coredis.Redis.from_url(self._url, **self._redis_options) for _ in names]
        with closing:
            async with writer:
                self.client = writer
                try:
                    for reader in readers:
                        await reader.__aenter__()
                    with tasks:
                        async with trio.open_nursery() as nursery:
                            self._nursery = nursery
                            nursery.start_soon(self._writer, writer)
                            for reader, name in zip(readers, names, strict=True):
                                nursery.start_soon(self._reader, reader, name.encode())
                            task_status.started()
                finally:
                    self.client = None
                    self._nursery = None
                    for reader in readers:
                        await reader.__aexit__(None, None, None)

    def add_namespace(self, nsp: str, uid: str) -> None:
        """Subscribe to ``<prefix>#<nsp>#`` and this server's ``<prefix>#<nsp>#<uid>#``."""
        public = f"{self.channel_prefix}#{nsp}#"
        self._public[nsp] = public.encode()
        self._own.add(uid.encode())
        self._bus.subscribe([], [public.encode(), f"{public}{uid}#".encode()])

    async def _on_pubsub(self, subscription: bytes, channel: bytes, payload: bytes) -> None:
        assert self._receive is not None
        await self._receive(channel, lambda: unpack(payload), None)

    # ------------------------------------------------------------ publishing

    def _public_channel(self, nsp: str) -> bytes:
        channel = self._public.get(nsp)
        return channel if channel is not None else f"{self.channel_prefix}#{nsp}#".encode()

    def _entry(self, message: Mapping[str, Any]) -> tuple[bytes, list[bytes]]:
        stream = stream_for(message["nsp"], self.stream_name, self.stream_count)
        return stream.encode(), encode_entry(message, self.only_plaintext)

    async def publish(self, message: dict[str, Any]) -> None:
        """Requests by pub/sub; the rest as a stream entry, after everything before."""
        if is_ephemeral(message):
            await self._bus.publish(self._public_channel(message["nsp"]), _pack(message))
            return
        entry = self._entry(message)
        if self._down and len(self._outbox) >= self._outbox.capacity:
            # Redis is away and the queue is full: waiting would hold up the
            # emitting handler for as long as the outage lasts.
            self.dropped += 1
            await trio.lowlevel.checkpoint()
            return
        await self._outbox.put((*entry, None))

    async def publish_logged(self, message: dict[str, Any], deliver: Deliver) -> None:
        """:meth:`publish` a broadcast; then ``deliver(offset)`` delivers it here.

        ``deliver`` runs in the reader's task when it reaches the entry (with
        its id), so that this server sends its own broadcasts and the others'
        in the stream's order; or with None when the entry has no id (Redis
        away with the queue full, or the connection broke before the answer).
        """
        stream, fields = self._entry(message)
        if self._down and len(self._outbox) >= self._outbox.capacity:
            await trio.lowlevel.checkpoint_if_cancelled()
            self.dropped += 1
            deliver(None)  # here at least, at once
            return
        await self._outbox.put((stream, fields, deliver))

    async def send_command(self, *command: bytes) -> None:
        """Have the writer send ``command`` (a session to store), after what is
        queued; return once Redis answered (or the connection broke meanwhile).

        Raises:
            RuntimeError: Redis is unreachable (it would wait for it).
        """
        if not self.available:
            raise RuntimeError(f"Redis at {safe_url(self._url)} is unreachable")
        done = trio.Event()
        # Cancelled means it did not happen (and a writer woken while the
        # adapter stops would open a connection only to have it cancelled).
        await trio.lowlevel.checkpoint_if_cancelled()
        await self._outbox.put((_COMMAND, list(command), lambda _: done.set()))
        await done.wait()

    async def call(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        """``await fn(client)`` in a task of the adapter, with the writer's client.

        For the session store's reads: the connections they open belong to the
        adapter's tasks, and close with them. A caller that stops waiting does
        not stop the call.

        Raises:
            RuntimeError: the adapter is not running, or Redis is unreachable.
        """
        nursery, client = self._nursery, self.client
        if nursery is None or client is None:
            raise RuntimeError("the adapter is not running")
        if not self.available:
            # Not even tried: a connection coredis fails to open leaves
            # unclosed streams behind (see RedisBus._probe).
            raise RuntimeError(f"Redis at {safe_url(self._url)} is unreachable")
        done = trio.Event()
        result: list[T] = []
        error: list[Exception] = []

        async def run() -> None:
            try:
                result.append(await fn(client))
            except Exception as exc:
                error.append(exc)
            finally:
                done.set()

        nursery.start_soon(run)
        await done.wait()
        if error:
            raise error[0]
        if not result:
            raise RuntimeError("the adapter stopped")
        return result[0]

    @property
    def available(self) -> bool:
        """Whether the writer's Redis is up, as far as this transport knows."""
        return self.client is not None and not self._down and self._bus.connected

    def publish_nowait(self, message: dict[str, Any]) -> None:
        """:meth:`publish` without waiting (the queue's capacity is ignored)."""
        if is_ephemeral(message):
            self._bus.publish_nowait(self._public_channel(message["nsp"]), _pack(message))
        else:
            self._outbox.put_nowait((*self._entry(message), None))

    def publish_response(self, requester: str, message: dict[str, Any]) -> None:
        """An answer on ``<prefix>#<nsp>#<requester>#``."""
        channel = f"{self.channel_prefix}#{message['nsp']}#{requester}#".encode()
        self._bus.publish_nowait(channel, _pack(message))

    async def server_count(self, nsp: str) -> int:
        """The subscribers of ``<prefix>#<nsp>#`` (``PUBSUB NUMSUB``), as the reference counts."""
        return await self._bus.subscriber_count(self._public_channel(nsp))

    async def _wait_for_redis(self, backoff: Backoff) -> None:
        while True:
            await trio.sleep(backoff.duration())
            if await self._bus.reachable():
                return

    async def _writer(self, client: Any) -> None:
        backoff = Backoff(*self._reconnect, jitter=0.5)
        backlog: deque[_Item] = deque()
        max_len = str(self.max_len).encode()
        while True:
            if not backlog or self._outbox:
                self._writing = bool(backlog)
                if not backlog and self._idle is not None:
                    self._idle.set()  # the end waits for this
                backlog.extend(await self._outbox.get_batch())
                self._writing = True
            if not self._bus.connected and not await self._bus.reachable():
                # Probed first: a connection coredis fails to open leaves
                # unclosed streams behind (see RedisBus._probe).
                self._down = True
                if self._idle is not None:
                    self._idle.set()  # nothing will be written until it is back
                await self._wait_for_redis(backoff)
                continue
            chunk = [backlog.popleft() for _ in range(min(_CHUNK, len(backlog)))]
            answered = 0
            requests: list[Any] = []
            handoffs = 0
            try:
                # Queued on one connection in order, then awaited: the stream
                # holds our messages in the order we sent them.
                async with client.connection_pool.acquire() as connection:
                    for stream, fields, deliver in chunk:
                        if stream is _COMMAND:
                            requests.append(connection.create_request(*fields))
                            continue
                        if deliver is not None:
                            handoffs += 1
                            self._in_flight += 1
                        requests.append(
                            connection.create_request(
                                b"XADD", stream, b"MAXLEN", b"~", max_len, b"*", *fields
                            )
                        )
                for request, (stream, _, deliver) in zip(requests, chunk, strict=False):
                    try:
                        entry_id = await request
                    except coredis.exceptions.ResponseError as exc:
                        # Redis said no to this one (a key of another type...).
                        log.warning("Redis refused an XADD: %s", _describe(exc))
                        entry_id = None
                    answered += 1
                    if stream is _COMMAND:
                        if deliver is not None:
                            _call(deliver, None)  # done
                    elif deliver is not None:
                        handoffs -= 1
                        self._in_flight -= 1
                        self._handed(stream, entry_id, deliver)
            except Exception as exc:
                # Sent without an answer: here at once, without an offset.
                for _, _, deliver in chunk[answered : len(requests)]:
                    if deliver is not None:
                        _call(deliver, None)
                self._in_flight -= handoffs
                self._wake_reader()
                if not _link_error(exc):
                    log.exception("the Redis stream writer failed; %d messages lost", len(chunk))
                    continue
                # Sent but not answered: maybe in the stream, maybe not. Not
                # sent again, so that no client ever gets one twice.
                self.uncertain += len(requests) - answered
                # Never sent (no connection to send them on): they wait, first in line.
                backlog.extendleft(reversed(chunk[len(requests) :]))
                self._down = True
                if self._idle is not None:
                    self._idle.set()
                log.debug("XADD failed: %s", _describe(exc))
                client.connection_pool.disconnect()
                await self._wait_for_redis(backoff)
                continue
            if any(item[2] is not None and item[0] is not _COMMAND for item in chunk):
                self._wake_reader()  # ids it may be waiting for are known now
            if self._down:
                self._down = False
                backoff.reset()
                if self.uncertain or self.dropped:
                    log.warning(
                        "Redis at %s: the stream writer is back; %d messages were in "
                        "flight when the connection broke (maybe lost, not sent again), "
                        "%d dropped because the queue was full.",
                        safe_url(self._url),
                        self.uncertain,
                        self.dropped,
                    )
                    self.uncertain = self.dropped = 0

    def _handed(self, stream: bytes, entry_id: Any, deliver: Deliver) -> None:
        # The id of one of our logged broadcasts: the reader delivers it when
        # it gets there. No id (refused): here at once, without an offset.
        if not isinstance(entry_id, bytes):
            _call(deliver, None)
            return
        queue = self._pending.get(stream)
        if queue is None:
            queue = self._pending[stream] = deque()
        queue.append((_order(entry_id), entry_id.decode(), deliver))

    def _wake_reader(self) -> None:
        self._answered.set()
        self._answered = trio.Event()

    async def _reached(self, stream: bytes, entry_id: bytes) -> None:
        # The reader is at one of our entries: deliver our logged broadcasts
        # up to it (one the reader never saw was trimmed: delivered anyway).
        # If its id may still be on its way to the writer, wait for it: an
        # entry is in the stream as soon as Redis took it, and the reader's
        # connection may hear of it before the writer's hears the answer.
        here = _order(entry_id)
        while True:
            queue = self._pending.get(stream)
            while queue and queue[0][0] <= here:
                _, offset, deliver = queue.popleft()
                _call(deliver, offset)
            if queue or not self._in_flight:
                return  # later ones are known, or none is on its way
            await self._answered.wait()

    def _passed(self, stream: bytes, entry_id: bytes) -> None:
        # Our logged broadcasts up to where the reader is, that it did not
        # see (trimmed before it got there): delivered, never held back.
        queue = self._pending.get(stream)
        if queue:
            here = _order(entry_id)
            while queue and queue[0][0] <= here:
                _, offset, deliver = queue.popleft()
                _call(deliver, offset)

    # ------------------------------------------------------------ reading

    async def _reader(self, client: Any, stream: bytes) -> None:
        backoff = Backoff(*self._reconnect, jitter=0.5)
        receive = self._receive
        assert receive is not None
        last: bytes | None = None
        while True:
            if not self._bus.connected and not await self._bus.reachable():
                await self._wait_for_redis(backoff)
                continue
            try:
                if last is None:
                    # Where to start: after the last entry now (the reference's
                    # "$", but without missing what comes between two XREADs).
                    newest = await client.xrevrange(stream, count=1)
                    last = newest[0].identifier if newest else b"0-0"
                    self.started_after[stream] = last.decode()
                reply = await client.xread(
                    {stream: last}, count=self.read_count, block=self.block_ms
                )
                backoff.reset()
            except Exception as exc:
                if not _link_error(exc) and not isinstance(exc, coredis.exceptions.ResponseError):
                    log.exception("the Redis stream reader of %r failed", stream)
                log.debug("XREAD failed: %s", _describe(exc))
                client.connection_pool.disconnect()
                await self._wait_for_redis(backoff)
                continue
            if not reply:
                continue
            for entry in reply.get(stream, ()):
                last = entry.identifier
                fields = entry.field_values
                if not fields.get(b"nsp"):
                    continue  # not a message (the reference skips these too)
                if fields.get(b"uid") in self._own:
                    await self._reached(stream, last)  # our own: no echo
                    continue
                await receive(stream, _decoder(fields), last.decode())
            if last is not None:
                self._passed(stream, last)


def _call(deliver: Deliver, offset: str | None) -> None:
    # A delivery must not stop the writer or the reader.
    try:
        deliver(offset)
    except Exception:
        log.exception("error delivering a broadcast locally")


def _decoder(fields: Mapping[bytes, bytes]) -> Callable[[], object]:
    return lambda: decode_entry(fields)


if TYPE_CHECKING:
    from .._cluster.ca_node import Transport

    def _conforms(transport: RedisStreamsTransport) -> Transport:
        return transport
