"""Server-side WebSocket frame reading (RFC 6455 section 5), sans-I/O.

Bytes from a client in, whole messages and control frames out. It checks what
the RFC requires of a client's frames: every frame masked, no reserved bits
(but RSV1 on the first frame of a compressed message when permessage-deflate
was negotiated, RFC 7692 section 6), known opcodes, control frames short and unfragmented,
continuation frames only inside a fragmented message, minimal length
encodings, text that is valid UTF-8, and close codes and reasons that are
valid. Any violation raises :class:`FrameError` with the close code to answer.

Why not wsproto, which triosio used first: this is on the hot path of every
message a client sends, and a single-purpose reader costs a fraction of the CPU
(see benchmarks/README.md) and of the memory per connection. A test checks it
against wsproto on generated frames.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .deflate import InflateError, Inflater

TEXT = 0x1
BINARY = 0x2
CONTINUATION = 0x0
CLOSE = 0x8
PING = 0x9
PONG = 0xA

_MAX_CONTROL = 125
# Close codes a peer may send (RFC 6455 section 7.4; 1004-1006 and 1015 are
# reserved and never sent on the wire).
_VALID_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})


class FrameError(Exception):
    """The client broke the framing rules; close with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Control:
    """A control frame: PING, PONG or CLOSE (with its code and reason)."""

    opcode: int
    payload: bytes = b""
    code: int = 1005
    reason: str = ""


def unmask(data: bytes | bytearray | memoryview, mask: bytes | bytearray) -> bytes:
    """XOR ``data`` with the repeated 4-byte ``mask`` (in C, through big ints)."""
    n = len(data)
    if n == 0:
        return b""
    key = int.from_bytes(bytes(mask) * ((n + 3) >> 2), "little") & ((1 << (n << 3)) - 1)
    return (int.from_bytes(data, "little") ^ key).to_bytes(n, "little")


class FrameReader:
    """Parses a client's frames incrementally.

    Args:
        max_message_size: Largest message (all its fragments), in bytes; a
            frame that would exceed it is refused (code 1009) from its header,
            before its payload is buffered.
    """

    __slots__ = ("_buffer", "_deflated", "_kind", "_parts", "inflater", "max_message_size")

    def __init__(self, max_message_size: int = 1_000_000) -> None:
        self.max_message_size = max_message_size
        self._buffer = bytearray()
        # A fragmented message in progress: its opcode and the bytes so far,
        # and whether it is compressed.
        self._kind = 0
        self._parts: bytearray | None = None
        self._deflated = False
        #: Set when permessage-deflate was negotiated: RSV1 then marks a
        #: compressed message, inflated here (within ``max_message_size``).
        self.inflater: Inflater | None = None

    def feed(self, data: bytes | bytearray) -> None:
        """Add bytes read from the client."""
        self._buffer += data

    def next(self) -> str | bytes | Control | None:
        """The next whole message (``str`` or ``bytes``) or control frame, or None.

        Raises:
            FrameError: the client broke the framing rules.
        """
        while True:
            buffer = self._buffer
            size = len(buffer)
            if size < 2:
                return None
            b0 = buffer[0]
            b1 = buffer[1]
            deflated = False
            if b0 & 0x70:
                if b0 & 0x30 or self.inflater is None:
                    raise FrameError(1002, "reserved bits set (no extension was negotiated)")
                if (b0 & 0x0F) in (CONTINUATION, CLOSE, PING, PONG):
                    raise FrameError(1002, "RSV1 set on a continuation or control frame")
                deflated = True
            if not b1 & 0x80:
                raise FrameError(1002, "a client frame must be masked")
            fin = b0 & 0x80
            opcode = b0 & 0x0F
            length = b1 & 0x7F
            start = 2
            if length == 126:
                if size < 4:
                    return None
                (length,) = struct.unpack_from("!H", buffer, 2)
                if length < 126:
                    raise FrameError(1002, "payload length not minimally encoded")
                start = 4
            elif length == 127:
                if size < 10:
                    return None
                (length,) = struct.unpack_from("!Q", buffer, 2)
                if length < 65536 or length >> 63:
                    raise FrameError(1002, "payload length not minimally encoded")
                start = 10
            if opcode >= CLOSE:
                if opcode > PONG:
                    raise FrameError(1002, f"unknown opcode {opcode:#x}")
                if not fin or length > _MAX_CONTROL:
                    raise FrameError(1002, "control frames must be whole and short")
            elif opcode > BINARY:
                raise FrameError(1002, f"unknown opcode {opcode:#x}")
            elif opcode == CONTINUATION:
                if self._parts is None:
                    raise FrameError(1002, "continuation frame outside a fragmented message")
            elif self._parts is not None:
                raise FrameError(1002, "new message inside a fragmented message")
            if opcode < CLOSE:
                so_far = 0 if self._parts is None else len(self._parts)
                if so_far + length > self.max_message_size:
                    raise FrameError(1009, "message too big")
            end = start + 4 + length
            if size < end:
                return None
            payload = unmask(memoryview(buffer)[start + 4 : end], buffer[start : start + 4])
            del buffer[:end]
            if opcode >= CLOSE:
                return _control(opcode, payload)
            if opcode == CONTINUATION:
                parts = self._parts
                assert parts is not None
                parts += payload
                if not fin:
                    continue
                kind, whole = self._kind, bytes(parts)
                self._parts = None
                deflated = self._deflated
            elif not fin:
                self._kind = opcode
                self._parts = bytearray(payload)
                self._deflated = deflated
                continue
            else:
                kind, whole = opcode, payload
            if deflated:
                assert self.inflater is not None
                try:
                    whole = self.inflater.inflate(whole, self.max_message_size)
                except InflateError as exc:
                    raise FrameError(exc.code, exc.reason) from None
            if kind == BINARY:
                return whole
            try:
                return whole.decode("utf-8")
            except UnicodeDecodeError:
                raise FrameError(1007, "text message is not valid UTF-8") from None


def _control(opcode: int, payload: bytes) -> Control:
    if opcode != CLOSE:
        return Control(opcode, payload)
    if not payload:
        return Control(CLOSE, payload, 1005, "")
    if len(payload) == 1:
        raise FrameError(1002, "close frame with a 1-byte payload")
    (code,) = struct.unpack_from("!H", payload)
    if code not in _VALID_CODES and not 3000 <= code <= 4999:
        raise FrameError(1002, f"invalid close code {code}")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise FrameError(1007, "close reason is not valid UTF-8") from None
    return Control(CLOSE, payload, code, reason)
