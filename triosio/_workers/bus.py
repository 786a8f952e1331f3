"""The local bus, a worker's side: the cluster protocol between the workers of one machine.

A :class:`~triosio._cluster.bus.Bus` like Redis's (``triosio._redis.bus``),
so the same :class:`~triosio._cluster.node.ClusterNode` (the requests and
responses of ``@socket.io/redis-adapter``) runs over either: ``triosio run
--workers N`` uses this one unless ``--redis`` is given. One Unix socket to
the supervisor's :class:`~.hub.Hub`; one writer task sends everything in
order; the reader passes each message on.
"""

from __future__ import annotations

import itertools
import logging
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING, final

import trio

from .._cluster.bus import Receiver
from .._common.sync import Mailbox
from .wire import Frame, FrameDecoder, FrameError, encode

log = logging.getLogger("triosio.workers")


@final
class UnixBus:
    """The cluster's messages through the supervisor's hub, over a Unix socket.

    Args:
        sock: This worker's end of its socket pair with the hub.
        requests_timeout: Seconds to wait for the hub's answer to a count.
        max_queued: Messages waiting to be sent before :meth:`publish` waits.
    """

    def __init__(
        self, sock: socket.socket, *, requests_timeout: float = 5.0, max_queued: int = 10_000
    ) -> None:
        self._stream = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
        self._requests_timeout = requests_timeout
        self._outbox: Mailbox[bytes] = Mailbox(max_queued)
        self._ids = itertools.count()
        self._counts: dict[bytes, tuple[trio.Event, list[int]]] = {}
        self._up = True

    async def run(
        self, receive: Receiver, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Pass every message from the hub to ``receive`` until cancelled."""
        async with self._stream, trio.open_nursery() as nursery:
            nursery.start_soon(self._writer)
            task_status.started()
            await self._reader(receive)
            # The hub is gone (the supervisor ended): this worker serves its
            # own clients alone until it is stopped.
            self._up = False
            log.warning("the bus between the workers closed; serving this worker's clients only")
            for event, _ in self._counts.values():
                event.set()
            await trio.sleep_forever()

    async def _writer(self) -> None:
        try:
            while True:
                batch = await self._outbox.get_batch()
                if self._up:
                    await self._stream.send_all(b"".join(batch))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._up = False
            await trio.sleep_forever()

    async def _reader(self, receive: Receiver) -> None:
        decoder = FrameDecoder()
        while True:
            try:
                data = await self._stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            if not data:
                return
            decoder.feed(data)
            try:
                for kind, fields in decoder.frames():
                    if kind is Frame.MESSAGE:
                        subscription, channel, payload = fields
                        await receive(subscription, channel, payload)
                    elif kind is Frame.NUMSUB_REPLY:
                        waiting = self._counts.get(fields[0])
                        if waiting is not None:
                            waiting[1].append(int(fields[1]))
                            waiting[0].set()
            except (FrameError, ValueError) as exc:
                log.error("bad frame from the hub (%s): the bus is closed", exc)
                return

    def subscribe(self, patterns: Sequence[bytes], channels: Sequence[bytes]) -> None:
        """Subscribe (the hub keeps the subscriptions while this worker lives)."""
        for pattern in patterns:
            self._outbox.put_nowait(encode(Frame.PSUBSCRIBE, pattern))
        for channel in channels:
            self._outbox.put_nowait(encode(Frame.SUBSCRIBE, channel))

    async def publish(self, channel: bytes, payload: bytes) -> None:
        """Queue a message; waits only while the queue is full."""
        await self._outbox.put(encode(Frame.PUBLISH, channel, payload))

    def publish_nowait(self, channel: bytes, payload: bytes) -> None:
        """Queue a message, whatever the queue holds."""
        self._outbox.put_nowait(encode(Frame.PUBLISH, channel, payload))

    async def subscriber_count(self, channel: bytes) -> int:
        """How many workers are subscribed to ``channel``; 1 while the hub is gone."""
        if not self._up:
            return 1
        request = str(next(self._ids)).encode()
        event = trio.Event()
        answer: list[int] = []
        self._counts[request] = (event, answer)
        try:
            self._outbox.put_nowait(encode(Frame.NUMSUB, request, channel))
            with trio.move_on_after(self._requests_timeout):
                await event.wait()
        finally:
            del self._counts[request]
        return answer[0] if answer else 1


if TYPE_CHECKING:
    from .._cluster.bus import Bus

    def _conforms(bus: UnixBus) -> Bus:
        # mypy checks that UnixBus is what a ClusterNode expects.
        return bus
