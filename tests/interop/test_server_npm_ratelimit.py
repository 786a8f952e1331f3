"""Rate limits seen by the npm socket.io-client 4.8 over real sockets: the
error acknowledgement of a dropped event, and the disconnect policy."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from server_peers import NodeClients, NodeProcess, node_clients, running

import triosio

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def node() -> Iterator[NodeProcess]:
    process = NodeProcess()
    yield process
    process.close()


@pytest.fixture
async def peers(node: NodeProcess) -> AsyncIterator[NodeClients]:
    async with node_clients(node) as clients:
        yield clients


async def test_the_npm_client_gets_the_error_ack_and_the_disconnect(peers: NodeClients) -> None:
    sio = triosio.Server()

    @sio.on("connection")
    def connected(socket: triosio.Socket) -> None:
        # Slow enough that the test's round trips never earn a token back.
        socket.on("chat", lambda text: "ok", rate_limit=triosio.RateLimit(rate=0.01, burst=2))
        socket.on(
            "spam", lambda: None, rate_limit=triosio.RateLimit(rate=0.01, policy="disconnect")
        )

    async with running(sio) as url:
        await peers.connect("a", url, transports=["websocket"])
        answers = [await peers.emit_with_ack("a", "chat", "hi") for _ in range(3)]
        assert answers[:2] == [["ok"], ["ok"]]
        (refused,) = answers[2]
        assert refused["error"] == "rate limit exceeded" and refused["event"] == "chat"
        assert refused["retry_after"] > 0
        await peers.emit("a", "spam")
        await peers.emit("a", "spam")
        assert await peers.wait_disconnect("a") == "io server disconnect"
