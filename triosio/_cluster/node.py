"""One server's part in the cluster protocol, over any bus.

The protocol is that of ``@socket.io/redis-adapter`` 8.3.0 (§4-§6 of
``redis-wire.md``): broadcasts, requests and responses, per namespace, on the
channels of :mod:`.channels`. :class:`ClusterNode` is a complete cluster
adapter (what ``Server(adapter=...)`` takes) once it has a
:class:`~.bus.Bus`: it sends this server's broadcasts and requests and
collects the answers (here), and answers the other servers
(:class:`~.responder.Responder`). It asks its server only through the
:class:`~triosio._server.cluster.ClusterPort`. A malformed message is logged
and dropped.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import trio

from .._errors import ClusterTimeout
from .._server.cluster import ClusterPort
from .._server.remote import ClusterAcks
from . import messages
from .bus import Bus
from .channels import Channels, new_uid
from .messages import RequestType
from .responder import Responder
from .values import WireError, js_string, load_message, plain

# The Redis adapter's logger (users may have configured it), whatever the bus.
log = logging.getLogger("triosio.redis")

# What a subscription carries.
_BROADCASTS, _REQUESTS, _RESPONSES = range(3)


class _Pending:
    """A request of ours that waits for other servers' answers."""

    __slots__ = ("answers", "done", "expected", "items", "key")

    def __init__(self, expected: int, key: str | None) -> None:
        self.expected = expected
        self.key = key  # "sockets", "rooms", or None for server-side acks
        self.answers = 0
        self.items: list[Any] = []
        self.done = trio.Event()

    def answer(self, body: Mapping[Any, Any]) -> None:
        self.answers += 1
        if self.key is None:
            self.items.append(plain(body.get("data")))
        else:
            # As Node does: an answer without the list still counts.
            found = body.get(self.key)
            if isinstance(found, list):
                self.items.extend(found)
        if self.answers >= self.expected:
            self.done.set()


class Link:
    """A node's state for one namespace: its uid and channels, its requests in flight.

    Attributes:
        name: The namespace.
        channels: Its channels, with this server's uid.
        pending: Our queries and server-side emits awaiting answers, by requestId.
        acks: Our broadcasts awaiting acknowledgements, by requestId.
    """

    __slots__ = ("acks", "channels", "name", "pending")

    def __init__(self, key: str, name: str) -> None:
        self.name = name
        self.channels = Channels.make(key, name, new_uid())
        self.pending: dict[str, _Pending] = {}
        self.acks: dict[str, ClusterAcks] = {}


class _Malformed:
    """Logs dropped messages, at most one line a second (a flood must not flood the log)."""

    __slots__ = ("_last", "_suppressed")

    def __init__(self) -> None:
        self._last = -math.inf
        self._suppressed = 0

    def report(self, channel: bytes, why: str) -> None:
        now = trio.current_time()
        if now - self._last < 1.0:
            self._suppressed += 1
            return
        more = (
            f" ({self._suppressed} more dropped since the last report)" if self._suppressed else ""
        )
        log.warning(
            "dropped a malformed message on %s: %s%s",
            channel.decode("utf-8", "replace")[:200],
            why,
            more,
        )
        self._last = now
        self._suppressed = 0


