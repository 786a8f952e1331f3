"""One client connection (an Engine.IO session) as the Socket.IO layer sees it:
the dispatch of its packets.

A :class:`Client` decodes the session's messages (its own incremental decoder,
so binary attachments are reassembled per connection) and routes each packet:
CONNECT to the connect sequence (``lifecycle.connect``), EVENT to handlers,
ACK to the socket's pending acknowledgements, DISCONNECT to the connection's
:class:`~triosio._server.lifecycle.Closer`.

Handlers run in the session's nursery. By default a client's events are
handled in arrival order (an event's handlers finish before the next event's
start); with ``Server(async_handlers=True)`` each event gets a task of its own.
In arrival order, an event that arrives when nothing of the client's is queued
or running is handled in the task that read it: plain functions are called
there; ``async def`` handlers start there on the WebSocket (most finish without
blocking: no task, no scheduler pass, no cancel scope), and if one blocks, that
task becomes its task and a new one reads on (:meth:`Client._adopt`). Events
that arrive meanwhile queue up, and one task at a time handles the queue.
Acknowledgements from the client are handled at once, by the reader, so a
handler waiting for one can never block its own answer.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import sys
import types
from collections.abc import Awaitable, Callable, Coroutine
from types import CoroutineType
from typing import TYPE_CHECKING, Any

import trio

from .._common.handlers import Handler, call_handler, is_plain
from .._common.sync import LazyEvent
from .._engine.heartbeats import HeartbeatTimers, TimerEntry
from .._errors import DisconnectReason, RemoteProtocolError
from .._proto.sio import SioPacket, SioType, ack_args, ack_value
from . import lifecycle
from .hooks import wait_for_space
from .lifecycle import Closer, SocketState
from .ratelimit import TokenBucket, refusal
from .socket import Handshake, Socket

if TYPE_CHECKING:
    from .._engine.packet import OutPacket
    from .._engine.session import EngineSession
    from .namespace import Namespace
    from .recovery import Restored
    from .server import Server

log = logging.getLogger("triosio.server")

# Return values that cannot be awaitable (spares inspect.isawaitable for them).
_PLAIN_VALUES = frozenset({str, int, float, bool, tuple, list, dict, bytes})


class Client:
    """The Socket.IO side of one Engine.IO session."""

    __slots__ = (
        "_bucket",
        "_connecting",
        "_finished",
        "_queue",
        "_running",
        "_seen",
        "_space",
        "_timer",
        "_working",
        "closer",
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
        # The namespaces asked for (a dict of str to None, not a set: a dict of
        # strings only is not tracked by the cyclic GC).
        self._seen: dict[str, None] = {}
        # Namespaces being connected: a tuple, copied on change (it holds a
        # handful at most; the empty tuple costs nothing per connection).
        self._connecting: tuple[str, ...] = ()
        #: Closes this connection's sockets (the only code that does).
        self.closer = Closer(self)
        # A list, not a deque (624 bytes empty); it holds at most
        # max_pending_events items, so pop(0) stays cheap.
        self._queue: list[tuple[Socket | None, SioPacket]] = []
        self._working = False
        self._space = LazyEvent(True)
        # Handler tasks running (async_handlers), and an event set when one ends.
        self._running = 0
        self._finished = LazyEvent()
        # The connect timeout's entry in the server's timer heap (no task).
        self._timer: TimerEntry | None = None
        # The client's token bucket (Server(rate_limit=...)); None: no limit.
        limit = server.rate_limit
        self._bucket = TokenBucket(limit, trio.current_time()) if limit is not None else None

    # ------------------------------------------------------------ engine events

    def start(self) -> None:
        """The session opened: start the connect timeout."""
        # A timer entry, not a task sleeping in a cancel scope: a task, a
        # deadline and a cancellation per connection were measured at about
        # 6 % of the CPU of a connection (benchmarks/README.md).
        session = self.session
        self._timer = session.call_at(trio.current_time() + self.server.connect_timeout, self)

    def on_timer(self, now: float) -> None:
        """The connect timeout fell due (called by the server's timer task)."""
        self._timer = None
        if not self.sockets and not self.session.closed:
            log.info("session %s connected no namespace in time; closing", self.session.sid)
            self.session.close_nowait(DisconnectReason.FORCED_CLOSE)

    async def on_message(self, data: str | bytes) -> None:
        """Decode one Engine.IO message and act on the packet it completes."""
        hooks = self.server.hooks
        if hooks is not None:
            hooks.message_received(data)
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
            if hooks is not None:
                hooks.event_received(socket, packet.data[0], packet.data[1:])
            if self._bucket is not None or socket._rate_limits:
                refused_by = self._refused_by(socket, packet)
                if refused_by is not None:
                    await self._refuse(socket, packet, refused_by)
                    return
            ordered = not self.server.async_handlers
            if not (ordered and self._working) and socket.state is SocketState.CONNECTED:
                items: list[Any] = packet.data
                calls = self._plain_calls(socket, items[0], tuple(items[1:]))
                if calls is not None:
                    if hooks is None:
                        packets = self._run_plain(socket, packet, calls)
                    else:
                        started = hooks.event_started(socket, items[0], packet.id)
                        try:
                            packets = self._run_plain(socket, packet, calls)
                        finally:
                            hooks.event_ended(started)
                    if packets is not None and not self._ack_now(socket, packets):
                        await self._send_ack(socket, packets)
                    return
                if ordered:
                    scope = self.session.reader_scope()
                    if scope is not None:
                        # In this task first (see _adopt): most handlers
                        # finish without blocking.
                        coro = self._handle(socket, packet)
                        context = contextvars.copy_context()
                        try:
                            trap = context.run(coro.send, None)
                        except StopIteration:
                            return
                        await self._adopt(socket, coro, trap, context, scope)
                        return
                    # The first reader has no scope: its successor will.
                    self.session.hand_off_reading()
            if ordered:
                await self._enqueue(socket, packet)
            else:
                await self._start_handler(socket, packet)
        elif ptype is SioType.ACK:
            if socket is not None and packet.id is not None:
                socket.acks.resolve(packet.id, ack_value(packet.data))
        elif ptype is SioType.CONNECT:
            if socket is not None or nsp in self._connecting:
                return  # already connected (or connecting) to this namespace
            self._seen[nsp] = None
            self._connecting = (*self._connecting, nsp)
            await self._enqueue(None, packet)
        elif ptype is SioType.DISCONNECT:
            if socket is not None:
                self.closer.request(socket, DisconnectReason.CLIENT_NAMESPACE_DISCONNECT)
        else:  # CONNECT_ERROR is for servers to send
            log.info("session %s: unexpected %s packet", self.session.sid, ptype.name)
            self.session.close_nowait(DisconnectReason.PARSE_ERROR)

    # ------------------------------------------------------------ rate limits

    def _refused_by(self, socket: Socket, packet: SioPacket) -> TokenBucket | None:
        # The bucket without a token for this event, or None: both must have
        # one (the client's, then the event's); a refused event takes none
        # from the event's bucket.
        now = trio.current_time()
        for bucket in (self._bucket, socket._rate_limits.get(packet.data[0])):
            if bucket is not None and not bucket.take(now):
                return bucket
        return None

    async def _refuse(self, socket: Socket, packet: SioPacket, bucket: TokenBucket) -> None:
        event = packet.data[0]
        if bucket.limit.policy == "disconnect":
            log.info("socket %s: %r past its rate limit: disconnecting", socket.id, event)
            if socket.state is SocketState.CONNECTED:
                await self.server.router.emit(
                    socket, socket.nsp.encode(SioType.DISCONNECT, None, None), False
                )
                self.closer.request(socket, DisconnectReason.SERVER_NAMESPACE_DISCONNECT)
            return
        log.debug("socket %s: %r past its rate limit: dropped", socket.id, event)
        if packet.id is not None and socket.state is SocketState.CONNECTED:
            answer = refusal(event, bucket)
            await self._send_ack(socket, socket.nsp.encode_ack([answer], packet.id))

    async def on_close(self, reason: DisconnectReason) -> None:
        """The session ended: every socket disconnects for ``reason``.

        Runs after the session's nursery is done; the closer finishes here
        what it had queued, and closes the sockets still connected. Handlers
        that run meanwhile may close more.
        """
        self.decoder.reset()
        self.stop_connect_timer()  # the heap must not keep this client alive
        closer = self.closer
        while True:
            for socket in list(self.sockets.values()):
                closer.request(socket, reason)
            if not closer.pending:
                break
            await closer.drain()

    # ------------------------------------------------------------ dispatch

    async def _enqueue(self, socket: Socket | None, packet: SioPacket) -> None:
        limit = self.server.max_pending_events
        while len(self._queue) >= limit:
            # This client sends faster than its handlers run: stop reading it.
            self._space.clear()
            await self._space.wait()
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
            self._space.set()
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
        # In a task of its own: a cancel scope, so that the socket's
        # disconnection stops the handlers.
        with trio.CancelScope() as scope:
            socket._tasks[scope] = trio.lowlevel.current_task()
            try:
                await self._handle(socket, packet)
            finally:
                del socket._tasks[scope]

    async def _handle(self, socket: Socket, packet: SioPacket) -> None:
        # An event's middlewares, listeners, handlers and ack. Catches what
        # they raise (only Cancelled and the like get through).
        if not socket._ready.is_set():
            await socket._ready.wait()
        if socket.state is not SocketState.CONNECTED:
            return
        data: list[Any] = packet.data
        event: str = data[0]
        args = data[1:]
        hooks = self.server.hooks
        started = hooks.event_started(socket, event, packet.id) if hooks is not None else None
        try:
            for middleware in socket._middlewares:
                try:
                    await call_handler(middleware, event, args)
                except Exception as exc:
                    await self._report_error(socket, exc)
                    return
            if socket._any:
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
                value = handler(*args)
                if value.__class__ is CoroutineType or (
                    value is not None
                    and value.__class__ not in _PLAIN_VALUES
                    and inspect.isawaitable(value)
                ):
                    value = await value
                ran = True
                if result is None:
                    result = value
            for handler in socket.nsp.event_handlers(event):
                value = await call_handler(handler, socket, *args)
                ran = True
                if result is None:
                    result = value
            if ran and packet.id is not None and socket.state is SocketState.CONNECTED:
                packets = socket.nsp.encode_ack(ack_args(result), packet.id)
                if not self._ack_now(socket, packets):
                    await self._send_ack(socket, packets)
        except Exception:
            self._log_handler_error(socket, event)
        finally:
            if hooks is not None:
                hooks.event_ended(started)

    async def _adopt(
        self,
        socket: Socket,
        coro: Coroutine[Any, Any, None],
        trap: Any,
        context: contextvars.Context,
        scope: trio.CancelScope,
    ) -> None:
        # An event's handling (_handle), started in the WebSocket's reader
        # task, yielded to Trio: drive it on here. The coroutine never leaves
        # the task it started in (Trio binds its traps and cancel scopes to
        # it). A yield that cannot block (a checkpoint's: the router's every
        # 64 emits, trio.sleep(0)) is the reader's yield too. Before the
        # first one that may block, this task becomes the handling's task:
        # the reading goes on in a new task, later events queue behind this
        # one, and this task ends once they are handled. The reader's cancel
        # scope is the handling's: the socket's disconnection cancels it, as
        # it does _dispatch's; a reader whose scope was cancelled hands the
        # reading off too. (A context of its own, so that what a handler
        # sets does not leak into later events.)
        blocked: list[bool] = []

        def block() -> None:
            blocked.append(True)
            self.session.hand_off_reading()

        # Nothing else of this client's starts meanwhile (a polling request's
        # events included): later events queue behind this one.
        self._working = True
        tasks = socket._tasks
        tasks[scope] = trio.lowlevel.current_task()
        try:
            try:
                await _drive(coro, trap, context, scope, block)
            finally:
                del tasks[scope]
        except BaseException:
            self._queue_to_task()
            raise
        if blocked and not scope.cancel_called:
            await self._work()  # this task's now: it handles the queue
            return
        if not blocked and scope.cancel_called:
            # Disconnected while this task yielded as the reader: its scope
            # is cancelled, so another task reads on.
            self.session.hand_off_reading()
        # (Or blocked, and the handler swallowed Cancelled.)
        self._queue_to_task()

    def _queue_to_task(self) -> None:
        # What queued up behind an event handled in the reader's task goes to
        # a task of its own (this one is the reader, or its scope is
        # cancelled), if anything did.
        if self._queue:
            try:
                self.session.nursery.start_soon(self._work)
                return
            except RuntimeError:  # the session is closing
                pass
        self._working = False

    async def _ack(self, socket: Socket, packet: SioPacket, result: Any) -> None:
        if packet.id is not None and socket.state is SocketState.CONNECTED:
            await self._send_ack(socket, socket.nsp.encode_ack(ack_args(result), packet.id))

    def _ack_now(self, socket: Socket, packets: list[OutPacket]) -> bool:
        # _send_ack's common case without a coroutine (on the echo path):
        # whether it was sent (False: nothing was, use _send_ack).
        if not self.session.has_space() or not self.server.router.emit_now(socket, packets):
            return False
        hooks = self.server.hooks
        if hooks is not None:
            hooks.ack_sent(socket, packets)
        return True

    async def _send_ack(self, socket: Socket, packets: list[OutPacket]) -> None:
        # An ack waits for space like any emit: a client that asks for acks and
        # never reads ends up not being read either. (_ack_now is the common
        # case, tried first by the callers on the echo path.)
        hooks = self.server.hooks
        if not self.session.has_space():
            await wait_for_space(self.session, hooks)
        router = self.server.router
        if not router.emit_now(socket, packets):
            await router.emit(socket, packets, False)
        if hooks is not None:
            hooks.ack_sent(socket, packets)

    # Plain-function handlers run in the reader's task, as the event arrives:
    # a function cannot await, so it cannot wait for its own client (the
    # reason handlers have tasks), and a task, a task switch and a cancel scope
    # per event are saved (the echo round trip's largest costs after the
    # system calls). Order is kept: only when nothing of this client's is
    # queued or running, so nothing can overtake; and only when every callable
    # involved is a plain function (``async def`` ones start in the reader
    # too, but as a coroutine that may block: see _adopt).

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
                socket._tasks[scope] = trio.lowlevel.current_task()
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
                    del socket._tasks[scope]
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
        # Called in the handler's ``except`` block (so the span of a traced
        # event is still the current one for the hook).
        log.exception(
            "error in handler of event %r (socket %s, namespace %s)",
            event,
            socket.id,
            socket.nsp.name,
        )
        hooks = socket.nsp.server.hooks
        error = sys.exc_info()[1]
        if hooks is not None and error is not None:
            hooks.handler_failed(socket, event, error)

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

    def new_socket(
        self, namespace: Namespace, auth: dict[str, Any], restored: Restored | None = None
    ) -> Socket:
        """A socket of this connection for ``namespace`` (not connected yet);
        with ``restored``, the one that gets back a kept session."""
        handshake = Handshake.from_request(self.session.request, auth)
        return Socket(namespace, self, handshake, restored)

    def namespace_refused(self, name: str) -> None:
        """Namespace ``name`` refused the client: it may try again."""
        self._seen.pop(name, None)

    def stop_connect_timer(self) -> None:
        """A namespace connected: the connect timeout no longer applies."""
        HeartbeatTimers.cancel(self._timer)
        self._timer = None

    async def _connect(self, packet: SioPacket) -> None:
        try:
            await lifecycle.connect(self, packet)
        finally:
            if packet.nsp in self._connecting:
                self._connecting = tuple(n for n in self._connecting if n != packet.nsp)


class EngineBridge:
    """Connects the Engine.IO server to the Socket.IO layer (an ``EngineApp``)."""

    def __init__(self, server: Server) -> None:
        self.server = server

    async def on_open(self, session: EngineSession) -> None:
        """A new connection: give it a :class:`Client`."""
        client = Client(self.server, session)
        session.app_state = client
        client.start()
        if self.server.hooks is not None:
            self.server.hooks.connection_opened(session)
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
        if self.server.hooks is not None:
            self.server.hooks.connection_closed(session, reason)


def _yield_trap() -> Any:
    # What trio.lowlevel.cancel_shielded_checkpoint yields to Trio's scheduler
    # (a yield after which the task is rescheduled at once), learned from
    # Trio rather than imported from its private modules. None (every yield
    # then counts as blocking) if it ever yields something else.
    coro = trio.lowlevel.cancel_shielded_checkpoint()  # noqa: ASYNC105 (driven by hand)
    try:
        return coro.send(None)
    except StopIteration:
        return None
    finally:
        coro.close()


_YIELD = _yield_trap()
# How many times a handling may yield (without blocking) in the reader's task
# before it gets the task to itself (the router yields once per 64 emits).
_READER_YIELDS = 4


@types.coroutine
def _drive(
    coro: Coroutine[Any, Any, None],
    trap: Any,
    context: contextvars.Context,
    scope: trio.CancelScope,
    block: Callable[[], None],
) -> Any:
    # Drives ``coro`` on from a suspension (``trap``, what it yielded) in the
    # current task, passing what Trio sends or throws in back and forth;
    # ``block()`` once, before the first yield that may block (any but
    # _YIELD, or any once ``scope`` is cancelled), or past _READER_YIELDS
    # yields (a handler that only yields, in a long loop, must not keep its
    # client's ACKs and PONGs unread).
    send = coro.send
    blocking = False
    yields = 0
    while True:
        if not blocking:
            yields += 1
            if trap is not _YIELD or scope.cancel_called or yields > _READER_YIELDS:
                blocking = True
                block()
        try:
            value = yield trap
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:
            try:
                trap = context.run(coro.throw, exc)
            except StopIteration:
                return None
        else:
            try:
                trap = context.run(send, value)
            except StopIteration:
                return None
