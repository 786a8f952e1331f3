"""Events from the server for one client socket: to its streams and its handlers.

An EVENT goes to every event stream of the socket, then its handlers are
queued on the manager's dispatcher, which runs every handler of the client one
at a time, in order. The first handler's return value is the acknowledgement
when the server asked for one. Events that arrive after the socket's CONNECT
went out but before the server's answer wait until the socket connected (the
reference client's receive buffer).
"""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

from .._common.handlers import Handler, call_handler
from .._proto.sio import SioPacket, SioType, ack_args
from .dispatcher import run_handlers
from .stream import Event, EventStream, Overflow

if TYPE_CHECKING:
    from .socket import ClientSocket

log = logging.getLogger("triosio.client")


class Incoming:
    """The receiving side of one :class:`ClientSocket`."""

    __slots__ = ("_epoch", "_held", "_socket", "_streams")

    def __init__(self, socket: ClientSocket) -> None:
        self._socket = socket
        self._streams: list[EventStream] = []
        self._held: list[SioPacket] = []
        # Counts the socket's connections: an acknowledgement goes out only on
        # the connection its event came on.
        self._epoch = 0

    # ------------------------------------------------------------ the socket's lifecycle

    def hold(self, packet: SioPacket) -> None:
        """Keep an EVENT that came before the server's CONNECT answer."""
        self._held.append(packet)

    def connected(self) -> None:
        """The socket connected: deliver the events held for it."""
        self._epoch += 1
        held, self._held = self._held, []
        for packet in held:
            self.deliver(packet)

    def disconnected(self) -> None:
        """The socket left its connection: events held for it are dropped."""
        self._held.clear()

    def end_streams(self) -> None:
        """The socket stopped for good: every stream ends."""
        streams, self._streams = self._streams, []
        for stream in streams:
            stream._end()

    # ------------------------------------------------------------ streams

    def open_stream(
        self, names: frozenset[str], max_buffer: int, overflow: Overflow
    ) -> EventStream:
        """A new stream of the socket's events (see :meth:`ClientSocket.events`)."""
        stream = EventStream(names, max_buffer, overflow, self._remove_stream)
        self._streams.append(stream)
        return stream

    def _remove_stream(self, stream: EventStream) -> None:
        if stream in self._streams:
            self._streams.remove(stream)

    # ------------------------------------------------------------ delivering

    def deliver(self, packet: SioPacket) -> None:
        """An EVENT for the connected socket: to its streams and handlers."""
        socket = self._socket
        data = packet.data
        name: str = data[0]
        ack = None
        if packet.id is not None:
            ack = partial(self._send_ack, packet.id, self._epoch, [False])
            args = tuple(data[1:])
        elif socket._pid is not None and len(data) > 1 and isinstance(data[-1], str):
            # With connection state recovery on, the server puts the event's
            # offset last (never on events that ask for an ack): remember it
            # for the next CONNECT and leave it out of what the app gets.
            socket._last_offset = data[-1]
            args = tuple(data[1:-1])
        else:
            args = tuple(data[1:])
        event = Event(name, args, socket.namespace, ack)
        for stream in list(self._streams):
            stream._push(event)
        dispatcher = socket.manager._dispatcher
        if dispatcher.paused:
            # An event that came with the CONNECT reply, while connect() holds
            # the dispatcher: its handlers are chosen when its turn comes, so
            # handlers registered at the top of the `async with` block get it.
            dispatcher.submit(partial(self._choose_and_run, event))
            return
        # Otherwise the handlers are those registered when the event arrives
        # (as in JavaScript): an off() after that does not take it back.
        catch_all = list(socket._any)
        handlers = socket._take(name)
        if catch_all or handlers:
            dispatcher.submit(partial(self._run_handlers, event, catch_all, handlers))

    async def _choose_and_run(self, event: Event) -> None:
        catch_all = list(self._socket._any)
        handlers = self._socket._take(event.name)
        if catch_all or handlers:
            await self._run_handlers(event, catch_all, handlers)
        else:
            await trio.lowlevel.checkpoint()

    async def _run_handlers(
        self, event: Event, catch_all: list[Handler], handlers: list[Handler]
    ) -> None:
        namespace = self._socket.namespace
        await run_handlers(
            catch_all,
            (event.name, *event.args),
            f"catch-all (namespace {namespace}, event {event.name!r})",
        )
        result: Any = None
        acknowledge = bool(handlers) and event.ack_requested
        for i, handler in enumerate(handlers):
            try:
                value = await call_handler(handler, *event.args)
            except Exception:
                log.exception("error in the handler of %r (namespace %s)", event.name, namespace)
                if i == 0:
                    acknowledge = False  # no acknowledgement for a failed handler
                continue
            if i == 0:
                result = value
        if acknowledge:
            await event.ack(*ack_args(result))

    async def _send_ack(
        self, ack_id: int, epoch: int, sent: list[bool], args: tuple[Any, ...]
    ) -> None:
        # Event.ack: only the first acknowledgement of an event goes out, and
        # only on the connection the event came on. Cancelled, it sent nothing.
        await trio.lowlevel.checkpoint_if_cancelled()
        socket = self._socket
        if not sent[0]:
            sent[0] = True
            if socket.connected and self._epoch == epoch:
                socket.manager._send_packet(
                    SioPacket(SioType.ACK, socket.namespace, list(args), ack_id)
                )
        await trio.lowlevel.cancel_shielded_checkpoint()
