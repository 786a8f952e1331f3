"""Outgoing Engine.IO packets, encoded once and cached for every transport.

A broadcast hands the *same* :class:`OutPacket` objects to every recipient, so the
Socket.IO encoding, the Engine.IO encoding and the WebSocket framing (RFC 6455
section 5.2: a server's frames are never masked, and a message compressed without
context takeover is the same for every client, so the bytes are identical for
every recipient) are each computed at most once per packet, whatever the number
of recipients.
"""

from __future__ import annotations

import base64
import struct

from .._proto.eio import EioType
from .deflate import deflate_message

_TEXT = 0x81  # FIN + opcode 1
_BINARY = 0x82  # FIN + opcode 2
_RSV1 = 0x40  # a compressed message's first frame (RFC 7692 section 6)


def ws_frame_header(opcode_byte: int, length: int) -> bytes:
    """The header of an unmasked WebSocket frame of ``length`` payload bytes."""
    if length < 126:
        return bytes((opcode_byte, length))
    if length < 65536:
        return struct.pack("!BBH", opcode_byte, 126, length)
    return struct.pack("!BBQ", opcode_byte, 127, length)


def compressed_frame(first_byte: int, compressed: bytes) -> bytes:
    """The frame of a compressed message: the uncompressed one's first byte with
    RSV1 set (RFC 7692 section 6), and the compressed payload."""
    return ws_frame_header(first_byte | _RSV1, len(compressed)) + compressed


def _payload_start(frame: bytes) -> int:
    # Where an unmasked frame's payload starts: after 2, 4 or 10 header bytes.
    marker = frame[1]
    return 2 if marker < 126 else 4 if marker == 126 else 10


def close_frame(code: int = 1000, reason: str = "") -> bytes:
    """An unmasked WebSocket close frame."""
    payload = struct.pack("!H", code) + reason.encode("utf-8")[:123]
    return ws_frame_header(0x88, len(payload)) + payload


class OutPacket:
    """One Engine.IO packet on its way out, with its encodings computed lazily.

    Args:
        ptype: The Engine.IO packet type (MESSAGE for application data).
        data: ``str`` for a text packet, ``bytes`` for a binary MESSAGE.
    """

    __slots__ = ("_deflated", "_frame", "_poll", "compress", "data", "size", "type")

    def __init__(self, ptype: EioType, data: str | bytes = "", compress: bool = True) -> None:
        self.type = ptype
        self.data = data
        # An estimate that is cheap to compute; used for queue byte limits.
        self.size = len(data) + 1
        #: Whether this packet may be compressed (an emit's ``compress`` flag).
        self.compress = compress
        self._frame: bytes | None = None
        self._poll: str | None = None
        # The compressed frame, with the (window bits, level, memory level) it
        # was made with: in practice one setting per server.
        self._deflated: tuple[tuple[int, int, int], bytes] | None = None

    @property
    def ws_message(self) -> str | bytes:
        """The WebSocket message (unframed): ``"<type><data>"`` or the bytes."""
        data = self.data
        if isinstance(data, bytes):
            return data
        return _TYPE_CHARS[self.type] + data

    @property
    def ws_frame(self) -> bytes:
        """The complete, unmasked WebSocket frame, computed once."""
        frame = self._frame
        if frame is None:
            data = self.data
            if isinstance(data, bytes):
                frame = ws_frame_header(_BINARY, len(data)) + data
            else:
                payload = (_TYPE_CHARS[self.type] + data).encode("utf-8")
                frame = ws_frame_header(_TEXT, len(payload)) + payload
            self._frame = frame
        return frame

    def ws_payload(self) -> bytes:
        """The WebSocket message's payload (the frame without its header)."""
        frame = self.ws_frame
        return frame[_payload_start(frame) :]

    @property
    def ws_payload_size(self) -> int:
        """The WebSocket message's size in bytes (what a compression threshold reads)."""
        frame = self.ws_frame
        return len(frame) - _payload_start(frame)

    def ws_deflated_frame(self, bits: int, level: int, mem_level: int) -> bytes:
        """The frame of this message compressed on its own (RFC 7692), computed once."""
        key = (bits, level, mem_level)
        cached = self._deflated
        if cached is not None and cached[0] == key:
            return cached[1]
        compressed = deflate_message(self.ws_payload(), bits, level, mem_level)
        frame = compressed_frame(self.ws_frame[0], compressed)
        self._deflated = (key, frame)
        return frame

    @property
    def poll_text(self) -> str:
        """This packet as a record of a polling payload, computed once."""
        text = self._poll
        if text is None:
            data = self.data
            if isinstance(data, bytes):
                text = "b" + base64.b64encode(data).decode("ascii")
            else:
                text = _TYPE_CHARS[self.type] + data
            self._poll = text
        return text

    def __repr__(self) -> str:
        return f"OutPacket({self.type.name}, {self.data[:40]!r})"


_TYPE_CHARS = {t: str(int(t)) for t in EioType}


PING = OutPacket(EioType.PING)
NOOP = OutPacket(EioType.NOOP)
CLOSE = OutPacket(EioType.CLOSE)
PROBE_PONG = OutPacket(EioType.PONG, "probe")


def message(data: str | bytes) -> OutPacket:
    """A MESSAGE packet carrying ``data``."""
    return OutPacket(EioType.MESSAGE, data)
