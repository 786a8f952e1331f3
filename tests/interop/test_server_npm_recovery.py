"""Connection state recovery: the npm socket.io-client 4.8 against a triosio server.

The client's Engine.IO connection is closed under it (the server sees a
transport close); while it waits to reconnect, broadcasts go on; when it is
back it has the same id, ``recovered`` is true, its rooms and data are back on
the server, and every broadcast it missed arrived once, in order, before
anything new. The reference client gets each event's offset as an extra last
argument (it keeps the last one for its next CONNECT).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import trio
from server_peers import TRANSPORTS, NodeClients, NodeProcess, node_clients, running

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


async def until(check: Any, timeout: float = 10) -> Any:
    with trio.fail_after(timeout):
        while not (result := check()):  # noqa: ASYNC110 (any condition)
            await trio.sleep(0.005)
    return result


@pytest.mark.parametrize("transport", list(TRANSPORTS))
async def test_the_npm_client_recovers(peers: NodeClients, transport: str) -> None:
    sio = triosio.Server(connection_state_recovery=triosio.ConnectionStateRecovery())
    sockets: list[triosio.Socket] = []

    @sio.on("connection")
    async def connection(socket: triosio.Socket) -> None:
        sockets.append(socket)
        if not socket.recovered:
            await socket.join("news")
            socket.data["n"] = len(sockets)

    async with running(sio) as url:
        await peers.connect(
            "a",
            url,
            reconnection=True,
            reconnectionDelay=1000,
            randomizationFactor=0,
            **TRANSPORTS[transport],
        )
        await until(lambda: sockets)
        await sio.to("news").emit("tick", 0)
        await peers.wait_events("a", "tick", 1)
        await peers.call("closeEngine", client="a")
        await until(lambda: not sockets[0].connected)
        assert sockets[0].reason is triosio.DisconnectReason.TRANSPORT_CLOSE
        for n in range(1, 21):
            await sio.to("news").emit("tick", n)
        await sio.to("elsewhere").emit("tick", "not for it")
        await sio.volatile.emit("tick", "volatile, so lost")
        connects = await peers.wait_until(lambda: len(peers.of("a", "connect")) == 2 or None)
        del connects
        await sio.to("news").emit("tick", "live")
        ticks = await peers.wait_events("a", "tick", 22)
        first, again = peers.of("a", "connect")
        assert not first["recovered"] and again["recovered"]
        assert again["sid"] == first["sid"]
        assert [args[0] for args in ticks] == [*range(21), "live"]
        offsets = [args[1] for args in ticks]
        assert all(isinstance(o, str) for o in offsets) and len(set(offsets)) == 22
        old, back = sockets
        assert back.recovered and back.id == old.id
        assert back.rooms == {old.id, "news"} and back.data == {"n": 1}
