"""The msgpack Socket.IO parser, wire-compatible with npm ``socket.io-msgpack-parser``.

Reference behaviour (socket.io-msgpack-parser 3.0.2, which bundles notepack.io
2.2.0): every packet is one binary Engine.IO message holding a msgpack map
``{type, data, nsp, id}``; binary values travel inline, so there are no
BINARY_EVENT / BINARY_ACK packets and no attachments. Only types 0-4 are valid.
Unknown keys (the JavaScript client adds ``options``) are ignored.

notepack.io 2.2.0 uses extension type 0 for three things, told apart only by the
format byte: ``fixext 8`` is a ``Date`` (int64 milliseconds since the epoch),
``fixext 1`` is ``undefined``, and ``ext 8/16/32`` is an ``ArrayBuffer`` (what a
browser sends for binary; Node's ``Buffer`` is plain ``bin``). We map them to
:class:`datetime.datetime` (UTC), ``None`` and ``bytes``, and write an aware
``datetime`` as that ``fixext 8``. Standard msgpack timestamps (extension -1, as
other peers write them) are read as ``datetime`` too.

Needs the optional ``msgpack`` package (``pip install triosio[msgpack]``).
"""

from __future__ import annotations

import datetime
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


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_MS = datetime.timedelta(milliseconds=1)
_FIXEXT1, _FIXEXT8 = 0xD4, 0xD7
_TIMESTAMP = 0xFF  # extension -1: the unpacker decodes it without calling ext_hook

# Bytes after the format byte, for formats of a fixed size (msgpack spec).
_FIXED = {0xC0: 0, 0xC2: 0, 0xC3: 0, 0xCA: 4, 0xCB: 8, 0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}
_FIXED |= {0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8}
# Length-prefixed formats: (bytes of length, is an extension).
_SIZED = {0xC4: (1, False), 0xC5: (2, False), 0xC6: (4, False), 0xD9: (1, False)}
_SIZED |= {0xDA: (2, False), 0xDB: (4, False), 0xC7: (1, True), 0xC8: (2, True), 0xC9: (4, True)}


def ext_formats(buf: bytes) -> list[int]:
    """The format byte of every extension value in ``buf`` but timestamps, in order.

    msgpack's ``ext_hook`` gets the type and the data but not the format byte,
    which is all that tells notepack's ``Date`` from an 8-byte ``ArrayBuffer``
    (and its ``undefined``). The walk skips strings and binaries by their
    length, so it is linear. Meant for input the unpacker accepts, and only
    when it may hold such a value: on truncated input it may raise
    :class:`IndexError` or return a partial list.
    """
    formats: list[int] = []
    i, todo, end = 0, 1, len(buf)
    while todo and i < end:
        todo -= 1
        b = buf[i]
        i += 1
        if b <= 0x7F or b >= 0xE0:  # fixint
            continue
        if b <= 0x8F:  # fixmap
            todo += 2 * (b & 0x0F)
        elif b <= 0x9F:  # fixarray
            todo += b & 0x0F
        elif b <= 0xBF:  # fixstr
            i += b & 0x1F
        elif b in _FIXED:
            i += _FIXED[b]
        elif b in _SIZED:
            width, is_ext = _SIZED[b]
            size = int.from_bytes(buf[i : i + width], "big")
            if is_ext and buf[i + width] != _TIMESTAMP:
                formats.append(b)
            i += width + is_ext + size  # an ext also has its type byte
        elif _FIXEXT1 <= b <= 0xD8:  # fixext 1/2/4/8/16
            if buf[i] != _TIMESTAMP:
                formats.append(b)
            i += 1 + (1 << (b - _FIXEXT1))
        elif b in (0xDC, 0xDD):  # array 16/32
            width = 2 if b == 0xDC else 4
            todo += int.from_bytes(buf[i : i + width], "big")
            i += width
        elif b in (0xDE, 0xDF):  # map 16/32
            width = 2 if b == 0xDE else 4
            todo += 2 * int.from_bytes(buf[i : i + width], "big")
            i += width
    return formats


def _ext_hook(formats: list[int] | None) -> Any:
    """An ``ext_hook`` mapping notepack's extension type 0 (see the module doc)."""
    order = iter(formats or ())

    def hook(code: int, data: bytes) -> Any:
        fmt = next(order, None)
        if code != 0:
            raise InvalidEncoding(f"unsupported msgpack extension type {code}")
        if fmt == _FIXEXT8:
            try:
                return _EPOCH + int.from_bytes(data, "big", signed=True) * _MS
            except OverflowError:
                raise InvalidEncoding("date out of range") from None
        if fmt == _FIXEXT1:
            return None  # JavaScript's undefined
        return data

    return hook


def _default(obj: Any) -> Any:
    if isinstance(obj, (bytearray, memoryview)):
        return bytes(obj)
    if isinstance(obj, tuple):
        return list(obj)
    if isinstance(obj, datetime.datetime):
        if obj.tzinfo is None:
            raise TypeError("a naive datetime is ambiguous: give it a time zone")
        # notepack's Date: fixext 8, type 0, int64 milliseconds (floored, as JS does).
        return msgpack.ExtType(0, ((obj - _EPOCH) // _MS).to_bytes(8, "big", signed=True))
    raise TypeError(f"cannot encode an object of type {type(obj).__name__} with msgpack")


class MsgpackEncoder:
    """Encodes a packet as one msgpack map."""

    __slots__ = ("_packer",)

    def __init__(self) -> None:
        mp = _require_msgpack()
        self._packer = mp.Packer(use_bin_type=True, default=_default)

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
        # The format walk is needed only where a Date or undefined may be.
        maybe = b"\xd7\x00" in message or b"\xd4\x00" in message
        try:
            obj = self._unpack(message, None)
            if maybe:
                obj = self._unpack(message, ext_formats(bytes(message)))
        except InvalidEncoding:
            raise
        except (RecursionError, self._mp.StackError):
            # The unpacker has a fixed stack; deeper input is a nesting fault.
            raise NestingTooDeep("msgpack data nested too deeply") from None
        except (
            ValueError,
            TypeError,
            OverflowError,
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

    def _unpack(self, message: bytes, formats: list[int] | None) -> Any:
        return self._mp.unpackb(
            message,
            raw=False,
            strict_map_key=False,
            ext_hook=_ext_hook(formats),
            timestamp=3,
        )


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
