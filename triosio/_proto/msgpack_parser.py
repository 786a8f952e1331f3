"""The msgpack Socket.IO parser, wire-compatible with npm ``socket.io-msgpack-parser``.

Reference behaviour (socket.io-msgpack-parser 3.x, on notepack.io): every packet
is one binary Engine.IO message holding a msgpack map ``{type, data, nsp, id}``;
binary values travel inline as msgpack ``bin``, so there are no BINARY_EVENT /
BINARY_ACK packets and no attachments. Only types 0-4 are valid. Unknown keys
(the JavaScript client adds ``options``) are ignored. JavaScript ``Date`` values
are msgpack timestamps, which we map to and from :class:`datetime.datetime`.

Needs the optional ``msgpack`` package (``pip install triosio[msgpack]``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .._errors import (
    AttachmentMismatch,
    EmptyPacket,
    InvalidEncoding,
    LocalProtocolError,
    NestingTooDeep,
    PayloadTooLarge,
    UnknownPacketType,
)
from .sio import Limits, SioPacket, SioType, check_ack_id, check_data, check_namespace

try:
    import msgpack
except ImportError:  # pragma: no cover - exercised only without the extra
    msgpack = None


def _require_msgpack() -> Any:
    if msgpack is None:
        raise RuntimeError(
            "the msgpack parser needs the 'msgpack' package: pip install 'triosio[msgpack]'"
        )
    return msgpack


def _ext_hook(code: int, data: bytes) -> Any:
    if code == 0:  # notepack.io's legacy ArrayBuffer encoding
        return data
    raise InvalidEncoding(f"unsupported msgpack extension type {code}")


def _default(obj: Any) -> Any:
    if isinstance(obj, (bytearray, memoryview)):
        return bytes(obj)
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"cannot encode an object of type {type(obj).__name__} with msgpack")


class MsgpackEncoder:
    """Encodes a packet as one msgpack map."""

    __slots__ = ("_packer",)

    def __init__(self) -> None:
        mp = _require_msgpack()
        self._packer = mp.Packer(use_bin_type=True, datetime=True, default=_default)

    def encode(self, packet: SioPacket) -> list[str | bytes]:
        """Encode ``packet`` as ``[msgpack bytes]``."""
        ptype = packet.type
        if ptype is SioType.BINARY_EVENT:
            ptype = SioType.EVENT
        elif ptype is SioType.BINARY_ACK:
            ptype = SioType.ACK
        obj: dict[str, Any] = {"type": int(ptype)}
        if packet.data is not None:
            obj["data"] = packet.data
        obj["nsp"] = packet.nsp
        if packet.id is not None:
            obj["id"] = packet.id
        try:
            return [self._packer.pack(obj)]
        except (TypeError, ValueError, OverflowError) as exc:
            raise LocalProtocolError(f"cannot encode with msgpack: {exc}") from None


def _depth_ok(obj: Any, max_depth: int) -> bool:
    stack = [(obj, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (list, dict)):
            if depth >= max_depth:
                return False
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children)
    return True


class MsgpackDecoder:
    """Decodes msgpack packets. Stateless between messages (no attachments)."""

    __slots__ = ("_mp", "limits")

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._mp = _require_msgpack()

    @property
    def pending(self) -> bool:
        """Always false: msgpack packets never wait for attachments."""
        return False

    def reset(self) -> None:
        """Nothing to forget."""

    def feed(self, message: str | bytes) -> SioPacket:
        """Decode one binary Engine.IO message into a packet."""
        if isinstance(message, str):
            raise AttachmentMismatch("the msgpack parser expects binary messages, got text")
        if not message:
            raise EmptyPacket("empty msgpack packet")
        limit = self.limits.max_payload + self.limits.max_attachment_bytes
        if len(message) > limit:
            raise PayloadTooLarge(f"packet of {len(message)} bytes")
        try:
            obj = self._mp.unpackb(
                message,
                raw=False,
                strict_map_key=False,
                ext_hook=_ext_hook,
                timestamp=3,
            )
        except InvalidEncoding:
            raise
        except (RecursionError, self._mp.StackError):
            # The unpacker has a fixed stack; deeper input is a nesting fault.
            raise NestingTooDeep("msgpack data nested too deeply") from None
        except (
            ValueError,
            TypeError,
            self._mp.ExtraData,
            self._mp.FormatError,
            UnicodeDecodeError,
        ) as exc:
            raise InvalidEncoding(f"invalid msgpack: {exc}") from None
        if not isinstance(obj, dict):
            raise InvalidEncoding("a msgpack packet must be a map")
        ptype = obj.get("type")
        if (
            not isinstance(ptype, int)
            or isinstance(ptype, bool)
            or not SioType.CONNECT <= ptype <= SioType.CONNECT_ERROR
        ):
            raise UnknownPacketType(f"unknown Socket.IO packet type {ptype!r}"[:80])
        kind = SioType(ptype)
        nsp = check_namespace(obj.get("nsp"))
        raw_id = obj.get("id")
        packet_id = None if raw_id is None else check_ack_id(raw_id)
        data = obj.get("data")
        if not _depth_ok(data, self.limits.max_depth):
            raise NestingTooDeep(f"data nested deeper than {self.limits.max_depth} levels")
        check_data(kind, data, packet_id)
        return SioPacket(kind, nsp, data, packet_id)


@dataclass(frozen=True)
class MsgpackParser:
    """The msgpack Socket.IO parser (``socket.io-msgpack-parser``)."""

    name: str = field(default="msgpack")

    def encoder(self) -> MsgpackEncoder:
        """A new encoder."""
        return MsgpackEncoder()

    def decoder(self, limits: Limits) -> MsgpackDecoder:
        """A new decoder, one per connection."""
        return MsgpackDecoder(limits)
