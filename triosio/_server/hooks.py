"""What a server tells its instruments: the Admin UI, metrics, tracing.

Off by default: ``server.hooks`` (and ``router.hooks``) is None, and each
place that reports loads it once per message, event, broadcast or connection
— never per recipient — and does nothing more when it is None. So an
uninstrumented server does what it did before, plus one attribute load and
one comparison at those places (``benchmarks/README.md`` has the figures).

An instrument subclasses :class:`Hooks` and overrides what it needs; several
at once are combined by :class:`HookSet`. Each hook is called synchronously
by whichever task noticed — a connection's reader, a handler's task, the
router, a connection's closer — so it must not await or block, and it must
not raise (the router would log and skip the rest of its command). Work that
awaits (an Admin UI's broadcasts) goes to the instrument's own task,
:meth:`Hooks.run`, which the server runs in its nursery.

Hooks read what they are given and the server's snapshots; they never change
the router's tables (what an instrument changes goes through the router's
methods, like anyone's).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import trio

if TYPE_CHECKING:
    from .._engine.packet import OutPacket
    from .._engine.session import EngineSession
    from .._errors import DisconnectReason
    from .namespace import Namespace
    from .socket import Socket


class AckOutcome(enum.Enum):
    """How a wait for acknowledgements ended (:meth:`Hooks.ack_ended`)."""

    ACKED = "acked"
    TIMEOUT = "timeout"
    DISCONNECTED = "disconnected"
    CANCELLED = "cancelled"


class Hooks:
    """The instrumentation interface; every hook here does nothing.

    The ``*_started`` hooks return a token (anything) that the matching
    ``*_ended`` hook gets back, from the same task.
    """

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The instrument's own tasks, run in the server's nursery until it stops."""
        task_status.started()

    # ------------------------------------------------------------ connections

    def namespace_created(self, nsp: Namespace) -> None:
        """A namespace appeared (the application's, or a dynamic one's child)."""

    def connection_opened(self, session: EngineSession) -> None:
        """An Engine.IO session opened (the reader's task)."""

    def connection_closed(self, session: EngineSession, reason: DisconnectReason) -> None:
        """An Engine.IO session closed, after its sockets were closed."""

    def socket_connected(self, socket: Socket) -> None:
        """A socket was registered; its ``connection`` handlers run next."""

    def socket_disconnected(self, socket: Socket, reason: DisconnectReason) -> None:
        """A socket left every room; its ``disconnect`` handlers run next."""

    # ------------------------------------------------------------ incoming

    def message_received(self, data: str | bytes) -> None:
        """An Engine.IO message arrived for the Socket.IO layer (before decoding)."""

    def event_received(self, socket: Socket, event: str, args: list[Any]) -> None:
        """An EVENT arrived for ``socket``, before any handler runs."""

    def event_started(self, socket: Socket, event: str, ack_id: int | None) -> Any:
        """The handlers of an event are about to run, in this task."""
        return None

    def event_ended(self, started: Any) -> None:
        """The handlers of the event that ``started`` stands for are done."""

    def handler_failed(self, socket: Socket, event: str, error: BaseException) -> None:
        """A handler raised (called in its ``except`` block, while it is handled)."""

    # ------------------------------------------------------------ outgoing

    def event_sent(
        self, socket: Socket, event: str, args: tuple[Any, ...], packets: Sequence[OutPacket]
    ) -> None:
        """An emit to one socket went out (or was queued by the router)."""

    def ack_sent(self, socket: Socket, packets: Sequence[OutPacket]) -> None:
        """A handler's acknowledgement went out to ``socket``."""

    def broadcast_sent(
        self, nsp: str, packets: Sequence[OutPacket], delivered: int, dropped: int
    ) -> None:
        """The router handed a broadcast to ``delivered`` sockets of ``nsp``;
        ``dropped`` volatile copies were not taken (the client could not take them now)."""

    def volatile_dropped(self, nsp: str) -> None:
        """A volatile emit to one socket of ``nsp`` was dropped."""

    def waiting_for_space(self, delta: int) -> None:
        """A writer started (+1) or stopped (-1) waiting for space in a client's queue."""

    def ack_started(self, nsp: str, event: str, socket: Socket | None) -> Any:
        """An ``emit_with_ack`` (to ``socket``, or a broadcast if None) starts waiting."""
        return None

    def ack_ended(self, started: Any, outcome: AckOutcome) -> None:
        """That wait ended."""


