"""Deterministic, in-memory tests for Socket.IO apps built with triosio.

Run your real :class:`triosio.Server` and real clients (the same
:class:`triosio.ClientSocket` API as :func:`triosio.connect`) over an in-memory
network: no ports, no threads, and every timer on the Trio clock, so tests run
under ``trio.testing.MockClock(autojump_threshold=0)`` (pytest-trio's
``autojump_clock`` fixture): a minute of pings, ack timeouts and reconnection
backoff takes milliseconds, identically on every run.

::

    import triosio.testing

    async def test_greeting(autojump_clock):
        sio = make_my_server()
        async with triosio.testing.serve_memory(sio) as server:
            async with server.connect() as client:
                assert await client.emit_with_ack("hello", timeout=5) == "hi!"

Helpers cut a client's connection abruptly (:meth:`Link.cut`), make it stop
reading (:meth:`Link.pause`), refuse its reconnections (:attr:`Link.refuse`),
and wait until the server has nothing left to do (:meth:`MemoryServer.wait_idle`).
See ``docs/testing.md``.
"""

from __future__ import annotations

import contextlib
import functools
import random
from collections.abc import AsyncIterator, Iterator
from typing import Any, final

import trio
import trio.testing

from ._client.connect import connect
from ._client.socket import ClientSocket
from ._common import ids
from ._engine.app import App, Mountable, serve
from ._server.server import Server
from ._testing_net import (
    DEFAULT_WINDOW,
    MemoryConnection,
    MemoryListener,
    MemoryNetwork,
    MemoryStream,
)

__all__ = [
    "Link",
    "MemoryConnection",
    "MemoryListener",
    "MemoryNetwork",
    "MemoryServer",
    "MemoryStream",
    "deterministic",
    "serve_memory",
]


@contextlib.contextmanager
def deterministic(seed: int | str = 0) -> Iterator[None]:
    """Make what runs inside repeatable: Trio's scheduling order, triosio's ids
    and the ``random`` module's draws (reconnection jitter).

    Trio runs the tasks that became runnable together in a random order (on
    purpose: code must not depend on it), and triosio's session and socket
    ids are random. Inside this context both come from ``seed``: the same
    program under ``MockClock`` over the in-memory network runs the same way,
    task for task, with the same ids, every time — so a failure seen once can
    be replayed, and a log can be compared whole. Another seed explores
    another order. Enter it *before* ``trio.run`` (with pytest-trio: a plain,
    not async, fixture)::

        @pytest.fixture(autouse=True)
        def same_every_run():
            with triosio.testing.deterministic(seed=1):
                yield

    It seeds Trio's scheduler through a private hook (the one Hypothesis
    uses), checked by triosio's tests against the Trio version installed.
    Not for production: the ids become guessable.
    """
    from trio._core import _run  # private: the scheduler's own random source

    rng = _run._r
    saved_state = rng.getstate()
    saved_mode = _run._ALLOW_DETERMINISTIC_SCHEDULING
    saved_bytes = ids.random_bytes
    saved_random = random.getstate()
    rng.seed(f"trio {seed!r}")
    # The standard generator too: clients' reconnection jitter draws from it.
    random.seed(f"random {seed!r}")
    # Each batch of runnable tasks sorted by creation, then shuffled by the
    # seeded generator: an order that depends on the seed only.
    _run._ALLOW_DETERMINISTIC_SCHEDULING = True  # type: ignore[misc]
    ids.random_bytes = random.Random(f"ids {seed!r}").randbytes
    try:
        yield
    finally:
        ids.random_bytes = saved_bytes
        random.setstate(saved_random)
        _run._ALLOW_DETERMINISTIC_SCHEDULING = saved_mode  # type: ignore[misc]
        rng.setstate(saved_state)


