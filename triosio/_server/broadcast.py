"""Broadcasting: ``sio.to(room).except_(other).emit(...)`` and friends.

A :class:`BroadcastOperator` is an immutable description of a set of sockets
(rooms to include, rooms to exclude, flags). Every method encodes its packet
once and hands it to the router, which fans it out without waiting for any
client; with a cluster adapter, the other servers get it too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, final

import trio

from .._errors import BroadcastAckTimeout, ClusterTimeout
from .._proto.sio import SioType, check_event_name
from .acks import BroadcastAck
from .hooks import AckOutcome

if TYPE_CHECKING:
    from .._engine.packet import OutPacket
    from .namespace import Namespace
    from .remote import ClusterAcks, RemoteSocket
    from .socket import Socket


def _rooms(rooms: tuple[str | Iterable[str], ...]) -> frozenset[str]:
    out: set[str] = set()
    for room in rooms:
        if isinstance(room, str):
            out.add(room)
        else:
            out.update(room)
    return frozenset(out)


@final
class BroadcastOperator:
    """A set of sockets to emit to, built with ``to``/``in_``/``except_`` and flags.

    Get one from ``sio.to(...)``, ``nsp.to(...)``, ``socket.to(...)``,
    ``socket.broadcast`` and the like; each method returns a new operator.
    """

    __slots__ = (
        "_compress",
        "_exclude",
        "_local",
        "_namespaces",
        "_rooms",
        "_timeout",
        "_volatile",
    )

    def __init__(
        self,
        namespaces: Sequence[Namespace],
        rooms: frozenset[str] = frozenset(),
        exclude: frozenset[str] = frozenset(),
        *,
        volatile: bool = False,
        local: bool = False,
        timeout: float | None = None,
        compress: bool = True,
    ) -> None:
        self._namespaces = namespaces
        self._compress = compress
        self._rooms = rooms
        self._exclude = exclude
        self._volatile = volatile
        self._local = local
        self._timeout = timeout

    def _with(
        self,
        *,
        rooms: frozenset[str] | None = None,
        exclude: frozenset[str] | None = None,
        volatile: bool | None = None,
        local: bool | None = None,
        timeout: float | None = None,
        compress: bool | None = None,
    ) -> BroadcastOperator:
        return BroadcastOperator(
            self._namespaces,
            self._rooms if rooms is None else rooms,
            self._exclude if exclude is None else exclude,
            volatile=self._volatile if volatile is None else volatile,
            local=self._local if local is None else local,
            timeout=self._timeout if timeout is None else timeout,
            compress=self._compress if compress is None else compress,
        )

    # ------------------------------------------------------------ targeting

    def to(self, *rooms: str | Iterable[str]) -> BroadcastOperator:
        """Also target the sockets in ``rooms`` (a socket in several gets one copy)."""
        return self._with(rooms=self._rooms | _rooms(rooms))

    in_ = to

    def except_(self, *rooms: str | Iterable[str]) -> BroadcastOperator:
        """Leave out the sockets in ``rooms`` (a socket id is a room too)."""
        return self._with(exclude=self._exclude | _rooms(rooms))

    @property
    def volatile(self) -> BroadcastOperator:
        """Drop the packet for clients that cannot take it right now."""
        return self._with(volatile=True)

    @property
    def local(self) -> BroadcastOperator:
        """Only this server's clients (when an adapter spans several servers)."""
        return self._with(local=True)

    def compress(self, compress: bool) -> BroadcastOperator:
        """``compress(False)``: never compress these packets (this server's clients).

        Packets are compressed by default where the transport negotiated it.
        """
        return self._with(compress=compress)

    def timeout(self, seconds: float) -> BroadcastOperator:
        """The acknowledgement timeout for :meth:`emit_with_ack`."""
        return self._with(timeout=seconds)

    # ------------------------------------------------------------ emitting

    async def emit(self, event: str, *args: Any) -> None:
        """Send ``event`` to every targeted socket. Never waits for a client.

        Raises:
            LocalProtocolError: ``event`` is reserved or ``args`` cannot be encoded.
        """
        check_event_name(event)
        volatile = self._volatile
        # Encoded first: an error leaves nothing half sent. With connection
        # state recovery (never for volatile packets) the last argument is the
        # placeholder the router writes the packet's offset over: still one
        # encoding, shared by every recipient.
        local = self._local
        encoded = [
            (nsp, self._encode(nsp, event, args, volatile, local, self._compress))
            for nsp in self._namespaces
        ]
        rooms, exclude = self._rooms, self._exclude
        shared: set[str] = set()  # written to the cluster's log first
        for i, (nsp, (packets, logged)) in enumerate(encoded):
            server = nsp.server
            recovery = server.router.recovery
            store = recovery.store if logged and recovery is not None else None
            if store is not None:
                # Recovery with a shared store: the offset is the packet's
                # place in the cluster's log; delivered here once it has one.
                shared.add(nsp.name)
                data = [event, *args]
                if i == 0:
                    await server.cluster.publish_logged(nsp, store, data, packets, rooms, exclude)
                else:
                    with trio.CancelScope(shield=True):
                        await server.cluster.publish_logged(
                            nsp, store, data, packets, rooms, exclude
                        )
            elif i == 0:
                # The one point where cancellation may stop it: before anything
                # was queued (Cancelled means it did not happen).
                await server.router.broadcast(
                    nsp.name, packets, rooms, exclude, volatile, logged=logged
                )
            else:
                server.router.broadcast_nowait(nsp.name, packets, rooms, exclude, volatile, logged)
        if not local:
            # Queued here already: the other servers get it too, even if the
            # caller is cancelled meanwhile.
            with trio.CancelScope(shield=True):
                for nsp, _ in encoded:
                    if nsp.name not in shared:
                        await nsp.server.cluster.publish(
                            nsp.name, event, args, rooms, exclude, volatile
                        )

    @staticmethod
    def _encode(
        nsp: Namespace,
        event: str,
        args: tuple[Any, ...],
        volatile: bool,
        local: bool,
        compress: bool,
    ) -> tuple[list[OutPacket], bool]:
        recovery = nsp.server.router.recovery
        # With a shared store, offsets come from the cluster's log, which a
        # local broadcast does not go through: it gets none (as with Node).
        if recovery is None or volatile or (local and recovery.store is not None):
            return nsp.encode(SioType.EVENT, [event, *args], None, compress), False
        packets = nsp.encode(SioType.EVENT, [event, *args, recovery.placeholder], None, compress)
        return packets, True

    async def emit_with_ack(
        self, event: str, *args: Any, timeout: float | None = None
    ) -> list[Any]:
        """Send ``event`` and collect every targeted client's acknowledgement.

        Returns:
            One item per client that answered: its ack (``None``, the argument,
            or a tuple of them), in arrival order. With a cluster adapter, the
            other servers' clients' acks follow (their first argument only: the
            cluster carries one).

        Raises:
            BroadcastAckTimeout: not every client answered within the timeout;
                its ``responses`` hold the answers that did arrive.
            ClusterTimeout: (a ``BroadcastAckTimeout``) the same, when answers
                from other servers are missing.
            ValueError: no timeout was given (``timeout(s)``, ``timeout=`` or the
                server's ``ack_timeout``).
        """
        check_event_name(event)
        limit = timeout if timeout is not None else self._timeout
        if limit is None and self._namespaces:
            limit = self._namespaces[0].server.ack_timeout
        if limit is None:
            raise ValueError("a broadcast with acknowledgements needs a timeout")
        collectors: list[BroadcastAck] = []
        remotes: list[ClusterAcks] = []  # the other servers' part (cluster adapter)
        missing: list[str] = []
        hooks = self._namespaces[0].server.hooks if self._namespaces else None
        started = (
            hooks.ack_started(self._namespaces[0].name, event, None) if hooks is not None else None
        )
        outcome = AckOutcome.CANCELLED
        try:
            for nsp in self._namespaces:
                ack = BroadcastAck(nsp.next_ack_id())
                collectors.append(ack)
                packets = nsp.encode(SioType.EVENT, [event, *args], ack.id, self._compress)
                await nsp.server.router.broadcast(
                    nsp.name, packets, self._rooms, self._exclude, self._volatile, ack
                )
                if not self._local:
                    remote = await nsp.server.cluster.broadcast_with_ack(
                        nsp.name, event, args, self._rooms, self._exclude, self._volatile, limit
                    )
                    if remote is not None:
                        remotes.append(remote)
            with trio.move_on_after(limit):
                for ack in collectors:
                    await ack.done.wait()
                for remote in remotes:
                    await remote.done.wait()
            outcome = AckOutcome.ACKED
        finally:
            # Synchronous, so that even a cancelled call leaves no ack behind.
            for ack in collectors:
                missing.extend(ack.forget())
            for remote in remotes:
                remote.forget()
            remote_missing = sum(remote.missing for remote in remotes)
            if hooks is not None:
                if outcome is AckOutcome.ACKED and (missing or remote_missing):
                    outcome = AckOutcome.TIMEOUT
                elif outcome is AckOutcome.ACKED and any(ack.gone for ack in collectors):
                    outcome = AckOutcome.DISCONNECTED
                hooks.ack_ended(started, outcome)
        responses = [r for ack in collectors for r in ack.responses]
        responses.extend(r for remote in remotes for r in remote.responses)
        missing.extend(sid for ack in collectors for sid in ack.gone)
        if remote_missing:
            expected = sum(remote.expected for remote in remotes)
            raise ClusterTimeout(
                "emit_with_ack",
                responses,
                missing,
                expected=expected,
                received=expected - remote_missing,
            )
        if missing:
            raise BroadcastAckTimeout(responses, missing)
        return responses

    # ------------------------------------------------------------ sockets

    async def fetch_sockets(self) -> list[Socket | RemoteSocket]:
        """The targeted sockets (a snapshot).

        This server's are :class:`~triosio.Socket` objects; with a cluster
        adapter (and not ``local``), the other servers' follow as
        :class:`~triosio.RemoteSocket` views, whose ``emit``, ``join``,
        ``leave`` and ``disconnect`` act through the cluster.

        Raises:
            ClusterTimeout: not every other server answered in time.
        """
        found: list[Socket | RemoteSocket] = []
        for nsp in self._namespaces:
            found.extend(await nsp.server.router.select(nsp.name, self._rooms, self._exclude))
            if not self._local:
                found.extend(
                    await nsp.server.cluster.fetch_sockets(nsp, self._rooms, self._exclude)
                )
        return found

    async def sockets_join(self, *rooms: str | Iterable[str]) -> None:
        """Make every targeted socket join ``rooms``."""
        await self._each(_rooms(rooms), join=True)

    async def sockets_leave(self, *rooms: str | Iterable[str]) -> None:
        """Make every targeted socket leave ``rooms``."""
        await self._each(_rooms(rooms), join=False)

    async def _each(self, change: frozenset[str], *, join: bool) -> None:
        for nsp in self._namespaces:
            router = nsp.server.router
            if join:
                await router.join_selected(nsp.name, self._rooms, self._exclude, change)
            else:
                await router.leave_selected(nsp.name, self._rooms, self._exclude, change)
            if not self._local:
                nsp.server.cluster.publish_rooms(nsp.name, self._rooms, self._exclude, change, join)

    async def disconnect_sockets(self, close: bool = False) -> None:
        """Disconnect every targeted socket (``close=True``: their whole connection).

        The sockets are chosen and their disconnection started in one step of
        the router, so cancelling the caller cannot leave some of them behind;
        it then waits until each is disconnected. A handler that calls this
        for its own socket is not cancelled by it (unless ``close=True``
        closes its own connection).
        """
        caller = trio.lowlevel.current_task()
        chosen: list[Socket] = []
        for nsp in self._namespaces:
            router = nsp.server.router
            chosen.extend(
                await router.disconnect_selected(
                    nsp.name, self._rooms, self._exclude, close, caller
                )
            )
            if not self._local:
                nsp.server.cluster.publish_disconnect(nsp.name, self._rooms, self._exclude, close)
        for socket in chosen:
            await socket.wait_disconnected()
