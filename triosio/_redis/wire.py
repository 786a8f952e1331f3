"""The wire format of ``@socket.io/redis-adapter`` 8.3.0 and ``@socket.io/redis-emitter`` 5.1.0.

Sans-I/O: channel names, encoders, and decoders that turn untrusted bytes from
Redis into small typed messages or raise :class:`WireError`. No Trio, no Redis
client. The section numbers (§) are those of the recorded reference
(``redis-wire.md``, summarised in ``docs/scaling.md``):

- §1 channels: ``<key>#<nsp>#`` (+ ``<room>#``), ``<key>-request#<nsp>#``,
  ``<key>-response#<nsp>#`` (+ ``<uid>#``); nothing escaped.
- §2 ids: six characters of ``[A-Za-z0-9_-]``; the emitter's uid is ``"emitter"``.
- §3 encodings: broadcasts are MessagePack; requests and responses are JSON when
  byte 0 is ``{``, MessagePack otherwise (BROADCAST and BROADCAST_ACK are MessagePack).
- §4 broadcasts ``[uid, {"type": 2, "data", "nsp"}, {"rooms", "except", "flags"}]``.
- §5 requests and responses, one ``"type"`` each.

Every encoder writes every field the JavaScript adapter reads (a Node peer
crashes on some missing ones, §3.3); every decoder checks what it uses.
"""

from __future__ import annotations

import enum
import math
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgpack

from .._errors import LocalProtocolError, RemoteProtocolError
from .._proto._json import BINARY_TYPES, JSONReader, dumps, js_number
from .._proto.msgpack_parser import ext_formats
from .._proto.sio import RESERVED_EVENTS

#: The characters of uid2's ids (§2).
UID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
#: The uid the emitter writes in its broadcasts and server-side emits (§2).
EMITTER_UID = "emitter"
#: Deepest nesting of a value we convert; deeper messages are dropped.
MAX_DEPTH = 100
#: Longest integer (in digits) accepted in JSON from Redis.
MAX_INT_DIGITS = 400


class WireError(Exception):
    """A message from Redis that does not follow the wire format (it is dropped)."""


class RequestType(enum.IntEnum):
    """The ``"type"`` of requests and responses (§5)."""

    SOCKETS = 0
    ALL_ROOMS = 1
    REMOTE_JOIN = 2
    REMOTE_LEAVE = 3
    REMOTE_DISCONNECT = 4
    REMOTE_FETCH = 5
    SERVER_SIDE_EMIT = 6
    BROADCAST = 7
    BROADCAST_CLIENT_COUNT = 8
    BROADCAST_ACK = 9


def new_uid() -> str:
    """A fresh six-character id, as ``uid2(6)`` draws them (§2)."""
    return "".join(secrets.choice(UID_ALPHABET) for _ in range(6))


def _glob_escape(text: str) -> str:
    # PSUBSCRIBE takes a glob: a namespace named "/a*" must match only itself.
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