@final
class Link:
    """The network link of one test client: every connection it opened.

    A client may hold several connections (two for HTTP long-polling, one for
    its WebSocket, new ones after each reconnection); the link acts on all.

    Attributes:
        connections: The client's connections, oldest first.
        refuse: While true, the client's new connections fail (the server
            looks down to this client only), e.g. to test reconnection backoff.
    """

    def __init__(self, network: MemoryNetwork) -> None:
        self._network = network
        self.connections: list[MemoryConnection] = []
        self.refuse = False
        self.attempts = 0

    async def connector(self, host: str, port: int, tls: object = None) -> trio.abc.Stream:
        """The client's ``connector``: opens connections on the memory network."""
        self.attempts += 1
        if self.refuse:
            await trio.lowlevel.checkpoint()
            raise OSError("connection refused (Link.refuse is set)")
        stream = await self._network.connect()
        self.connections.append(stream.connection)
        return stream

    def cut(self) -> None:
        """Break every connection of the client abruptly (a network failure)."""
        for connection in self.connections:
            connection.cut()

    def pause(self) -> None:
        """The client stops reading: what the server sends piles up, then waits."""
        for connection in self.connections:
            connection.pause_client()

    def resume(self) -> None:
        """The client reads again."""
        for connection in self.connections:
            connection.resume_client()

    def hold(self) -> None:
        """The server stops reading the client: what it sends piles up, then waits."""
        for connection in self.connections:
            connection.pause_server()

    def release(self) -> None:
        """The server reads the client again: what piled up arrives at once, as a burst."""
        for connection in self.connections:
            connection.resume_server()

    def freeze(self) -> None:
        """The client's machine freezes: nothing gets through, either way.

        Unlike :meth:`cut`, neither side sees the connection end; the server
        notices through its heartbeat (reason "ping timeout").
        """
        for connection in self.connections:
            connection.freeze()


@final
class MemoryServer:
    """A server running on an in-memory network; create it with :func:`serve_memory`.

    Attributes:
        app: What is served (a :class:`triosio.Server` or :class:`triosio.App`).
        network: The in-memory network.
    """

    def __init__(
        self, app: Server | App | Mountable, network: MemoryNetwork, nursery: trio.Nursery
    ) -> None:
        self.app = app
        self.network = network
        self._nursery = nursery
        self._links: dict[int, Link] = {}

    @property
    def servers(self) -> list[Server]:
        """The Socket.IO servers being served."""
        if isinstance(self.app, Server):
            return [self.app]
        if isinstance(self.app, App):
            return [s for s in self.app.servers if isinstance(s, Server)]
        return []

    @contextlib.asynccontextmanager
    async def connect(
        self, namespace: str = "/", *, link: Link | None = None, **options: Any
    ) -> AsyncIterator[ClientSocket]:
        """Connect a client to ``namespace``; leaving the block disconnects it.

        Takes every option of :func:`triosio.connect` (``auth``, ``transports``,
        ``reconnection_delay``, ``random``...). The client's :class:`Link` is
        ``server.link(client)``.
        """
        the_link = link or Link(self.network)
        path = namespace if namespace.startswith("/") else "/" + namespace
        async with connect(
            f"http://triosio.test{path}", connector=the_link.connector, **options
        ) as client:
            self._links[id(client)] = the_link
            try:
                yield client
            finally:
                self._links.pop(id(client), None)

    async def client(self, namespace: str = "/", **options: Any) -> ClientSocket:
        """Like :meth:`connect`, without a block: the client lives until the server stops.

        The client runs in a task of the server's nursery, so it may be created
        from any task (a test, a fixture).
        """
        client: ClientSocket = await self._nursery.start(self._hold_client, namespace, options)
        return client

    async def _hold_client(
        self,
        namespace: str,
        options: dict[str, Any],
        *,
        task_status: trio.TaskStatus[ClientSocket],
    ) -> None:
        async with self.connect(namespace, **options) as client:
            task_status.started(client)
            await trio.sleep_forever()

    def link(self, client: ClientSocket) -> Link:
        """The network link of a client made by :meth:`connect` or :meth:`client`."""
        return self._links[id(client)]

    async def wait_idle(self) -> None:
        """Wait until every task is blocked and every router inbox is empty.

        Under a MockClock this does not advance time: it lets what is already
        in flight finish (deliveries, handlers), then returns.
        """
        while True:
            await trio.testing.wait_all_tasks_blocked()
            if all(server.router.queued == 0 for server in self.servers):
                return


@contextlib.asynccontextmanager
async def serve_memory(
    app: Server | App | Mountable,
    *,
    window: int = DEFAULT_WINDOW,
    network: MemoryNetwork | None = None,
) -> AsyncIterator[MemoryServer]:
    """Serve ``app`` on an in-memory network for the duration of the block.

    Args:
        app: A :class:`triosio.Server` (or an :class:`triosio.App`).
        window: Bytes a side of a connection may leave unread before the other
            side's writes wait (a TCP window).
        network: The network to serve on (a new one by default); its
            ``connector`` connects any client, e.g. ``triosio.connect(url,
            connector=network.connector)``.
    """
    if network is None:
        network = MemoryNetwork(window)
    async with trio.open_nursery() as nursery:
        await nursery.start(functools.partial(serve, app, listeners=[network.listener]))
        try:
            yield MemoryServer(app, network, nursery)
        finally:
            nursery.cancel_scope.cancel()
