"""permessage-deflate with the npm socket.io-client 4.8.3 (the ``ws`` package in
Node) under each context-takeover setting, read back from ``ws`` itself.

tests/integration/test_compression_peers.py runs the default options; here the
server keeps its context (as the reference does), asks the client not to keep
its own, and compresses everything (threshold 0), and ``ws`` must agree and
inflate what it gets. What the server compressed and inflated is counted at
its compressor and inflater.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from server_peers import NodeClients, NodeProcess, node_clients, running

import triosio
from triosio._engine import deflate as deflate_module

pytestmark = pytest.mark.interop

BIG = {"text": "lorem ipsum dolor sit amet " * 100}  # ~2.7 KB: above the threshold
SMALL = {"text": "hi"}


@pytest.fixture(scope="module")
def node() -> Iterator[NodeProcess]:
    process = NodeProcess()
    yield process
    process.close()


@pytest.fixture
async def peers(node: NodeProcess) -> AsyncIterator[NodeClients]:
    async with node_clients(node) as clients:
        yield clients


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How many messages the server compressed with its kept context, and inflated."""
    seen = {"deflate": 0, "inflate": 0}
    deflate = deflate_module.Deflater.deflate
    inflate = deflate_module.Inflater.inflate

    def counting_deflate(self: deflate_module.Deflater, data: bytes) -> bytes:
        seen["deflate"] += 1
        return deflate(self, data)

    def counting_inflate(self: deflate_module.Inflater, payload: bytes, max_size: int) -> bytes:
        seen["inflate"] += 1
        return inflate(self, payload, max_size)

    monkeypatch.setattr(deflate_module.Deflater, "deflate", counting_deflate)
    monkeypatch.setattr(deflate_module.Inflater, "inflate", counting_inflate)
    return seen


def echo_server(**options: Any) -> triosio.Server:
    sio = triosio.Server(**options)

    @sio.on("echo")
    async def echo(socket: triosio.Socket, data: Any) -> Any:
        return data

    return sio


@pytest.mark.parametrize(
    ("options", "params"),
    [
        (
            triosio.PerMessageDeflate(server_no_context_takeover=False),
            {},
        ),
        (
            triosio.PerMessageDeflate(
                server_no_context_takeover=False, client_no_context_takeover=True, threshold=0
            ),
            {"client_no_context_takeover": True},
        ),
        (
            triosio.PerMessageDeflate(server_no_context_takeover=False, server_max_window_bits=10),
            # Not announced (the client did not ask): a smaller window than
            # the client's needs no word, any inflater with 15 bits reads it.
            {},
        ),
    ],
    ids=["takeover", "client-nct-threshold-0", "server-window-10"],
)
async def test_the_npm_client_agrees_and_inflates(
    peers: NodeClients,
    counted: dict[str, int],
    options: triosio.PerMessageDeflate,
    params: dict[str, Any],
) -> None:
    async with running(echo_server(per_message_deflate=options)) as url:
        await peers.connect("a", url, transports=["websocket"])
        # ws offers client_max_window_bits: the server answers with the window.
        expected = {**params, "client_max_window_bits": 15}
        assert await peers.call("extensions", client="a") == {"permessage-deflate": expected}
        for value in (BIG, SMALL, BIG, BIG):
            assert await peers.emit_with_ack("a", "echo", value) == [value]
    # ws compresses what it sends from 1 KiB (its default threshold).
    assert counted["inflate"] == 3
    # The server: the three big ones (with threshold 0 also the small one, the
    # OPEN packet and the Socket.IO CONNECT answer).
    if options.threshold == 0:
        assert counted["deflate"] >= 6
    else:
        assert counted["deflate"] == 3


async def test_the_npm_client_without_deflate(peers: NodeClients, counted: dict[str, int]) -> None:
    async with running(echo_server(per_message_deflate=True)) as url:
        await peers.connect("a", url, transports=["websocket"], perMessageDeflate=False)
        assert await peers.call("extensions", client="a") == {}
        assert await peers.emit_with_ack("a", "echo", BIG) == [BIG]
    assert counted == {"deflate": 0, "inflate": 0}
