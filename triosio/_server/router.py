"""The router: the one task that owns every namespace's socket and room tables.

Everything that changes the tables, and every packet sent to a client, goes
through the router's methods; the router turns them into commands (private, in
``_commands.py``) in one FIFO inbox, and applies them one at a time, in
arrival order, never awaiting while doing so:

- a broadcast is encoded once (by the caller) and handed to each recipient's
  session with a non-blocking ``send_nowait``; a client whose bounded queue is
  full is dropped (volatile) or disconnected, never waited for;
- since direct emits, acknowledgements and broadcasts share the one FIFO,
  packets that one task emits reach every client in the order it emitted them;
  a direct emit that finds the inbox empty is written by the emitting task
  itself (nothing sent earlier can still be on its way);
- a socket that leaves tells the router with :meth:`Router.remove_nowait`
  (no await), so even a cancelled task leaves the tables exact;
- with connection state recovery, the router also owns the kept sessions and
  the packet log (``recovery.py``): it numbers and logs each recoverable
  packet as it sends it, keeps a socket's session as it removes it, and
  restores one as it registers the socket that gets it back. A timer task
  next to it asks it to expire what is too old.

Every method that sends follows Trio's rule: *Cancelled means it did not
happen* — cancellation is checked before anything is queued or written, and
nothing after that can raise it. Whether a socket receives a packet has one
rule on every path: it is in the router's tables (:meth:`Router.holds`).

A command that raises is logged and skipped, so no input can stop the router.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import trio

from .._common.sync import LazyEvent, Mailbox, WriteBatch
from .._errors import DisconnectReason
from .._proto.sio import SioType
from ._commands import (
    AddSocket,
    Broadcast,
    Call,
    Command,
    Emit,
    LoggedBroadcast,
    LoggedEmit,
    RemoveSocket,
    Rooms,
    StreamBroadcast,
)
from .lifecycle import SocketState
from .recovery import RECOVERABLE_REASONS, RecoveryState, Restored, SessionStore
from .rooms import RoomTable

if TYPE_CHECKING:
    from .._engine.packet import OutPacket
    from .acks import BroadcastAck
    from .dispatch import Client
    from .hooks import Hooks
    from .socket import Socket

log = logging.getLogger("triosio.server")

T = TypeVar("T")

#: A direct write yields to the scheduler every this many, so that a task
#: that emits in a loop cannot starve the others.
_YIELD_EVERY = 64


class NamespaceTables:
    """The router's tables for one namespace: its sockets by id, and its rooms."""

    __slots__ = ("name", "rooms", "sockets")

    def __init__(self, name: str, rooms: RoomTable) -> None:
        self.name = name
        self.sockets: dict[str, Socket] = {}
        self.rooms = rooms


