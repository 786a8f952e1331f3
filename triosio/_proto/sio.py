"""Socket.IO protocol v5: packets, the default (JSON) parser, binary attachments.

Spec: https://socket.io/docs/v4/socket-io-protocol/ (sections "Packet format",
"Packet encoding", "Exchange protocol").

Text format: ``<type>[<attachments>-][<namespace>,][<ack id>][<JSON data>]``; the
namespace is written only when it is not ``/``. A packet whose data holds bytes at
any depth is sent as BINARY_EVENT / BINARY_ACK: the text packet with each bytes
value replaced by ``{"_placeholder":true,"num":N}``, followed by N binary
attachments, one Engine.IO message each.

Decoding is strict (see :mod:`triosio._errors`): every malformed input raises one
specific :class:`~triosio.RemoteProtocolError` subclass, and nothing else. The
:class:`Decoder` is incremental (one per connection): it keeps a binary packet
until its last attachment arrives, and keeps nothing after :meth:`Decoder.reset`.

Pure code: no I/O, no clock, no trio.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from .._errors import (
    AttachmentMismatch,
    EmptyPacket,
    InvalidAckId,
    InvalidAckPayload,
    InvalidAttachmentCount,
    InvalidConnectErrorPayload,
    InvalidConnectPayload,
    InvalidDisconnectPayload,
    InvalidEventName,
    InvalidEventPayload,
    InvalidJSON,
    InvalidNamespace,
    InvalidPlaceholder,
    LocalProtocolError,
    PayloadTooLarge,
    ReservedEventName,
    UnknownPacketType,
)
from ._json import dumps, dumps_binary, shared_reader

PROTOCOL = 5
MAX_ACK_ID = 2**53
_MAX_ACK_ID_DIGITS = len(str(MAX_ACK_ID))

#: Event names a peer may never send: they have a meaning of their own.
RESERVED_EVENTS = frozenset(
    {"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}
)


def check_event_name(event: object) -> None:
    """Refuse what this side cannot emit as an event name.

    Raises:
        LocalProtocolError: not a string, or a reserved name.
    """
    if not isinstance(event, str):
        raise LocalProtocolError(f"event names are strings, not {type(event).__name__}")
    if event in RESERVED_EVENTS:
        raise LocalProtocolError(f"{event!r} is a reserved event name")


class SioType(enum.IntEnum):
    """The seven Socket.IO packet types."""

    CONNECT = 0
    DISCONNECT = 1
    EVENT = 2
    ACK = 3
    CONNECT_ERROR = 4
    BINARY_EVENT = 5
    BINARY_ACK = 6


_TYPE_BY_CHAR = {str(int(t)): t for t in SioType}


@dataclass(frozen=True, slots=True, init=False)
class SioPacket:
    """One Socket.IO packet.

    Decoders always give EVENT and ACK (never BINARY_EVENT / BINARY_ACK): whether
    a packet travels as binary is decided by its data when it is encoded.

    Attributes:
        type: The packet type.
        nsp: The namespace, ``/`` by default.
        data: EVENT: ``[name, *args]``; ACK: ``[*args]``; CONNECT: the auth object
            or ``None``; CONNECT_ERROR: ``{"message": ..., "data": ...}``;
            DISCONNECT: ``None``.
        id: The acknowledgement id, or ``None``.
    """

    type: SioType
    nsp: str
    data: Any
    id: int | None

    def __init__(
        self, type: SioType, nsp: str = "/", data: Any = None, id: int | None = None
    ) -> None:
        # Written out because the generated frozen __init__ goes through
        # object.__setattr__ four times: this halves the cost of every decode.
        _set_type(self, type)
        _set_nsp(self, nsp)
        _set_data(self, data)
        _set_id(self, id)


_set_type: Any = vars(SioPacket)["type"].__set__
_set_nsp: Any = vars(SioPacket)["nsp"].__set__
_set_data: Any = vars(SioPacket)["data"].__set__
_set_id: Any = vars(SioPacket)["id"].__set__


@dataclass(frozen=True, slots=True)
class Limits:
    """What a decoder accepts. The defaults follow the JavaScript reference.

    Attributes:
        max_attachments: Most binary attachments in one packet (10, as the reference).
        max_attachment_bytes: Most bytes of attachments buffered for one packet.
        max_depth: Deepest nesting of arrays/objects in packet data.
        max_int_digits: Most digits in one JSON integer.
        max_payload: Largest text packet, in characters.
    """

    max_attachments: int = 10
    max_attachment_bytes: int = 10_000_000
    max_depth: int = 32
    max_int_digits: int = 100
    max_payload: int = 1_000_000


class Encoder(Protocol):
    """Turns a packet into the Engine.IO messages that carry it."""

    def encode(self, packet: SioPacket) -> list[str | bytes]:
        """Encode ``packet``; the first item is the packet, the rest attachments."""
        ...


class Decoder(Protocol):
    """Reassembles packets from Engine.IO messages; one per connection."""

    def feed(self, message: str | bytes) -> SioPacket | None:
        """Take one Engine.IO message; return a packet when one is complete."""
        ...

    def reset(self) -> None:
        """Forget any partial packet."""
        ...

    @property
    def pending(self) -> bool:
        """Whether a binary packet is waiting for attachments."""
        ...


class Parser(Protocol):
    """A Socket.IO parser: the JSON default, or msgpack (see ``triosio.Server(parser=)``)."""

    @property
    def name(self) -> str:
        """``"json"``, ``"msgpack"``..."""
        ...

    def encoder(self) -> Encoder:
        """A new encoder."""
        ...

    def decoder(self, limits: Limits) -> Decoder:
        """A new decoder, one per connection."""
        ...


# ---------------------------------------------------------------- validation


def ack_args(value: Any) -> list[Any]:
    """A handler's return value as acknowledgement arguments.

    ``None`` acknowledges with no argument, a tuple with several, anything else
    with one. The inverse of :func:`ack_value`.
    """
    if value is None:
        return []
    if isinstance(value, tuple):
        return list(value)
    return [value]


def ack_value(args: tuple[Any, ...] | list[Any]) -> Any:
    """Acknowledgement arguments as one value: ``None``, the argument, or a tuple."""
    if not args:
        return None
    if len(args) == 1:
        return args[0]
    return tuple(args)


def check_data(ptype: SioType, data: Any, packet_id: int | None, *, present: bool = False) -> None:
    """Check that ``data`` fits a packet of type ``ptype`` (shared by all parsers).

    Args:
        ptype: The packet type.
        data: The decoded payload (``None`` when absent).
        packet_id: The ack id, or ``None``.
        present: Whether the packet carried a payload at all, so that an explicit
            ``null`` (``0null``, ``1null``) is refused as the reference parser
            refuses it.
    """
    if ptype is SioType.EVENT or ptype is SioType.BINARY_EVENT:
        if not isinstance(data, list) or not data:
            raise InvalidEventPayload("EVENT payload must be a non-empty array")
        name = data[0]
        if not isinstance(name, str):
            raise InvalidEventName(f"event name must be a string, not {type(name).__name__}")
        if name in RESERVED_EVENTS:
            raise ReservedEventName(f"event name {name!r} is reserved")
    elif ptype is SioType.ACK or ptype is SioType.BINARY_ACK:
        if not isinstance(data, list):
            raise InvalidAckPayload("ACK payload must be an array")
        if packet_id is None:
            raise InvalidAckId("ACK packet without an ack id")
    elif ptype is SioType.CONNECT:
        if (data is not None or present) and not isinstance(data, dict):
            raise InvalidConnectPayload("CONNECT payload must be an object")
    elif ptype is SioType.DISCONNECT:
        if data is not None or present:
            raise InvalidDisconnectPayload("DISCONNECT packet must not carry a payload")
    elif ptype is SioType.CONNECT_ERROR and not isinstance(data, (dict, str)):
        raise InvalidConnectErrorPayload("CONNECT_ERROR payload must be an object or string")


def check_namespace(nsp: object) -> str:
    """Return ``nsp`` if it is a valid namespace name, else raise InvalidNamespace."""
    if not isinstance(nsp, str) or not nsp.startswith("/"):
        raise InvalidNamespace(f"namespace must start with '/': {str(nsp)[:50]!r}")
    return nsp


def check_ack_id(value: object) -> int:
    """Return ``value`` if it is a valid ack id (an int in 0..2**53)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidAckId(f"ack id must be an integer, not {type(value).__name__}")
    if not 0 <= value <= MAX_ACK_ID:
        raise InvalidAckId(f"ack id out of range: {value}")
    return value


