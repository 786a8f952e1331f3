"""Engine.IO protocol v4: packets, polling payloads and the handshake.

Spec: https://socket.io/docs/v4/engine-io-protocol/ (sections "Packet encoding",
"HTTP long-polling", "WebSocket", "Handshake").

- A packet is one type digit followed by its data (``4hello``). Over WebSocket a
  text frame carries one text packet; a binary frame is always a MESSAGE whose
  data is the frame itself.
- A polling payload joins packets with the record separator ``\\x1e``; a binary
  MESSAGE is written as ``b`` followed by the base64 of its data.
- The OPEN packet carries the handshake as JSON, with exactly the keys ``sid``,
  ``upgrades``, ``pingInterval``, ``pingTimeout`` and ``maxPayload``.

Pure code: no I/O, no clock, no trio.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import enum
from dataclasses import dataclass
from typing import Any

from .._errors import (
    EmptyPacket,
    InvalidEncoding,
    InvalidHandshake,
    LocalProtocolError,
    PayloadTooLarge,
    RemoteProtocolError,
    TooManyPackets,
    UnknownPacketType,
)
from ._json import JSONReader, dumps

# The handshake is one flat object: refuse deep nesting and giant numbers early.
_HANDSHAKE_READER = JSONReader(max_depth=4, max_int_digits=20)

PROTOCOL = 4
RECORD_SEPARATOR = "\x1e"


class EioType(enum.IntEnum):
    """The seven Engine.IO packet types."""

    OPEN = 0
    CLOSE = 1
    PING = 2
    PONG = 3
    MESSAGE = 4
    UPGRADE = 5
    NOOP = 6


_TYPE_BY_CHAR = {str(int(t)): t for t in EioType}


@dataclass(frozen=True, slots=True, init=False)
class EioPacket:
    """One Engine.IO packet.

    Attributes:
        type: The packet type.
        data: Text data, or ``bytes`` for a binary MESSAGE.
    """

    type: EioType
    data: str | bytes

    def __init__(self, type: EioType, data: str | bytes = "") -> None:
        # Written out (rather than generated) because the frozen dataclass
        # __init__ is slow, and every received frame builds one.
        if isinstance(data, bytes) and type is not EioType.MESSAGE:
            raise LocalProtocolError("only MESSAGE packets may carry binary data")
        _set_type(self, type)
        _set_data(self, data)


_set_type: Any = vars(EioPacket)["type"].__set__
_set_data: Any = vars(EioPacket)["data"].__set__


# Pre-built packets that carry no data, to avoid allocations on hot paths.
PING = EioPacket(EioType.PING)
PONG = EioPacket(EioType.PONG)
NOOP = EioPacket(EioType.NOOP)
CLOSE = EioPacket(EioType.CLOSE)
UPGRADE = EioPacket(EioType.UPGRADE)
PROBE_PING = EioPacket(EioType.PING, "probe")
PROBE_PONG = EioPacket(EioType.PONG, "probe")


def encode_text(packet: EioPacket) -> str:
    """Encode a text packet as ``<type><data>`` (a binary MESSAGE is an error)."""
    if isinstance(packet.data, bytes):
        raise LocalProtocolError("binary packets have no text encoding; use encode_ws")
    return str(int(packet.type)) + packet.data


def encode_ws(packet: EioPacket) -> str | bytes:
    """Encode a packet as one WebSocket frame: ``str`` is a text frame, ``bytes`` binary."""
    if isinstance(packet.data, bytes):
        return packet.data
    return str(int(packet.type)) + packet.data


def decode_ws(frame: str | bytes, *, max_payload: int | None = None) -> EioPacket:
    """Decode one WebSocket frame into a packet.

    Raises:
        EmptyPacket: for an empty text frame.
        UnknownPacketType: for a type digit outside 0-6.
        PayloadTooLarge: above ``max_payload`` bytes (characters for text).
    """
    if max_payload is not None and len(frame) > max_payload:
        raise PayloadTooLarge(f"frame of {len(frame)} bytes (at most {max_payload})")
    if isinstance(frame, (bytes, bytearray, memoryview)):
        return EioPacket(EioType.MESSAGE, bytes(frame))
    return _decode_text(frame)


def _decode_text(text: str) -> EioPacket:
    if not text:
        raise EmptyPacket("empty Engine.IO packet")
    ptype = _TYPE_BY_CHAR.get(text[0])
    if ptype is None:
        raise UnknownPacketType(f"unknown Engine.IO packet type {text[0]!r}")
    return EioPacket(ptype, text[1:])


def encode_payload_part(packet: EioPacket) -> str:
    """Encode one packet as it appears inside a polling payload.

    Raises:
        LocalProtocolError: for text holding the record separator, which would
            split it into other packets at the receiver. (Socket.IO's JSON
            escapes it, but a namespace or a raw Engine.IO message may not.)
    """
    if isinstance(packet.data, bytes):
        return "b" + base64.b64encode(packet.data).decode("ascii")
    if RECORD_SEPARATOR in packet.data:
        raise LocalProtocolError("text with a record separator cannot go in a polling payload")
    return str(int(packet.type)) + packet.data


def encode_payload(packets: list[EioPacket]) -> str:
    """Join packets into one polling payload (HTTP long-polling body)."""
    return RECORD_SEPARATOR.join([encode_payload_part(p) for p in packets])


def decode_payload(
    body: str,
    *,
    max_packets: int | None = None,
    max_payload: int | None = None,
) -> list[EioPacket]:
    """Split a polling payload into packets.

    Raises:
        TooManyPackets: more than ``max_packets`` records.
        PayloadTooLarge: a body above ``max_payload`` characters.
        EmptyPacket, UnknownPacketType, InvalidEncoding: for a bad record.
    """
    if max_payload is not None and len(body) > max_payload:
        raise PayloadTooLarge(f"payload of {len(body)} bytes (at most {max_payload})")
    if max_packets is not None and body.count(RECORD_SEPARATOR) >= max_packets:
        raise TooManyPackets(f"more than {max_packets} packets in one payload")
    return [_decode_record(record) for record in body.split(RECORD_SEPARATOR)]


def _decode_record(record: str) -> EioPacket:
    if record[:1] == "b":
        try:
            data = base64.b64decode(record[1:], validate=True)
        except (binascii.Error, ValueError):
            raise InvalidEncoding("invalid base64 in a binary packet") from None
        return EioPacket(EioType.MESSAGE, data)
    return _decode_text(record)


@dataclass(frozen=True, slots=True)
class Handshake:
    """The data of the OPEN packet.

    Attributes:
        sid: The session id.
        upgrades: Transports the client may upgrade to (``["websocket"]`` or ``[]``).
        ping_interval: Milliseconds between two server pings.
        ping_timeout: Milliseconds the server waits for a pong.
        max_payload: Largest payload, in bytes, the server accepts.
    """

    sid: str
    upgrades: tuple[str, ...]
    ping_interval: int
    ping_timeout: int
    max_payload: int


def encode_open(handshake: Handshake) -> str:
    """Encode the OPEN packet (``0{...}``), with keys in the reference's order."""
    return "0" + dumps(
        {
            "sid": handshake.sid,
            "upgrades": list(handshake.upgrades),
            "pingInterval": handshake.ping_interval,
            "pingTimeout": handshake.ping_timeout,
            "maxPayload": handshake.max_payload,
        }
    )


