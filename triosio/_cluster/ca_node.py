"""One server's part in socket.io-adapter's ``ClusterAdapter`` protocol, over any transport.

The protocol of :mod:`.ca_messages` (shared by ``@socket.io/redis-streams-adapter``
and the other adapters built on socket.io-adapter's ``ClusterAdapter``).
:class:`ClusterAdapterNode` is a complete cluster adapter (what
``Server(adapter=...)`` takes) once given a :class:`Transport`: it sends this
server's broadcasts and requests, collects the answers, and serves the other
servers' messages. It asks its server only through the
:class:`~triosio._server.cluster.ClusterPort`.

Differences from the ``@socket.io/redis-adapter`` protocol (:mod:`.node`): there
is no ALL_ROOMS request (``all_rooms`` answers for this server alone, as Node's
``ClusterAdapter`` does), and answers go to the requester's own channel.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import trio

from .._common.handlers import call_handler
from .._errors import ClusterTimeout, LocalProtocolError
from .._server.cluster import ClusterPort
from .._server.remote import ClusterAcks, ForwardedAck, first_ack_arg, socket_info
from . import ca_messages as cm
from .ca_messages import Message, MessageType
from .node import _Malformed
from .values import WireError, plain

log = logging.getLogger("triosio.redis")

#: What a transport calls with each message: ``receive(where, decode, offset)``.
#: ``decode()`` returns the message as decoded from the wire (a map) or raises
#: :class:`~triosio._cluster.values.WireError`; ``where`` names its channel or
#: stream (for logs); ``offset`` is its position in a log (a stream entry id), if any.
Receive = Callable[[bytes, Callable[[], object], str | None], Awaitable[None]]


class Transport(Protocol):
    """How the servers of a ``ClusterAdapter`` cluster exchange messages.

    Messages are dicts (:mod:`.ca_messages`); the transport encodes them. What
    one server publishes reaches the others in the order it was published.
    """

    async def run(
        self, receive: Receive, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Connect, and pass every message to ``receive`` until cancelled.

        Reports started once connected, or once the first attempt failed (then
        it keeps trying in the background). ``receive`` never raises.
        """

    def add_namespace(self, nsp: str, uid: str) -> None:
        """Receive the messages of namespace ``nsp``, and the answers to ``uid``. Never waits."""

    async def publish(self, message: dict[str, Any]) -> None:
        """Send ``message`` to the other servers, after everything published before."""

    def publish_nowait(self, message: dict[str, Any]) -> None:
        """:meth:`publish` from code that cannot wait."""

    def publish_response(self, requester: str, message: dict[str, Any]) -> None:
        """Send an answer to the server whose uid (in ``message["nsp"]``) is ``requester``."""

    async def server_count(self, nsp: str) -> int:
        """How many servers serve ``nsp``, this one included (1 when out of reach)."""
        ...


class _Pending:
    """A request of ours that waits for ``expected`` answers."""

    __slots__ = ("answers", "done", "expected", "items")

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.answers = 0
        self.items: list[Any] = []
        self.done = trio.Event()

    def answer(self, items: list[Any]) -> None:
        self.answers += 1
        self.items.extend(items)
        if self.answers >= self.expected:
            self.done.set()


class _Link:
    """A namespace: this server's uid there, its requests in flight."""

    __slots__ = ("acks", "name", "pending", "uid")

    def __init__(self, name: str) -> None:
        self.name = name
        self.uid = cm.new_id()
        self.pending: dict[str, _Pending] = {}
        self.acks: dict[str, ClusterAcks] = {}


