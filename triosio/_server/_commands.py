"""The router's commands: private to the router (``router.py``).

Each command is a small object with an ``apply(router)`` method, run in the
router task, one at a time, without awaiting; ``abandon()`` releases whoever
waits for a command the router will never apply (it stopped). Nothing but the
router builds them (a test checks it): everyone else calls the router's methods.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Generic, TypeVar

import trio

from .._common.sync import LazyEvent
from .lifecycle import Step, advance

if TYPE_CHECKING:
    from .._engine.packet import OutPacket
    from .acks import BroadcastAck
    from .recovery import Restored
    from .router import Router
    from .socket import Socket

T = TypeVar("T")


class Command:
    """Base of router commands."""

    __slots__ = ()

    def apply(self, router: Router) -> None:
        """Carry the command out, in the router task, without awaiting."""
        raise NotImplementedError

    def abandon(self) -> None:
        """The router stopped before applying it: release whoever waits for it."""


class Emit(Command):
    """Send packets to one socket (a direct emit, an ack, a DISCONNECT)."""

    __slots__ = ("packets", "socket", "volatile")

    def __init__(self, socket: Socket, packets: Sequence[OutPacket], volatile: bool) -> None:
        self.socket = socket
        self.packets = packets
        self.volatile = volatile

    def apply(self, router: Router) -> None:
        router.write(self.socket, self.packets, self.volatile)


class LoggedEmit(Emit):
    """An :class:`Emit` that connection state recovery keeps: numbered and
    logged (as a broadcast to the socket's own room, like the reference),
    whether or not the socket is still there to get it."""

    __slots__ = ()

    def apply(self, router: Router) -> None:
        socket = self.socket
        packets = router.log(socket.nsp.name, self.packets, frozenset((socket.id,)), frozenset())
        router.write(socket, packets, False)


class Broadcast(Command):
    """Send packets to every socket of a namespace in ``rooms`` (all if empty).

    With ``ack``, each recipient's answer to the packet's ack id goes to it.
    """

    __slots__ = ("ack", "exclude", "nsp", "packets", "rooms", "volatile")

    def __init__(
        self,
        nsp: str,
        packets: Sequence[OutPacket],
        rooms: frozenset[str],
        exclude: frozenset[str],
        volatile: bool,
        ack: BroadcastAck | None,
    ) -> None:
        self.nsp = nsp
        self.packets = packets
        self.rooms = rooms
        self.exclude = exclude
        self.volatile = volatile
        self.ack = ack

    def apply(self, router: Router) -> None:
        state = router.tables(self.nsp)
        ack = self.ack
        if state is None:
            if ack is not None:
                ack.sent()
            return
        sockets = state.sockets
        packets = self.packets
        volatile = self.volatile
        hooks = router.hooks
        if ack is None and hooks is None:
            # The hot path: one dict lookup and one non-blocking write per recipient.
            for sid in state.rooms.recipients(self.rooms, self.exclude):
                socket = sockets.get(sid)
                if socket is not None:
                    socket.session.send_nowait(packets, volatile=volatile)
            return
        # With acknowledgements, or instrumented: the same, counted. The
        # emitting task may have given up before the packet went out: then it
        # is sent, but no answer is waited for.
        collector = ack if ack is not None and not ack.cancelled else None
        delivered = failed = 0
        for sid in state.rooms.recipients(self.rooms, self.exclude):
            socket = sockets.get(sid)
            if socket is None:
                continue
            if collector is not None:
                # Registered before the packet can possibly be answered.
                collector.expect_from(socket)
            if socket.session.send_nowait(packets, volatile=volatile):
                delivered += 1
            else:
                failed += 1
                if collector is not None:
                    collector.not_sent(socket)
        if ack is not None:
            ack.sent()
        if hooks is not None:
            hooks.broadcast_sent(self.nsp, packets, delivered, failed if volatile else 0)

    def abandon(self) -> None:
        if self.ack is not None:
            self.ack.sent()


class LoggedBroadcast(Broadcast):
    """A :class:`Broadcast` that connection state recovery keeps (neither
    volatile nor waiting for acks): numbered, its offset written in, logged,
    then sent like any."""

    __slots__ = ()

    def apply(self, router: Router) -> None:
        self.packets = router.log(self.nsp, self.packets, self.rooms, self.exclude)
        super().apply(router)


class StreamBroadcast(Broadcast):
    """A :class:`Broadcast` of the cluster's shared log (connection state
    recovery with a shared store): its offset, an entry id, is in it already;
    kept at that position, then sent like any."""

    __slots__ = ("position",)

    def __init__(
        self,
        nsp: str,
        packets: Sequence[OutPacket],
        rooms: frozenset[str],
        exclude: frozenset[str],
        position: int,
    ) -> None:
        super().__init__(nsp, packets, rooms, exclude, False, None)
        self.position = position

    def apply(self, router: Router) -> None:
        router.log_at(self.position, self.nsp, self.packets, self.rooms, self.exclude)
        super().apply(router)


class AddSocket(Command):
    """Register a socket that passed the middlewares; write its CONNECT reply.

    With ``restored`` (connection state recovery), the socket gets its kept
    session back in the same step: its rooms, then, after the CONNECT reply,
    every packet it missed. If some of them left the log since the session
    was taken, nothing is registered and ``declined`` is set.
    """

    __slots__ = ("declined", "done", "packets", "restored", "socket")

    def __init__(
        self, socket: Socket, packets: Sequence[OutPacket], restored: Restored | None = None
    ) -> None:
        self.socket = socket
        self.packets = packets
        self.restored = restored
        self.declined = False
        self.done = trio.Event()

    def apply(self, router: Router) -> None:
        socket = self.socket
        try:
            if socket.session.closed:
                return  # the connecting task sees it still CONNECTING: abandoned
            restored = self.restored
            if restored is None:
                router.register(socket)
                socket.session.send_nowait(self.packets, force=True)
                advance(socket, Step.REGISTERED)
                return
            missed = router.resume(restored)
            if missed is None:
                self.declined = True
                return
            router.register(socket, restored)
            send = socket.session.send_nowait
            send(self.packets, force=True)
            for packets in missed:
                send(packets, force=True)
            advance(socket, Step.RECOVERED)
        finally:
            self.done.set()

    def abandon(self) -> None:
        self.done.set()


class RemoveSocket(Command):
    """A socket is gone: take it out of its namespace and every room.

    Queued with ``put_nowait``, so that a cancelled task can still send it.
    """

    __slots__ = ("done", "socket")

    def __init__(self, socket: Socket) -> None:
        self.socket = socket
        self.done = LazyEvent()

    def apply(self, router: Router) -> None:
        try:
            router.unregister(self.socket)
        finally:
            self.done.set()

    def abandon(self) -> None:
        self.done.set()


class Rooms(Command):
    """Join or leave rooms (``join=False``) for one socket."""

    __slots__ = ("done", "join", "rooms", "socket")

    def __init__(self, socket: Socket, rooms: tuple[str, ...], join: bool) -> None:
        self.socket = socket
        self.rooms = rooms
        self.join = join
        self.done = trio.Event()

    def apply(self, router: Router) -> None:
        try:
            socket = self.socket
            state = router.tables(socket.nsp.name)
            if state is None or state.sockets.get(socket.id) is not socket:
                return
            if self.join:
                state.rooms.add_all(socket.id, self.rooms)
            else:
                for room in self.rooms:
                    state.rooms.delete(socket.id, room)
        finally:
            self.done.set()

    def abandon(self) -> None:
        self.done.set()


class Call(Command, Generic[T]):
    """Run ``fn(router)`` in the router task and hand the result back."""

    __slots__ = ("done", "error", "fn", "result")

    def __init__(self, fn: Callable[[Router], T]) -> None:
        self.fn = fn
        self.done = trio.Event()
        self.result: T | None = None
        self.error: BaseException | None = None

    def apply(self, router: Router) -> None:
        try:
            self.result = self.fn(router)
        except Exception as exc:
            self.error = exc
        finally:
            self.done.set()

    def abandon(self) -> None:
        self.error = trio.ClosedResourceError("the router is not running")
        self.done.set()
