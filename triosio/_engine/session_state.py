"""The fields of an Engine.IO session, declared once for the parts of its class.

:class:`~triosio._engine.session.EngineSession` is one class made of parts, one
module per job:

- ``session.py``: sending, closing, the session's own task, incoming packets
  and the WebSocket reader;
- ``session_heartbeat.py``: PINGs and the PONG deadline;
- ``session_polling.py``: long-poll GETs and POST bodies;
- ``session_upgrade.py``: the WebSocket probe and the switch to it.

Their fields are the slots of :class:`SessionState`, the base of every part (a
server holds one session per client: no ``__dict__``); ``EngineSession``
gives them their first values. The methods one part calls on another are
declared here too, for the type checker only: each is defined in one part.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import trio

from .._common.sync import LazyEvent, WriteBatch
from .._errors import DisconnectReason
from .._proto.eio import EioPacket
from .exchange import Request, WebSocket
from .heartbeats import HeartbeatTimers, TimerEntry
from .options import EngineOptions
from .packet import OutPacket


class SessionState:
    """The state shared by the parts of :class:`~triosio._engine.session.EngineSession`."""

    __slots__ = (
        "_app",
        "_batch",
        "_close_event",
        "_finished",
        "_getting",
        "_held",
        "_inbound",
        "_inbound_idle",
        "_nursery",
        "_nursery_open",
        "_options",
        "_ping_held",
        "_poll_wake",
        "_pong_deadline",
        "_posting",
        "_probing",
        "_queue",
        "_queued_bytes",
        "_reader",
        "_reader_scope",
        "_reason",
        "_space",
        "_timer",
        "_timers",
        "_told",
        "_upgrading",
        "_ws",
        "app_state",
        "request",
        "sid",
        "transport",
    )

    sid: str
    request: Request
    transport: str
    #: Whatever the application layer keeps for this session.
    app_state: Any
    _options: EngineOptions
    # (_app, the EngineApp, is typed where it is set: in EngineSession.)

    # -- closing
    _reason: DisconnectReason | None  # the first close reason; None while open
    _close_event: LazyEvent | None  # see sync.set_once / waitable
    _finished: LazyEvent | None
    _nursery: trio.Nursery | None
    _nursery_open: bool
    # Cancel scopes of POST bodies being handled (in HTTP connection tasks).
    _inbound: dict[trio.CancelScope, None]  # POSTs being processed (as a set)
    _inbound_idle: LazyEvent | None  # set while no POST is processed

    # -- sending
    _batch: WriteBatch
    _held: list[OutPacket] | None  # sends held during a WriteBatch (WebSocket)
    _queue: list[OutPacket]  # the polling queue
    _queued_bytes: int
    _space: LazyEvent  # set while the polling queue is below its limits
    _ws: WebSocket | None  # the WebSocket, once the session is on one
    # The task reading the WebSocket (None before, and between a hand-off and
    # the new reader's start), and the cancel scope it runs in (None for the
    # first reader: see EngineSession.hand_off_reading).
    _reader: trio.lowlevel.Task | None
    _reader_scope: trio.CancelScope | None

    # -- polling
    _poll_wake: LazyEvent
    _told: LazyEvent | None
    _getting: bool  # a long-poll GET is pending
    _posting: bool  # a POST is being handled

    # -- upgrade
    _probing: bool  # a WebSocket probe is under way
    _upgrading: bool  # the probe succeeded; the switch is pending

    # -- heartbeat
    _timers: HeartbeatTimers  # the server's timer task
    _timer: TimerEntry | None
    # When the pending PING's pong is due (None: no PING pending). The one
    # truth about the deadline, so that whatever reaches the session first at
    # that instant — the timer task, a request, a packet — sees it.
    _pong_deadline: float | None
    # A PING fell due during an upgrade's switch: it goes out after it.
    _ping_held: bool

    if TYPE_CHECKING:

        @property
        def nursery(self) -> trio.Nursery: ...  # session.py

        @property
        def closed(self) -> bool: ...  # session.py

        def send_nowait(
            self, packets: Sequence[OutPacket], *, volatile: bool = False, force: bool = False
        ) -> bool: ...  # session.py

        def close_nowait(
            self, reason: DisconnectReason = DisconnectReason.FORCED_CLOSE
        ) -> None: ...  # session.py

        async def _on_packet(self, packet: EioPacket) -> None: ...  # session.py

        def _writer_for(self, ws: WebSocket) -> None: ...  # session.py

        def _switch_to(self, ws: WebSocket) -> None: ...  # session.py

        async def _read_websocket(self, ws: WebSocket) -> None: ...  # session.py

        def _heartbeat_after_switch(self) -> None: ...  # session_heartbeat.py
