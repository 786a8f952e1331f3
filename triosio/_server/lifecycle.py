"""A socket's lifecycle: its states, the one table of transitions, and the two
sequences that drive them — connecting and closing.

::

    CONNECTING ──registered──► CONNECTED ──closing──► DISCONNECTING ──closed──► DISCONNECTED
        │      ──recovered───►                                                       ▲
        └───────────────────────────────abandoned────────────────────────────────────┘

- *registered*: the router put the socket in its tables and wrote its CONNECT
  reply (in the router task, :meth:`Router.add`).
- *recovered*: the same for a socket that gets back a kept session (connection
  state recovery): its old id, rooms and ``data``, and the packets it missed,
  written right after the CONNECT reply in the same step of the router.
- *abandoned*: it never got there: the session closed, or the router stopped,
  before the router applied the registration. No ``disconnect`` handler runs
  for it, as with the reference server, which drops a socket whose connection
  closed while its middlewares ran.
- *closing*: a disconnect began (either side, or the connection ended).
- *closed*: the ``disconnecting`` handlers ran, the router took the socket out
  of every room and its pending acknowledgements failed; the ``disconnect``
  handlers run next.

:func:`advance` is the only code that changes ``socket.state``; a step that the
table does not allow from the current state raises :class:`LifecycleError`.

Closing has one owner per connection, its :class:`Closer`: whoever notices
that a socket must go (the client's reader, a handler, the router, the
session's end) calls :meth:`Closer.request`, which never waits; the closer runs
each close sequence, one at a time, in a task of its own.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import trio

from .._common.handlers import call_handler, positional_count
from .._common.sync import set_once
from .._errors import ConnectionRefused, DisconnectReason, LifecycleError, LocalProtocolError
from .._proto.sio import SioPacket, SioType
from .recovery import (
    RESTORE_TIMEOUT,
    KeptSession,
    Restored,
    SessionStore,
    recovery_request,
    stream_position,
)

if TYPE_CHECKING:
    from .._engine.packet import OutPacket
    from .dispatch import Client
    from .namespace import Namespace
    from .socket import Socket

log = logging.getLogger("triosio.server")


class SocketState(enum.Enum):
    """Where a socket is in its lifecycle (``socket.state``)."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTING = "disconnecting"
    DISCONNECTED = "disconnected"


class Step(enum.Enum):
    """What happened to a socket: the input of the state machine."""

    REGISTERED = "registered"
    RECOVERED = "recovered"
    ABANDONED = "abandoned"
    CLOSING = "closing"
    CLOSED = "closed"


_S = SocketState

#: Every legal transition: (state, step) -> next state. Nothing else is allowed.
TRANSITIONS: Mapping[tuple[SocketState, Step], SocketState] = MappingProxyType(
    {
        (_S.CONNECTING, Step.REGISTERED): _S.CONNECTED,
        (_S.CONNECTING, Step.RECOVERED): _S.CONNECTED,
        (_S.CONNECTING, Step.ABANDONED): _S.DISCONNECTED,
        (_S.CONNECTED, Step.CLOSING): _S.DISCONNECTING,
        (_S.DISCONNECTING, Step.CLOSED): _S.DISCONNECTED,
    }
)


def advance(socket: Socket, step: Step) -> None:
    """Move ``socket`` to the state ``step`` leads to from its current one.

    Raises:
        LifecycleError: the table has no such transition.
    """
    new = TRANSITIONS.get((socket.state, step))
    if new is None:
        raise LifecycleError(f"socket {socket.id}: {step.value!r} while {socket.state.value}")
    socket.state = new


# ---------------------------------------------------------------- connecting


async def connect(client: Client, packet: SioPacket) -> None:
    """The CONNECT sequence for namespace ``packet.nsp``, in the client's worker.

    Resolve the namespace; with connection state recovery, take the kept
    session the auth names, if any (the socket is then created with its id and
    ``data``, and ``recovered``); run the middlewares (a refusal becomes a
    CONNECT_ERROR; skipped for a recovered socket with ``skip_middlewares``),
    have the router register the socket and write the CONNECT reply (and,
    recovered, the packets it missed), then run the ``connection`` handlers;
    the client's events for the namespace wait until they are done.
    """
    name = packet.nsp
    auth: dict[str, Any] = packet.data if isinstance(packet.data, dict) else {}
    server = client.server
    namespace = await server.registry.resolve(name, auth)
    if namespace is None:
        await _refuse(client, name, "Invalid namespace", None)
        return
    router = server.router
    restored: Restored | None = None
    skip = False
    if router.recovery is not None:
        request = recovery_request(auth)
        if request is not None:
            store = router.recovery.store
            if store is None:
                restored = await router.take_session(name, *request)
            else:
                restored = await _restore_shared(namespace, store, *request)
            skip = router.recovery.options.skip_middlewares
    while True:
        socket = client.new_socket(namespace, auth, restored)
        if not (restored is not None and skip) and not await _pass_middlewares(
            client, namespace, socket
        ):
            return
        if client.session.closed:
            advance(socket, Step.ABANDONED)
            return
        client.sockets[name] = socket
        reply = {"sid": socket.id} if socket.pid is None else {"sid": socket.id, "pid": socket.pid}
        try:
            complete = await router.add(
                socket, namespace.encode(SioType.CONNECT, reply, None), restored
            )
        finally:
            # Not registered: the session closed or the router stopped before the
            # router got to it, or this task was cancelled before it was queued;
            # or the recovery could not be completed.
            if socket.state is SocketState.CONNECTING:
                advance(socket, Step.ABANDONED)
                if client.sockets.get(name) is socket:
                    del client.sockets[name]
        if complete:
            break
        # A packet the recovered socket needed left the log between the session
        # being taken and the registration (a burst past max_packets, say):
        # connect it as a new socket instead, middlewares and all.
        restored = None
    if socket.state is SocketState.CONNECTED:
        client.stop_connect_timer()
        if server.hooks is not None:
            server.hooks.socket_connected(socket)
        await _run_connection_handlers(namespace, socket, auth)


