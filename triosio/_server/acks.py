"""Acknowledgements a client owes the server: one owner per socket.

A socket's :class:`PendingAcks` is the only holder of the acknowledgements its
client has yet to send, by ack id. Four tasks touch it — the emitting task
(``emit_with_ack`` registers and forgets), the router (a broadcast with
acknowledgements registers its collector with each recipient), the client's
reader (an ACK packet resolves) and the closer (a disconnect fails what is
left) — but only through its methods, none of which awaits, so each call
sees and leaves the table whole. Giving the table to the router task instead
would put every incoming ACK through the router's inbox: a task switch per
acknowledgement for the same guarantee (see docs/architecture.md).

:class:`BroadcastAck` collects the answers of one broadcast; the router
registers it with every recipient in the step that sends the packet, so no
answer can arrive before it is expected.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

if TYPE_CHECKING:
    from .socket import Socket

log = logging.getLogger("triosio.server")

AckCallback = Callable[[str, Any], None]


class _Gone:
    def __repr__(self) -> str:
        return "GONE"


#: Given to pending acknowledgement callbacks when their socket disconnects.
GONE: Any = _Gone()


class PendingAcks:
    """The acknowledgements one socket's client owes, by ack id.

    Each callback is called once, as ``callback(sid, value)``: with the
    acknowledgement (``None``, the argument, or a tuple of several), or with
    :data:`GONE` when the socket disconnects first.
    """

    __slots__ = ("_sid", "_waiting")

    def __init__(self, sid: str) -> None:
        self._sid = sid
        self._waiting: dict[int, AckCallback] = {}

    def __len__(self) -> int:
        return len(self._waiting)

    def __contains__(self, ack_id: object) -> bool:
        return ack_id in self._waiting

    def __repr__(self) -> str:
        return f"<PendingAcks {sorted(self._waiting)}>"

    def expect(self, ack_id: int, callback: AckCallback) -> None:
        """Wait for ``ack_id``: ``callback`` gets the answer."""
        self._waiting[ack_id] = callback

    def forget(self, ack_id: int, callback: AckCallback | None = None) -> None:
        """Stop waiting for ``ack_id`` (only if it still goes to ``callback``, if given)."""
        if callback is None or self._waiting.get(ack_id) is callback:
            self._waiting.pop(ack_id, None)

    def resolve(self, ack_id: int, value: Any) -> None:
        """The client answered ``ack_id``; an answer nobody waits for is ignored."""
        callback = self._waiting.pop(ack_id, None)
        if callback is None:
            return  # timed out, forgotten, or bogus
        try:
            callback(self._sid, value)
        except Exception:
            log.exception("error handling an ack for socket %s", self._sid)

    def fail_all(self) -> None:
        """The socket is gone: every waiter gets :data:`GONE`."""
        waiting, self._waiting = self._waiting, {}
        for callback in waiting.values():
            try:
                callback(self._sid, GONE)
            except Exception:
                log.exception("error failing an ack of socket %s", self._sid)


class BroadcastAck:
    """Collects the acknowledgements of one broadcast.

    The router registers it with each recipient's :class:`PendingAcks` and in
    :attr:`pending`; each answer (the socket's reader) or disconnection (its
    closer) moves a recipient out of :attr:`pending`. Every step is
    synchronous, so it needs no lock.

    Attributes:
        id: The ack id in the broadcast packet (unique in its namespace).
        responses: Each answer so far: the ack argument (a tuple if several).
        pending: Recipients that have not answered yet, by socket id.
        gone: Ids of recipients that disconnected without answering.
        done: Set once the packet went out and no recipient is pending.
        cancelled: Set by :meth:`forget`; the router then registers nothing.
    """

    __slots__ = ("_sent", "cancelled", "done", "gone", "id", "pending", "responses")

    def __init__(self, ack_id: int) -> None:
        self.id = ack_id
        self.responses: list[Any] = []
        self.pending: dict[str, Socket] = {}
        self.gone: list[str] = []
        self.done = trio.Event()
        self.cancelled = False
        self._sent = False

    def expect_from(self, socket: Socket) -> None:
        """Wait for ``socket``'s answer (the router, before sending it the packet)."""
        socket.acks.expect(self.id, self)
        self.pending[socket.id] = socket

    def not_sent(self, socket: Socket) -> None:
        """The packet did not reach ``socket`` after all: expect nothing from it."""
        socket.acks.forget(self.id, self)
        del self.pending[socket.id]

    def sent(self) -> None:
        """The router handed the packet to every recipient it could."""
        self._sent = True
        self._check()

    def __call__(self, sid: str, value: Any) -> None:
        if self.pending.pop(sid, None) is None:
            return
        if value is GONE:
            self.gone.append(sid)
        else:
            self.responses.append(value)
        self._check()

    def _check(self) -> None:
        if self._sent and not self.pending:
            self.done.set()

    def forget(self) -> list[str]:
        """Stop waiting: unregister from every pending recipient; their ids.

        Synchronous, so it is safe in a ``finally`` of a cancelled task.
        """
        self.cancelled = True
        missing = list(self.pending)
        for socket in self.pending.values():
            socket.acks.forget(self.id, self)
        self.pending.clear()
        return missing