class Router:
    """Owns every namespace's sockets and rooms; see the module docstring.

    Args:
        capacity: Inbox size before producers wait (backpressure).
        spawn: Starts a background task (for ``async`` adapter listeners).
        write_batch: Shared with the engine: holds writes during a batch.
        recovery: The connection state recovery state, if it is on (the
            router's: read it anywhere, change it only in the router task).
    """

    def __init__(
        self,
        capacity: int = 4096,
        spawn: Callable[[Callable[..., Any], tuple[Any, ...]], None] | None = None,
        write_batch: WriteBatch | None = None,
        recovery: RecoveryState | None = None,
    ) -> None:
        self._inbox: Mailbox[Command] = Mailbox(capacity)
        self._direct = 0
        self._write_batch = write_batch or WriteBatch()
        self._namespaces: dict[str, NamespaceTables] = {}
        self._spawn = spawn or (lambda fn, args: None)
        #: Connection state recovery (None when off).
        self.recovery = recovery
        self._kept = LazyEvent()
        if recovery is not None:
            recovery.on_kept = self._kept.set
        #: The server's instruments (None: not instrumented; see ``hooks.py``).
        self.hooks: Hooks | None = None

    # ------------------------------------------------------------ running

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Apply commands until cancelled (and expire what recovery keeps)."""
        if self.recovery is None:
            await self._run(task_status)
            return
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._expire, self.recovery)
            await self._run(task_status)

    async def _run(self, task_status: trio.TaskStatus[None]) -> None:
        inbox = self._inbox
        writes = self._write_batch
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

    @property
    def queued(self) -> int:
        """How many commands wait in the inbox."""
        return len(self._inbox)

    # ------------------------------------------------------------ sending

    async def emit(
        self, socket: Socket, packets: Sequence[OutPacket], volatile: bool, logged: bool = False
    ) -> None:
        """Send packets to one socket, in order with everything sent before.

        When the inbox is empty nothing sent earlier can still be on its way, so
        the packets are written at once by the calling task (no hop through the
        router task); otherwise they queue behind the inbox's commands.

        ``logged``: connection state recovery keeps the packet (it was encoded
        with the placeholder last); it always goes through the router task,
        which owns the log.

        Raises:
            trio.Cancelled: only before anything was queued or written.
        """
        inbox = self._inbox
        if logged:
            await inbox.put(LoggedEmit(socket, packets, False))
            return
        if inbox or inbox.closed:
            await inbox.put(Emit(socket, packets, volatile))
            return
        # Never a schedule point unless cancelled: the inbox stays empty.
        await trio.lowlevel.checkpoint_if_cancelled()
        self._direct += 1
        self.write(socket, packets, volatile)
        if self._direct >= _YIELD_EVERY:
            self._direct = 0
            await trio.lowlevel.cancel_shielded_checkpoint()

    def emit_now(self, socket: Socket, packets: Sequence[OutPacket]) -> bool:
        """:meth:`emit` without a coroutine, when it would not wait or yield.

        Returns False, having sent nothing, when the packets must go through
        :meth:`emit` instead: the inbox holds commands, or a yield is due.
        """
        if self._inbox or self._inbox.closed or self._direct >= _YIELD_EVERY - 1:
            return False
        self._direct += 1
        self.write(socket, packets, False)
        return True

    def write(self, socket: Socket, packets: Sequence[OutPacket], volatile: bool) -> None:
        """Write to ``socket`` now if it is in the tables (the one membership rule).

        For the router's commands and the direct path, when nothing queued can
        come first; forced past the queue limits, since the sender waited for
        space (or it is volatile).
        """
        if self.holds(socket):
            sent = socket.session.send_nowait(packets, volatile=volatile, force=True)
            if not sent and volatile and self.hooks is not None:
                self.hooks.volatile_dropped(socket.nsp.name)

    async def broadcast(
        self,
        nsp: str,
        packets: Sequence[OutPacket],
        rooms: frozenset[str] = frozenset(),
        exclude: frozenset[str] = frozenset(),
        volatile: bool = False,
        ack: BroadcastAck | None = None,
        logged: bool = False,
        position: int | None = None,
    ) -> None:
        """Send packets to the sockets of namespace ``nsp`` in ``rooms`` (every
        socket if empty) but not in ``exclude``; never waits for a client.

        With ``ack``, each recipient's answer goes to it. ``logged``: connection
        state recovery keeps it (see :meth:`emit`; never with ``ack``).
        ``position``: a packet of the cluster's shared log, its offset written
        in already: kept at that stream position (see ``recovery.py``).

        Raises:
            trio.Cancelled: only before the broadcast was queued.
            trio.ClosedResourceError: the router is not running.
        """
        if position is not None:
            await self._inbox.put(StreamBroadcast(nsp, packets, rooms, exclude, position))
            return
        kind = LoggedBroadcast if logged else Broadcast
        await self._inbox.put(kind(nsp, packets, rooms, exclude, volatile, ack))

    def broadcast_nowait(
        self,
        nsp: str,
        packets: Sequence[OutPacket],
        rooms: frozenset[str] = frozenset(),
        exclude: frozenset[str] = frozenset(),
        volatile: bool = False,
        logged: bool = False,
        position: int | None = None,
    ) -> None:
        """:meth:`broadcast` past the inbox's capacity, for a caller that already
        queued part of one operation and must not be stopped half-way (or
        a shared store's task, which must not wait on the router)."""
        if position is not None:
            self._inbox.put_nowait(StreamBroadcast(nsp, packets, rooms, exclude, position))
            return
        kind = LoggedBroadcast if logged else Broadcast
        self._inbox.put_nowait(kind(nsp, packets, rooms, exclude, volatile, None))

    # ------------------------------------------------------------ membership

    async def add(
        self, socket: Socket, packets: Sequence[OutPacket], restored: Restored | None = None
    ) -> bool:
        """Register ``socket`` (it passed its middlewares) and write its CONNECT reply.

        Once queued, waits until the router applied it, even if cancelled
        meanwhile (the router never blocks): afterwards the socket is CONNECTED,
        or still CONNECTING if its session closed first or the router stopped.

        With ``restored`` (from :meth:`take_session`), the socket gets the
        kept session back: its rooms, and the packets it missed right after the
        CONNECT reply. Returns False, having registered nothing, if some of
        those packets left the log since the session was taken.

        Raises:
            trio.Cancelled: only before the registration was queued.
        """
        command = AddSocket(socket, packets, restored)
        try:
            await self._inbox.put(command)
        except trio.ClosedResourceError:
            return True  # the router stopped: not registered
        with trio.CancelScope(shield=True):
            await command.done.wait()
        return not command.declined

    async def take_session(self, nsp: str, pid: str, offset: str | None) -> Restored | None:
        """Connection state recovery: take the kept session ``pid`` of ``nsp``
        with the packets it missed after ``offset`` (see ``recovery.py``).

        None when recovery is off, or the session cannot be restored (unknown,
        expired, a bad offset, a packet it needs was dropped).
        """
        recovery = self.recovery
        if recovery is None:
            await trio.lowlevel.checkpoint()
            return None
        return await self.call(lambda router: recovery.take(nsp, pid, offset, trio.current_time()))

    def remove_nowait(self, socket: Socket) -> LazyEvent:
        """Take ``socket`` out of its namespace and every room; never waits.

        Safe in a ``finally`` of a cancelled task. Returns an event set once
        it is done (at once if the router is gone, tables and all).
        """
        command = RemoveSocket(socket)
        self._inbox.put_nowait(command)
        if self._inbox.closed:
            command.abandon()
        return command.done

    async def join(self, socket: Socket, rooms: Iterable[str]) -> None:
        """Put ``socket`` in ``rooms``; return once done.

        Raises:
            trio.Cancelled: only before it was queued (then nothing changed).
        """
        await self._rooms(Rooms(socket, tuple(rooms), join=True))

    async def leave(self, socket: Socket, rooms: Iterable[str]) -> None:
        """Take ``socket`` out of ``rooms``; return once done."""
        await self._rooms(Rooms(socket, tuple(rooms), join=False))

    async def _rooms(self, command: Rooms) -> None:
        await self._inbox.put(command)
        # Once queued it will be applied: a cancelled join must not have happened.
        with trio.CancelScope(shield=True):
            await command.done.wait()

    async def call(self, fn: Callable[[Router], T]) -> T:
        """Run ``fn(router)`` in the router task, in order; return its result.

        ``fn`` must not await (it is a plain function); it may use the
        ``*_now`` methods and the tables. Once queued, the call runs even if
        the caller is cancelled meanwhile, and the caller waits for it.

        Raises:
            Exception: whatever ``fn`` raised.
            trio.ClosedResourceError: the router is not running.
        """
        command: Call[T] = Call(fn)
        await self._inbox.put(command)
        with trio.CancelScope(shield=True):
            await command.done.wait()
        if command.error is not None:
            raise command.error
        return command.result  # type: ignore[return-value]

    # -------------------------------------------- operations on a selection

    async def select(
        self, nsp: str, rooms: frozenset[str], exclude: frozenset[str]
    ) -> list[Socket]:
        """The sockets of ``nsp`` in ``rooms`` (all if empty) and not in ``exclude``."""
        return await self.call(lambda router: router.select_now(nsp, rooms, exclude))

    async def join_selected(
        self, nsp: str, rooms: frozenset[str], exclude: frozenset[str], change: frozenset[str]
    ) -> None:
        """Put every selected socket in the rooms ``change``."""
        await self.call(lambda router: router._change_selected(nsp, rooms, exclude, change, True))

    async def leave_selected(
        self, nsp: str, rooms: frozenset[str], exclude: frozenset[str], change: frozenset[str]
    ) -> None:
        """Take every selected socket out of the rooms ``change``."""
        await self.call(lambda router: router._change_selected(nsp, rooms, exclude, change, False))

    def _change_selected(
        self,
        nsp: str,
        rooms: frozenset[str],
        exclude: frozenset[str],
        change: frozenset[str],
        join: bool,
    ) -> None:
        state = self._namespaces.get(nsp)
        if state is None:
            return
        for sid in list(state.rooms.recipients(rooms, exclude)):
            if join:
                state.rooms.add_all(sid, change)
            else:
                for room in change:
                    state.rooms.delete(sid, room)

    async def disconnect_selected(
        self,
        nsp: str,
        rooms: frozenset[str],
        exclude: frozenset[str],
        close: bool,
        spare: trio.lowlevel.Task | None,
    ) -> list[Socket]:
        """Disconnect every selected socket (``close``: their whole connection).

        Chosen and started in one step of the router, so a cancelled caller
        cannot leave some behind; returns them (wait for each yourself).
        """

        def now(router: Router) -> list[Socket]:
            chosen = [
                s
                for s in router.select_now(nsp, rooms, exclude)
                if s.state is SocketState.CONNECTED
            ]
            if close:
                for client in {id(s.client): s.client for s in chosen}.values():
                    router.close_client_now(client, spare)
            elif chosen:
                packets = chosen[0].nsp.encode(SioType.DISCONNECT, None, None)
                for socket in chosen:
                    router.disconnect_now(socket, packets, spare)
            return chosen

        return await self.call(now)

    async def close_client(self, client: Client, spare: trio.lowlevel.Task | None) -> None:
        """``socket.disconnect(close=True)``: after everything sent before it,
        a DISCONNECT on each of the client's namespaces (they close with reason
        "server namespace disconnect"), then the connection closes."""
        await self.call(lambda router: router.close_client_now(client, spare))

    def disconnect_now(
        self, socket: Socket, packets: Sequence[OutPacket], spare: trio.lowlevel.Task | None
    ) -> None:
        """In the router task: write DISCONNECT to ``socket`` and close it."""
        self.write(socket, packets, False)
        socket.client.closer.request(socket, DisconnectReason.SERVER_NAMESPACE_DISCONNECT, spare)

    def close_client_now(self, client: Client, spare: trio.lowlevel.Task | None) -> None:
        """In the router task: :meth:`close_client`."""
        sockets = [s for s in client.sockets.values() if s.state is SocketState.CONNECTED]
        for socket in sockets:
            self.write(socket, socket.nsp.encode(SioType.DISCONNECT, None, None), False)
        for socket in sockets:
            client.closer.request(socket, DisconnectReason.SERVER_NAMESPACE_DISCONNECT, spare)
        client.closer.close_connection()

    # ------------------------------------------------------------ the tables
    # Only the router's commands change them (register, unregister, rooms);
    # anyone may read them through the methods below, which return snapshots.

    def tables(self, nsp: str) -> NamespaceTables | None:
        """The live tables of namespace ``nsp`` (for the router's commands)."""
        return self._namespaces.get(nsp)

    def register(self, socket: Socket, restored: Restored | None = None) -> None:
        """In the router task: put ``socket`` in its namespace, its own room and
        the rooms its middlewares joined (and, ``restored``, back in the rooms
        of its kept session)."""
        name = socket.nsp.name
        state = self._namespaces.get(name)
        if state is None:
            rooms = RoomTable(self._spawn, socket.nsp._adapter_listeners)
            state = self._namespaces[name] = NamespaceTables(name, rooms)
        state.sockets[socket.id] = socket
        state.rooms.add_all(socket.id, (socket.id, *socket._early_rooms))
        socket._early_rooms = ()
        if self.recovery is not None:
            # Everything logged from here on reaches it (the mark of its session).
            socket._mark = self.recovery.position
            if restored is not None:
                state.rooms.add_all(socket.id, restored.rooms)
                socket._mark = restored.start

    def unregister(self, socket: Socket) -> None:
        """In the router task: take ``socket`` out of its namespace and every room.

        With connection state recovery, a socket that closed for a recoverable
        reason is kept (id, rooms, ``data``) first: the one place sessions are kept.
        """
        state = self._namespaces.get(socket.nsp.name)
        if state is not None and state.sockets.get(socket.id) is socket:
            recovery = self.recovery
            if (
                recovery is not None
                and socket.pid is not None
                and socket.reason in RECOVERABLE_REASONS
            ):
                if recovery.store is not None:
                    # Kept by the cluster: stored by a task of its own (no
                    # I/O here), for as long as the window.
                    session = {
                        "sid": socket.id,
                        "pid": socket.pid,
                        "rooms": sorted(state.rooms.rooms_of(socket.id)),
                        "data": socket.data,
                    }
                    ttl = int(recovery.options.max_disconnection_duration * 1000)
                    self._spawn(_persist, (recovery.store, session, ttl))
                else:
                    recovery.keep(
                        socket.id,
                        socket.pid,
                        state.name,
                        state.rooms.rooms_of(socket.id),
                        socket.data,
                        socket._mark,
                        trio.current_time(),
                    )
            del state.sockets[socket.id]
            state.rooms.delete_all(socket.id)

    # ------------------------------------------------------------ recovery
    # The packet log and the kept sessions: changed here, in the router task.

    def log(
        self,
        nsp: str,
        packets: Sequence[OutPacket],
        rooms: frozenset[str],
        exclude: frozenset[str],
    ) -> Sequence[OutPacket]:
        """In the router task: number and keep a recoverable packet; what to send."""
        assert self.recovery is not None
        return self.recovery.log(nsp, packets, rooms, exclude, trio.current_time())

    def log_at(
        self,
        position: int,
        nsp: str,
        packets: Sequence[OutPacket],
        rooms: frozenset[str],
        exclude: frozenset[str],
    ) -> None:
        """In the router task: keep a packet of the shared log at its stream position."""
        assert self.recovery is not None
        self.recovery.log_at(position, nsp, packets, rooms, exclude, trio.current_time())

    def resume(self, restored: Restored) -> list[Sequence[OutPacket]] | None:
        """In the router task: what ``restored`` missed, or None if it cannot be restored."""
        assert self.recovery is not None
        return self.recovery.resume(restored)

    async def _expire(self, recovery: RecoveryState) -> None:
        # Expiry on the Trio clock: sleep until the oldest kept thing is due,
        # then have the router drop what is due (a command: only it changes
        # the state). Nothing kept: wait until something is.
        while True:
            due = recovery.next_expiry()
            if due is None:
                self._kept.clear()
                if recovery.next_expiry() is None:
                    await self._kept.wait()
                continue
            await trio.sleep_until(due)
            try:
                await self.call(lambda router: recovery.expire(trio.current_time()))
            except trio.ClosedResourceError:
                return

    def holds(self, socket: Socket) -> bool:
        """Whether ``socket`` is in the tables: the one rule for who gets a packet."""
        state = self._namespaces.get(socket.nsp.name)
        return state is not None and state.sockets.get(socket.id) is socket

    def select_now(self, nsp: str, rooms: frozenset[str], exclude: frozenset[str]) -> list[Socket]:
        """The sockets selected by ``rooms`` / ``exclude``, now."""
        state = self._namespaces.get(nsp)
        if state is None:
            return []
        sockets = state.sockets
        return [sockets[sid] for sid in state.rooms.recipients(rooms, exclude) if sid in sockets]

    def sockets(self, nsp: str) -> dict[str, Socket]:
        """The sockets of namespace ``nsp`` by id (a snapshot)."""
        state = self._namespaces.get(nsp)
        return dict(state.sockets) if state is not None else {}

    def socket_count(self, nsp: str) -> int:
        """How many sockets namespace ``nsp`` has now."""
        state = self._namespaces.get(nsp)
        return len(state.sockets) if state is not None else 0

    def rooms_of(self, nsp: str, sid: str) -> frozenset[str]:
        """The rooms socket ``sid`` of ``nsp`` is in (a snapshot)."""
        state = self._namespaces.get(nsp)
        return state.rooms.rooms_of(sid) if state is not None else frozenset()

    def room_members(self, nsp: str) -> dict[str, frozenset[str]]:
        """room -> socket ids, for namespace ``nsp`` (a snapshot)."""
        state = self._namespaces.get(nsp)
        if state is None:
            return {}
        return {room: frozenset(sids) for room, sids in state.rooms.rooms.items()}

    def socket_rooms(self, nsp: str) -> dict[str, frozenset[str]]:
        """socket id -> rooms, for namespace ``nsp`` (a snapshot)."""
        state = self._namespaces.get(nsp)
        if state is None:
            return {}
        return {sid: frozenset(rooms) for sid, rooms in state.rooms.sids.items()}

    def has_room(self, nsp: str, room: str) -> bool:
        """Whether ``room`` exists (has a member) in namespace ``nsp``."""
        state = self._namespaces.get(nsp)
        return state is not None and room in state.rooms.rooms


async def _persist(store: SessionStore, session: dict[str, Any], ttl_ms: int) -> None:
    # A session the cluster keeps; if it cannot be stored, its client
    # reconnects as a new socket (as after the window).
    try:
        await store.persist_session(session, ttl_ms)
    except Exception as exc:
        log.warning("could not store the session of socket %s: %s", session["sid"], exc)