@dataclass(frozen=True, slots=True)
class Channels:
    """The channels of one namespace adapter (§1).

    Attributes:
        nsp: The namespace name.
        uid: This server's uid for that namespace.
        broadcast: ``<key>#<nsp>#``, the prefix of every broadcast channel.
        pattern: The PSUBSCRIBE pattern of broadcast channels.
        request: ``<key>-request#<nsp>#``.
        response: ``<key>-response#<nsp>#``.
        specific_response: ``<key>-response#<nsp>#<uid>#``.
    """

    nsp: str
    uid: str
    broadcast: bytes
    pattern: bytes
    request: bytes
    response: bytes
    specific_response: bytes

    @classmethod
    def make(cls, key: str, nsp: str, uid: str) -> Channels:
        """The channels of namespace ``nsp`` with key prefix ``key``."""
        broadcast = f"{key}#{nsp}#"
        response = f"{key}-response#{nsp}#"
        return cls(
            nsp=nsp,
            uid=uid,
            broadcast=broadcast.encode(),
            pattern=(_glob_escape(broadcast) + "*").encode(),
            request=f"{key}-request#{nsp}#".encode(),
            response=response.encode(),
            specific_response=f"{response}{uid}#".encode(),
        )

    def for_rooms(self, rooms: Iterable[str]) -> bytes:
        """The channel of a broadcast: a room's own channel when there is exactly one."""
        rooms = list(rooms)
        if len(rooms) == 1:
            return self.broadcast + rooms[0].encode() + b"#"
        return self.broadcast

    def response_for(self, uid: object, specific: bool) -> bytes:
        """Where to answer a request from ``uid`` (§1, ``publishOnSpecificResponseChannel``)."""
        if specific and isinstance(uid, str):
            return self.response + uid.encode() + b"#"
        return self.response

    def room_of(self, channel: bytes) -> str | None:
        """The room part of a broadcast channel: ``""`` for none, None if not ours."""
        if not channel.startswith(self.broadcast) or not channel.endswith(b"#"):
            return None
        if len(channel) == len(self.broadcast):
            return ""
        try:
            return channel[len(self.broadcast) : -1].decode()
        except UnicodeDecodeError:
            return None


# ---------------------------------------------------------------- JavaScript values


def js_string(value: object) -> str:
    """``String(value)`` as JavaScript writes it, for room names that are not strings."""
    if isinstance(value, str):
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value:
            return "NaN"
        if value in (math.inf, -math.inf):
            return "Infinity" if value > 0 else "-Infinity"
        return js_number(value)
    if isinstance(value, BINARY_TYPES):
        return bytes(value).decode("utf-8", "replace")
    raise WireError(f"a room name cannot be a {type(value).__name__}")


def _days_to_civil(days: int) -> tuple[int, int, int]:
    # Proleptic Gregorian date of a day count from 1970-01-01 (any sign), by
    # 400-year eras; Python's datetime stops at years 1..9999, JavaScript's Date does not.
    days += 719468
    era = days // 146097
    doe = days - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    year = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return (year + (month <= 2), month, day)


#: JavaScript's Date range: ±8.64e15 ms around the epoch.
_DATE_LIMIT_MS = 8_640_000_000_000_000


def date_to_json(ms: int) -> str | None:
    """``new Date(ms).toJSON()``: ``YYYY-MM-DDTHH:MM:SS.sssZ``, or None when invalid."""
    if not -_DATE_LIMIT_MS <= ms <= _DATE_LIMIT_MS:
        return None
    days, rest = divmod(ms, 86_400_000)
    year, month, day = _days_to_civil(days)
    seconds, millis = divmod(rest, 1000)
    hh, mm, ss = seconds // 3600, seconds // 60 % 60, seconds % 60
    # Years outside 0..9999 take the expanded form, as toISOString writes them.
    ytext = f"{year:04d}" if 0 <= year <= 9999 else f"{'+' if year > 0 else '-'}{abs(year):06d}"
    return f"{ytext}-{month:02d}-{day:02d}T{hh:02d}:{mm:02d}:{ss:02d}.{millis:03d}Z"


def _timestamp_ms(ts: msgpack.Timestamp) -> int:
    # notepack builds the Date from seconds and nanoseconds; Date keeps whole ms,
    # truncated toward zero.
    total_ns: int = ts.seconds * 1_000_000_000 + ts.nanoseconds
    ms = abs(total_ns) // 1_000_000
    return ms if total_ns >= 0 else -ms