# ---------------------------------------------------------------- JSON parser


_TYPE_CHAR = ("0", "1", "2", "3", "4", "5", "6")


class JSONEncoder:
    """The default encoder: text packets, bytes as placeholders plus attachments."""

    __slots__ = ()

    def encode(self, packet: SioPacket) -> list[str | bytes]:
        """Encode ``packet`` as the reference parser would, byte for byte.

        Raises:
            LocalProtocolError: for a namespace that does not start with ``/`` or
                holds a comma, an ack id outside 0..2**53, or data that JSON
                cannot carry (NaN, Infinity, objects of unknown types).
        """
        ptype = packet.type
        packet_id = packet.id
        data = packet.data
        head = _nsp_head(packet.nsp)
        if packet_id is not None:
            if (
                not isinstance(packet_id, int)
                or isinstance(packet_id, bool)
                or not 0 <= packet_id <= MAX_ACK_ID
            ):
                raise LocalProtocolError(f"ack id must be an int in 0..2**53: {packet_id!r}")
            head += int.__repr__(packet_id)
        if data is None:
            return [_TYPE_CHAR[ptype] + head]
        if ptype is SioType.EVENT or ptype is SioType.ACK or ptype >= SioType.BINARY_EVENT:
            text, attachments = dumps_binary(data)
            is_event = ptype is SioType.EVENT or ptype is SioType.BINARY_EVENT
            if attachments:
                return [f"{5 if is_event else 6}{len(attachments)}-{head}{text}", *attachments]
            return [("2" if is_event else "3") + head + text]
        return [_TYPE_CHAR[ptype] + head + dumps(data)]

    def encode_ack(self, nsp: str, args: list[Any], ack_id: int) -> list[str | bytes]:
        """``encode(SioPacket(SioType.ACK, nsp, args, ack_id))``, with fewer checks.

        For an acknowledgement of an ack id the decoder accepted (so valid): a
        handler's answer, on the echo round trip's path.
        """
        text, attachments = dumps_binary(args)
        head = _nsp_head(nsp) + int.__repr__(ack_id)
        if attachments:
            return [f"6{len(attachments)}-{head}{text}", *attachments]
        return ["3" + head + text]


