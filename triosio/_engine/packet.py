"""Outgoing Engine.IO packets, encoded once and cached for every transport.

A broadcast hands the *same* :class:`OutPacket` objects to every recipient, so the
Socket.IO encoding, the Engine.IO encoding and the WebSocket framing (RFC 6455
section 5.2: a server's frames are never masked, and we never compress, so the
bytes are identical for every client) are each computed at most once per packet,
whatever the number of recipients.
"""

from __future__ import annotations

import base64
import struct

from .._proto.eio import EioType

_TEXT = 0x81  # FIN + opcode 1
_BINARY = 0x82  # FIN + opcode 2


def ws_frame_header(opcode_byte: int, length: int) -> bytes:
    """The header of an unmasked WebSocket frame of ``length`` payload bytes."""
    if length < 126:
        return bytes((opcode_byte, length))
    if length < 65536:
        return struct.pack("!BBH", opcode_byte, 126, length)
    return struct.pack("!BBQ", opcode_byte, 127, length)


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

    __slots__ = ("_frame", "_poll", "data", "size", "type")

    def __init__(self, ptype: EioType, data: str | bytes = "") -> None:
        self.type = ptype
        self.data = data
        # An estimate that is cheap to compute; used for queue byte limits.
        self.size = len(data) + 1
        self._frame: bytes | None = None
        self._poll: str | None = None

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
