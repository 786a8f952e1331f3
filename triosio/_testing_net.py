"""An in-memory network for tests: listeners, connections, and ways to break them.

Streams are bounded pipes (like a TCP window): a writer waits once the peer has
``window`` unread bytes, so a peer that stops reading really pushes back on the
server. A connection can be paused (the peer stops reading), resumed, or cut
abruptly (both ends see a broken connection, as when a network goes away).

Everything runs on the Trio clock and in one thread, so it works under
``trio.testing.MockClock(autojump_threshold=0)``.
"""

from __future__ import annotations

import math
from typing import final

import trio

DEFAULT_WINDOW = 256 * 1024


class _Pipe:
    """One direction of a connection."""

    __slots__ = ("broken", "buffer", "eof", "lot", "paused", "window")

    def __init__(self, window: int) -> None:
        self.buffer = bytearray()
        self.window = window
        self.eof = False
        self.broken = False
        self.paused = False
        self.lot = trio.lowlevel.ParkingLot()

    def wake(self) -> None:
        self.lot.unpark_all()


@final
class MemoryStream(trio.abc.Stream):
    """One end of an in-memory connection (see :class:`MemoryNetwork`)."""

    def __init__(self, incoming: _Pipe, outgoing: _Pipe, connection: MemoryConnection) -> None:
        self._in = incoming
        self._out = outgoing
        self._closed = False
        self.connection = connection

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Write ``data``, waiting while the peer's unread bytes fill the window."""
        if self._closed:
            raise trio.ClosedResourceError("stream closed")
        view = memoryview(data)
        if not view:
            await trio.lowlevel.checkpoint()
            return
        while view:
            out = self._out
            if out.broken or out.eof:
                raise trio.BrokenResourceError("connection lost")
            room = out.window - len(out.buffer)
            if room <= 0:
                await out.lot.park()
                continue
            chunk = view[:room]
            out.buffer += chunk
            view = view[len(chunk) :]
            out.wake()
        await trio.lowlevel.checkpoint()

    def send_some_nowait(self, data: bytes | bytearray | memoryview) -> int:
        """Write what fits in the window now; return how many bytes that was.

        The in-memory twin of a non-blocking ``write`` on a socket: triosio's
        WebSocket writes through it as it does through a socket's fd.
        """
        if self._closed:
            raise trio.ClosedResourceError("stream closed")
        out = self._out
        if out.broken or out.eof:
            raise trio.BrokenResourceError("connection lost")
        room = out.window - len(out.buffer)
        if room <= 0:
            return 0
        chunk = memoryview(data)[:room]
        out.buffer += chunk
        out.wake()
        return len(chunk)

    async def wait_send_all_might_not_block(self) -> None:
        """Wait until the window has room."""
        out = self._out
        while len(out.buffer) >= out.window and not (out.broken or out.eof):
            await out.lot.park()
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Read what the peer wrote (``b""`` once it closed)."""
        if self._closed:
            raise trio.ClosedResourceError("stream closed")
        pipe = self._in
        while True:
            if pipe.broken:
                raise trio.BrokenResourceError("connection lost")
            if pipe.paused:
                await pipe.lot.park()
                continue
            if pipe.buffer:
                size = len(pipe.buffer) if max_bytes is None else min(max_bytes, len(pipe.buffer))
                data = bytes(pipe.buffer[:size])
                del pipe.buffer[:size]
                pipe.wake()
                await trio.lowlevel.checkpoint()
                return data
            if pipe.eof and not pipe.buffer:
                await trio.lowlevel.checkpoint()
                return b""
            await pipe.lot.park()

    async def aclose(self) -> None:
        """Close this end: the peer reads EOF, its writes fail."""
        if not self._closed:
            self._closed = True
            if self.connection.frozen:
                # A frozen machine sends nothing, not even its goodbye.
                await trio.lowlevel.checkpoint()
                return
            self._out.eof = True
            self._out.wake()
            self._in.broken = True
            self._in.wake()
        await trio.lowlevel.checkpoint()


@final
class MemoryConnection:
    """Both ends of one in-memory connection, with test controls.

    Attributes:
        client: The client's end.
        server: The server's end.
    """

    def __init__(self, window: int = DEFAULT_WINDOW) -> None:
        self._to_server = _Pipe(window)
        self._to_client = _Pipe(window)
        self.client = MemoryStream(self._to_client, self._to_server, self)
        self.server = MemoryStream(self._to_server, self._to_client, self)
        self.frozen = False

    def cut(self) -> None:
        """Break the connection abruptly, both ways (like a network failure)."""
        for pipe in (self._to_server, self._to_client):
            pipe.broken = True
            pipe.wake()

    def pause_client(self) -> None:
        """The client stops reading (its window fills, the server backs up)."""
        self._to_client.paused = True

    def resume_client(self) -> None:
        """The client reads again."""
        self._to_client.paused = False
        self._to_client.wake()

    def pause_server(self) -> None:
        """The server stops reading (the client's bytes pile up, then its writes wait)."""
        self._to_server.paused = True

    def resume_server(self) -> None:
        """The server reads again: what piled up arrives together."""
        self._to_server.paused = False
        self._to_server.wake()

    def freeze(self) -> None:
        """Nothing gets through either way any more, not even a close.

        Like a machine that is suspended or vanished without a word: the other
        side only notices through its heartbeat.
        """
        self.frozen = True
        for pipe in (self._to_server, self._to_client):
            pipe.paused = True

    @property
    def unread_by_client(self) -> int:
        """Bytes the server sent that the client has not read."""
        return len(self._to_client.buffer)


@final
class MemoryListener(trio.abc.Listener[trio.abc.Stream]):
    """A listener whose connections come from :meth:`MemoryNetwork.connect`."""

    def __init__(self) -> None:
        self._send, self._receive = trio.open_memory_channel[MemoryStream](math.inf)

    async def accept(self) -> MemoryStream:
        """The server end of the next connection."""
        try:
            return await self._receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise trio.ClosedResourceError("listener closed") from None

    async def aclose(self) -> None:
        """Stop accepting."""
        await self._receive.aclose()

    def _push(self, stream: MemoryStream) -> None:
        self._send.send_nowait(stream)


@final
class MemoryNetwork:
    """An in-memory network with one server listener.

    ``serve(app, listeners=[network.listener])`` serves on it;
    ``await network.connect()`` opens a connection (use :meth:`connector` as a
    client's ``connector``). Every connection is kept, so tests can cut or pause
    them.

    Args:
        window: Bytes a side may have unread before the other side's writes wait.
    """

    def __init__(self, window: int = DEFAULT_WINDOW) -> None:
        self.window = window
        self.listener = MemoryListener()
        self.connections: list[MemoryConnection] = []
        self.refuse = False

    async def connect(self) -> MemoryStream:
        """Open a connection to the listener; returns the client's end.

        Raises:
            OSError: while :attr:`refuse` is set (like a server that is down).
        """
        await trio.lowlevel.checkpoint()
        if self.refuse:
            raise OSError("connection refused (MemoryNetwork.refuse is set)")
        connection = MemoryConnection(self.window)
        self.connections.append(connection)
        self.listener._push(connection.server)
        return connection.client

    async def connector(self, host: str, port: int, tls: object = None) -> trio.abc.Stream:
        """A client ``connector``: every host and port lead to this network."""
        return await self.connect()

    def cut_all(self) -> None:
        """Cut every connection."""
        for connection in self.connections:
            connection.cut()
