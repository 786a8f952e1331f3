"""A server-side WebSocket on a Trio stream.

Reading goes through :class:`~triosio._engine.wsframes.FrameReader` (it checks
masking, UTF-8, fragmentation and control frames as RFC 6455 requires).
Writing needs no parser: the frames of a broadcast are built once per packet
(:attr:`OutPacket.ws_frame`) and the same bytes go to every recipient. With
permessage-deflate (:mod:`~triosio._engine.deflate`) a message at or above the
threshold goes compressed: compressed once per packet for every recipient when
the server keeps no context (the default), else by this connection's own
compressor.

On a plain TCP stream the bytes are written with a direct non-blocking
``os.write`` on the socket when nothing is queued, which costs no task switch;
only when the kernel buffer is full, or bytes are already queued, do they wait
in a queue that the writer task drains when the socket becomes writable. That
keeps order (nothing is written around the queue) and never blocks the caller.
The in-memory streams of :mod:`triosio.testing` are written through the same
way (their ``send_some_nowait`` is the twin of a non-blocking write). On other
streams (TLS) every write goes through the writer task, the only task that
calls ``send_all`` (a TLS stream allows one at a time).

Closing follows RFC 6455 section 7: after our close frame we keep reading
(briefly) until the peer answers with its own, then close the TCP connection
first (section 7.1.1), so the socket is never closed with unread bytes in it —
that would send a TCP reset, and a reset can make the peer drop the last
frames we sent (the Engine.IO CLOSE packet among them). A client that broke
the framing rules fails the connection (section 7.1.7): its close frame
carries the code of the error (1002 protocol error, 1007 invalid UTF-8, 1009
too big, section 7.4.1) whatever code the session asks for, and nothing more
it sends is parsed: the linger only drains the socket until the peer closes.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence

import trio

from .._common.sync import LazyEvent
from .deflate import Deflater, Inflater, Negotiated
from .exchange import WebSocket, WebSocketClosed
from .packet import OutPacket, close_frame, compressed_frame, ws_frame_header
from .wsframes import CLOSE, PING, Control, FrameError, FrameReader

_RECV_SIZE = 65536
#: Seconds :meth:`NativeWebSocket.close` may spend flushing and waiting for the peer.
CLOSE_GRACE = 1.0


class NativeWebSocket(WebSocket):
    """A WebSocket over a Trio stream, after the HTTP handshake.

    Args:
        stream: The connection. This object owns it from now on.
        initial: Bytes the client sent right after its handshake, if any.
        deflate: What permessage-deflate negotiated, or None (uncompressed).
    """

    __slots__ = (
        "_close_sent",
        "_closed",
        "_deflate",
        "_deflater",
        "_direct",
        "_drained",
        "_failed",
        "_fd",
        "_head",
        "_queue",
        "_read_dry",
        "_reader",
        "_sending",
        "_stream",
        "_taken",
        "backlog",
        "broken",
    )

    def __init__(
        self, stream: trio.abc.Stream, initial: bytes = b"", deflate: Negotiated | None = None
    ) -> None:
        self._stream = stream
        self._reader = FrameReader()
        self._deflate = deflate
        # With server context takeover: made at the first compressed message
        # (zlib's compressor takes about 256 KiB), none for idle connections.
        self._deflater: Deflater | None = None
        if deflate is not None:
            self._reader.inflater = Inflater(deflate)
        if initial:
            self._reader.feed(initial)
        self._fd = _fileno(stream)
        # The last read took all there was: wait for the socket before the
        # next one, instead of a read that fails with EAGAIN (a system call and
        # an exception per message, at one message per wake-up).
        self._read_dry = False
        self._taken = 0  # messages returned since the last forced yield
        # How to write without waiting, if the stream can: the socket's fd, or
        # a test stream's send_some_nowait (so in-memory tests behave alike).
        self._direct: Callable[[bytes], int] | None = (
            functools.partial(os.write, self._fd)
            if self._fd is not None
            else getattr(stream, "send_some_nowait", None)
        )
        self._sending = False  # a send_all is under way (non-fd streams)
        # A list, not a deque: an empty deque costs 624 bytes per connection.
        self._queue: list[bytes] = []
        self.backlog = 0
        self.broken = False
        self._drained: LazyEvent = LazyEvent(True)
        self._closed = False
        self._close_sent = False
        # The client broke the framing rules: the code and reason to close with.
        self._failed: tuple[int, str] | None = None
        self._writer_running = False
        self.start_writer: Callable[[WebSocket], bool] | None = None
        self._head = b""  # see hold()

    # ------------------------------------------------------------- reading

    async def receive(self, max_size: int) -> str | bytes:
        """The next whole message (see :meth:`WebSocket.receive`)."""
        reader = self._reader
        reader.max_message_size = max_size
        while True:
            if self._failed is not None:
                raise WebSocketClosed(*self._failed)
            try:
                item = reader.next()
            except FrameError as exc:
                self._failed = (exc.code, exc.reason)
                raise WebSocketClosed(exc.code, exc.reason) from None
            if item is None:
                try:
                    received = await self._receive_some()
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    raise WebSocketClosed(1006, "connection lost") from None
                if not received:
                    raise WebSocketClosed(1006, "connection closed without a close frame")
                reader.feed(received)
                continue
            if not isinstance(item, Control):
                self._taken += 1
                if self._taken >= 64:
                    # Many messages may wait in the buffer, each handled at once
                    # (plain handlers run in the reader): let the others run.
                    self._taken = 0
                    await trio.lowlevel.checkpoint()
                return item
            if item.opcode == PING:
                payload = item.payload
                self._write_raw(ws_frame_header(0x8A, len(payload)) + payload)
            elif item.opcode == CLOSE:
                if not self._close_sent:
                    # Answer with the same code (RFC 6455 section 5.5.1).
                    self._close_sent = True
                    self._write_raw(close_frame(item.code if item.code != 1005 else 1000))
                raise WebSocketClosed(item.code, item.reason)
            # A PONG answers nothing we sent: ignored.

    async def _receive_some(self) -> bytes | bytearray:
        fd = self._fd
        if fd is None:
            return await self._stream.receive_some(_RECV_SIZE)
        # A plain socket: read the fd directly (as we write it), which keeps the
        # reader task's stack, and so each idle connection, small.
        if self._read_dry:
            await trio.lowlevel.wait_readable(fd)
        while True:
            try:
                data = os.read(fd, _RECV_SIZE)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(fd)
                continue
            if len(data) == _RECV_SIZE:
                # More may be waiting: yield, so a flood cannot starve the others.
                # (Otherwise the next read waits for the socket, and yields then.)
                self._read_dry = False
                await trio.lowlevel.checkpoint()
            else:
                self._read_dry = True
            return data

    # ------------------------------------------------------------- writing

    def write_nowait(self, packets: Sequence[OutPacket]) -> None:
        """Write the packets' frames in order, without waiting."""
        if self._deflate is not None:
            self._write_raw(b"".join([self._frame(p) for p in packets]))
        elif len(packets) == 1:
            self._write_raw(packets[0].ws_frame)
        else:
            self._write_raw(b"".join([p.ws_frame for p in packets]))

    def hold(self, head: bytes) -> None:
        """Write ``head`` (the handshake's answer) with the first write."""
        self._head = head

    def _frame(self, packet: OutPacket) -> bytes:
        # The packet's frame, compressed if it may be and is big enough.
        deflate = self._deflate
        assert deflate is not None
        if not packet.compress or packet.ws_payload_size < deflate.threshold:
            return packet.ws_frame
        if not deflate.server_takeover:
            return packet.ws_deflated_frame(deflate.server_bits, deflate.level, deflate.mem_level)
        deflater = self._deflater
        if deflater is None:
            deflater = self._deflater = Deflater(deflate)
        return compressed_frame(packet.ws_frame[0], deflater.deflate(packet.ws_payload()))

    def _write_raw(self, data: bytes) -> None:
        if self.broken or self._closed or not data:
            return
        if self._head:
            data = self._head + data
            self._head = b""
        direct = self._direct
        if direct is not None and not self._queue and not self._sending:
            try:
                written = direct(data)
            except BlockingIOError:
                written = 0
            except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
                self.broken = True
                self._need_writer()  # it notices the break and ends the session
                return
            if written == len(data):
                return
            data = data[written:]
        self._queue.append(data)
        self.backlog += len(data)
        if self._drained.is_set():
            self._drained.clear()
        self._need_writer()

    async def _write_some(self) -> None:
        """Write what the stream takes of the queue (waiting until it takes some)."""
        # Bytes leave the queue only when they are being written: a writer task
        # cancelled while it waits (the session closing) loses nothing, and the
        # goodbye flush in close() sends them.
        if self._fd is None:
            await trio.lowlevel.checkpoint_if_cancelled()
            data = self._take_queue()
            # The bytes count as backlog until send_all returns: a peer that
            # stops reading blocks it (a TLS or in-memory stream), and the
            # session must see that (volatile drops, slow-client limit).
            self._sending = True
            try:
                await self._stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self.broken = True
            except BaseException:
                # Cancelled part-way: the peer may hold half a frame, so no other
                # frame may follow on this connection.
                self.broken = True
                raise
            finally:
                self._sending = False
                self.backlog -= len(data)
            return
        try:
            await trio.lowlevel.wait_writable(self._fd)
        except (trio.ClosedResourceError, OSError):
            # Closed under us (abort() from another task): nothing more to write.
            self.broken = True
            return
        if self._closed or not self._queue:
            return
        data = self._take_queue()
        try:
            written = os.write(self._fd, data)
        except BlockingIOError:
            written = 0
        except OSError:
            self.broken = True
            return
        if written < len(data):
            self._queue.insert(0, data[written:])
        self.backlog -= written

    def _take_queue(self) -> bytes:
        queue = self._queue
        data = b"".join(queue) if len(queue) > 1 else queue[0]
        queue.clear()
        return data

    # ------------------------------------------------------------- closing

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Flush, send a close frame, wait for the peer's, close the stream.

        After a framing error by the client, the frame carries that error's
        code and reason instead of ``code`` and ``reason``. Takes at most
        :data:`CLOSE_GRACE` seconds, and closes the stream even when cancelled.
        """
        if self._closed:
            return
        if self._failed is not None:
            code, reason = self._failed
        try:
            with trio.move_on_after(CLOSE_GRACE):
                if self.broken:
                    return
                answered = self._close_sent  # the peer closed first: nothing to wait for
                if not self._close_sent:
                    self._close_sent = True
                    self._write_raw(close_frame(code, reason))
                await self._flush()
                if not answered and not self.broken:
                    await self._linger()
        finally:
            await self.abort()

    async def _linger(self) -> None:
        # Read (and drop) until the peer's close frame or EOF. After a framing
        # error nothing is parsed any more (RFC 6455 section 7.1.7): bytes are
        # drained until the peer, having read our close frame, closes.
        reader = self._reader
        while True:
            if self._failed is not None:
                try:
                    if not await self._receive_some():
                        return
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    return
                continue
            try:
                item = reader.next()
            except FrameError:
                return
            if isinstance(item, Control) and item.opcode == CLOSE:
                return
            if item is not None:
                continue
            try:
                data = await self._receive_some()
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                return
            if not data:
                return
            reader.feed(data)

    async def abort(self) -> None:
        """Close the stream now."""
        self._closed = True
        self._queue.clear()
        self._drained.set()
        await trio.aclose_forcefully(self._stream)


def _fileno(stream: trio.abc.Stream) -> int | None:
    # Direct writes only on a plain socket (not TLS, not in-memory streams).
    if isinstance(stream, trio.SocketStream):
        try:
            return stream.socket.fileno()
        except OSError:
            return None
    return None
