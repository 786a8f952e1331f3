"""The messages of ``@socket.io/redis-adapter`` 8.3.0 and ``@socket.io/redis-emitter`` 5.1.0.

Sans-I/O: encoders, and decoders that turn untrusted messages into small typed
ones or raise :class:`~triosio._cluster.values.WireError`. The section numbers
(§) are those of the recorded reference (``redis-wire.md``, summarised in
``docs/scaling.md``):

- §4 broadcasts ``[uid, {"type": 2, "data", "nsp"}, {"rooms", "except", "flags"}]``,
  MessagePack;
- §5 requests and responses, one ``"type"`` each: JSON, except BROADCAST and
  BROADCAST_ACK, which may hold binary and are MessagePack.

Every encoder writes every field the JavaScript adapter reads (a Node peer
crashes on some missing ones, §3.3); every decoder checks what it uses.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .._errors import LocalProtocolError
from .._proto.sio import RESERVED_EVENTS
from .values import WireError, js_string, jsonable, pack, to_json, unpack


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
        message["packet"] = jsonable(value)
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