def _nsp_head(nsp: str) -> str:
    # What precedes the ack id and the data in the text format.
    if nsp == "/":
        return ""
    if nsp[:1] == "/" and "," not in nsp:
        # The text format ends the namespace at the first comma, unescaped.
        return nsp + ","
    raise LocalProtocolError(f"namespace must start with '/' and hold no ',': {nsp!r}")


_ACK_DIGITS = re.compile(r"[0-9]*")
_JSON_START = frozenset('[{"-0123456789tfn')
_BRACKET = re.compile(r'[\[{"]')


class JSONDecoder:
    """The default decoder. Incremental: one per connection.

    Args:
        limits: What to accept.
    """

    __slots__ = ("_attachments", "_bytes", "_expected", "_head", "_reader", "_slots", "limits")

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        # Readers hold no per-connection state: one per set of limits is shared.
        self._reader = shared_reader(self.limits.max_depth, self.limits.max_int_digits)
        self._head: SioPacket | None = None
        self._expected = 0
        # Made for a binary packet only (an idle connection's decoder holds
        # no list: one object fewer per connection for the cyclic GC).
        self._attachments: list[bytes] | None = None
        self._slots: list[_Slot] | None = None
        self._bytes = 0

    @property
    def pending(self) -> bool:
        """Whether a binary packet is waiting for attachments."""
        return self._head is not None

    def reset(self) -> None:
        """Drop any partially received binary packet."""
        self._head = None
        self._expected = 0
        self._attachments = None
        self._slots = None
        self._bytes = 0

    def feed(self, message: str | bytes) -> SioPacket | None:
        """Take one Engine.IO message; return a packet when one is complete.

        Raises:
            RemoteProtocolError: a specific subclass for each kind of bad input.
                The decoder is reset before it raises.
        """
        try:
            if isinstance(message, str):
                if self._head is not None:
                    raise AttachmentMismatch(
                        f"text packet while {self._expected - len(self._attachments or ())} "
                        "binary attachment(s) are still expected"
                    )
                return self._decode_text(message)
            return self._take_attachment(message)
        except BaseException:
            self.reset()
            raise

    def _take_attachment(self, data: bytes) -> SioPacket | None:
        head = self._head
        if head is None:
            raise AttachmentMismatch("binary attachment with no binary packet waiting for it")
        self._bytes += len(data)
        if self._bytes > self.limits.max_attachment_bytes:
            raise PayloadTooLarge(
                f"attachments above {self.limits.max_attachment_bytes} bytes in one packet"
            )
        attachments = self._attachments
        assert attachments is not None  # made with the head
        attachments.append(bytes(data))
        if len(attachments) < self._expected:
            return None
        # The placeholders were checked against the count when the text arrived;
        # the data is ours (parsed here, never handed out), so fill it in place.
        for container, key, num in self._slots or ():
            container[key] = attachments[num]
        self.reset()
        return head

    def _decode_text(self, text: str) -> SioPacket | None:
        size = len(text)
        if not size:
            raise EmptyPacket("empty Socket.IO packet")
        if size > self.limits.max_payload:
            raise PayloadTooLarge(f"packet of {size} characters")
        ptype = _TYPE_BY_CHAR.get(text[0])
        if ptype is None:
            raise UnknownPacketType(f"unknown Socket.IO packet type {text[0]!r}")
        if ptype is SioType.EVENT:
            # The common case, an event on "/" with or without an ack id: skip the
            # header walk and the general payload check (the same checks, inlined).
            start = 1
            ack_id: int | None = None
            if text[1:2] != "[":
                start = text.find("[", 2, 2 + _MAX_ACK_ID_DIGITS)
                if start > 0:
                    digits = text[1:start]
                    if digits.isascii() and digits.isdigit():
                        ack_id = int(digits)
                        if ack_id > MAX_ACK_ID:
                            start = -1  # the general path says what is wrong
                    else:
                        start = -1
            if start > 0:
                args = self._reader.loads(text, start)
                if (
                    type(args) is not list
                    or not args
                    or type(args[0]) is not str
                    or args[0] in RESERVED_EVENTS
                ):
                    check_data(ptype, args, ack_id, present=True)  # raises the right error
                return SioPacket(ptype, "/", args, ack_id)
        i = 1
        count = 0
        binary = ptype is SioType.BINARY_EVENT or ptype is SioType.BINARY_ACK
        if binary:
            # The count is at most 11 digits here (an int, whatever the limit), so
            # no input can make us read or convert a long run of digits.
            dash = text.find("-", 1, 13)
            count_text = text[1:dash] if dash > 0 else ""
            if not count_text.isascii() or not count_text.isdigit():
                raise InvalidAttachmentCount("attachment count must be digits followed by '-'")
            count = int(count_text)
            if count < 1:
                raise InvalidAttachmentCount("a binary packet needs at least one attachment")
            if count > self.limits.max_attachments:
                raise InvalidAttachmentCount(
                    f"{count} attachments (at most {self.limits.max_attachments})"
                )
            i = dash + 1
        nsp = "/"
        if text.startswith("/", i):
            comma = text.find(",", i)
            if comma < 0:
                nsp, i = text[i:], size
            else:
                nsp, i = text[i:comma], comma + 1
        match = _ACK_DIGITS.match(text, i)
        assert match is not None
        packet_id: int | None = None
        if match.end() > i:
            digits = match.group()
            if len(digits) > _MAX_ACK_ID_DIGITS or int(digits) > MAX_ACK_ID:
                raise InvalidAckId(f"ack id too large: {digits[:20]}")
            packet_id = int(digits)
            i = match.end()
        data: Any = None
        present = i < size
        if present:
            first = text[i]
            if first not in _JSON_START:
                if packet_id is not None:
                    # "21x[...]", "21.5[...]": digits then junk, not a number.
                    raise InvalidAckId(f"ack id must be digits: {text[i - 1 : i + 10]!r}")
                comma = text.find(",", i)
                if comma > 0 and not _BRACKET.search(text, i, comma):
                    raise InvalidNamespace(f"namespace must start with '/': {text[i:comma][:50]!r}")
                raise InvalidJSON(f"unexpected {first!r} after the packet header")
            data = self._reader.loads(text, i)
        check_data(ptype, data, packet_id, present=present)
        if not binary:
            return SioPacket(ptype, nsp, data, packet_id)
        # Check the placeholders now, before any attachment is buffered.
        self._slots = _find_placeholders(data, count)
        plain = SioType.EVENT if ptype is SioType.BINARY_EVENT else SioType.ACK
        self._head = SioPacket(plain, nsp, data, packet_id)
        self._expected = count
        self._attachments = []
        self._bytes = 0
        return None


