"""What another server of the cluster holds, seen from this one.

- :class:`RemoteSocket`, a socket of another server, as ``fetch_sockets``
  returns it, whose methods act through the cluster;
- :class:`ClusterAcks`, the other servers' part of a broadcast ``emit_with_ack``;
- :class:`ForwardedAck`, which collects this server's clients' acknowledgements
  of a broadcast another server asked for and passes each one on;
- :func:`socket_info`, what this server tells the others of one of its sockets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, final

import trio

from .._errors import AckTimeout
from .acks import GONE, BroadcastAck
from .socket import Handshake

if TYPE_CHECKING:
    from .broadcast import BroadcastOperator
    from .namespace import Namespace
    from .socket import Socket


# ---------------------------------------------------------------- acknowledgements


def first_ack_arg(value: Any) -> Any:
    """The first argument of an acknowledgement (the cluster carries only that one).

    triosio gives several ack arguments as a tuple (see ``ack_value``).
    """
    if isinstance(value, tuple):
        return value[0] if value else None
    return value


@final
class ClusterAcks:
    """The other servers' part of a broadcast ``emit_with_ack``.

    Each other server first says how many of its clients got the packet (a
    client count), then passes on each client's acknowledgement. Done when
    every expected server has sent its count and every counted client has
    answered.

    Attributes:
        responses: The remote clients' acknowledgements so far.
        done: Set when nothing more is expected.
    """

    __slots__ = ("_counts", "_expected", "_forget", "_total", "done", "responses")

    def __init__(self, forget: Callable[[], None] = lambda: None) -> None:
        self.responses: list[Any] = []
        self.done = trio.Event()
        self._expected: int | None = None
        self._counts = 0
        self._total = 0
        self._forget = forget

    def expect_servers(self, count: int) -> None:
        """``count`` other servers will each send a client count."""
        self._expected = max(count, 0)
        self._check()

    def client_count(self, count: int) -> None:
        """One server sent its packet to ``count`` clients."""
        self._counts += 1
        self._total += max(count, 0)
        self._check()

    def ack(self, value: Any) -> None:
        """One remote client acknowledged."""
        self.responses.append(value)
        self._check()

    @property
    def missing(self) -> int:
        """Answers still expected: client counts, and acknowledgements of counted clients."""
        servers = (self._expected or 0) - self._counts
        return max(servers, 0) + max(self._total - len(self.responses), 0)

    @property
    def expected(self) -> int:
        """Answers expected so far (client counts and acknowledgements)."""
        return (self._expected or 0) + self._total

    def _check(self) -> None:
        if (
            self._expected is not None
            and self._counts >= self._expected
            and len(self.responses) >= self._total
        ):
            self.done.set()

    def forget(self) -> None:
        """Stop collecting (the caller gave up or is done); synchronous."""
        self._forget()


class ForwardedAck(BroadcastAck):
    """This server's clients' acknowledgements of another server's broadcast.

    The router registers it like any broadcast's collector; it reports the
    number of recipients once (:meth:`sent`) and each acknowledgement as it
    arrives, both through synchronous callbacks (which queue a publish).
    """

    __slots__ = ("_on_ack", "_on_count")

    def __init__(
        self, ack_id: int, on_count: Callable[[int], None], on_ack: Callable[[Any], None]
    ) -> None:
        super().__init__(ack_id)
        self._on_count = on_count
        self._on_ack = on_ack

    def sent(self) -> None:
        """The router handed the packet to its recipients: report how many."""
        count = len(self.pending) + len(self.responses)
        super().sent()
        self._on_count(count)

    def __call__(self, sid: str, value: Any) -> None:
        if sid not in self.pending:
            return
        super().__call__(sid, value)
        if value is not GONE:
            self._on_ack(first_ack_arg(value))


def socket_info(socket: Socket) -> dict[str, Any]:
    """What a REMOTE_FETCH answer says of one local socket (socket.io's own fields)."""
    h = socket.handshake
    handshake: dict[str, Any] = {
        "headers": dict(h.headers),
        "time": h.time,
        "address": h.address,
        "xdomain": h.xdomain,
        "secure": h.secure,
        "issued": h.issued,
        "url": h.url,
        "query": dict(h.query),
        "auth": dict(h.auth),
    }
    for key, value in h.extra.items():
        handshake.setdefault(key, value)
    rooms = socket.rooms
    return {
        "id": socket.id,
        "handshake": handshake,
        # The socket's own room first, as socket.io lists it.
        "rooms": [socket.id, *sorted(room for room in rooms if room != socket.id)],
        "data": socket.data,
    }


_HANDSHAKE_FIELDS = ("headers", "query", "auth", "address", "time", "issued", "url", "secure")


def _handshake(raw: object) -> Handshake:
    fields = raw if isinstance(raw, dict) else {}

    def mapping(key: str) -> Mapping[str, Any]:
        value = fields.get(key)
        return value if isinstance(value, dict) else {}

    issued = fields.get("issued")
    return Handshake(
        headers=mapping("headers"),
        query=mapping("query"),
        auth=mapping("auth"),
        address=str(fields.get("address") or ""),
        time=str(fields.get("time") or ""),
        issued=issued if isinstance(issued, int) and not isinstance(issued, bool) else 0,
        url=str(fields.get("url") or ""),
        secure=fields.get("secure") is True,
        xdomain=fields.get("xdomain") is True,
        extra={k: v for k, v in fields.items() if k not in _HANDSHAKE_FIELDS and k != "xdomain"},
    )


@final
class RemoteSocket:
    """A socket connected to another server of the cluster.

    ``fetch_sockets()`` returns these (next to this server's own
    :class:`~triosio.Socket` objects) when an adapter spans several servers.
    It is a snapshot taken when the other server answered; its methods act
    through the cluster, on whichever server holds the socket.

    Attributes:
        id: The socket id.
        nsp: Its namespace (this server's :class:`~triosio.Namespace` of that name).
        handshake: What the client sent when it connected (as the other server saw it).
        rooms: The rooms it was in, its own id included.
        data: Its ``socket.data``, as JSON carries it.
    """

    __slots__ = ("data", "handshake", "id", "nsp", "rooms")

    def __init__(
        self,
        nsp: Namespace,
        sid: str,
        handshake: Handshake,
        rooms: frozenset[str],
        data: Any,
    ) -> None:
        self.nsp = nsp
        self.id = sid
        self.handshake = handshake
        self.rooms = rooms
        self.data = data

    @classmethod
    def from_wire(cls, nsp: Namespace, raw: Mapping[str, Any]) -> RemoteSocket | None:
        """Build one from a REMOTE_FETCH answer's entry; None if it has no id."""
        sid = raw.get("id")
        if not isinstance(sid, str):
            return None
        rooms = raw.get("rooms")
        room_set = frozenset(str(r) for r in rooms) if isinstance(rooms, list) else frozenset()
        return cls(nsp, sid, _handshake(raw.get("handshake")), room_set, raw.get("data"))

    def __repr__(self) -> str:
        return f"<RemoteSocket {self.id} nsp={self.nsp.name}>"

    def _only(self) -> BroadcastOperator:
        return self.nsp.to(self.id)

    async def emit(self, event: str, *args: Any) -> None:
        """Send ``event`` to this socket's client, through the cluster."""
        await self._only().emit(event, *args)

    def timeout(self, seconds: float) -> BroadcastOperator:
        """An operator for ``emit_with_ack`` with a timeout (its result is a list)."""
        return self._only().timeout(seconds)

    async def emit_with_ack(self, event: str, *args: Any, timeout: float) -> Any:
        """Send ``event`` and return the client's acknowledgement (its first argument).

        Raises:
            AckTimeout: no answer within ``timeout`` seconds.
        """
        try:
            answers = await self._only().emit_with_ack(event, *args, timeout=timeout)
        except AckTimeout:
            raise
        if not answers:
            raise AckTimeout(f"no acknowledgement of {event!r} from {self.id}")
        return answers[0]

    async def join(self, *rooms: str | Iterable[str]) -> None:
        """Make the socket join ``rooms`` (on its server)."""
        await self._only().sockets_join(*rooms)

    async def leave(self, *rooms: str | Iterable[str]) -> None:
        """Make the socket leave ``rooms`` (on its server)."""
        await self._only().sockets_leave(*rooms)

    async def disconnect(self, close: bool = False) -> None:
        """Disconnect the socket (``close=True``: its whole connection).

        Returns once the request is sent; the other server acts on receipt.
        """
        await self._only().disconnect_sockets(close)
