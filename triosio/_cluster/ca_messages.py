"""The messages of socket.io-adapter's ``ClusterAdapter`` (2.5.x), whatever carries them.

Sans-I/O. The adapters built on ``ClusterAdapter`` (``@socket.io/redis-streams-adapter``
0.3.x, the sharded mode of ``@socket.io/redis-adapter``, the Postgres and Mongo
adapters) share one message shape, which their transports encode each their own
way (MessagePack on pub/sub, stream entry fields on Redis Streams)::

    {"type": <MessageType>, "data": {...}, "uid": <sender uid>, "nsp": <namespace>}

``data`` by type:

========================== ==================================================
BROADCAST (3)              ``{packet, opts}``, + ``requestId`` when it wants acks
SOCKETS_JOIN / LEAVE (4/5) ``{opts, rooms}``
DISCONNECT_SOCKETS (6)     ``{opts, close}``
FETCH_SOCKETS (7)          ``{opts, requestId}``
FETCH_SOCKETS_RESPONSE (8) ``{requestId, sockets: [{id, handshake, rooms, data}]}``
SERVER_SIDE_EMIT (9)       ``{packet: [event, *args]}``, + ``requestId`` for acks
SERVER_SIDE_EMIT_RESPONSE  ``{requestId, packet: <first ack argument>}`` (10)
BROADCAST_CLIENT_COUNT (11) ``{requestId, clientCount}``
BROADCAST_ACK (12)         ``{requestId, packet: <ack argument>}``
========================== ==================================================

``packet`` of a BROADCAST is ``{"type": 2, "data": [event, *args]}``;
``opts`` is ``{"rooms": [...], "except": [...], "flags": {...}}``. Types 1, 2 and
13 (heartbeats, adapter close) carry no ``data``. The uid is 8 random bytes in
hex; so is a requestId.

Encoders return the message as a dict (keys in the reference's order); the
parser checks what a receiver uses and raises
:class:`~triosio._cluster.values.WireError` otherwise.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .messages import _event_data, _packet_and_opts, _room_list, _rooms
from .values import WireError


class MessageType(enum.IntEnum):
    """``MessageType`` of socket.io-adapter's cluster adapter."""

    INITIAL_HEARTBEAT = 1
    HEARTBEAT = 2
    BROADCAST = 3
    SOCKETS_JOIN = 4
    SOCKETS_LEAVE = 5
    DISCONNECT_SOCKETS = 6
    FETCH_SOCKETS = 7
    FETCH_SOCKETS_RESPONSE = 8
    SERVER_SIDE_EMIT = 9
    SERVER_SIDE_EMIT_RESPONSE = 10
    BROADCAST_CLIENT_COUNT = 11
    BROADCAST_ACK = 12
    ADAPTER_CLOSE = 13


#: Answers to a request; they carry the requestId they answer.
RESPONSES = frozenset(
    {
        MessageType.FETCH_SOCKETS_RESPONSE,
        MessageType.SERVER_SIDE_EMIT_RESPONSE,
        MessageType.BROADCAST_CLIENT_COUNT,
        MessageType.BROADCAST_ACK,
    }
)

#: Types whose ``data`` may hold binary values (the others are plain JSON).
MAY_CONTAIN_BINARY = frozenset(
    {
        MessageType.BROADCAST,
        MessageType.FETCH_SOCKETS_RESPONSE,
        MessageType.SERVER_SIDE_EMIT,
        MessageType.SERVER_SIDE_EMIT_RESPONSE,
        MessageType.BROADCAST_ACK,
    }
)


def new_id() -> str:
    """A fresh uid or requestId: 8 random bytes in hex, as ``randomId()`` draws them."""
    return secrets.token_hex(8)


# ---------------------------------------------------------------- encoders


def _message(kind: MessageType, data: dict[str, Any] | None, uid: str, nsp: str) -> dict[str, Any]:
    message: dict[str, Any] = {"type": kind.value}
    if data is not None:
        message["data"] = data
    message["uid"] = uid
    message["nsp"] = nsp
    return message


