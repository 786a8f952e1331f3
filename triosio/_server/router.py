"""The router: the one task that owns namespace, room and socket tables.

Everything that changes those tables, and every packet sent to a client, goes
through the router's inbox (:class:`Mailbox`) as a command. The router applies
commands one at a time, in arrival order, and never awaits while doing so:

- a broadcast is encoded once (by whoever sends the command) and handed to each
  recipient's session with a non-blocking ``send_nowait``; a client whose
  bounded queue is full is dropped (volatile) or disconnected, never waited for;
- since direct emits, acks and broadcasts share the one FIFO inbox, packets
  that one task emits reach every client in the order it emitted them;
- a session that closes tells the router with ``put_nowait`` (no await), so
  even a cancelled task leaves the tables exact.

Commands are small objects with an ``apply(router)`` method; a command that
raises is logged and skipped, so no input can stop the router.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import trio

from .._common.sync import LazyEvent, Mailbox, WriteBatch
from .._engine.packet import OutPacket
from .adapter import RoomTable
from .handlers import GONE

if TYPE_CHECKING:
    from .socket import Socket

log = logging.getLogger("triosio.server")

T = TypeVar("T")


class NamespaceState:
    """The router's tables for one namespace."""

    __slots__ = ("name", "rooms", "sockets")

    def __init__(self, name: str, rooms: RoomTable) -> None:
        self.name = name
        self.sockets: dict[str, Socket] = {}
        self.rooms = rooms


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

    def __init__(
        self, socket: Socket, packets: Sequence[OutPacket], volatile: bool = False
    ) -> None:
        self.socket = socket
        self.packets = packets
        self.volatile = volatile

    def apply(self, router: Router) -> None:
        socket = self.socket
        state = router.namespaces.get(socket.nsp.name)
        if state is None or state.sockets.get(socket.id) is not socket:
            return  # disconnected meanwhile
        socket.session.send_nowait(self.packets, volatile=self.volatile, force=True)


class Broadcast(Command):
    """Send packets to every socket of a namespace in ``rooms`` (all if empty).

    With ``ack``, each recipient's answer to the packet's ack id goes to it.
    """

    __slots__ = ("ack", "exclude", "nsp", "packets", "rooms", "volatile")

    def __init__(
        self,
        nsp: str,
        packets: Sequence[OutPacket],
        rooms: frozenset[str] = frozenset(),
        exclude: frozenset[str] = frozenset(),
        volatile: bool = False,
        ack: BroadcastAck | None = None,
    ) -> None:
        self.nsp = nsp
        self.packets = packets
        self.rooms = rooms
        self.exclude = exclude
        self.volatile = volatile
        self.ack = ack

    def apply(self, router: Router) -> None:
        state = router.namespaces.get(self.nsp)
        ack = self.ack
        if state is None:
            if ack is not None:
                ack.sent()
            return
        sockets = state.sockets
        packets = self.packets
        volatile = self.volatile
        if ack is None:
            # The hot path: one dict lookup and one non-blocking write per recipient.
            for sid in state.rooms.recipients(self.rooms, self.exclude):
                socket = sockets.get(sid)
                if socket is not None:
                    socket.session.send_nowait(packets, volatile=volatile)
            return
        if ack.cancelled:
            # The emitting task gave up before the packet went out: send it,
            # but wait for no answer.
            ack = None
        for sid in state.rooms.recipients(self.rooms, self.exclude):
            socket = sockets.get(sid)
            if socket is None:
                continue
            if ack is not None:
                # Register the ack before the packet can possibly be answered.
                socket.acks[ack.id] = ack
                ack.pending[sid] = socket
            if not socket.session.send_nowait(packets, volatile=volatile) and ack is not None:
                del socket.acks[ack.id]
                del ack.pending[sid]
        if self.ack is not None:
            self.ack.sent()

    def abandon(self) -> None:
        if self.ack is not None:
            self.ack.sent()