class ClusterAdapterNode:
    """Connects a :class:`triosio.Server` to a ``ClusterAdapter`` cluster over a transport.

    Args:
        transport: How the messages travel.
        requests_timeout: Seconds to wait for the other servers' answers to
            ``fetch_sockets`` and ``server_side_emit_with_ack`` (5 s, as the
            reference's ``DEFAULT_TIMEOUT``).
    """

    def __init__(self, transport: Transport, *, requests_timeout: float = 5.0) -> None:
        if requests_timeout <= 0:
            raise ValueError("requests_timeout must be positive")
        self.requests_timeout = requests_timeout
        self._transport = transport
        self._links: dict[str, _Link] = {}
        self._port: ClusterPort | None = None
        self._nursery: trio.Nursery | None = None
        self._malformed = _Malformed()

    # ------------------------------------------------------------ running

    async def run(
        self, port: ClusterPort, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Connect, then serve the other servers until cancelled (``Server.run`` starts this)."""
        if self._port is not None:
            raise RuntimeError(f"a {type(self).__name__} serves one server, once")
        self._port = port
        for name in port.namespace_names():
            self._link(name)
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await nursery.start(self._transport.run, self._receive)
            task_status.started()

    def namespace_created(self, name: str) -> None:
        """Receive a namespace created after the start (the server calls this)."""
        self._link(name)

    def _link(self, name: str) -> _Link:
        link = self._links.get(name)
        if link is None:
            link = self._links[name] = _Link(name)
            self._transport.add_namespace(name, link.uid)
        return link

    @property
    def uids(self) -> Mapping[str, str]:
        """This server's uid in each namespace."""
        return {name: link.uid for name, link in self._links.items()}

    # ------------------------------------------------------------ incoming

    async def _receive(
        self, where: bytes, decode: Callable[[], object], offset: str | None
    ) -> None:
        # What the transport calls with each message (a Receive); never raises.
        try:
            message = cm.parse(decode())
            if message is None:
                return
            link = self._links.get(message.nsp)
            if link is None or message.uid == link.uid:
                return  # another namespace's, or our own echo
            await self._serve(link, message, offset)
        except WireError as exc:
            self._malformed.report(where, str(exc))
        except Exception:
            # Never let one message stop the transport.
            log.exception("error handling a message on %s", where.decode("utf-8", "replace"))

    async def _serve(self, link: _Link, message: Message, offset: str | None = None) -> None:
        port, kind = self._port, message.type
        assert port is not None and self._nursery is not None
        if kind in cm.RESPONSES:
            self._on_response(link, message)
        elif kind is MessageType.BROADCAST:
            if message.request_id is not None:
                await self._forward_broadcast(port, link, message)
                return
            try:
                await port.deliver(
                    link.name,
                    message.data,
                    message.rooms,
                    message.exclude,
                    message.volatile,
                    plain,
                    offset,
                )
            except LocalProtocolError as exc:
                raise WireError(f"cannot pass the broadcast on: {exc}") from None
        elif kind is MessageType.SOCKETS_JOIN or kind is MessageType.SOCKETS_LEAVE:
            await port.change_rooms(
                link.name,
                message.rooms,
                message.exclude,
                frozenset(message.change),
                kind is MessageType.SOCKETS_JOIN,
            )
        elif kind is MessageType.DISCONNECT_SOCKETS:
            # It waits for every socket to be gone: not here, where it would
            # hold up every message behind it.
            self._nursery.start_soon(
                _quietly, port.disconnect, link.name, message.rooms, message.exclude, message.close
            )
        elif kind is MessageType.FETCH_SOCKETS:
            assert message.request_id is not None
            sockets = await port.sockets(link.name, message.rooms, message.exclude)
            answer = cm.fetch_sockets_response(
                link.uid, link.name, message.request_id, [socket_info(s) for s in sockets]
            )
            self._transport.publish_response(message.uid, answer)
        elif kind is MessageType.SERVER_SIDE_EMIT:
            handlers = port.server_side_handlers(link.name, message.data[0])
            if handlers:  # as in the reference: nobody listens, nobody answers
                self._nursery.start_soon(self._run_server_side, link, message, handlers)
        # Heartbeats and ADAPTER_CLOSE: this protocol counts servers otherwise.

    def _on_response(self, link: _Link, message: Message) -> None:
        request_id = message.request_id
        assert request_id is not None
        kind = message.type
        if kind is MessageType.BROADCAST_CLIENT_COUNT or kind is MessageType.BROADCAST_ACK:
            acks = link.acks.get(request_id)
            if acks is not None:
                if kind is MessageType.BROADCAST_CLIENT_COUNT:
                    acks.client_count(message.client_count)
                else:
                    acks.ack(plain(message.value))
            return
        pending = link.pending.get(request_id)
        if pending is None:
            return
        if kind is MessageType.FETCH_SOCKETS_RESPONSE:
            pending.answer([s for s in message.sockets if isinstance(s, dict)])
        else:
            pending.answer([plain(message.value)])

    async def _run_server_side(
        self, link: _Link, message: Message, handlers: list[Callable[..., Any]]
    ) -> None:
        event, args = message.data[0], plain(message.data[1:])
        answer: list[Any] = []
        for handler in handlers:
            try:
                value = await call_handler(handler, *args)
            except Exception:
                log.exception("error in server-side handler of %r in %s", event, link.name)
                continue
            if not answer:
                answer.append(value)
        if message.request_id is not None and answer:
            response = cm.server_side_emit_response(
                link.uid, link.name, message.request_id, first_ack_arg(answer[0])
            )
            self._transport.publish_response(message.uid, response)

    async def _forward_broadcast(self, port: ClusterPort, link: _Link, message: Message) -> None:
        request_id, requester = message.request_id, message.uid
        assert request_id is not None and self._nursery is not None
        transport = self._transport

        def on_count(count: int) -> None:
            transport.publish_response(
                requester, cm.broadcast_client_count(link.uid, link.name, request_id, count)
            )

        def on_ack(value: Any) -> None:
            transport.publish_response(
                requester, cm.broadcast_ack(link.uid, link.name, request_id, value)
            )

        try:
            ack = await port.deliver_with_ack(
                link.name,
                message.data,
                message.rooms,
                message.exclude,
                message.volatile,
                on_count,
                on_ack,
                plain,
            )
        except LocalProtocolError as exc:
            on_count(0)  # sent to nobody: the requester need not wait for us
            raise WireError(f"cannot pass the broadcast on: {exc}") from None
        wait = message.timeout if message.timeout is not None else self.requests_timeout
        self._nursery.start_soon(_forget_later, ack, wait)

    # ------------------------------------------------------------ what the server calls

    async def publish_broadcast(
        self,
        nsp: str,
        data: list[Any],
        rooms: frozenset[str],
        exclude: frozenset[str],
        volatile: bool,
    ) -> None:
        """Send a broadcast to the other servers."""
        link = self._link(nsp)
        await self._transport.publish(cm.broadcast(link.uid, nsp, data, rooms, exclude, volatile))

    def publish_rooms(
        self,
        nsp: str,
        rooms: frozenset[str],
        exclude: frozenset[str],
        change: frozenset[str],
        join: bool,
    ) -> None:
        """SOCKETS_JOIN / SOCKETS_LEAVE to the other servers."""
        link = self._link(nsp)
        message = cm.sockets_rooms(link.uid, nsp, join, rooms, exclude, change)
        self._transport.publish_nowait(message)

    def publish_disconnect(
        self, nsp: str, rooms: frozenset[str], exclude: frozenset[str], close: bool
    ) -> None:
        """DISCONNECT_SOCKETS to the other servers."""
        link = self._link(nsp)
        self._transport.publish_nowait(cm.disconnect_sockets(link.uid, nsp, rooms, exclude, close))

    async def broadcast_with_ack(
        self,
        nsp: str,
        data: list[Any],
        rooms: frozenset[str],
        exclude: frozenset[str],
        volatile: bool,
        timeout: float,
    ) -> ClusterAcks:
        """A BROADCAST with a requestId; the result collects the remote answers.

        The caller must call ``forget()`` on it when it stops waiting.
        """
        link = self._link(nsp)
        request_id = cm.new_id()

        def forget() -> None:
            link.acks.pop(request_id, None)

        acks = ClusterAcks(forget)
        timeout_ms = timeout * 1000
        message = cm.broadcast(
            link.uid,
            nsp,
            data,
            rooms,
            exclude,
            volatile,
            request_id=request_id,
            timeout_ms=int(timeout_ms) if timeout_ms == int(timeout_ms) else timeout_ms,
        )
        link.acks[request_id] = acks
        try:
            await self._transport.publish(message)
            acks.expect_servers(await self._transport.server_count(nsp) - 1)
        except BaseException:
            acks.forget()
            raise
        return acks

    async def _ask(
        self,
        link: _Link,
        what: str,
        message: Callable[[str], dict[str, Any]],
        timeout: float,
    ) -> list[Any]:
        expected = await self._transport.server_count(link.name) - 1
        if expected <= 0:
            return []
        request_id = cm.new_id()
        pending = link.pending[request_id] = _Pending(expected)
        try:
            await self._transport.publish(message(request_id))
            with trio.move_on_after(timeout):
                await pending.done.wait()
        finally:
            del link.pending[request_id]
        if not pending.done.is_set():
            raise ClusterTimeout(what, pending.items, expected=expected, received=pending.answers)
        return pending.items

    async def fetch_sockets(
        self, nsp: str, rooms: frozenset[str], exclude: frozenset[str]
    ) -> list[Mapping[str, Any]]:
        """FETCH_SOCKETS: the other servers' sockets, as they describe them."""
        link = self._link(nsp)
        return await self._ask(
            link,
            "fetch_sockets",
            lambda rid: cm.fetch_sockets(link.uid, nsp, rid, rooms, exclude),
            self.requests_timeout,
        )

    async def all_rooms(self, nsp: str) -> set[str]:
        """Nothing: this protocol has no such request (the server adds its own rooms)."""
        await trio.lowlevel.checkpoint()
        return set()

    async def server_count(self, nsp: str) -> int:
        """How many servers serve the namespace, this one included."""
        self._link(nsp)
        return max(await self._transport.server_count(nsp), 1)

    async def server_side_emit(self, nsp: str, data: list[Any]) -> None:
        """SERVER_SIDE_EMIT without acknowledgement."""
        link = self._link(nsp)
        await self._transport.publish(cm.server_side_emit(link.uid, nsp, data))

    async def server_side_emit_with_ack(
        self, nsp: str, data: list[Any], timeout: float | None
    ) -> list[Any]:
        """SERVER_SIDE_EMIT with a requestId: one answer per other server."""
        link = self._link(nsp)
        return await self._ask(
            link,
            "server_side_emit_with_ack",
            lambda rid: cm.server_side_emit(link.uid, nsp, data, rid),
            self.requests_timeout if timeout is None else timeout,
        )


async def _quietly(fn: Callable[..., Any], *args: Any) -> None:
    try:
        await fn(*args)
    except Exception:
        log.exception("error applying a request from another server")


async def _forget_later(ack: ForwardedAck, seconds: float) -> None:
    await trio.sleep(seconds)
    ack.forget()


if TYPE_CHECKING:
    from .._server.cluster import Adapter

    def _conforms(node: ClusterAdapterNode) -> Adapter:
        # mypy checks that a node is what Server(adapter=...) expects.
        return node