class HookSet(Hooks):
    """Several instruments at once: each hook calls each one's, in order."""

    def __init__(self, hooks: Sequence[Hooks]) -> None:
        self.hooks = tuple(hooks)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run every instrument's tasks."""
        async with trio.open_nursery() as nursery:
            for hooks in self.hooks:
                await nursery.start(hooks.run)
            task_status.started()

    def namespace_created(self, nsp: Namespace) -> None:
        for hooks in self.hooks:
            hooks.namespace_created(nsp)

    def connection_opened(self, session: EngineSession) -> None:
        for hooks in self.hooks:
            hooks.connection_opened(session)

    def connection_closed(self, session: EngineSession, reason: DisconnectReason) -> None:
        for hooks in self.hooks:
            hooks.connection_closed(session, reason)

    def socket_connected(self, socket: Socket) -> None:
        for hooks in self.hooks:
            hooks.socket_connected(socket)

    def socket_disconnected(self, socket: Socket, reason: DisconnectReason) -> None:
        for hooks in self.hooks:
            hooks.socket_disconnected(socket, reason)

    def message_received(self, data: str | bytes) -> None:
        for hooks in self.hooks:
            hooks.message_received(data)

    def event_received(self, socket: Socket, event: str, args: list[Any]) -> None:
        for hooks in self.hooks:
            hooks.event_received(socket, event, args)

    def event_started(self, socket: Socket, event: str, ack_id: int | None) -> Any:
        return [hooks.event_started(socket, event, ack_id) for hooks in self.hooks]

    def event_ended(self, started: Any) -> None:
        # In reverse, as nested context managers would end.
        for hooks, token in reversed(list(zip(self.hooks, started, strict=True))):
            hooks.event_ended(token)

    def handler_failed(self, socket: Socket, event: str, error: BaseException) -> None:
        for hooks in self.hooks:
            hooks.handler_failed(socket, event, error)

    def event_sent(
        self, socket: Socket, event: str, args: tuple[Any, ...], packets: Sequence[OutPacket]
    ) -> None:
        for hooks in self.hooks:
            hooks.event_sent(socket, event, args, packets)

    def ack_sent(self, socket: Socket, packets: Sequence[OutPacket]) -> None:
        for hooks in self.hooks:
            hooks.ack_sent(socket, packets)

    def broadcast_sent(
        self, nsp: str, packets: Sequence[OutPacket], delivered: int, dropped: int
    ) -> None:
        for hooks in self.hooks:
            hooks.broadcast_sent(nsp, packets, delivered, dropped)

    def volatile_dropped(self, nsp: str) -> None:
        for hooks in self.hooks:
            hooks.volatile_dropped(nsp)

    def waiting_for_space(self, delta: int) -> None:
        for hooks in self.hooks:
            hooks.waiting_for_space(delta)

    def ack_started(self, nsp: str, event: str, socket: Socket | None) -> Any:
        return [hooks.ack_started(nsp, event, socket) for hooks in self.hooks]

    def ack_ended(self, started: Any, outcome: AckOutcome) -> None:
        for hooks, token in reversed(list(zip(self.hooks, started, strict=True))):
            hooks.ack_ended(token, outcome)


def combine(current: Hooks | None, new: Hooks) -> Hooks:
    """``current`` and ``new`` as one (``new``'s hooks called last)."""
    if current is None:
        return new
    if isinstance(current, HookSet):
        return HookSet((*current.hooks, new))
    return HookSet((current, new))


async def wait_for_space(session: EngineSession, hooks: Hooks | None) -> None:
    """``session.wait_for_space()``, counted as a waiting writer (the slow path only)."""
    if hooks is None:
        await session.wait_for_space()
        return
    hooks.waiting_for_space(1)
    try:
        await session.wait_for_space()
    finally:
        hooks.waiting_for_space(-1)