class _Undefined:
    """JavaScript's ``undefined`` from a legacy notepack value (fixext 1, type 0)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "undefined"


UNDEFINED: Any = _Undefined()


def plain(value: Any, _depth: int = 0) -> Any:
    """A decoded value as a Node server would pass it on (§3.2).

    Timestamps become ``Date.toJSON()`` strings, NaN and the infinities None,
    map keys strings; ``undefined`` is left out of maps and None in arrays;
    an unknown extension type is ``[type, data]``. Bytes stay bytes.

    Raises:
        WireError: the value is nested deeper than :data:`MAX_DEPTH`.
    """
    if _depth > MAX_DEPTH:
        raise WireError(f"value nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, (str, bool, int, bytes)) or value is None:
        return value
    if isinstance(value, float):
        return None if value != value or value in (math.inf, -math.inf) else value
    if isinstance(value, list):
        return [None if v is UNDEFINED else plain(v, _depth + 1) for v in value]
    if isinstance(value, dict):
        return {js_string(k): plain(v, _depth + 1) for k, v in value.items() if v is not UNDEFINED}
    if isinstance(value, msgpack.Timestamp):
        return date_to_json(_timestamp_ms(value))
    if isinstance(value, msgpack.ExtType):
        return [value.code, value.data]
    if value is UNDEFINED:
        return None
    if isinstance(value, tuple):
        return [plain(v, _depth + 1) for v in value]
    raise WireError(f"unexpected value of type {type(value).__name__}")


# ---------------------------------------------------------------- MessagePack

_FIXEXT1, _FIXEXT8 = 0xD4, 0xD7


def _ext_hook(formats: list[int] | None) -> Any:
    # notepack's legacy type-0 values, told apart by the format byte (§3.2):
    # fixext 1 is undefined, fixext 8 a Date in ms, other sizes an ArrayBuffer.
    # Any other type decodes as notepack does: [type, data].
    order = iter(formats or ())

    def hook(code: int, data: bytes) -> Any:
        fmt = next(order, None)
        if code != 0:
            return msgpack.ExtType(code, data)
        if fmt == _FIXEXT1:
            return UNDEFINED
        if fmt == _FIXEXT8:
            ms: int = int.from_bytes(data, "big", signed=True)
            return msgpack.Timestamp.from_unix_nano(ms * 1_000_000)
        return data

    return hook


def unpack(payload: bytes) -> Any:
    """Decode one MessagePack value (notepack's dialect, §3.2).

    Raises:
        WireError: not exactly one valid value.
    """
    try:
        maybe_legacy = b"\xd4\x00" in payload or b"\xd7\x00" in payload
        formats = ext_formats(payload) if maybe_legacy else None
        return msgpack.unpackb(
            payload,
            raw=False,
            strict_map_key=False,
            timestamp=0,
            ext_hook=_ext_hook(formats),
        )
    except (
        ValueError,  # includes ExtraData, FormatError, StackError, UnicodeDecodeError
        TypeError,  # an array as a map key (unhashable)
        OverflowError,
        RecursionError,
        IndexError,
    ) as exc:
        raise WireError(f"invalid MessagePack: {type(exc).__name__}: {exc}"[:200]) from None


def _pack_default(obj: Any) -> Any:
    if isinstance(obj, (bytearray, memoryview)):
        return bytes(obj)
    raise TypeError(f"cannot encode an object of type {type(obj).__name__} with MessagePack")


_packer = msgpack.Packer(use_bin_type=True, datetime=True, default=_pack_default)


def pack(obj: Any) -> bytes:
    """Encode ``obj`` as notepack writes it: str, bin, arrays, maps, Dates as ext -1.

    Raises:
        LocalProtocolError: ``obj`` holds something MessagePack cannot carry.
    """
    global _packer
    try:
        return _packer.pack(obj)  # type: ignore[no-any-return]
    except (TypeError, ValueError, OverflowError) as exc:
        # A failed pack may leave bytes in the packer's buffer: start afresh.
        _packer = msgpack.Packer(use_bin_type=True, datetime=True, default=_pack_default)
        raise LocalProtocolError(f"cannot encode for the cluster: {exc}") from None


# ---------------------------------------------------------------- JSON


def _jsonable(value: Any, depth: int = 0) -> Any:
    # What JSON.stringify makes of what Node would hold: a Buffer is
    # {"type": "Buffer", "data": [...]} (§3.1), NaN is null.
    if depth > MAX_DEPTH:
        return None
    if isinstance(value, (str, bool, int)) or value is None:
        return value
    if isinstance(value, float):
        return None if value != value or value in (math.inf, -math.inf) else value
    if isinstance(value, BINARY_TYPES):
        return {"type": "Buffer", "data": list(bytes(value))}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, depth + 1) for v in value]
    if isinstance(value, Mapping):
        return {js_string(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return [_jsonable(v, depth + 1) for v in value]
    if isinstance(value, msgpack.Timestamp):
        return date_to_json(_timestamp_ms(value))
    if hasattr(value, "isoformat") and callable(value.isoformat):
        return value.isoformat()
    return None  # what JSON.stringify does with a function or undefined


def to_json(obj: Any) -> bytes:
    """``JSON.stringify(obj)`` as UTF-8, ``{`` at byte 0 for an object (§3.1).

    Values JSON cannot carry are converted as Node would send them (bytes as a
    Buffer object, NaN as null); what has no JSON form at all becomes null.
    """
    try:
        text = dumps(obj, max_depth=MAX_DEPTH)
    except LocalProtocolError:
        text = dumps(_jsonable(obj), max_depth=MAX_DEPTH + 2)
    return text.encode("utf-8", "surrogatepass")


_json_reader = JSONReader(max_depth=MAX_DEPTH, max_int_digits=MAX_INT_DIGITS)


def load_message(payload: bytes) -> Any:
    """A request or response: JSON if byte 0 is ``{``, else MessagePack (§3.1).

    Raises:
        WireError: neither.
    """
    if payload[:1] == b"{":
        try:
            return _json_reader.loads(payload.decode("utf-8"))
        except UnicodeDecodeError:
            raise WireError("JSON that is not UTF-8") from None
        except RemoteProtocolError as exc:
            raise WireError(f"invalid JSON: {exc}"[:200]) from None
    return unpack(payload)


# ---------------------------------------------------------------- encoders


def _flags(volatile: bool = False, timeout_ms: float | None = None) -> dict[str, Any]:
    flags: dict[str, Any] = {}
    if volatile:
        flags["volatile"] = True
    if timeout_ms is not None:
        flags["timeout"] = timeout_ms
    return flags


def _opts(rooms: Iterable[str], exclude: Iterable[str]) -> dict[str, Any]:
    return {"rooms": list(rooms), "except": list(exclude)}


def encode_broadcast(
    uid: str,
    nsp: str,
    data: list[Any],
    rooms: Iterable[str],
    exclude: Iterable[str],
    volatile: bool = False,
) -> bytes:
    """A broadcast, ``[uid, packet, opts]`` (§4): three elements, every key."""
    opts = _opts(rooms, exclude)
    opts["flags"] = _flags(volatile)
    return pack([uid, {"type": 2, "data": data, "nsp": nsp}, opts])


def encode_broadcast_request(
    uid: str,
    request_id: str,
    nsp: str,
    data: list[Any],
    rooms: Iterable[str],
    exclude: Iterable[str],
    timeout_ms: float,
    volatile: bool = False,
) -> bytes:
    """A BROADCAST request (7), MessagePack, on the request channel (§5.5)."""
    opts = _opts(rooms, exclude)
    opts["flags"] = _flags(volatile, timeout_ms)
    return pack(
        {
            "uid": uid,
            "requestId": request_id,
            "type": RequestType.BROADCAST.value,
            "packet": {"type": 2, "data": data, "nsp": nsp},
            "opts": opts,
        }
    )


def encode_client_count(request_id: str, count: int) -> bytes:
    """A BROADCAST_CLIENT_COUNT response (8), JSON."""
    return to_json(
        {
            "type": RequestType.BROADCAST_CLIENT_COUNT.value,
            "requestId": request_id,
            "clientCount": count,
        }
    )


def encode_broadcast_ack(request_id: str, value: Any) -> bytes:
    """A BROADCAST_ACK response (9), MessagePack: the client's first ack argument.

    A value MessagePack cannot carry is sent as its JSON form (as Node would
    see it); ``packet`` is always present (null for an ack without arguments).
    """
    message = {"type": RequestType.BROADCAST_ACK.value, "requestId": request_id, "packet": value}
    try:
        return pack(message)
    except LocalProtocolError:
        message["packet"] = _jsonable(value)
        return pack(message)


def encode_remote_rooms(
    uid: str, join: bool, rooms: Iterable[str], exclude: Iterable[str], change: Iterable[str]
) -> bytes:
    """REMOTE_JOIN (2) or REMOTE_LEAVE (3), JSON (§5.4)."""
    kind = RequestType.REMOTE_JOIN if join else RequestType.REMOTE_LEAVE
    return to_json(
        {"uid": uid, "type": kind.value, "opts": _opts(rooms, exclude), "rooms": list(change)}
    )


def encode_remote_disconnect(
    uid: str, rooms: Iterable[str], exclude: Iterable[str], close: bool
) -> bytes:
    """REMOTE_DISCONNECT (4), JSON (§5.4)."""
    return to_json(
        {
            "uid": uid,
            "type": RequestType.REMOTE_DISCONNECT.value,
            "opts": _opts(rooms, exclude),
            "close": bool(close),
        }
    )


def encode_fetch(uid: str, request_id: str, rooms: Iterable[str], exclude: Iterable[str]) -> bytes:
    """REMOTE_FETCH (5), JSON (§5.1)."""
    return to_json(
        {
            "uid": uid,
            "requestId": request_id,
            "type": RequestType.REMOTE_FETCH.value,
            "opts": _opts(rooms, exclude),
        }
    )


def encode_all_rooms(uid: str, request_id: str) -> bytes:
    """ALL_ROOMS (1), JSON (§5.2)."""
    return to_json({"uid": uid, "requestId": request_id, "type": RequestType.ALL_ROOMS.value})


def encode_server_side_emit(uid: str, data: list[Any], request_id: str | None = None) -> bytes:
    """SERVER_SIDE_EMIT (6), JSON; a ``requestId`` asks for acknowledgements (§5.3)."""
    message: dict[str, Any] = {"uid": uid}
    if request_id is not None:
        message["requestId"] = request_id
    message["type"] = RequestType.SERVER_SIDE_EMIT.value
    message["data"] = data
    return to_json(message)


def encode_server_side_ack(request_id: str, value: Any) -> bytes:
    """The answer to a SERVER_SIDE_EMIT with a requestId, JSON (§5.3)."""
    return to_json(
        {"type": RequestType.SERVER_SIDE_EMIT.value, "requestId": request_id, "data": value}
    )


def encode_fetch_response(request_id: str, sockets: list[dict[str, Any]]) -> bytes:
    """The answer to REMOTE_FETCH: ``{"requestId", "sockets": [...]}`` (§5.1)."""
    return to_json({"requestId": request_id, "sockets": sockets})


def encode_rooms_response(request_id: str, rooms: Iterable[str]) -> bytes:
    """The answer to ALL_ROOMS: ``{"requestId", "rooms": [...]}`` (§5.2)."""
    return to_json({"requestId": request_id, "rooms": list(rooms)})


def encode_sockets_response(request_id: str, sids: Iterable[str]) -> bytes:
    """The answer to the legacy SOCKETS request (§5.6)."""
    return to_json({"requestId": request_id, "sockets": list(sids)})


def encode_done_response(request_id: str) -> bytes:
    """The answer to a legacy REMOTE_JOIN/LEAVE/DISCONNECT by socket id (§5.4)."""
    return to_json({"requestId": request_id})


# ---------------------------------------------------------------- decoders


def _rooms(value: object, what: str) -> frozenset[str]:
    if value is None:
        return frozenset()  # Node: new Set(undefined) is empty
    if not isinstance(value, list):
        raise WireError(f"{what} must be an array")
    return frozenset(js_string(room) for room in value)


def _room_list(value: object, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise WireError(f"{what} must be an array")
    return tuple(dict.fromkeys(js_string(room) for room in value))


def _event_data(value: object) -> list[Any]:
    if not isinstance(value, list) or not value or not isinstance(value[0], str):
        raise WireError("packet data must be an array that starts with the event name")
    if value[0] in RESERVED_EVENTS:
        raise WireError(f"reserved event name {value[0]!r}")
    return value


@dataclass(frozen=True, slots=True)
class Broadcast:
    """A broadcast to pass on to this server's clients (§4), or a BROADCAST's packet.

    Attributes:
        uid: The sender's uid.
        data: ``[event, *args]``, as decoded (see :func:`plain`).
        rooms: Target rooms (all sockets if empty).
        exclude: Rooms whose sockets are left out.
        volatile: The ``volatile`` flag.
        timeout: The ``timeout`` flag, in seconds (broadcasts with acks).
    """

    uid: object
    data: list[Any]
    rooms: frozenset[str]
    exclude: frozenset[str]
    volatile: bool
    timeout: float | None = None


def _packet_and_opts(uid: object, packet: object, opts: object, nsp: str) -> Broadcast | None:
    if not isinstance(packet, dict):
        raise WireError("the packet must be a map")
    packet_nsp = packet.get("nsp", "/")
    if packet_nsp != nsp:
        return None  # another namespace's (Node ignores it too)
    if packet.get("type", 2) not in (2, 5):
        raise WireError(f"packet type {packet.get('type')!r} is not an event")
    data = _event_data(packet.get("data"))
    if not isinstance(opts, dict):
        raise WireError("opts must be a map")
    flags = opts.get("flags")
    if not isinstance(flags, dict):
        flags = {}
    timeout = flags.get("timeout")
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not timeout > 0:
        timeout = None
    return Broadcast(
        uid=uid,
        data=data,
        rooms=_rooms(opts.get("rooms"), "opts.rooms"),
        exclude=_rooms(opts.get("except"), "opts.except"),
        volatile=flags.get("volatile") is True,
        timeout=None if timeout is None else min(timeout / 1000, 3600.0),
    )


def decode_broadcast(payload: bytes, nsp: str) -> Broadcast | None:
    """A message from a broadcast channel of namespace ``nsp`` (§4).

    Returns:
        The broadcast, or None when it belongs to another namespace.

    Raises:
        WireError: malformed (including the shapes that crash a Node peer, §3.3).
    """
    message = unpack(payload)
    if not isinstance(message, list) or len(message) < 3:
        raise WireError("a broadcast must be an array [uid, packet, opts]")
    uid, packet, opts = message[0], message[1], message[2]
    return _packet_and_opts(uid, packet, opts, nsp)


@dataclass(frozen=True, slots=True)
class Request:
    """A request from the request channel (§5), checked for its type's fields.

    Attributes:
        type: The request type.
        uid: The sender's uid (None from the emitter's join/leave/disconnect).
        request_id: Its id, when it expects answers.
        rooms: ``opts.rooms``: the sockets it applies to (all if empty).
        exclude: ``opts.except``.
        legacy: A REMOTE_JOIN/LEAVE/DISCONNECT without ``opts``, by socket id.
        sid: The socket of a legacy request.
        change: The rooms to join or leave (REMOTE_JOIN/LEAVE).
        close: REMOTE_DISCONNECT: close the whole connection.
        data: SERVER_SIDE_EMIT's ``[event, *args]``; BROADCAST's packet data.
        volatile: BROADCAST's ``volatile`` flag.
        timeout: BROADCAST's ``timeout`` flag, in seconds.
    """

    type: RequestType
    uid: str | None
    request_id: str | None
    rooms: frozenset[str] = frozenset()
    exclude: frozenset[str] = frozenset()
    legacy: bool = False
    sid: str | None = None
    change: tuple[str, ...] = ()
    close: bool = False
    data: list[Any] = field(default_factory=list)
    volatile: bool = False
    timeout: float | None = None


def _optional_str(message: dict[Any, Any], key: str) -> str | None:
    value = message.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise WireError(f"{key} must be a string")
    return value


def parse_request(message: object, nsp: str) -> Request | None:
    """Check a decoded request (§5); None for an unknown type (ignored, as Node does).

    Raises:
        WireError: a known type with a missing or mistyped field.
    """
    if not isinstance(message, dict):
        raise WireError("a request must be a map")
    raw_type = message.get("type")
    if not isinstance(raw_type, int) or isinstance(raw_type, bool):
        return None
    try:
        kind = RequestType(raw_type)
    except ValueError:
        return None
    uid = _optional_str(message, "uid")
    request_id = _optional_str(message, "requestId")
    if kind in (RequestType.SOCKETS, RequestType.ALL_ROOMS, RequestType.REMOTE_FETCH):
        if request_id is None:
            raise WireError(f"{kind.name} without a requestId")
        if kind is RequestType.SOCKETS:
            return Request(kind, uid, request_id, rooms=_rooms(message.get("rooms"), "rooms"))
        if kind is RequestType.REMOTE_FETCH:
            opts = message.get("opts")
            if not isinstance(opts, dict):
                raise WireError("REMOTE_FETCH without opts")
            return Request(
                kind,
                uid,
                request_id,
                rooms=_rooms(opts.get("rooms"), "opts.rooms"),
                exclude=_rooms(opts.get("except"), "opts.except"),
            )
        return Request(kind, uid, request_id)
    if kind in (RequestType.REMOTE_JOIN, RequestType.REMOTE_LEAVE, RequestType.REMOTE_DISCONNECT):
        opts = message.get("opts")
        close = message.get("close") is True
        if opts is None:
            sid = message.get("sid")
            if not isinstance(sid, str):
                raise WireError(f"{kind.name} without opts or sid")
            change: tuple[str, ...] = ()
            if kind is not RequestType.REMOTE_DISCONNECT:
                change = (js_string(message.get("room")),)
            return Request(kind, uid, request_id, legacy=True, sid=sid, change=change, close=close)
        if not isinstance(opts, dict):
            raise WireError("opts must be a map")
        if kind is not RequestType.REMOTE_DISCONNECT:
            change = _room_list(message.get("rooms"), "rooms")
        else:
            change = ()
        return Request(
            kind,
            uid,
            request_id,
            rooms=_rooms(opts.get("rooms"), "opts.rooms"),
            exclude=_rooms(opts.get("except"), "opts.except"),
            change=change,
            close=close,
        )
    if kind is RequestType.SERVER_SIDE_EMIT:
        return Request(kind, uid, request_id, data=_event_data(message.get("data")))
    if kind is RequestType.BROADCAST:
        if request_id is None:
            raise WireError("BROADCAST without a requestId")
        broadcast = _packet_and_opts(uid, message.get("packet"), message.get("opts"), nsp)
        if broadcast is None:
            return None
        return Request(
            kind,
            uid,
            request_id,
            rooms=broadcast.rooms,
            exclude=broadcast.exclude,
            data=broadcast.data,
            volatile=broadcast.volatile,
            timeout=broadcast.timeout,
        )
    return None  # responses (8, 9) on the request channel: not for us


@dataclass(frozen=True, slots=True)
class Response:
    """A response (§5): its requestId and the decoded map, to be read by the request.

    Attributes:
        request_id: Which request it answers.
        type: Its ``"type"`` when it has one (6, 8, 9), else None.
        body: The whole decoded map.
    """

    request_id: str
    type: int | None
    body: dict[Any, Any]


def parse_response(message: object) -> Response | None:
    """A decoded response, or None when it has no usable requestId (ignored)."""
    if not isinstance(message, dict):
        raise WireError("a response must be a map")
    request_id = message.get("requestId")
    if not isinstance(request_id, str):
        return None
    raw_type = message.get("type")
    kind = raw_type if isinstance(raw_type, int) and not isinstance(raw_type, bool) else None
    return Response(request_id, kind, message)