class ClusterNode:
    """Connects a :class:`triosio.Server` to the other servers of a cluster over a bus.

    Implements the server's :class:`~triosio._server.cluster.Adapter`
    interface; the bus decides how the messages travel.

    Args:
        bus: How the messages travel.
        key_prefix: The channel prefix (the JavaScript option ``key``); every
            server of a cluster must use the same.
        requests_timeout: Seconds to wait for the other servers' answers to
            ``fetch_sockets``, ``all_rooms`` and ``server_side_emit_with_ack``.
        publish_on_specific_response_channel: Answer each request on the
            requester's own response channel.
    """

    def __init__(
        self,
        bus: Bus,
        *,
        key_prefix: str = "socket.io",
        requests_timeout: float = 5.0,
        publish_on_specific_response_channel: bool = False,
    ) -> None:
        if requests_timeout <= 0:
            raise ValueError("requests_timeout must be positive")
        self.key_prefix = key_prefix
        self.requests_timeout = requests_timeout
        self.publish_on_specific_response_channel = publish_on_specific_response_channel
        self._bus = bus
        self._links: dict[str, Link] = {}
        # Each subscription (a pattern or a channel) and what it carries.
        self._routes: dict[bytes, tuple[Link, int]] = {}
        self._malformed = _Malformed()
        self._responder: Responder | None = None

    # ------------------------------------------------------------ running

    async def run(
        self, port: ClusterPort, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Subscribe, then serve the other servers until cancelled (``Server.run`` starts this).

        Reports started once subscribed, or once the bus's first attempt
        failed (then it keeps trying in the background: the server serves
        its own clients).
        """
        if self._responder is not None:
            raise RuntimeError(f"a {type(self).__name__} serves one server, once")
        for name in port.namespace_names():
            self._link(name)
        async with trio.open_nursery() as nursery:
            self._responder = Responder(
                port,
                self._bus,
                nursery,
                requests_timeout=self.requests_timeout,
                specific_response=self.publish_on_specific_response_channel,
            )
            await nursery.start(self._bus.run, self._receive)
            task_status.started()

    def namespace_created(self, name: str) -> None:
        """Subscribe to a namespace created after the start (the server calls this)."""
        self._link(name)

    def _link(self, name: str) -> Link:
        # Made, and subscribed, on first use.
        link = self._links.get(name)
        if link is None:
            link = self._links[name] = Link(self.key_prefix, name)
            channels = link.channels
            self._routes[channels.pattern] = (link, _BROADCASTS)
            self._routes[channels.request] = (link, _REQUESTS)
            self._routes[channels.response] = (link, _RESPONSES)
            self._routes[channels.specific_response] = (link, _RESPONSES)
            # The order of the reference (§1): the pattern, then the three channels.
            self._bus.subscribe(
                [channels.pattern],
                [channels.request, channels.response, channels.specific_response],
            )
        return link

    @property
    def uids(self) -> Mapping[str, str]:
        """This server's uid in each namespace (they appear in every message it sends)."""
        return {name: link.channels.uid for name, link in self._links.items()}

    # ------------------------------------------------------------ incoming

    async def _receive(self, subscription: bytes, channel: bytes, payload: bytes) -> None:
        # What the bus calls with each message (a .bus.Receiver); never raises.
        route = self._routes.get(subscription)
        responder = self._responder
        if route is None or responder is None:
            return
        link, carries = route
        try:
            if carries == _BROADCASTS:
                await responder.on_broadcast(link, channel, payload)
            elif carries == _REQUESTS:
                await responder.on_request(link, payload)
            else:
                self._on_response(link, payload)
        except WireError as exc:
            self._malformed.report(channel, str(exc))
        except Exception:
            # Never let one message stop the bus.
            log.exception("error handling a message on %s", channel.decode("utf-8", "replace"))

    def _on_response(self, link: Link, payload: bytes) -> None:
        response = messages.parse_response(load_message(payload))
        if response is None:
            return
        acks = link.acks.get(response.request_id)
        if acks is not None:
            if response.type == RequestType.BROADCAST_CLIENT_COUNT:
                count = response.body.get("clientCount")
                if isinstance(count, int) and not isinstance(count, bool):
                    acks.client_count(count)
            elif response.type == RequestType.BROADCAST_ACK:
                acks.ack(plain(response.body.get("packet")))
            return
        pending = link.pending.get(response.request_id)
        if pending is not None:
            pending.answer(response.body)
        # Otherwise an answer to another server's request: not ours to read.

    # ------------------------------------------------------------ what the server calls

    async def publish_broadcast(
        self,
        nsp: str,
        data: list[Any],
        rooms: frozenset[str],
        exclude: frozenset[str],
        volatile: bool,
    ) -> None:
        """Send a broadcast to the other servers (§4): encoded once, here."""
        link = self._link(nsp)
        payload = messages.encode_broadcast(link.channels.uid, nsp, data, rooms, exclude, volatile)
        await self._bus.publish(link.channels.for_rooms(rooms), payload)

    def publish_rooms(
        self,
        nsp: str,
        rooms: frozenset[str],
        exclude: frozenset[str],
        change: frozenset[str],
        join: bool,
    ) -> None:
        """REMOTE_JOIN / REMOTE_LEAVE to the other servers (§5.4)."""
        link = self._link(nsp)
        payload = messages.encode_remote_rooms(link.channels.uid, join, rooms, exclude, change)
        self._bus.publish_nowait(link.channels.request, payload)

    def publish_disconnect(
        self, nsp: str, rooms: frozenset[str], exclude: frozenset[str], close: bool
    ) -> None:
        """REMOTE_DISCONNECT to the other servers (§5.4)."""
        link = self._link(nsp)
        payload = messages.encode_remote_disconnect(link.channels.uid, rooms, exclude, close)
        self._bus.publish_nowait(link.channels.request, payload)

    async def broadcast_with_ack(
        self,
        nsp: str,
        data: list[Any],
        rooms: frozenset[str],
        exclude: frozenset[str],
        volatile: bool,
        timeout: float,
    ) -> ClusterAcks:
        """A BROADCAST request (§5.5); the result collects the remote answers.

        The caller must call ``forget()`` on it when it stops waiting.
        """
        link = self._link(nsp)
        request_id = new_uid()

        def forget() -> None:
            link.acks.pop(request_id, None)

        acks = ClusterAcks(forget)
        timeout_ms = timeout * 1000
        payload = messages.encode_broadcast_request(
            link.channels.uid,
            request_id,
            nsp,
            data,
            rooms,
            exclude,
            int(timeout_ms) if timeout_ms == int(timeout_ms) else timeout_ms,
            volatile,
        )
        link.acks[request_id] = acks
        try:
            await self._bus.publish(link.channels.request, payload)
            # After publishing, as the reference does (§5.5).
            acks.expect_servers(await self._servers(link) - 1)
        except BaseException:
            acks.forget()
            raise
        return acks

    async def _servers(self, link: Link) -> int:
        # §6: the servers of the namespace are the subscribers of its request channel.
        return await self._bus.subscriber_count(link.channels.request)

    async def _ask(
        self,
        link: Link,
        what: str,
        key: str | None,
        payload: Callable[[str], bytes],
        timeout: float,
    ) -> list[Any]:
        expected = await self._servers(link) - 1
        if expected <= 0:
            return []
        request_id = new_uid()
        pending = link.pending[request_id] = _Pending(expected, key)
        try:
            await self._bus.publish(link.channels.request, payload(request_id))
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
        """REMOTE_FETCH (§5.1): the other servers' sockets, as they describe them."""
        link = self._link(nsp)
        uid = link.channels.uid
        found = await self._ask(
            link,
            "fetch_sockets",
            "sockets",
            lambda rid: messages.encode_fetch(uid, rid, rooms, exclude),
            self.requests_timeout,
        )
        return [s for s in found if isinstance(s, dict)]

    async def all_rooms(self, nsp: str) -> set[str]:
        """ALL_ROOMS (§5.2): the rooms of the other servers."""
        link = self._link(nsp)
        uid = link.channels.uid
        found = await self._ask(
            link,
            "all_rooms",
            "rooms",
            lambda rid: messages.encode_all_rooms(uid, rid),
            self.requests_timeout,
        )
        rooms: set[str] = set()
        for room in found:
            try:
                rooms.add(js_string(room))
            except WireError:
                continue
        return rooms

    async def server_count(self, nsp: str) -> int:
        """How many servers serve the namespace, this one included (§6)."""
        return max(await self._servers(self._link(nsp)), 1)

    async def server_side_emit(self, nsp: str, data: list[Any]) -> None:
        """SERVER_SIDE_EMIT without acknowledgement (§5.3)."""
        link = self._link(nsp)
        await self._bus.publish(
            link.channels.request, messages.encode_server_side_emit(link.channels.uid, data)
        )

    async def server_side_emit_with_ack(
        self, nsp: str, data: list[Any], timeout: float | None
    ) -> list[Any]:
        """SERVER_SIDE_EMIT with a requestId: one answer per other server (§5.3)."""
        link = self._link(nsp)
        uid = link.channels.uid
        return await self._ask(
            link,
            "server_side_emit_with_ack",
            None,
            lambda rid: messages.encode_server_side_emit(uid, data, rid),
            self.requests_timeout if timeout is None else timeout,
        )


if TYPE_CHECKING:
    from .._server.cluster import Adapter

    def _conforms(node: ClusterNode) -> Adapter:
        # mypy checks that a node is what Server(adapter=...) expects.
        return node
