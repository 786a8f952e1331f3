"""The long-polling part of an Engine.IO session: GETs and POST bodies.

Spec: https://socket.io/docs/v4/engine-io-protocol/ ("HTTP long-polling").
Polling requests are served by the HTTP connection tasks, which call into the
session: a GET waits in :meth:`SessionPolling.poll` for what is queued, a POST
hands its packets to :meth:`SessionPolling.receive_packets`. At most one GET
and one POST may be pending; a second one closes the session (as the
reference server does).
"""

from __future__ import annotations

from collections.abc import Sequence

import trio

from .._common.sync import LazyEvent
from .._errors import DisconnectReason
from .._proto.eio import EioPacket
from . import packet as P
from .packet import OutPacket
from .session_state import SessionState


class PollOverlap(Exception):
    """A second GET (or POST) while one is still pending: the session is closed."""


# What ends the long-poll that is pending when the session closes: the client
# asked (its CLOSE packet) → NOOP, as the reference server; otherwise → CLOSE.
def _poll_terminator(reason: DisconnectReason) -> OutPacket:
    return P.NOOP if reason is DisconnectReason.TRANSPORT_CLOSE else P.CLOSE


# A CLOSE (or NOOP) went out in a long-poll's answer: shared, already set.
_TOLD = LazyEvent(True)


class SessionPolling(SessionState):
    """The polling methods of :class:`~triosio._engine.session.EngineSession`."""

    __slots__ = ()

    # ------------------------------------------------------------ GET

    async def poll(self) -> list[OutPacket]:
        """Wait for packets for a long-polling GET and take them all.

        Returns ``[NOOP]`` while an upgrade is in progress (to release the client
        so it can pause polling). Once the session is closed it returns what was
        still queued followed by ``CLOSE`` (``NOOP`` when the client itself sent
        CLOSE, as the reference server does).

        Raises:
            PollOverlap: a GET was already pending; the session is now closed.
                Raised before the first checkpoint.
        """
        if self._getting:
            self.close_nowait(DisconnectReason.TRANSPORT_ERROR)
            raise PollOverlap("overlapping GET requests")
        self._getting = True
        try:
            while True:
                reason = self._reason
                if reason is not None:
                    if self._told is None:
                        self._told = _TOLD  # (so a closing session waits for no GET)
                    else:
                        self._told.set()  # the closing session waits for this
                    return [*self.take_queued(), _poll_terminator(reason)]
                if self._queue:
                    return self.take_queued()
                if self._upgrading or self._ws is not None:
                    return [P.NOOP]
                self._poll_wake.clear()
                await self._poll_wake.wait()
        finally:
            self._getting = False

    @property
    def awaits_last_poll(self) -> bool:
        """Whether the session, closing at shutdown, waits for a GET to carry its CLOSE."""
        told = self._told
        return told is not None and not told.is_set()

    def take_queued(self) -> list[OutPacket]:
        """Take what is queued now, without waiting (e.g. for the handshake response)."""
        packets = self._queue
        self._queue = []
        self._queued_bytes = 0
        self._space.set()
        return packets

    # ------------------------------------------------------------ POST

    async def receive_packets(self, packets: Sequence[EioPacket]) -> None:
        """Handle packets that came in a polling POST body, in order.

        Runs in the caller's task (the HTTP connection's), under a cancel scope
        that closing the session cancels; packets after a close are dropped.
        """
        if not packets or self._reason is not None:
            return
        scope = trio.CancelScope()
        if not self._inbound:
            if self._inbound_idle is None:
                self._inbound_idle = LazyEvent()
            else:
                self._inbound_idle.clear()
        self._inbound[scope] = None
        try:
            with scope:
                for packet in packets:
                    if self.closed:  # a previous packet closed the session
                        break
                    await self._on_packet(packet)
        finally:
            self._inbound.pop(scope, None)
            if not self._inbound and self._inbound_idle is not None:
                self._inbound_idle.set()

    def begin_post(self) -> None:
        """A POST starts. Raises PollOverlap (and closes) if one is pending."""
        if self._posting:
            self.close_nowait(DisconnectReason.TRANSPORT_ERROR)
            raise PollOverlap("overlapping POST requests")
        self._posting = True

    def end_post(self) -> None:
        """The POST is done."""
        self._posting = False
