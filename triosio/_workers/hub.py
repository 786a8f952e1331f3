"""The supervisor's side of the local bus: pub/sub between the workers of one machine.

What Redis does for the Redis adapter, for workers that share a machine: each
worker is connected to the hub by a Unix socket (a socket pair made when the
supervisor starts it); a message published by one reaches every worker
subscribed to its channel or to a pattern matching it, the publisher included,
in the order each publisher sent them. The hub never waits for a worker: each
has a bounded queue, drained by a writer task; a worker too slow to drain it
loses messages (counted and logged), as the cluster is at most once anyway.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable

import trio

from .._common.sync import Mailbox
from .wire import Frame, FrameDecoder, FrameError, encode, glob_matcher

log = logging.getLogger("triosio.workers")

#: Frames waiting for one worker before the hub drops its messages.
MAX_QUEUED = 100_000


class _Peer:
    __slots__ = ("channels", "dropped", "name", "outbox", "patterns", "stream")

    def __init__(self, name: str, stream: trio.SocketStream) -> None:
        self.name = name
        self.stream = stream
        self.channels: set[bytes] = set()
        self.patterns: dict[bytes, Callable[[bytes], bool]] = {}
        self.outbox: Mailbox[bytes] = Mailbox(MAX_QUEUED)
        self.dropped = 0

    def send_nowait(self, frame: bytes) -> None:
        if len(self.outbox) >= MAX_QUEUED:
            self.dropped += 1
            if self.dropped == 1:
                log.warning("%s does not read the bus: its cluster messages are dropped", self.name)
            return
        self.outbox.put_nowait(frame)


class Hub:
    """Routes the local bus's messages between the workers connected to it."""

    def __init__(self) -> None:
        self._peers: list[_Peer] = []

    async def serve(self, name: str, sock: socket.socket) -> None:
        """Serve one worker's end of the bus until it closes (the worker ended)."""
        stream = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
        peer = _Peer(name, stream)
        self._peers.append(peer)
        try:
            async with stream, trio.open_nursery() as nursery:
                nursery.start_soon(self._writer, peer)
                await self._reader(peer)
                nursery.cancel_scope.cancel()
        finally:
            self._peers.remove(peer)

    async def _writer(self, peer: _Peer) -> None:
        try:
            while True:
                batch = await peer.outbox.get_batch()
                await peer.stream.send_all(b"".join(batch))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            await trio.sleep_forever()  # the reader sees the end

    async def _reader(self, peer: _Peer) -> None:
        decoder = FrameDecoder()
        while True:
            try:
                data = await peer.stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            if not data:
                return
            decoder.feed(data)
            try:
                for kind, fields in decoder.frames():
                    self._apply(peer, kind, fields)
            except (FrameError, ValueError, IndexError) as exc:
                log.error("%s sent a bad bus frame (%s): disconnected from the bus", peer.name, exc)
                return

    def _apply(self, peer: _Peer, kind: Frame, fields: list[bytes]) -> None:
        if kind is Frame.PUBLISH:
            channel, payload = fields
            for other in self._peers:
                if channel in other.channels:
                    other.send_nowait(encode(Frame.MESSAGE, channel, channel, payload))
                for pattern, matches in other.patterns.items():
                    if matches(channel):
                        other.send_nowait(encode(Frame.MESSAGE, pattern, channel, payload))
        elif kind is Frame.SUBSCRIBE:
            peer.channels.add(fields[0])
        elif kind is Frame.PSUBSCRIBE:
            peer.patterns.setdefault(fields[0], glob_matcher(fields[0]))
        elif kind is Frame.NUMSUB:
            request, channel = fields
            count = sum(channel in other.channels for other in self._peers)
            peer.send_nowait(encode(Frame.NUMSUB_REPLY, request, str(count).encode()))
        else:
            raise FrameError(f"{kind.name} is not a frame for the hub")
