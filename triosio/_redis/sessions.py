"""Sessions kept in Redis for connection state recovery, as the streams adapter keeps them.

What ``@socket.io/redis-streams-adapter`` 0.3.x does in ``persistSession`` and
``restoreSession``, so that a client that drops from one server (Node or
triosio) is recovered by another:

- on a recoverable disconnection, the server stores the session
  ``{"sid", "pid", "rooms", "data"}`` as the base64 of its MessagePack under
  ``<prefix><pid>`` (``sio:session:<pid>``), expiring after the recovery window
  (``SET ... PX <maxDisconnectionDuration>``);
- when a client comes back with its ``pid`` and the ``offset`` of the last
  packet it got (a stream entry id), a server takes the session out of Redis
  (``GET`` + ``DEL`` in one ``MULTI``: one server recovers it, once), checks
  that the offset is still in the stream, and collects the broadcasts of the
  namespace after that offset that the session's rooms select (each one's
  data with its entry id appended: its offset).

Recovery fails (None) when the session expired or was taken, or when the offset
is gone from the stream (trimmed past ``maxLen``): the client then gets a new
session, as with any adapter.

The server uses them through ``RedisStreamsAdapter.session_store`` (its
client, its stream for the namespace; see ``triosio/_server/recovery.py``);
they are tested against Node's adapter (``tests/redis/test_streams_sessions.py``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from typing import Any

from .._cluster.values import WireError, pack, plain, unpack
from .stream_entries import ENTRY_ID, decode_entry, next_id

#: The reference's ``sessionKeyPrefix``.
SESSION_KEY_PREFIX = "sio:session:"
#: XRANGE calls at most per restore (the reference's bound; a stream written
#: faster than it is read must not keep a restore going forever).
MAX_RANGES = 100
#: Entries per XRANGE call.
RANGE_COUNT = 1000


def encode_session(session: Mapping[str, Any]) -> bytes:
    """The stored form: base64 of the MessagePack of ``{sid, pid, rooms, data}``.

    Raises:
        LocalProtocolError: ``data`` holds what MessagePack cannot carry.
    """
    return base64.b64encode(
        pack(
            {
                "sid": session["sid"],
                "pid": session["pid"],
                "rooms": list(session["rooms"]),
                "data": session.get("data"),
            }
        )
    )


def decode_session(raw: bytes) -> dict[str, Any]:
    """A stored session back.

    Raises:
        WireError: not a session.
    """
    try:
        session = unpack(base64.b64decode(raw))
    except (binascii.Error, ValueError):
        raise WireError("a stored session is not base64") from None
    if not isinstance(session, dict):
        raise WireError("a stored session must be a map")
    sid, pid, rooms = session.get("sid"), session.get("pid"), session.get("rooms")
    if not isinstance(sid, str) or not isinstance(pid, str) or not isinstance(rooms, list):
        raise WireError("a stored session needs sid, pid and rooms")
    return {
        "sid": sid,
        "pid": pid,
        "rooms": [str(room) for room in rooms],
        "data": plain(session.get("data")),
    }


def selects(session_rooms: Iterable[str], rooms: Iterable[str], exclude: Iterable[str]) -> bool:
    """Whether a broadcast to ``rooms`` but ``exclude`` reaches a socket in ``session_rooms``."""
    mine = set(session_rooms)
    targets = set(rooms)
    return (not targets or bool(mine & targets)) and not mine & set(exclude)


def missed_packets(
    entries: Iterable[tuple[str, Mapping[bytes, bytes]]], nsp: str, session_rooms: list[str]
) -> list[list[Any]]:
    """The broadcasts among stream ``entries`` a session would have got: ``[*data, id]`` each.

    Volatile broadcasts are left out (a volatile packet is never worth
    replaying), as are malformed entries and other namespaces'.
    """
    found: list[list[Any]] = []
    for entry_id, fields in entries:
        if fields.get(b"nsp") != nsp.encode() or fields.get(b"type") != b"3":
            continue
        try:
            message = decode_entry(fields)
            body: Any = message["data"] if message is not None else None
            packet, opts = body["packet"], body["opts"]
            data = plain(packet["data"])
            flags = opts.get("flags") or {}
            rooms = [str(r) for r in opts.get("rooms") or ()]
            exclude = [str(r) for r in opts.get("except") or ()]
        except (WireError, KeyError, TypeError, AttributeError):
            continue
        if "requestId" in body or flags.get("volatile") or not isinstance(data, list):
            continue
        if selects(session_rooms, rooms, exclude):
            found.append([*data, entry_id])
    return found


def session_key(pid: str, prefix: str = SESSION_KEY_PREFIX) -> bytes:
    """Where the session of private id ``pid`` is stored."""
    return (prefix + pid).encode()


async def persist_session(
    client: Any,
    session: Mapping[str, Any],
    ttl_ms: int,
    *,
    prefix: str = SESSION_KEY_PREFIX,
) -> None:
    """Store ``session`` (``{sid, pid, rooms, data}``) for ``ttl_ms`` milliseconds.

    ``client`` is a connected ``coredis.Redis``.
    """
    await client.set(session_key(session["pid"], prefix), encode_session(session), px=ttl_ms)


async def restore_session(
    client: Any,
    stream: str,
    nsp: str,
    pid: str,
    offset: str,
    *,
    prefix: str = SESSION_KEY_PREFIX,
) -> dict[str, Any] | None:
    """Take the session of ``pid`` out of Redis, with what it missed after ``offset``.

    Returns:
        ``{sid, pid, rooms, data, missedPackets}``, or None when the offset is
        not an entry id, the session is not there (expired, or restored by
        another server already), or the offset is no longer in ``stream``.
    """
    taken = await take_session(client, stream, nsp, pid, offset, prefix=prefix)
    return None if taken is None else taken[0]


async def take_session(
    client: Any,
    stream: str,
    nsp: str,
    pid: str,
    offset: str,
    *,
    prefix: str = SESSION_KEY_PREFIX,
) -> tuple[dict[str, Any], str] | None:
    """:func:`restore_session`, and the id of the last entry it read (``offset`` if none)."""
    if not ENTRY_ID.match(offset):
        return None
    key = session_key(pid, prefix)
    async with client.pipeline(transaction=True) as pipe:
        raw_request = pipe.get(key)
        pipe.delete([key])
    raw = await raw_request
    still_there = await client.xrange(stream.encode(), offset, offset)
    if not raw or not still_there:
        return None
    try:
        session = decode_session(raw)
    except WireError:
        return None
    entries: list[tuple[str, Mapping[bytes, bytes]]] = []
    start = next_id(offset)
    for _ in range(MAX_RANGES):
        page = await client.xrange(stream.encode(), start, b"+", count=RANGE_COUNT)
        entries += [(e.identifier.decode(), e.field_values) for e in page]
        if len(page) < RANGE_COUNT:
            break
        start = next_id(entries[-1][0])
    session["missedPackets"] = missed_packets(entries, nsp, session["rooms"])
    return session, entries[-1][0] if entries else offset