def decode_open(data: str) -> Handshake:
    """Decode the data of an OPEN packet (what follows the ``0``).

    Raises:
        InvalidHandshake: if it is not a JSON object with the expected fields.
    """
    try:
        obj = _HANDSHAKE_READER.loads(data)
    except RemoteProtocolError:
        raise InvalidHandshake("handshake is not valid JSON") from None
    if not isinstance(obj, dict):
        raise InvalidHandshake("handshake is not a JSON object")
    sid = obj.get("sid")
    upgrades = obj.get("upgrades", [])
    interval = obj.get("pingInterval")
    timeout = obj.get("pingTimeout")
    max_payload = obj.get("maxPayload", 1_000_000)
    if not isinstance(sid, str) or not sid:
        raise InvalidHandshake("handshake without a session id")
    if not isinstance(upgrades, list) or not all(isinstance(u, str) for u in upgrades):
        raise InvalidHandshake("handshake 'upgrades' is not a list of strings")
    for name, value in (
        ("pingInterval", interval),
        ("pingTimeout", timeout),
        ("maxPayload", max_payload),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InvalidHandshake(f"handshake {name!r} is not a non-negative integer")
    assert isinstance(interval, int)
    assert isinstance(timeout, int)
    assert isinstance(max_payload, int)
    return Handshake(sid, tuple(upgrades), interval, timeout, max_payload)


class PayloadReader:
    """Decodes a polling request body incrementally, as its chunks arrive.

    Limits are enforced as data comes in, so an oversized body is refused
    without being buffered. Feeding a body in any split gives the same packets.

    Args:
        max_packets: Most packets in the body.
        max_payload: Most bytes in the body.
    """

    __slots__ = ("_count", "_decoder", "_partial", "_size", "max_packets", "max_payload")

    def __init__(self, *, max_packets: int = 16, max_payload: int = 1_000_000) -> None:
        self.max_packets = max_packets
        self.max_payload = max_payload
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        # The text of the unfinished record, in pieces: joining only when a record
        # ends keeps a body sent in tiny chunks linear (``+=`` on an attribute
        # copies the whole string every time).
        self._partial: list[str] = []
        self._size = 0
        self._count = 0

    def feed(self, chunk: bytes) -> list[EioPacket]:
        """Take the next bytes of the body; return the packets completed by them."""
        self._size += len(chunk)
        if self._size > self.max_payload:
            raise PayloadTooLarge(f"payload above {self.max_payload} bytes")
        try:
            text = self._decoder.decode(chunk)
        except UnicodeDecodeError:
            raise InvalidEncoding("request body is not valid UTF-8") from None
        separators = text.count(RECORD_SEPARATOR)
        if not separators:
            if text:
                self._partial.append(text)
            return []
        # Count before splitting, so a body of separators is refused unsplit.
        if self._count + separators >= self.max_packets:
            raise TooManyPackets(f"more than {self.max_packets} packets in one payload")
        self._partial.append(text)
        records = "".join(self._partial).split(RECORD_SEPARATOR)
        self._partial = [records.pop()]
        return self._records(records)

    def close(self) -> list[EioPacket]:
        """The body ended: return the last packet(s)."""
        try:
            tail = self._decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise InvalidEncoding("request body is not valid UTF-8") from None
        self._partial.append(tail)
        record = "".join(self._partial)
        self._partial = []
        return self._records([record])

    def _records(self, records: list[str]) -> list[EioPacket]:
        self._count += len(records)
        if self._count > self.max_packets:
            raise TooManyPackets(f"more than {self.max_packets} packets in one payload")
        return [_decode_record(record) for record in records]
