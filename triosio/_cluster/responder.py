"""What a server does with the other servers' broadcasts and requests.

It passes broadcasts on to its own clients, answers queries, applies joins,
leaves and disconnects, runs server-side handlers, and forwards broadcasts
that want acknowledgements, with one client count and then each client's
answer (§4, §5 of ``redis-wire.md``). It asks its server only through the
:class:`~triosio._server.cluster.ClusterPort` and answers through the bus.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, final

import trio

from .._common.handlers import call_handler
from .._errors import LocalProtocolError
from .._server.cluster import ClusterPort
from .._server.remote import ForwardedAck, first_ack_arg, socket_info
from . import messages
from .bus import Bus
from .messages import Request, RequestType
from .values import WireError, load_message, plain

if TYPE_CHECKING:
    from .node import Link

log = logging.getLogger("triosio.redis")


@final
class Responder:
    """Serves the other servers' messages for one node.

    Args:
        port: The server.
        bus: Where the answers go.
        nursery: For what must not hold up the bus (handlers, disconnects).
        requests_timeout: How long to pass on acknowledgements when the
            requester gave no timeout.
        specific_response: Answer on the requester's own response channel.
    """

    __slots__ = ("_bus", "_nursery", "_port", "_requests_timeout", "_specific_response")

    def __init__(
        self,
        port: ClusterPort,
        bus: Bus,
        nursery: trio.Nursery,
        *,
        requests_timeout: float,
        specific_response: bool,
    ) -> None:
        self._port = port
        self._bus = bus
        self._nursery = nursery
        self._requests_timeout = requests_timeout
        self._specific_response = specific_response

    async def on_broadcast(self, link: Link, channel: bytes, payload: bytes) -> None:
        """A message on one of the namespace's broadcast channels (§4).

        Raises:
            WireError: malformed, or it cannot be passed on.
        """
        room = link.channels.room_of(channel)
        if room is None:
            return
        port = self._port
        # As Node: a room this server does not have is skipped without decoding.
        if room and not port.has_room(link.name, room):
            return
        broadcast = messages.decode_broadcast(payload, link.name)
        if broadcast is None or broadcast.uid == link.channels.uid:
            return  # another namespace's, or our own echo
        try:
            await port.deliver(
                link.name,
                broadcast.data,
                broadcast.rooms,
                broadcast.exclude,
                broadcast.volatile,
                plain,
            )
        except LocalProtocolError as exc:
            raise WireError(f"cannot pass the broadcast on: {exc}") from None

    async def on_request(self, link: Link, payload: bytes) -> None:
        """A message on the namespace's request channel (§5).

        Raises:
            WireError: malformed.
        """
        request = messages.parse_request(load_message(payload), link.name)
        if request is None:
            return
        kind = request.type
        own = link.channels.uid
        if kind in (RequestType.SOCKETS, RequestType.ALL_ROOMS, RequestType.REMOTE_FETCH):
            if request.request_id in link.pending:
                return  # our own request
            await self._answer_query(link, request)
        elif kind in (
            RequestType.REMOTE_JOIN,
            RequestType.REMOTE_LEAVE,
            RequestType.REMOTE_DISCONNECT,
        ):
            # Our own were applied here when sent (so that the caller sees them
            # done when it returns): the echo is skipped.
            if request.uid != own:
                await self._apply_remote(link, request)
        elif kind is RequestType.SERVER_SIDE_EMIT:
            if request.uid != own:
                self._server_side_event(link, request)
        elif (
            kind is RequestType.BROADCAST
            and request.request_id not in link.acks
            and request.uid != own
        ):
            await self._forward_broadcast(link, request)

    def _response_channel(self, link: Link, request: Request) -> bytes:
        return link.channels.response_for(request.uid, self._specific_response)

    async def _answer_query(self, link: Link, request: Request) -> None:
        port = self._port
        request_id = request.request_id
        assert request_id is not None
        channel = self._response_channel(link, request)
        if request.type is RequestType.ALL_ROOMS:
            rooms = port.rooms(link.name)
            await self._bus.publish(channel, messages.encode_rooms_response(request_id, rooms))
            return
        sockets = await port.sockets(link.name, request.rooms, request.exclude)
        if request.type is RequestType.SOCKETS:
            ids = [s.id for s in sockets]
            await self._bus.publish(channel, messages.encode_sockets_response(request_id, ids))
        else:
            info = [socket_info(s) for s in sockets]
            await self._bus.publish(channel, messages.encode_fetch_response(request_id, info))

    async def _apply_remote(self, link: Link, request: Request) -> None:
        port = self._port
        kind = request.type
        rooms, exclude = request.rooms, request.exclude
        if request.legacy:
            # One socket, by id: its own room selects it.
            sid = request.sid or ""
            if port.socket(link.name, sid) is None:
                return
            rooms, exclude = frozenset({sid}), frozenset()
        if kind is RequestType.REMOTE_JOIN or kind is RequestType.REMOTE_LEAVE:
            join = kind is RequestType.REMOTE_JOIN
            change = frozenset(request.change)
            await port.change_rooms(link.name, rooms, exclude, change, join)
        else:
            # It waits for every socket to be gone: not here, where it would
            # hold up every message behind it.
            self._nursery.start_soon(
                _quietly, port.disconnect, link.name, rooms, exclude, request.close
            )
        if request.legacy and request.request_id is not None:
            await self._bus.publish(
                self._response_channel(link, request),
                messages.encode_done_response(request.request_id),
            )

    def _server_side_event(self, link: Link, request: Request) -> None:
        event = request.data[0]
        handlers = self._port.server_side_handlers(link.name, event)
        if not handlers:
            return  # as in the reference: nobody listens, nobody answers
        args = plain(request.data[1:])
        self._nursery.start_soon(self._run_server_side, link, request, handlers, args)

    async def _run_server_side(
        self,
        link: Link,
        request: Request,
        handlers: list[Callable[..., Any]],
        args: list[Any],
    ) -> None:
        event = request.data[0]
        answer: list[Any] = []
        for handler in handlers:
            try:
                value = await call_handler(handler, *args)
            except Exception:
                log.exception("error in server-side handler of %r in %s", event, link.name)
                continue
            if not answer:
                answer.append(value)
        if request.request_id is not None and answer:
            # Always the shared response channel (§5.3).
            ack = messages.encode_server_side_ack(request.request_id, first_ack_arg(answer[0]))
            await self._bus.publish(link.channels.response, ack)

    async def _forward_broadcast(self, link: Link, request: Request) -> None:
        request_id = request.request_id
        assert request_id is not None
        channel = self._response_channel(link, request)
        bus = self._bus

        def on_count(count: int) -> None:
            bus.publish_nowait(channel, messages.encode_client_count(request_id, count))

        def on_ack(value: Any) -> None:
            bus.publish_nowait(channel, messages.encode_broadcast_ack(request_id, value))

        try:
            ack = await self._port.deliver_with_ack(
                link.name,
                request.data,
                request.rooms,
                request.exclude,
                request.volatile,
                on_count,
                on_ack,
                plain,
            )
        except LocalProtocolError as exc:
            on_count(0)  # sent to nobody: the requester need not wait for us
            raise WireError(f"cannot pass the broadcast on: {exc}") from None
        # The requester forgets the request after its timeout (§5.5); so do we.
        wait = request.timeout if request.timeout is not None else self._requests_timeout
        self._nursery.start_soon(_forget_later, ack, wait)


async def _quietly(fn: Callable[..., Any], *args: Any) -> None:
    try:
        await fn(*args)
    except Exception:
        log.exception("error applying a request from another server")


async def _forget_later(ack: ForwardedAck, seconds: float) -> None:
    await trio.sleep(seconds)
    ack.forget()
