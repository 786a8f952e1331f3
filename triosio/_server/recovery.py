"""Connection state recovery: the sessions kept after a drop and the packet log.

What the reference does (socket.io 4.6+; its in-memory ``SessionAwareAdapter``):
the CONNECT reply carries a private session id, ``pid``; every EVENT the server
sends that is neither volatile nor waiting for an acknowledgement carries an
*offset* as an extra last argument and is kept for
``max_disconnection_duration``; a socket that closes for a reason that is not
anybody's decision (a transport error or close, a ping timeout, a shutdown) is
kept — its id, rooms and ``data`` — for as long; and a CONNECT whose auth
carries ``pid`` and ``offset`` of a kept session gets it back, with every kept
packet for its rooms that came after the offset.

Here all of it is one :class:`RecoveryState`, owned by the router task and
changed only there (``log``, ``keep``, ``take``, ``resume``, ``expire``: a test
checks that nothing else calls them). It has no clock and no I/O of its own:
the router passes the Trio time in, so every rule is a synchronous unit test.

**Offsets.** The router numbers the packets it logs, 1, 2, 3..., in the order
it sends them (its inbox is one FIFO). An offset is that number, in 10 hex
digits, after a 4-character tag drawn at random per server, so that a string
that did not come from this server's log is not mistaken for an offset. The
emitting task encodes the packet *once*, with :attr:`RecoveryState.placeholder`
(same length as an offset) as its last argument; the router writes the offset
over it in the encoded text (:meth:`RecoveryState.log`): one string copy per
packet, none per recipient. The parser must therefore carry a plain ASCII
string verbatim (JSON and msgpack do; the server checks its parser once).

**What a recovery needs.** Each kept session remembers a *mark*: the log
position after which everything for it was sent to its socket (its
registration, or the start of the replay it got when it was itself recovered).
A CONNECT with offset ``n`` gets the packets after ``max(n, mark)`` that match
its namespace and rooms, as the reference filters them (in one of its rooms,
or to everyone; in none of the excluded ones). Since packets leave the log
oldest first, that is possible exactly when nothing after that position was
dropped. Unlike the reference, a client that never received an offset (it
sends ``pid`` alone) recovers from its mark; and a client whose last packet
expired recovers as long as nothing newer than it was dropped.

**Bounds.** Sessions and packets are kept ``max_disconnection_duration``
seconds, on the Trio clock. At most ``max_sessions`` sessions and
``max_packets`` packets (and ``max_bytes`` of their encoded size) are kept;
past that the oldest go. A recovery that would need a packet that went (or a
session that went) fails cleanly: the client connects as a new socket
(``recovered`` false), as it would after the window.

**Across servers: a shared store.** With an adapter that keeps a log every
server reads (the Redis Streams adapter's ``session_store``, a
:class:`SessionStore`; the server sets :attr:`RecoveryState.store`), offsets
are that log's entry ids, as with Node's adapter: recoverable packets are
written there first and reach the router, offset in, from the adapter's task
in stream order (:meth:`RecoveryState.log_at` keeps them at their stream
position); sessions are stored there, not here; and a reconnecting client's
session and missed packets are read from it (:class:`SharedSession`), then
joined with this log so that nothing is missed or sent twice (see
:meth:`RecoveryState.resume` and docs/architecture.md).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, final

from .._common import ids
from .._engine.packet import OutPacket
from .._errors import DisconnectReason

#: The reasons after which a socket's session is kept (the reference's list):
#: nobody decided the socket should go. A namespace disconnect by either side,
#: a parse error, a message too large or a client too slow to read is final.
RECOVERABLE_REASONS = frozenset(
    {
        DisconnectReason.TRANSPORT_ERROR,
        DisconnectReason.TRANSPORT_CLOSE,
        DisconnectReason.FORCED_CLOSE,
        DisconnectReason.PING_TIMEOUT,
        DisconnectReason.SERVER_SHUTTING_DOWN,
        DisconnectReason.FORCED_SERVER_CLOSE,
    }
)

_TAG_LENGTH = 4
_SEQ_DIGITS = 10
_SEQ = re.compile(f"[0-9a-f]{{{_SEQ_DIGITS}}}")
# A pid is 20 characters (15 random bytes, base64); anything much longer is not one.
_MAX_PID = 64
_ENTRY_ID = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")
#: Seconds a CONNECT waits for a shared session store to restore a session;
#: past it (or if the store fails) the client connects as a new socket.
RESTORE_TIMEOUT = 5.0

#: What a shared store calls, in its own task, once a packet's place in the
#: shared log is known: with its offset (its entry id), or None if it has none
#: (written without an answer, or not at all): then it is sent without one.
Deliver = Callable[[str | None], None]


def stream_position(offset: str) -> int | None:
    """The order of a Redis stream entry id (``<ms>-<seq>``) as an int, or None.

    Offsets of the shared log (a stream) are compared by it: the ids one
    stream gives are increasing, so their positions are.
    """
    match = _ENTRY_ID.fullmatch(offset)
    if match is None:
        return None
    ms, seq = int(match[1]), int(match[2])
    if ms >= 1 << 64 or seq >= 1 << 64:
        return None
    return (ms << 64) | seq


@final
@dataclass(frozen=True, slots=True)
class SharedSession:
    """A session a shared store gave back (:meth:`SessionStore.restore_session`).

    Attributes:
        sid, pid, rooms, data: the socket's, as its server stored them.
        offset: the client's offset (an entry id of the namespace's stream).
        missed: ``(entry id, [event, *args, entry id])`` of each packet of the
            namespace after ``offset`` the session's rooms select, in order.
        upto: the last entry id the store read (``offset`` if none).
        floor: the entry id this server's reader of that stream started
            after (None if it has not started): older entries never reach
            this server but from the store.
    """

    sid: str
    pid: str
    rooms: frozenset[str]
    data: Any
    offset: str
    missed: list[tuple[str, list[Any]]]
    upto: str
    floor: str | None


class SessionStore(Protocol):
    """Sessions and the packet log shared by the servers of a cluster.

    What an adapter offers (``adapter.session_store``, e.g.
    ``triosio.redis.RedisStreamsAdapter``) so that a client that drops from one
    server is recovered by another: offsets are then positions in the shared
    log (a stream's entry ids), every recoverable packet is written there
    before any client gets it, and sessions are stored there.
    """

    def persist_session(self, session: Mapping[str, Any], ttl_ms: int) -> Awaitable[None]:
        """Store ``{sid, pid, rooms, data}`` for ``ttl_ms`` milliseconds."""
        ...

    async def restore_session(self, nsp: str, pid: str, offset: str) -> SharedSession | None:
        """Take the session ``pid`` back with what it missed after ``offset``; None if it
        cannot be (unknown, expired, taken, or the offset is not in the log)."""
        ...

    async def publish_logged(
        self,
        nsp: str,
        data: list[Any],
        rooms: frozenset[str],
        exclude: frozenset[str],
        deliver: Deliver,
    ) -> None:
        """Write a broadcast to the shared log, then call ``deliver`` (in the
        store's task, in log order) with its offset. Waits only for queue room."""


@final
@dataclass(frozen=True, slots=True)
class ConnectionStateRecovery:
    """Connection state recovery options (``triosio.Server(connection_state_recovery=...)``).

    A client that loses its connection for less than
    ``max_disconnection_duration`` seconds gets back its socket id, rooms and
    ``data``, and every packet it missed, in order (see the server guide).

    Args:
        max_disconnection_duration: Seconds a disconnected socket's session and
            each sent packet are kept (the reference's default: two minutes).
        skip_middlewares: Whether a recovered socket skips the namespace's
            middlewares (it passed them when it first connected).
        max_sessions: Most sessions kept at once; past it the oldest goes.
        max_packets: Most packets kept at once; past it the oldest goes.
        max_bytes: Most encoded bytes of kept packets; past it the oldest go.
    """

    max_disconnection_duration: float = 120.0
    skip_middlewares: bool = True
    max_sessions: int = 10_000
    max_packets: int = 10_000
    max_bytes: int = 8 * 1024 * 1024

    def __post_init__(self) -> None:
        if not self.max_disconnection_duration > 0:
            raise ValueError("max_disconnection_duration must be a positive number of seconds")
        for name in ("max_sessions", "max_packets", "max_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int")


def recovery_request(auth: Mapping[str, Any]) -> tuple[str, str | None] | None:
    """``(pid, offset)`` from a CONNECT's auth, or None when it asks for no recovery.

    Anything malformed — a pid that is not a short string, an offset that is
    neither a string nor absent — asks for no recovery (a normal connection).
    """
    pid = auth.get("pid")
    if not isinstance(pid, str) or not 0 < len(pid) <= _MAX_PID:
        return None
    offset = auth.get("offset")
    if offset is None:
        return pid, None
    if not isinstance(offset, str):
        return None
    return pid, offset


class KeptSession:
    """A disconnected socket, kept so that its client may get it back."""

    __slots__ = ("at", "data", "mark", "nsp", "pid", "rooms", "sid")

    def __init__(
        self,
        sid: str,
        pid: str,
        nsp: str,
        rooms: frozenset[str],
        data: dict[str, Any],
        mark: int,
        at: float,
    ) -> None:
        self.sid = sid
        self.pid = pid
        self.nsp = nsp
        self.rooms = rooms
        self.data = data
        self.mark = mark
        self.at = at


class Restored:
    """A kept session taken for a reconnecting client (:meth:`RecoveryState.take`).

    Attributes:
        sid, pid, nsp, rooms, data: the socket's, as it was kept.
        start: The log position the replay starts after (the new socket's mark).
        upto: The log position when it was taken: what came later is in the
            log still, or the recovery fails (:meth:`RecoveryState.resume`).
        missed: The packets it missed up to ``upto``, in order.
    """

    __slots__ = (
        "data",
        "floor",
        "missed",
        "nsp",
        "pid",
        "remote",
        "rooms",
        "sid",
        "start",
        "upto",
    )

    def __init__(
        self,
        session: KeptSession,
        start: int,
        upto: int,
        missed: list[Sequence[OutPacket]],
        remote: list[tuple[int, Sequence[OutPacket]]] | None = None,
        floor: int | None = None,
    ) -> None:
        self.sid = session.sid
        self.pid = session.pid
        self.nsp = session.nsp
        self.rooms = session.rooms
        self.data = session.data
        self.start = start
        self.upto = upto
        self.missed = missed
        #: From a shared store: what it read, by stream position (see
        #: :meth:`RecoveryState.resume`); ``floor``: where this server's reader began.
        self.remote = remote
        self.floor = floor


class _Entry:
    __slots__ = ("at", "exclude", "nsp", "packets", "rooms", "seq", "size")

    def __init__(
        self,
        seq: int,
        at: float,
        nsp: str,
        rooms: frozenset[str],
        exclude: frozenset[str],
        packets: Sequence[OutPacket],
        size: int,
    ) -> None:
        self.seq = seq
        self.at = at
        self.nsp = nsp
        self.rooms = rooms
        self.exclude = exclude
        self.packets = packets
        self.size = size

    def reaches(self, nsp: str, rooms: frozenset[str]) -> bool:
        # The reference's rule: to everyone or to one of the rooms, and to
        # none of the excluded ones (each socket is in the room of its own id).
        return (
            self.nsp == nsp
            and (not self.rooms or not self.rooms.isdisjoint(rooms))
            and self.exclude.isdisjoint(rooms)
        )


class RecoveryState:
    """The kept sessions and the packet log; the router's, changed only in its task.

    Args:
        options: The bounds and the window.
        tag: The offsets' prefix (4 characters; random by default).
    """

    def __init__(self, options: ConnectionStateRecovery, tag: str | None = None) -> None:
        self.options = options
        self._window = options.max_disconnection_duration
        self.tag = tag if tag is not None else ids.token_urlsafe(3)[:_TAG_LENGTH]
        if len(self.tag) != _TAG_LENGTH:
            raise ValueError("the offset tag must be 4 characters")
        #: What an emitting task puts last in a packet's arguments; the router
        #: writes the offset over it. As long as an offset; never one.
        self.placeholder = self.tag + "~" * _SEQ_DIGITS
        self._log: deque[_Entry] = deque()
        self._bytes = 0
        self._appended = 0  # the position of the last packet logged
        self._dropped = 0  # every position up to this one left the log
        self._sessions: dict[str, KeptSession] = {}
        #: Called when something is kept while nothing was (the expiry timer waits for it).
        self.on_kept: Callable[[], None] = _nothing
        #: The cluster's shared store (set by the server when its adapter has
        #: one): sessions are kept there, and the log here only bridges the
        #: gap between a restore reading the shared log and the registration.
        self.store: SessionStore | None = None
        # Shared log: the last position logged, and the last dropped, per namespace.
        self._latest: dict[str, int] = {}
        self._dropped_at: dict[str, int] = {}

    # ------------------------------------------------------------ reading

    @property
    def position(self) -> int:
        """The log position of the last packet logged (0 before any)."""
        return self._appended

    @property
    def kept_sessions(self) -> int:
        """How many sessions are kept."""
        return len(self._sessions)

    @property
    def kept_packets(self) -> int:
        """How many packets are kept."""
        return len(self._log)

    @property
    def kept_bytes(self) -> int:
        """The encoded size of the kept packets."""
        return self._bytes

    def next_expiry(self) -> float | None:
        """When the oldest kept thing expires (Trio time), or None if nothing is kept."""
        first: float | None = None
        if self._log:
            first = self._log[0].at
        if self._sessions:
            at = next(iter(self._sessions.values())).at
            if first is None or at < first:
                first = at
        return None if first is None else first + self._window

    def offset(self, position: int) -> str:
        """The offset of log position ``position``."""
        return f"{self.tag}{position:0{_SEQ_DIGITS}x}"

    def parse_offset(self, offset: str) -> int | None:
        """The log position an offset names, or None if it is not one of ours."""
        if (
            len(offset) != _TAG_LENGTH + _SEQ_DIGITS
            or not offset.startswith(self.tag)
            or _SEQ.fullmatch(offset, _TAG_LENGTH) is None
        ):
            return None
        return int(offset[_TAG_LENGTH:], 16)

    def check_parser(self, encode: Callable[[list[Any]], list[OutPacket]]) -> None:
        """Check that ``encode`` carries the placeholder verbatim (see :meth:`log`).

        Raises:
            ValueError: it does not: offsets could not be written in.
        """
        packets = encode(["probe", self.placeholder])
        if not packets or _patched(packets[0], self.placeholder, self.offset(1)) is None:
            raise ValueError(
                "connection state recovery needs a parser that writes a plain ASCII "
                "string argument as it is (the JSON and msgpack parsers do)"
            )

    # ------------------------------------------------------------ the router's
    # Everything below changes the state: called in the router task only.

    def log(
        self,
        nsp: str,
        packets: Sequence[OutPacket],
        rooms: frozenset[str],
        exclude: frozenset[str],
        now: float,
    ) -> Sequence[OutPacket]:
        """Number a packet, write its offset in, keep it; returns what to send.

        ``packets`` were encoded with :attr:`placeholder` as the last argument;
        the result is the same packet with this packet's offset instead.
        """
        position = self._appended + 1
        first = _patched(packets[0], self.placeholder, self.offset(position))
        if first is None:
            # Not encoded for recovery (never happens: the parser was checked).
            return packets
        self._appended = position
        stamped = [first, *packets[1:]] if len(packets) > 1 else [first]
        size = 0
        for packet in stamped:
            size += packet.size
        if not self._log and not self._sessions:
            self.on_kept()
        self._log.append(_Entry(position, now, nsp, rooms, exclude, stamped, size))
        self._bytes += size
        limit, max_bytes = self.options.max_packets, self.options.max_bytes
        while len(self._log) > limit or self._bytes > max_bytes:
            self._drop()
        return stamped

    def log_at(
        self,
        position: int,
        nsp: str,
        packets: Sequence[OutPacket],
        rooms: frozenset[str],
        exclude: frozenset[str],
        now: float,
    ) -> None:
        """Keep a packet of the shared log (its offset already in) at its stream position.

        They come in stream order for each namespace (the store delivers in
        the order it reads the stream).
        """
        size = 0
        for packet in packets:
            size += packet.size
        if not self._log and not self._sessions:
            self.on_kept()
        self._log.append(_Entry(position, now, nsp, rooms, exclude, packets, size))
        self._latest[nsp] = position
        self._bytes += size
        limit, max_bytes = self.options.max_packets, self.options.max_bytes
        while len(self._log) > limit or self._bytes > max_bytes:
            self._drop()

    def keep(
        self,
        sid: str,
        pid: str,
        nsp: str,
        rooms: frozenset[str],
        data: dict[str, Any],
        mark: int,
        now: float,
    ) -> None:
        """Keep a socket that closed for a recoverable reason."""
        if not self._log and not self._sessions:
            self.on_kept()
        self._sessions.pop(pid, None)  # (re)inserted last: the dict stays in time order
        self._sessions[pid] = KeptSession(sid, pid, nsp, rooms, data, mark, now)
        while len(self._sessions) > self.options.max_sessions:
            del self._sessions[next(iter(self._sessions))]

    def take(self, nsp: str, pid: str, offset: str | None, now: float) -> Restored | None:
        """The kept session ``pid`` of namespace ``nsp`` with what it missed, or None.

        A session is taken once, whether it can be restored or not. None when
        it is unknown, expired, the offset is not one this log gave, or a
        packet it would need was dropped.
        """
        session = self._sessions.get(pid)
        if session is None or session.nsp != nsp:
            return None
        del self._sessions[pid]
        if session.at + self._window <= now:
            return None
        start = session.mark
        if offset is not None:
            position = self.parse_offset(offset)
            if position is None or position > self._appended:
                return None
            start = max(start, position)
        if self._dropped > start:
            return None  # something it may have missed left the log
        upto = self._appended
        return Restored(session, start, upto, self._since(start, nsp, session.rooms))

    def resume(self, restored: Restored) -> list[Sequence[OutPacket]] | None:
        """Everything ``restored`` missed, including what was logged since it was
        taken; None if some of that left the log meanwhile (then it cannot be
        restored)."""
        if restored.remote is not None:
            return self._resume_shared(restored, restored.remote)
        if self._dropped > restored.upto:
            return None
        later = self._since(restored.upto, restored.nsp, restored.rooms)
        return restored.missed + later if later else restored.missed

    def expire(self, now: float) -> None:
        """Drop every session and packet kept ``max_disconnection_duration`` or longer."""
        # ``at + window <= now``, the very sum next_expiry() gives the timer.
        window = self._window
        log = self._log
        while log and log[0].at + window <= now:
            self._drop()
        sessions = self._sessions
        while sessions:
            pid = next(iter(sessions))
            if sessions[pid].at + window > now:
                break
            del sessions[pid]

    # ------------------------------------------------------------ internals

    def _resume_shared(
        self, restored: Restored, remote: list[tuple[int, Sequence[OutPacket]]]
    ) -> list[Sequence[OutPacket]] | None:
        # The store read the stream up to ``upto`` (M); this server has sent
        # the namespace's packets up to ``latest`` (R), and sends the later
        # ones to the socket once registered. So the socket needs what the
        # store read up to R, and, if R is past M, what this log holds
        # between them (it must still hold all of it).
        nsp, upto = restored.nsp, restored.upto
        latest = self._latest.get(nsp)
        if latest is None:
            # Nothing sent here since the reader began: everything up to its
            # start comes from the store, everything after it live.
            latest = restored.floor if restored.floor is not None else upto
            if latest > upto:
                return None  # the store stopped short of where live delivery starts
        missed: list[Sequence[OutPacket]] = [p for position, p in remote if position <= latest]
        if latest > upto:
            if self._dropped_at.get(nsp, -1) > upto:
                return None
            missed += self._since_in(upto, nsp, restored.rooms)
        return missed

    def _since_in(self, start: int, nsp: str, rooms: frozenset[str]) -> list[Sequence[OutPacket]]:
        # _since for the shared log: positions increase per namespace only
        # (namespaces may be on different streams).
        found: list[Sequence[OutPacket]] = []
        for entry in reversed(self._log):
            if entry.nsp != nsp:
                continue
            if entry.seq <= start:
                break
            if entry.reaches(nsp, rooms):
                found.append(entry.packets)
        found.reverse()
        return found

    def _drop(self) -> None:
        entry = self._log.popleft()
        self._bytes -= entry.size
        self._dropped = entry.seq
        if self.store is not None:
            self._dropped_at[entry.nsp] = entry.seq

    def _since(self, start: int, nsp: str, rooms: frozenset[str]) -> list[Sequence[OutPacket]]:
        # From the newest back to ``start``: the cost is what came after it.
        found: list[Sequence[OutPacket]] = []
        for entry in reversed(self._log):
            if entry.seq <= start:
                break
            if entry.reaches(nsp, rooms):
                found.append(entry.packets)
        found.reverse()
        return found


def _patched(packet: OutPacket, placeholder: str, offset: str) -> OutPacket | None:
    # The packet with the last occurrence of the placeholder replaced by the
    # offset (same length, so a length-prefixed encoding stays valid), or None.
    data = packet.data
    if isinstance(data, str):
        at = data.rfind(placeholder)
        if at < 0:
            return None
        return OutPacket(
            packet.type, data[:at] + offset + data[at + len(placeholder) :], packet.compress
        )
    raw = placeholder.encode("ascii")
    at = data.rfind(raw)
    if at < 0:
        return None
    return OutPacket(
        packet.type, data[:at] + offset.encode("ascii") + data[at + len(raw) :], packet.compress
    )


def stamp(packets: Sequence[OutPacket], placeholder: str, offset: str) -> list[OutPacket] | None:
    """``packets`` with ``offset`` written over ``placeholder``, if their text
    allows any length there (a text encoding); None: encode them again."""
    first = packets[0]
    if not isinstance(first.data, str):
        return None  # MessagePack: a string's length is in its header
    patched = _patched(first, placeholder, offset)
    if patched is None:
        return None
    return [patched, *packets[1:]]


def _nothing() -> None:
    pass