async def _restore_shared(
    namespace: Namespace, store: SessionStore, pid: str, offset: str | None
) -> Restored | None:
    # Recovery with a shared store (the cluster's): its I/O here, in the
    # connecting task, bounded; whatever goes wrong, the client connects as a
    # new socket. Offsets are entry ids: a client that has none (it got no
    # packet) is not recovered, as with Node's adapter.
    if offset is None or stream_position(offset) is None:
        return None
    shared = None
    try:
        with trio.move_on_after(RESTORE_TIMEOUT):
            shared = await store.restore_session(namespace.name, pid, offset)
    except Exception as exc:
        log.warning("could not restore session %s: %s", pid, exc)
        return None
    if shared is None:
        return None
    remote: list[tuple[int, Sequence[OutPacket]]] = []
    for entry_id, args in shared.missed:
        position = stream_position(entry_id)
        if position is None:
            continue
        try:
            packets = namespace.encode(SioType.EVENT, args, None)
        except LocalProtocolError as exc:
            # Not to be replayed faithfully: a new socket rather than a gap.
            log.warning("could not restore session %s: %s", pid, exc)
            return None
        remote.append((position, packets))
    start = stream_position(offset)
    upto = stream_position(shared.upto)
    floor = stream_position(shared.floor) if shared.floor is not None else None
    assert start is not None
    data = shared.data if isinstance(shared.data, dict) else {}
    kept = KeptSession(
        shared.sid, shared.pid, namespace.name, shared.rooms, data, start, trio.current_time()
    )
    return Restored(
        kept, start, upto if upto is not None else start, [], remote=remote, floor=floor
    )


async def _pass_middlewares(client: Client, namespace: Namespace, socket: Socket) -> bool:
    # Whether the socket passed them; refused, the client got a CONNECT_ERROR.
    name = namespace.name
    for middleware in namespace.middlewares():
        try:
            await call_handler(middleware, socket)
        except ConnectionRefused as exc:
            await _refuse(client, name, exc.message, exc.data)
            return False
        except Exception:
            log.exception("error in a middleware of namespace %s", name)
            await _refuse(client, name, "Internal server error", None)
            return False
    return True


async def _refuse(client: Client, name: str, message: str, data: Any) -> None:
    payload: dict[str, Any] = {"message": message}
    if data is not None:
        payload["data"] = data
    client.session.send_nowait(
        client.server.encode_for(name, SioType.CONNECT_ERROR, payload), force=True
    )
    client.namespace_refused(name)
    await trio.lowlevel.checkpoint()


async def _run_connection_handlers(
    namespace: Namespace, socket: Socket, auth: dict[str, Any]
) -> None:
    with trio.CancelScope() as scope:
        socket._tasks[scope] = trio.lowlevel.current_task()
        try:
            for handler in namespace.connection_handlers():
                count = positional_count(handler)
                try:
                    if count is None or count >= 2:
                        await call_handler(handler, socket, auth)
                    else:
                        await call_handler(handler, socket)
                except ConnectionRefused as exc:
                    log.info("socket %s refused after connecting: %s", socket.id, exc.message)
                    socket.client.session.nursery.start_soon(socket.disconnect)
                    return
                except Exception:
                    log.exception("error in a connection handler of namespace %s", namespace.name)
        finally:
            del socket._tasks[scope]
            socket._ready.set()


# ---------------------------------------------------------------- closing

# How long the router may take to confirm a socket's removal before the
# disconnect handlers run anyway (it can only be slow while shutting down).
_REMOVE_WAIT = 5.0
# disconnect(close=True): how long the DISCONNECT packets may take to leave
# before the connection is closed anyway, and how often to look.
_FLUSH_WAIT = 1.0
_FLUSH_CHECK = 0.005