class BroadcastAck:
    """Collects the acknowledgements of one broadcast.

    The router registers it with each recipient (``socket.acks``) and in
    :attr:`pending`; each answer (from the socket's reader task) or
    disconnection (the socket's close sequence) moves a recipient out of
    :attr:`pending`. Every step is synchronous, so it needs no lock.

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
            if socket.acks.get(self.id) is self:
                del socket.acks[self.id]
        self.pending.clear()
        return missing


class AddSocket(Command):
    """Register a socket that passed the middlewares; write its CONNECT reply."""

    __slots__ = ("done", "packets", "socket")

    def __init__(self, socket: Socket, packets: Sequence[OutPacket]) -> None:
        self.socket = socket
        self.packets = packets
        self.done = trio.Event()

    def apply(self, router: Router) -> None:
        socket = self.socket
        try:
            if socket.session.closed:
                return
            state = router.namespace(socket.nsp.name, socket.nsp._adapter_listeners)
            state.sockets[socket.id] = socket
            state.rooms.add_all(socket.id, (socket.id,))
            socket.session.send_nowait(self.packets, force=True)
            socket._set_connected()
        finally:
            self.done.set()

    def abandon(self) -> None:
        self.done.set()


class RemoveSocket(Command):
    """A socket is gone: take it out of its namespace and every room.

    Sent with ``put_nowait``, so that a cancelled task can still send it.
    """

    __slots__ = ("done", "socket")

    def __init__(self, socket: Socket) -> None:
        self.socket = socket
        self.done = LazyEvent()

    def apply(self, router: Router) -> None:
        try:
            socket = self.socket
            state = router.namespaces.get(socket.nsp.name)
            if state is not None and state.sockets.get(socket.id) is socket:
                del state.sockets[socket.id]
                state.rooms.delete_all(socket.id)
        finally:
            self.done.set()

    def abandon(self) -> None:
        self.done.set()


class Rooms(Command):
    """Join or leave rooms (``join=False``) for one socket."""

    __slots__ = ("done", "join", "rooms", "socket")

    def __init__(self, socket: Socket, rooms: Iterable[str], join: bool) -> None:
        self.socket = socket
        self.rooms = tuple(rooms)
        self.join = join
        self.done = trio.Event()

    def apply(self, router: Router) -> None:
        try:
            socket = self.socket
            state = router.namespaces.get(socket.nsp.name)
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


class Router:
    """Owns every namespace's sockets and rooms; see the module docstring.

    Args:
        capacity: Inbox capacity before producers wait (backpressure).
        spawn: Starts a background task (for ``async`` adapter listeners).
    """

    def __init__(
        self,
        capacity: int = 4096,
        spawn: Callable[[Callable[..., Any], tuple[Any, ...]], None] | None = None,
        write_batch: WriteBatch | None = None,
    ) -> None:
        self.inbox: Mailbox[Command] = Mailbox(capacity)
        self._direct = 0
        self.write_batch = write_batch or WriteBatch()
        self.namespaces: dict[str, NamespaceState] = {}
        self._spawn = spawn or (lambda fn, args: None)

    def namespace(
        self, name: str, listeners: dict[str, list[Callable[..., Any]]] | None = None
    ) -> NamespaceState:
        """The state of namespace ``name``, created on first use."""
        state = self.namespaces.get(name)
        if state is None:
            rooms = RoomTable(self._spawn, listeners)
            state = self.namespaces[name] = NamespaceState(name, rooms)
        return state

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Apply commands until cancelled."""
        inbox = self.inbox
        writes = self.write_batch
        task_status.started()
        try:
            while True:
                batch = await inbox.get_batch()
                if len(batch) == 1:
                    self._apply(batch[0])
                    continue
                # Hold every write of the batch, then one write per client.
                writes.begin()
                try:
                    for command in batch:
                        self._apply(command)
                finally:
                    writes.end()
        finally:
            inbox.close()
            for command in inbox.take_all():
                command.abandon()

    def _apply(self, command: Command) -> None:
        try:
            command.apply(self)
        except Exception:
            log.exception("router: %s failed", type(command).__name__)

    async def send(self, socket: Socket, packets: Sequence[OutPacket], volatile: bool) -> None:
        """Send packets to one socket, in order with everything sent before.

        When the inbox is empty nothing sent earlier can still be on its way, so
        the packets are written at once by the calling task (no hop through the
        router task); otherwise they queue behind the inbox's commands. Every
        64th direct send yields to the scheduler, so a task that emits in a
        loop cannot starve the others.
        """
        if self.inbox or self.inbox.closed:
            await self.inbox.put(Emit(socket, packets, volatile))
            return
        self._write(socket, packets, volatile)
        if self._direct >= 64:
            self._direct = 0
            await trio.lowlevel.checkpoint()
        else:
            await trio.lowlevel.checkpoint_if_cancelled()

    def send_now(self, socket: Socket, packets: Sequence[OutPacket]) -> bool:
        """:meth:`send` without a coroutine, when it would not wait or yield.

        Returns False, having sent nothing, when the packets must go through
        :meth:`send` instead: the inbox holds commands, or a yield is due.
        """
        if self.inbox or self.inbox.closed or self._direct >= 63:
            return False
        self._write(socket, packets, False)
        return True

    def _write(self, socket: Socket, packets: Sequence[OutPacket], volatile: bool) -> None:
        # A direct send: nothing queued in the inbox can come before it.
        self._direct += 1
        if socket._registered():
            socket.session.send_nowait(packets, volatile=volatile, force=True)

    async def call(self, fn: Callable[[Router], T]) -> T:
        """Run ``fn`` in the router task and return its result (or raise its error)."""
        command: Call[T] = Call(fn)
        await self.inbox.put(command)
        # Once queued it will run: wait for it even if cancelled meanwhile, so
        # that a cancelled call has not happened (the router never blocks).
        with trio.CancelScope(shield=True):
            await command.done.wait()
        if command.error is not None:
            raise command.error
        return command.result  # type: ignore[return-value]
