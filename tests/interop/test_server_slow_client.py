"""One client stops reading (its TCP window fills) while 100 others get broadcasts.

Real loopback sockets: 100 npm socket.io-client sockets in one node process, and
one raw WebSocket client in Python that connects the main namespace, then never
reads again. The broadcasts never wait for anyone; the 100 get every one of
them, in order; the stuck one meets the documented policy: its bounded queue
overflows and it is disconnected with reason "slow client" (volatile packets
would just be dropped for it).
"""

from __future__ import annotations

import json
import socket as stdlib_socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import trio
import wsproto
import wsproto.events as wse
from server_peers import NodeClients, NodeProcess, node_clients

import triosio

pytestmark = pytest.mark.interop

CLIENTS = 100
PAYLOAD = b"\xab" * 16_384  # binary: cheap for node to receive
BROADCASTS = 40  # 640 kB to each client, 64 MB in all


@pytest.fixture(scope="module")
def node() -> Iterator[NodeProcess]:
    process = NodeProcess()
    yield process
    process.close()


@pytest.fixture
async def peers(node: NodeProcess) -> AsyncIterator[NodeClients]:
    async with node_clients(node) as clients:
        yield clients


async def stuck_client(port: int) -> tuple[trio.SocketStream, str]:
    """A WebSocket Socket.IO client that connects "/" and then never reads again."""
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_STREAM)
    # A small receive window, so that the server's writes back up quickly.
    sock.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_RCVBUF, 4096)
    await sock.connect(("127.0.0.1", port))
    stream = trio.SocketStream(sock)
    ws = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    target = "/socket.io/?EIO=4&transport=websocket"
    await stream.send_all(ws.send(wse.Request(host=f"127.0.0.1:{port}", target=target)))
    messages: list[str] = []
    while len(messages) < 2:
        ws.receive_data(await stream.receive_some(65536))
        for event in ws.events():
            if isinstance(event, wse.TextMessage):
                messages.append(event.data)
                if event.data.startswith("0"):  # OPEN: connect the main namespace
                    await stream.send_all(ws.send(wse.Message(data="40")))
    assert messages[1].startswith('40{"sid":"'), messages
    return stream, json.loads(messages[1][2:])["sid"]


async def test_one_stuck_client_among_100(peers: NodeClients) -> None:
    sio = triosio.Server(max_buffered_bytes=128_000)
    reasons: dict[str, Any] = {}

    @sio.on("connection")
    def connection(socket: triosio.Socket) -> None:
        socket.on("disconnect", lambda reason: reasons.setdefault(socket.id, reason))

    # Accepted sockets inherit the listener's send buffer size: a fixed 64 kB
    # (instead of autotuning up to megabytes) lets the stuck connection back up
    # into triosio's own queue after a few broadcasts rather than after MBs.
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    listeners[0].socket.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_SNDBUF, 32_768)
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: triosio.serve(
            sio, listeners=listeners, task_status=task_status
        ))
        port = listeners[0].socket.getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        async with trio.open_nursery() as connecting:
            for i in range(CLIENTS):
                connecting.start_soon(
                    lambda i=i: peers.connect(f"c{i}", url, transports=["websocket"], quiet=True)
                )
        stream, stuck_sid = await stuck_client(port)
        while len(sio.sockets.sockets) < CLIENTS + 1:  # noqa: ASYNC110
            await trio.sleep(0.01)

        # Volatile broadcasts are dropped for the stuck client, which stays.
        for n in range(BROADCASTS):
            await sio.volatile.emit("volatile", n, PAYLOAD)
            await trio.sleep(0.002)
        await trio.sleep(0.2)
        assert reasons == {}
        stuck = sio.sockets.sockets[stuck_sid]
        assert stuck.connected
        assert stuck.session.buffered_bytes <= sio.engine.options.max_buffered_bytes

        slowest = 0.0
        for n in range(BROADCASTS):
            start = trio.current_time()
            await sio.emit("data", n, PAYLOAD)
            slowest = max(slowest, trio.current_time() - start)
            await trio.sleep(0.02)

        with trio.fail_after(30):
            while True:
                counts = await peers.call("counts")
                if all(counts.get(f"c{i}", {}).get("data") == BROADCASTS for i in range(CLIENTS)):
                    break
                await trio.sleep(0.1)
        # The stuck client met the policy; nobody else was disconnected.
        assert reasons == {stuck_sid: triosio.DisconnectReason.SLOW_CLIENT}
        assert len(sio.sockets.sockets) == CLIENTS
        assert slowest < 0.5  # a broadcast never waits for a client
        await stream.aclose()
        nursery.cancel_scope.cancel()
