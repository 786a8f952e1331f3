"""One client connection (an Engine.IO session) as the Socket.IO layer sees it.

A :class:`Client` decodes the session's messages (its own incremental decoder,
so binary attachments are reassembled per connection), connects namespaces
(middlewares, then the router registers the socket and writes the CONNECT
reply, then ``connection`` handlers run), and dispatches events to handlers.

Handlers run in the session's nursery. By default one worker task per client
runs them in arrival order (an event's handlers finish before the next event's
start); with ``Server(async_handlers=True)`` each event gets a task of its own.
Plain-function handlers need no task: the reader calls them as their event
arrives, when nothing of the client's is queued or running.
Acknowledgements from the client are handled at once, by the reader, so a
handler waiting for one can never block its own answer.

When a socket disconnects (either side, or the session closes), its in-flight
handlers are cancelled, ``disconnecting`` handlers run, the router takes the
socket out of every room (told with ``put_nowait``, so even a cancelled task
tells it), then ``disconnect`` handlers run.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Coroutine
from typing import TYPE_CHECKING, Any

import trio

from .._common.handlers import Handler, call_handler, is_plain, positional_count
from .._common.sync import LazyEvent
from .._errors import ConnectionRefused, DisconnectReason, RemoteProtocolError
from .._proto.sio import SioPacket, SioType, ack_args
from .router import AddSocket
from .socket import Handshake, HeaderMap, Socket, SocketState

if TYPE_CHECKING:
    from .._engine.packet import OutPacket
    from .._engine.session import EngineSession
    from .namespace import Namespace
    from .router import Router
    from .server import Server

log = logging.getLogger("triosio.server")

# Return values that cannot be awaitable (spares inspect.isawaitable for them).
_PLAIN_VALUES = frozenset({str, int, float, bool, tuple, list, dict, bytes})

# How long the router may take to confirm a socket's removal before the
# disconnect handlers run anyway (it can only be slow while shutting down).
_REMOVE_WAIT = 5.0
# disconnect(close=True): how long the DISCONNECT packets may take to leave
# before the connection is closed anyway, and how often to look.
_FLUSH_WAIT = 1.0
_FLUSH_CHECK = 0.005


class Client:
    """The Socket.IO side of one Engine.IO session."""

    __slots__ = (
        "_closing",
        "_connecting",
        "_finished",
        "_queue",
        "_room",
        "_running",
        "_seen",
        "_timer",
        "_working",
        "decoder",
        "server",
        "session",
        "sockets",
    )

    def __init__(self, server: Server, session: EngineSession) -> None:
        self.server = server
        self.session = session
        self.decoder = server.parser.decoder(server.limits)
        self.sockets: dict[str, Socket] = {}
        self._seen: set[str] = set()
        # Lists (56 bytes empty; a set takes 216): these hold a handful at most.
        self._connecting: list[str] = []
        self._closing: list[Socket] = []
        # A list, not a deque (624 bytes empty); it holds at most
        # max_pending_events items, so pop(0) stays cheap.
        self._queue: list[tuple[Socket | None, SioPacket]] = []
        self._working = False
        self._room = LazyEvent(True)
        # Handler tasks running (async_handlers), and an event set when one ends.
        self._running = 0
        self._finished = LazyEvent()
        self._timer: trio.CancelScope | None = trio.CancelScope()

    # ------------------------------------------------------------ engine events

    def start(self) -> None:
        """The session opened: start the connect timeout."""
        self.session.nursery.start_soon(self._connect_timeout)

    async def _connect_timeout(self) -> None:
        assert self._timer is not None
        try:
            with self._timer:
                await trio.sleep(self.server.connect_timeout)
                if not self.sockets:
                    log.info("session %s connected no namespace in time; closing", self.session.sid)
                    self.session.close_nowait(DisconnectReason.FORCED_CLOSE)
        finally:
            self._timer = None  # nothing to keep for the life of the connection

    async def on_message(self, data: str | bytes) -> None:
        """Decode one Engine.IO message and act on the packet it completes."""
        try:
            packet = self.decoder.feed(data)
        except RemoteProtocolError as exc:
            log.info(
                "session %s: invalid packet (%s): %s", self.session.sid, type(exc).__name__, exc
            )
            self.session.close_nowait(DisconnectReason.PARSE_ERROR)
            return
        if packet is None:
            return
        ptype = packet.type
        nsp = packet.nsp
        socket = self.sockets.get(nsp)
        if ptype is SioType.EVENT:
            if socket is None:
                if nsp not in self._seen:
                    # An event for a namespace this client never connected.
                    log.info("session %s: event before CONNECT on %s", self.session.sid, nsp)
                    self.session.close_nowait(DisconnectReason.PARSE_ERROR)
                return  # a namespace the server just left: ignore stragglers
            ordered = not self.server.async_handlers
            if not (ordered and self._working) and socket.state is SocketState.CONNECTED:
                items: list[Any] = packet.data
                calls = self._plain_calls(socket, items[0], tuple(items[1:]))
                if calls is not None:
                    packets = self._run_plain(socket, packet, calls)
                    if packets is not None:
                        await self._send_ack(socket, packets)
                    return
            if ordered:
                await self._enqueue(socket, packet)
            else:
                await self._start_handler(socket, packet)
        elif ptype is SioType.ACK:
            if socket is not None:
                socket._on_ack(packet.id, packet.data)
        elif ptype is SioType.CONNECT:
            if socket is not None or nsp in self._connecting:
                return  # already connected (or connecting) to this namespace
            self._seen.add(nsp)
            self._connecting.append(nsp)
            await self._enqueue(None, packet)
        elif ptype is SioType.DISCONNECT:
            if socket is not None:
                self.begin_close(socket, DisconnectReason.CLIENT_NAMESPACE_DISCONNECT)
        else:  # CONNECT_ERROR is for servers to send
            log.info("session %s: unexpected %s packet", self.session.sid, ptype.name)
            self.session.close_nowait(DisconnectReason.PARSE_ERROR)

    async def on_close(self, reason: DisconnectReason) -> None:
        """The session ended: every socket disconnects for ``reason``.

        Runs after the session's nursery is done, so every close started
        there was cancelled; they are finished here, one at a time, from the
        step where they stopped. Handlers that run meanwhile may close more.
        """
        self.decoder.reset()
        while self._closing or self.sockets:
            if self._closing:
                socket = self._closing[0]
            else:
                socket = next(iter(self.sockets.values()))
                self._mark_closing(socket, reason)
            await self._continue_close(socket)

    # ------------------------------------------------------------ dispatch

    async def _enqueue(self, socket: Socket | None, packet: SioPacket) -> None:
        limit = self.server.max_pending_events
        while len(self._queue) >= limit:
            # This client sends faster than its handlers run: stop reading it.
            self._room.clear()
            await self._room.wait()
        self._queue.append((socket, packet))
        if not self._working:
            self._working = True
            self.session.nursery.start_soon(self._work)

    async def _work(self) -> None:
        try:
            await self._drain_queue()
        finally:
            self._working = False

    async def _drain_queue(self) -> None:
        queue = self._queue
        while queue:
            socket, packet = queue.pop(0)
            self._room.set()
            if socket is None:
                await self._connect(packet)
            else:
                await self._dispatch(socket, packet)

    async def _start_handler(self, socket: Socket, packet: SioPacket) -> None:
        # async_handlers: a task per event, but no more than max_pending_events
        # at once; past that, this client's reader waits (backpressure).
        while self._running >= self.server.max_pending_events:
            self._finished.clear()
            await self._finished.wait()
        self._running += 1
        self.session.nursery.start_soon(self._run_handler, socket, packet)

    async def _run_handler(self, socket: Socket, packet: SioPacket) -> None:
        try:
            await self._dispatch(socket, packet)
        finally:
            self._running -= 1
            self._finished.set()

    async def _dispatch(self, socket: Socket, packet: SioPacket) -> None:
        if not socket._ready.is_set():
            await socket._ready.wait()
        if socket.state is not SocketState.CONNECTED:
            return
        data: list[Any] = packet.data
        event: str = data[0]
        args = data[1:]
        with trio.CancelScope() as scope:
            socket._scopes[scope] = trio.lowlevel.current_task()
            try:
                for middleware in socket._middlewares:
                    try:
                        await call_handler(middleware, event, args)
                    except Exception as exc:
                        await self._report_error(socket, exc)
                        return
                for listener in list(socket._any):
                    try:
                        await call_handler(listener, event, *args)
                    except Exception:
                        log.exception(
                            "error in on_any listener (event %r, socket %s, namespace %s)",
                            event,
                            socket.id,
                            socket.nsp.name,
                        )
                ran = False
                result: Any = None
                for handler in socket._take(event):
                    value = await call_handler(handler, *args)
                    ran = True
                    if result is None:
                        result = value
                for handler in socket.nsp.event_handlers(event):
                    value = await call_handler(handler, socket, *args)
                    ran = True
                    if result is None:
                        result = value
                if ran:
                    await self._ack(socket, packet, result)
            except Exception:
                self._log_handler_error(socket, event)
            finally:
                del socket._scopes[scope]

    async def _ack(self, socket: Socket, packet: SioPacket, result: Any) -> None:
        if packet.id is not None and socket.state is SocketState.CONNECTED:
            await self._send_ack(socket, socket.nsp.encode_ack(ack_args(result), packet.id))

    async def _send_ack(self, socket: Socket, packets: list[OutPacket]) -> None:
        # An ack waits for room like any emit: a client that asks for acks and
        # never reads ends up not being read either. (Both checks spare the
        # common case a coroutine: acks of plain handlers are on the echo path.)
        if not self.session.has_space():
            await self.session.wait_for_space()
        router = self.server.router
        if not router.send_now(socket, packets):
            await router.send(socket, packets, False)

    # Plain-function handlers run in the reader's task, as the event arrives:
    # a function cannot await, so it cannot wait for its own client (the
    # reason handlers have tasks), and a task, a task switch and a cancel scope
    # per event are saved (the echo round trip's largest costs after the
    # system calls). Order is kept: only when nothing of this client's is
    # queued or running, so nothing can overtake; and only when every callable
    # involved is a plain function, so an ``async def`` handler still gets its
    # task and its cancel scope.

    @staticmethod
    def _plain_calls(
        socket: Socket, event: str, args: tuple[Any, ...]
    ) -> list[tuple[Handler, tuple[Any, ...]]] | None:
        # The calls for this event if every callable involved is a plain
        # function (once-handlers taken), else None (nothing taken).
        if socket._middlewares or socket._any or not socket._ready.is_set():
            return None
        entries = socket._handlers.get(event)
        if entries:
            for fn, _ in entries:
                if not is_plain(fn):
                    return None
        shared = socket.nsp.event_handlers(event)
        for fn in shared:
            if not is_plain(fn):
                return None
        calls: list[tuple[Handler, tuple[Any, ...]]] = (
            [(fn, args) for fn in socket._take(event)] if entries else []
        )
        if shared:
            with_socket = (socket, *args)
            calls += [(fn, with_socket) for fn in shared]
        return calls

    def _run_plain(
        self, socket: Socket, packet: SioPacket, calls: list[tuple[Handler, tuple[Any, ...]]]
    ) -> list[OutPacket] | None:
        # Calls the handlers; returns the acknowledgement to send, if any.
        result: Any = None
        for i, (handler, call_args) in enumerate(calls):
            try:
                value = handler(*call_args)
            except Exception:
                self._log_handler_error(socket, packet.data[0])
                return None
            if value is not None:
                if value.__class__ not in _PLAIN_VALUES and inspect.isawaitable(value):
                    # A plain function that returned an awaitable (a coroutine
                    # made elsewhere): it and what follows go to a task, as an
                    # async handler would.
                    self._resume_in_task(socket, packet, value, calls[i + 1 :], result)
                    return None
                if result is None:
                    result = value
        if not calls or packet.id is None or socket.state is not SocketState.CONNECTED:
            return None
        try:
            return socket.nsp.encode_ack(ack_args(result), packet.id)
        except Exception:  # a value the parser cannot carry: as if it raised
            self._log_handler_error(socket, packet.data[0])
            return None

    def _resume_in_task(
        self,
        socket: Socket,
        packet: SioPacket,
        pending: Awaitable[Any],
        rest: list[tuple[Handler, tuple[Any, ...]]],
        result: Any,
    ) -> None:
        ordered = not self.server.async_handlers
        try:
            self.session.nursery.start_soon(
                self._resume, socket, packet, pending, rest, result, ordered
            )
        except RuntimeError:  # the session is closing: nothing more runs
            close = getattr(pending, "close", None)
            if close is not None:
                close()
            return
        if ordered:
            self._working = True  # later events queue behind this one
        else:
            self._running += 1

    async def _resume(
        self,
        socket: Socket,
        packet: SioPacket,
        pending: Awaitable[Any],
        rest: list[tuple[Handler, tuple[Any, ...]]],
        result: Any,
        ordered: bool,
    ) -> None:
        try:
            with trio.CancelScope() as scope:
                socket._scopes[scope] = trio.lowlevel.current_task()
                if socket.state is not SocketState.CONNECTED:
                    scope.cancel()  # disconnected before this task started
                try:
                    value = await pending
                    if result is None:
                        result = value
                    for handler, call_args in rest:
                        value = await call_handler(handler, *call_args)
                        if result is None:
                            result = value
                    await self._ack(socket, packet, result)
                except Exception:
                    self._log_handler_error(socket, packet.data[0])
                finally:
                    del socket._scopes[scope]
            if ordered:
                await self._drain_queue()
        finally:
            if ordered:
                self._working = False
            else:
                self._running -= 1
                self._finished.set()

    @staticmethod
    def _log_handler_error(socket: Socket, event: str) -> None:
        log.exception(
            "error in handler of event %r (socket %s, namespace %s)",
            event,
            socket.id,
            socket.nsp.name,
        )

    async def _report_error(self, socket: Socket, exc: Exception) -> None:
        handlers = socket._take("error")
        if not handlers:
            log.warning("socket %s: middleware refused an event: %r", socket.id, exc)
        for handler in handlers:
            try:
                await call_handler(handler, exc)
            except Exception:
                log.exception("error in 'error' handler of socket %s", socket.id)

    # ------------------------------------------------------------ connecting

    def _handshake(self, auth: dict[str, Any]) -> Handshake:
        request = self.session.request
        issued = int(request.time * 1000)
        return Handshake(
            headers=HeaderMap(request.headers),
            query=request.query,
            auth=auth,
            address=request.client[0] if request.client else "",
            time=time.strftime("%a %b %d %Y %H:%M:%S GMT%z", time.localtime(request.time)),
            issued=issued,
            url=request.url,
            secure=request.secure,
            xdomain=request.header("origin") is not None,
        )

    async def _connect(self, packet: SioPacket) -> None:
        try:
            await self._connect_namespace(packet)
        finally:
            if packet.nsp in self._connecting:
                self._connecting.remove(packet.nsp)

    async def _connect_namespace(self, packet: SioPacket) -> None:
        name = packet.nsp
        auth: dict[str, Any] = packet.data if isinstance(packet.data, dict) else {}
        namespace = await self.server._namespace_for(name, auth)
        if namespace is None:
            await self._connect_error(name, "Invalid namespace", None)
            self._seen.discard(name)
            return
        socket = Socket(namespace, self, self._handshake(auth))
        for middleware in namespace.middlewares():
            try:
                await call_handler(middleware, socket)
            except ConnectionRefused as exc:
                await self._connect_error(name, exc.message, exc.data)
                self._seen.discard(name)
                return
            except Exception:
                log.exception("error in a middleware of namespace %s", name)
                await self._connect_error(name, "Internal server error", None)
                self._seen.discard(name)
                return
        if self.session.closed:
            return
        self.sockets[name] = socket
        command = AddSocket(socket, namespace.encode(SioType.CONNECT, {"sid": socket.id}, None))
        await self.server.router.inbox.put(command)
        await command.done.wait()
        if socket.state is not SocketState.CONNECTED:
            self.sockets.pop(name, None)
            return
        if self._timer is not None:
            self._timer.cancel()
        await self._run_connection_handlers(namespace, socket, auth)

    async def _run_connection_handlers(
        self, namespace: Namespace, socket: Socket, auth: dict[str, Any]
    ) -> None:
        with trio.CancelScope() as scope:
            socket._scopes[scope] = trio.lowlevel.current_task()
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
                        self.session.nursery.start_soon(socket.disconnect)
                        return
                    except Exception:
                        log.exception(
                            "error in a connection handler of namespace %s", namespace.name
                        )
            finally:
                del socket._scopes[scope]
                socket._ready.set()

    async def _connect_error(self, name: str, message: str, data: Any) -> None:
        payload: dict[str, Any] = {"message": message}
        if data is not None:
            payload["data"] = data
        packets = self.server.encode_for(name, SioType.CONNECT_ERROR, payload)
        self.session.send_nowait(packets, force=True)
        await trio.lowlevel.checkpoint()

    # ------------------------------------------------------------ disconnecting

    def kick(self, router: Router, spare: trio.lowlevel.Task | None = None) -> None:
        """``socket.disconnect(close=True)``, run in the router task.

        As the reference does: every namespace of this client gets a DISCONNECT
        packet and its socket disconnects with reason "server namespace
        disconnect"; then the whole connection closes. Run by the router so
        that it comes after everything the calling task emitted before.
        """
        sockets = [s for s in self.sockets.values() if s.state is SocketState.CONNECTED]
        for socket in sockets:
            self.session.send_nowait(socket.nsp.encode(SioType.DISCONNECT, None, None), force=True)
        for socket in sockets:
            self.begin_close(socket, DisconnectReason.SERVER_NAMESPACE_DISCONNECT, spare)
        try:
            self.session.nursery.start_soon(self._close_when_flushed)
        except RuntimeError:
            self.session.close_nowait(DisconnectReason.FORCED_SERVER_CLOSE)

    async def _close_when_flushed(self) -> None:
        # Over polling, the DISCONNECT packets must travel in a response of
        # their own, before CLOSE: socket.io-client handles a message one tick
        # after the CLOSE that follows it in the same payload, so it would
        # report "transport close" (and reconnect) instead of "io server
        # disconnect". Bounded: a client that does not poll is closed anyway.
        # (The engine has no "queue empty" event; a short look-again loop will do.)
        session = self.session
        with trio.move_on_after(_FLUSH_WAIT):
            while session.buffered_bytes and not session.closed:  # noqa: ASYNC110
                await trio.sleep(_FLUSH_CHECK)
        session.close_nowait(DisconnectReason.FORCED_SERVER_CLOSE)

    def begin_close(
        self,
        socket: Socket,
        reason: DisconnectReason,
        spare: trio.lowlevel.Task | None = None,
    ) -> None:
        """Start disconnecting ``socket`` for ``reason``; never waits.

        The close sequence (see the module docstring) runs in a task of the
        session's nursery, not in the caller's task, so that cancelling the
        caller cannot leave it half done. ``socket.wait_disconnected()`` waits
        for it. The socket's tasks are cancelled, except ``spare`` (by default
        the calling task).
        """
        if spare is None:
            spare = trio.lowlevel.current_task()
        if not self._mark_closing(socket, reason, spare):
            return
        if self.session.closed:
            return  # on_close finishes it, once the session's nursery is done
        try:
            self.session.nursery.start_soon(self._continue_close, socket)
        except RuntimeError:
            pass  # the nursery is closed: on_close finishes it

    async def close_socket(self, socket: Socket, reason: DisconnectReason) -> None:
        """Disconnect ``socket`` for ``reason`` and wait until it is done."""
        self.begin_close(socket, reason)
        await socket._disconnected.wait()

    def _mark_closing(
        self, socket: Socket, reason: DisconnectReason, spare: trio.lowlevel.Task | None = None
    ) -> bool:
        if socket.state not in (SocketState.CONNECTED, SocketState.CONNECTING):
            return False
        socket.state = SocketState.DISCONNECTING
        socket.reason = reason
        if self.sockets.get(socket.nsp.name) is socket:
            del self.sockets[socket.nsp.name]
        if socket not in self._closing:
            self._closing.append(socket)
        socket._cancel_tasks(spare)
        socket._ready.set()
        return True

    async def _continue_close(self, socket: Socket) -> None:
        # Shielded, with a deadline: once a socket starts closing, its
        # ``disconnecting`` and ``disconnect`` handlers run to the end (within
        # the engine's shutdown_timeout) even if the whole connection drops
        # meanwhile, which is common: a client that leaves its last namespace
        # closes the connection right after. Resumable: a close that started
        # in a task that never ran is finished by on_close, from the step where
        # it stopped; each step is marked before it starts, so no handler runs
        # twice, and the bookkeeping happens even if the deadline cuts in.
        reason = socket.reason
        assert reason is not None
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + self.server.engine.options.shutdown_timeout
            if socket._close_step == 0:
                socket._close_step = 1
                try:
                    await self._socket_event(socket, "disconnecting", reason)
                finally:
                    socket._close_step = 2
                    inbox = self.server.router.inbox
                    inbox.put_nowait(socket._remove)
                    if inbox.closed:
                        socket._remove.abandon()  # the server is gone, tables and all
            if socket._close_step == 2:
                socket._close_step = 3
                try:
                    with trio.move_on_after(_REMOVE_WAIT):
                        await socket._remove.done.wait()
                finally:
                    socket.state = SocketState.DISCONNECTED
                    socket._fail_acks()
                    if socket in self._closing:
                        self._closing.remove(socket)
                try:
                    await self._socket_event(socket, "disconnect", reason)
                finally:
                    socket._disconnected.set()
        if scope.cancelled_caught:
            log.warning(
                "socket %s: disconnect handlers cut short after %s s",
                socket.id,
                self.server.engine.options.shutdown_timeout,
            )

    async def _socket_event(self, socket: Socket, event: str, reason: DisconnectReason) -> None:
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


class EngineBridge:
    """Connects the Engine.IO server to the Socket.IO layer (an ``EngineApp``)."""

    def __init__(self, server: Server) -> None:
        self.server = server

    async def on_open(self, session: EngineSession) -> None:
        """A new connection: give it a :class:`Client`."""
        client = Client(self.server, session)
        session.app_state = client
        client.start()
        await trio.lowlevel.checkpoint()

    def on_message(self, session: EngineSession, data: str | bytes) -> Coroutine[Any, Any, None]:
        """A message for the connection's client.

        Returns the client's coroutine itself (no coroutine of its own: one
        less frame on every message).
        """
        client: Client = session.app_state
        return client.on_message(data)

    async def on_close(self, session: EngineSession, reason: DisconnectReason) -> None:
        """The connection closed."""
        client = session.app_state
        if client is not None:
            await client.on_close(reason)