class Closer:
    """Closes one connection's sockets: the only code that does.

    :meth:`request` marks the socket DISCONNECTING, cancels its tasks and
    queues it; it never waits, so the router and cancelled tasks may call it.
    One task of the session's nursery, started on demand, runs the queued
    close sequences one at a time, each shielded and bounded by the engine's
    ``shutdown_timeout``: the ``disconnecting`` and ``disconnect`` handlers run
    to the end even when the connection drops meanwhile (common: a client that
    leaves its last namespace closes the connection right after). Once the
    session's nursery is done, the session's close handler runs what is left
    (:meth:`drain`).
    """

    __slots__ = ("_client", "_queue", "_running")

    def __init__(self, client: Client) -> None:
        self._client = client
        # A list made on demand: nearly every connection closes one socket,
        # once (an empty deque is 624 bytes, and one more object for the GC).
        self._queue: list[Socket] | None = None
        self._running = False

    @property
    def pending(self) -> bool:
        """Whether close sequences are queued."""
        return bool(self._queue)

    def request(
        self, socket: Socket, reason: DisconnectReason, spare: trio.lowlevel.Task | None = None
    ) -> bool:
        """Start disconnecting ``socket`` for ``reason``; never waits.

        Its tasks are cancelled, except ``spare`` (by default the calling
        task: a handler that disconnects its own socket goes on). Returns
        whether this call started it (False: it was not connected).
        """
        if socket.state is not SocketState.CONNECTED:
            return False
        if spare is None:
            spare = trio.lowlevel.current_task()
        advance(socket, Step.CLOSING)
        socket.reason = reason
        client = self._client
        if client.sockets.get(socket.nsp.name) is socket:
            del client.sockets[socket.nsp.name]
        for scope, task in list(socket._tasks.items()):
            if task is not spare:
                scope.cancel()
        socket._ready.set()  # events waiting for the connection handlers give up
        if self._queue is None:
            self._queue = []
        self._queue.append(socket)
        if not self._running and not client.session.closed:
            try:
                client.session.nursery.start_soon(self._run)
                self._running = True
            except RuntimeError:
                pass  # the nursery is done: the session's close handler drains
        return True

    def close_connection(self) -> None:
        """Close the connection once what was sent to it has left (bounded)."""
        try:
            self._client.session.nursery.start_soon(self._close_when_flushed)
        except RuntimeError:
            self._client.session.close_nowait(DisconnectReason.FORCED_SERVER_CLOSE)

    async def _run(self) -> None:
        try:
            await self.drain()
        finally:
            self._running = False

    async def drain(self) -> None:
        """Run every queued close sequence, including those queued meanwhile."""
        while self._queue:
            await self._close(self._queue.pop(0))

    async def _close(self, socket: Socket) -> None:
        reason = socket.reason
        assert reason is not None
        server = self._client.server
        timeout = server.engine.options.shutdown_timeout
        # Shielded from the session's cancellation, bounded by shutdown_timeout;
        # the bookkeeping (tables, acks, state) happens even if the deadline cuts in.
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + timeout
            try:
                try:
                    try:
                        await _socket_event(socket, "disconnecting", reason)
                    finally:
                        removed = server.router.remove_nowait(socket)
                    with trio.move_on_after(_REMOVE_WAIT):
                        await removed.wait()
                finally:
                    socket.acks.fail_all()
                    advance(socket, Step.CLOSED)
                    if server.hooks is not None:
                        server.hooks.socket_disconnected(socket, reason)
                await _socket_event(socket, "disconnect", reason)
            finally:
                socket._finished = set_once(socket._finished)
        if scope.cancelled_caught:
            log.warning("socket %s: disconnect handlers cut short after %s s", socket.id, timeout)

    async def _close_when_flushed(self) -> None:
        # Over polling, the DISCONNECT packets must travel in a response of
        # their own, before CLOSE: socket.io-client handles a message one tick
        # after the CLOSE that follows it in the same payload, so it would
        # report "transport close" (and reconnect) instead of "io server
        # disconnect". Bounded: a client that does not poll is closed anyway.
        # (The engine has no "queue empty" event; a short look-again loop will do.)
        session = self._client.session
        with trio.move_on_after(_FLUSH_WAIT):
            while session.buffered_bytes and not session.closed:  # noqa: ASYNC110
                await trio.sleep(_FLUSH_CHECK)
        session.close_nowait(DisconnectReason.FORCED_SERVER_CLOSE)


async def _socket_event(socket: Socket, event: str, reason: DisconnectReason) -> None:
    for handler in socket._take(event):
        try:
            await call_handler(handler, reason)
        except Exception:
            log.exception("error in %r handler of socket %s", event, socket.id)
    for handler in socket.nsp.disconnect_handlers(event):
        try:
            await call_handler(handler, socket, reason)
        except Exception:
            log.exception("error in %r handler of namespace %s", event, socket.nsp.name)