def _opts(
    rooms: Iterable[str], exclude: Iterable[str], flags: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {"rooms": list(rooms), "except": list(exclude), "flags": flags or {}}


def broadcast(
    uid: str,
    nsp: str,
    data: list[Any],
    rooms: Iterable[str],
    exclude: Iterable[str],
    volatile: bool = False,
    *,
    request_id: str | None = None,
    timeout_ms: float | None = None,
) -> dict[str, Any]:
    """BROADCAST: a packet for other servers' clients; with ``request_id``, wanting acks."""
    flags: dict[str, Any] = {}
    if volatile:
        flags["volatile"] = True
    if timeout_ms is not None:
        flags["timeout"] = timeout_ms
    # No "nsp" in the packet: socket.io's broadcast operator leaves it out, and
    # the receiving adapter sets its own.
    body: dict[str, Any] = {"packet": {"type": 2, "data": data}}
    if request_id is not None:
        body["requestId"] = request_id
    body["opts"] = _opts(rooms, exclude, flags)
    return _message(MessageType.BROADCAST, body, uid, nsp)


def sockets_rooms(
    uid: str,
    nsp: str,
    join: bool,
    rooms: Iterable[str],
    exclude: Iterable[str],
    change: Iterable[str],
) -> dict[str, Any]:
    """SOCKETS_JOIN or SOCKETS_LEAVE: the selected sockets join or leave ``change``."""
    kind = MessageType.SOCKETS_JOIN if join else MessageType.SOCKETS_LEAVE
    return _message(kind, {"opts": _opts(rooms, exclude), "rooms": list(change)}, uid, nsp)


def disconnect_sockets(
    uid: str, nsp: str, rooms: Iterable[str], exclude: Iterable[str], close: bool
) -> dict[str, Any]:
    """DISCONNECT_SOCKETS."""
    body = {"opts": _opts(rooms, exclude), "close": bool(close)}
    return _message(MessageType.DISCONNECT_SOCKETS, body, uid, nsp)


def fetch_sockets(
    uid: str, nsp: str, request_id: str, rooms: Iterable[str], exclude: Iterable[str]
) -> dict[str, Any]:
    """FETCH_SOCKETS."""
    body = {"opts": _opts(rooms, exclude), "requestId": request_id}
    return _message(MessageType.FETCH_SOCKETS, body, uid, nsp)


def server_side_emit(
    uid: str, nsp: str, data: list[Any], request_id: str | None = None
) -> dict[str, Any]:
    """SERVER_SIDE_EMIT; a ``request_id`` asks for one answer per server."""
    body: dict[str, Any] = {}
    if request_id is not None:
        body["requestId"] = request_id
    body["packet"] = data
    return _message(MessageType.SERVER_SIDE_EMIT, body, uid, nsp)


def fetch_sockets_response(
    uid: str, nsp: str, request_id: str, sockets: list[dict[str, Any]]
) -> dict[str, Any]:
    """FETCH_SOCKETS_RESPONSE."""
    body = {"requestId": request_id, "sockets": sockets}
    return _message(MessageType.FETCH_SOCKETS_RESPONSE, body, uid, nsp)


def server_side_emit_response(uid: str, nsp: str, request_id: str, value: Any) -> dict[str, Any]:
    """SERVER_SIDE_EMIT_RESPONSE: the first argument of the handler's answer."""
    body = {"requestId": request_id, "packet": value}
    return _message(MessageType.SERVER_SIDE_EMIT_RESPONSE, body, uid, nsp)


def broadcast_client_count(uid: str, nsp: str, request_id: str, count: int) -> dict[str, Any]:
    """BROADCAST_CLIENT_COUNT: how many of our clients got an ack-wanting broadcast."""
    body = {"requestId": request_id, "clientCount": count}
    return _message(MessageType.BROADCAST_CLIENT_COUNT, body, uid, nsp)


def broadcast_ack(uid: str, nsp: str, request_id: str, value: Any) -> dict[str, Any]:
    """BROADCAST_ACK: one client's answer."""
    body = {"requestId": request_id, "packet": value}
    return _message(MessageType.BROADCAST_ACK, body, uid, nsp)


# ---------------------------------------------------------------- parser


@dataclass(frozen=True, slots=True)
class Message:
    """A message checked for what its type needs.

    Attributes:
        type: Its type.
        uid: The sender's uid (``"emitter"`` from an emitter).
        nsp: The namespace.
        request_id: Requests that want answers, and every response.
        rooms: ``opts.rooms`` (all sockets if empty).
        exclude: ``opts.except``.
        change: SOCKETS_JOIN/LEAVE: the rooms to join or leave.
        close: DISCONNECT_SOCKETS: close the whole connection.
        data: BROADCAST: ``[event, *args]``; SERVER_SIDE_EMIT: the same.
        volatile: BROADCAST's ``volatile`` flag.
        timeout: BROADCAST's ``timeout`` flag, in seconds.
        value: SERVER_SIDE_EMIT_RESPONSE / BROADCAST_ACK: the answer, as decoded.
        sockets: FETCH_SOCKETS_RESPONSE: the sockets, as described.
        client_count: BROADCAST_CLIENT_COUNT.
    """

    type: MessageType
    uid: str
    nsp: str
    request_id: str | None = None
    rooms: frozenset[str] = frozenset()
    exclude: frozenset[str] = frozenset()
    change: tuple[str, ...] = ()
    close: bool = False
    data: list[Any] = field(default_factory=list)
    volatile: bool = False
    timeout: float | None = None
    value: Any = None
    sockets: list[Any] = field(default_factory=list)
    client_count: int = 0


def _request_id(body: Mapping[Any, Any], required: bool) -> str | None:
    value = body.get("requestId")
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise WireError("requestId must be a string")
    return value


def parse(message: object) -> Message | None:
    """Check a decoded message; None for an unknown type (ignored, as the reference does).

    Raises:
        WireError: not a message, or a known type with a missing or mistyped field.
    """
    if not isinstance(message, dict):
        raise WireError("a cluster message must be a map")
    raw_type = message.get("type")
    if not isinstance(raw_type, int) or isinstance(raw_type, bool):
        raise WireError("a cluster message needs an integer type")
    try:
        kind = MessageType(raw_type)
    except ValueError:
        return None
    uid, nsp = message.get("uid"), message.get("nsp")
    if not isinstance(uid, str) or not isinstance(nsp, str):
        raise WireError("a cluster message needs a uid and a nsp")
    if kind in (
        MessageType.INITIAL_HEARTBEAT,
        MessageType.HEARTBEAT,
        MessageType.ADAPTER_CLOSE,
    ):
        return Message(kind, uid, nsp)
    body = message.get("data")
    if not isinstance(body, dict):
        raise WireError(f"{kind.name} without data")
    if kind is MessageType.BROADCAST:
        packet = body.get("packet")
        if isinstance(packet, dict):
            # The message's nsp is the one that counts (the reference never
            # reads the packet's; Node's packets have none).
            packet = {**packet, "nsp": nsp}
        found = _packet_and_opts(uid, packet, body.get("opts"), nsp)
        assert found is not None
        return Message(
            kind,
            uid,
            nsp,
            request_id=_request_id(body, False),
            rooms=found.rooms,
            exclude=found.exclude,
            data=found.data,
            volatile=found.volatile,
            timeout=found.timeout,
        )
    if kind in RESPONSES:
        request_id = _request_id(body, True)
        if kind is MessageType.FETCH_SOCKETS_RESPONSE:
            sockets = body.get("sockets")
            if not isinstance(sockets, list):
                raise WireError("FETCH_SOCKETS_RESPONSE without sockets")
            return Message(kind, uid, nsp, request_id=request_id, sockets=sockets)
        if kind is MessageType.BROADCAST_CLIENT_COUNT:
            count = body.get("clientCount")
            if not isinstance(count, int) or isinstance(count, bool):
                raise WireError("BROADCAST_CLIENT_COUNT without a clientCount")
            return Message(kind, uid, nsp, request_id=request_id, client_count=count)
        return Message(kind, uid, nsp, request_id=request_id, value=body.get("packet"))
    if kind is MessageType.SERVER_SIDE_EMIT:
        return Message(
            kind,
            uid,
            nsp,
            request_id=_request_id(body, False),
            data=_event_data(body.get("packet")),
        )
    opts = body.get("opts")
    if not isinstance(opts, dict):
        raise WireError(f"{kind.name} without opts")
    rooms = _rooms(opts.get("rooms"), "opts.rooms")
    exclude = _rooms(opts.get("except"), "opts.except")
    if kind is MessageType.FETCH_SOCKETS:
        return Message(
            kind, uid, nsp, request_id=_request_id(body, True), rooms=rooms, exclude=exclude
        )
    if kind is MessageType.DISCONNECT_SOCKETS:
        return Message(
            kind, uid, nsp, rooms=rooms, exclude=exclude, close=body.get("close") is True
        )
    # SOCKETS_JOIN / SOCKETS_LEAVE
    return Message(
        kind, uid, nsp, rooms=rooms, exclude=exclude, change=_room_list(body.get("rooms"), "rooms")
    )
