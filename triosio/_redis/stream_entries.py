"""Cluster messages as Redis stream entries (``@socket.io/redis-streams-adapter`` 0.3.x).

Sans-I/O, for the streams adapter and for any emitter that writes to the same
streams. One entry per message (``XADD <stream> MAXLEN ~ <maxLen> * ...``),
with the fields, in order:

- ``uid``: the sender's uid;
- ``nsp``: the namespace;
- ``type``: the message type as a decimal string (``"3"`` for BROADCAST);
- ``data`` (when the message has data): ``JSON.stringify(data)``, or, when a
  type that may carry binary does carry some (and ``onlyPlaintext`` is off),
  the base64 of its MessagePack. A reader tells them apart by the first
  character: ``{`` is JSON.

Namespaces map to streams: with ``streamCount`` 1, every namespace uses the
stream ``<streamName>``; otherwise ``<streamName>-<i>`` where ``i`` is
JavaScript's ``hashCode(nsp) % streamCount`` (sign included, as JavaScript's
remainder keeps it). Entry ids are ``<ms>-<seq>``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

from .._cluster.ca_messages import MAY_CONTAIN_BINARY, MessageType
from .._cluster.values import WireError, load_message, pack, to_json, unpack
from .._proto._json import contains_binary

#: What an entry id looks like (also the offset a client sends to recover).
ENTRY_ID = re.compile(r"^[0-9]+-[0-9]+$")


def hash_code(text: str) -> int:
    """JavaScript's ``hashCode``: ``h = h * 31 + charCodeAt(i) | 0`` over UTF-16 units."""
    h = 0
    units = text.encode("utf-16-le", "surrogatepass")
    for i in range(0, len(units), 2):
        h = (h * 31 + (units[i] | units[i + 1] << 8)) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def stream_for(nsp: str, stream_name: str, stream_count: int) -> str:
    """The stream that carries namespace ``nsp``'s messages."""
    if stream_count == 1:
        return stream_name
    h = hash_code(nsp)
    index = abs(h) % stream_count
    return f"{stream_name}-{-index if h < 0 else index}"


def stream_names(stream_name: str, stream_count: int) -> list[str]:
    """Every stream a server reads."""
    if stream_count == 1:
        return [stream_name]
    return [f"{stream_name}-{i}" for i in range(stream_count)]


def next_id(entry_id: str) -> str:
    """The smallest id after ``entry_id`` (an exclusive XRANGE start before Redis 6.2)."""
    ms, _, seq = entry_id.partition("-")
    return f"{ms}-{int(seq) + 1}"


def encode_entry(message: Mapping[str, Any], only_plaintext: bool = False) -> list[bytes]:
    """The fields and values of a message's entry, flattened: ``[b"uid", uid, b"nsp", ...]``.

    Raises:
        LocalProtocolError: ``data`` holds binary MessagePack cannot carry.
    """
    fields = [
        b"uid",
        str(message["uid"]).encode(),
        b"nsp",
        str(message["nsp"]).encode(),
        b"type",
        str(int(message["type"])).encode(),
    ]
    data = message.get("data")
    if data is not None:
        if not only_plaintext and message["type"] in MAY_CONTAIN_BINARY and contains_binary(data):
            encoded = base64.b64encode(pack(data))
        else:
            encoded = to_json(data)
        fields += [b"data", encoded]
    return fields


def decode_entry(fields: Mapping[bytes, bytes]) -> dict[str, Any] | None:
    """A stream entry as a cluster message; None for an entry without ``nsp`` (skipped).

    Raises:
        WireError: malformed.
    """
    nsp = fields.get(b"nsp")
    if not nsp:
        return None
    uid, raw_type = fields.get(b"uid"), fields.get(b"type")
    if uid is None or raw_type is None:
        raise WireError("a stream entry needs uid and type")
    try:
        kind = int(raw_type.decode("ascii"), 10)
        message: dict[str, Any] = {"uid": uid.decode(), "nsp": nsp.decode(), "type": kind}
    except (UnicodeDecodeError, ValueError):
        raise WireError("a stream entry's uid, nsp or type is not text") from None
    raw = fields.get(b"data")
    if raw:
        if raw[:1] == b"{":
            message["data"] = load_message(raw)
        else:
            try:
                message["data"] = unpack(base64.b64decode(raw, validate=False))
            except (binascii.Error, ValueError):
                raise WireError("a stream entry's data is neither JSON nor base64") from None
    return message


def is_ephemeral(message: Mapping[str, Any]) -> bool:
    """Whether a message goes by pub/sub rather than the stream (as the reference decides).

    Requests that want answers (a broadcast with acks, a server-side emit,
    fetch_sockets) are worth nothing later: pub/sub. Broadcasts, joins,
    leaves and disconnects go to the stream, in order, and can be read again.
    """
    kind = message["type"]
    if kind == MessageType.BROADCAST:
        return "requestId" in message.get("data", {})
    return kind in (MessageType.SERVER_SIDE_EMIT, MessageType.FETCH_SOCKETS)