# Where a placeholder sits: its container, its index or key there, its number.
_Slot = tuple[Any, Any, int]


def _find_placeholders(data: list[Any], count: int) -> list[_Slot]:
    """Check that the placeholders of a binary packet number 0..count-1, each once.

    Returns where they are, so the attachments can be put in place when they
    arrive without rebuilding the data.
    """
    slots: list[_Slot] = []
    stack: list[Any] = [data]
    while stack:
        container = stack.pop()
        items = enumerate(container) if isinstance(container, list) else container.items()
        for key, obj in items:
            if isinstance(obj, list):
                stack.append(obj)
            elif isinstance(obj, dict):
                # As the reference: a placeholder is an object whose "_placeholder"
                # is exactly true.
                if obj.get("_placeholder") is not True:
                    stack.append(obj)
                    continue
                num = obj.get("num")
                # bool is an int subclass: true must not pass for 1 (nor "splice"
                # for anything at all, CVE-2022-2421).
                if not isinstance(num, int) or isinstance(num, bool):
                    raise InvalidPlaceholder(f"placeholder num must be an integer: {num!r}"[:80])
                if not 0 <= num < count:
                    raise InvalidPlaceholder(f"placeholder num {num} out of range (0..{count - 1})")
                slots.append((container, key, num))
    seen = {num for _, _, num in slots}
    if len(slots) != count or len(seen) != count:
        raise AttachmentMismatch(
            f"{count} attachment(s) declared, {len(slots)} placeholder(s) for {sorted(seen)}"
        )
    return slots


@dataclass(frozen=True)
class JSONParser:
    """The default Socket.IO parser (``socket.io-parser``)."""

    name: str = field(default="json")

    def encoder(self) -> JSONEncoder:
        """A new encoder."""
        return _JSON_ENCODER

    def decoder(self, limits: Limits) -> JSONDecoder:
        """A new decoder, one per connection."""
        return JSONDecoder(limits)


_JSON_ENCODER = JSONEncoder()


def get_parser(parser: str | Parser | None) -> Parser:
    """A parser from its name (``"json"``, ``"msgpack"``) or as given; JSON for None."""
    if parser is None or parser == "json":
        return JSONParser()
    if parser == "msgpack":
        from .msgpack_parser import MsgpackParser

        return MsgpackParser()
    if isinstance(parser, str):
        raise ValueError(f"unknown parser {parser!r}: use 'json', 'msgpack' or a Parser")
    return parser
