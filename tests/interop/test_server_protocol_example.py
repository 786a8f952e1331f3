"""examples/protocol_server.py, run as a program, against socket.io-client 4.8.3.

The Socket.IO side of the app the v5 protocol test suite expects: namespaces
``/`` and ``/custom``, ``auth`` emitted with the CONNECT payload,
``message`` -> ``message-back``, ``message-with-ack`` acknowledged, over each
transport, two namespaces on one connection, and an unknown namespace refused.
"""

from __future__ import annotations

import select
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from server_peers import TRANSPORTS, NodeClients, NodeProcess, node_clients

pytestmark = pytest.mark.interop

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "protocol_server.py"
ARGS = [1, "2", {"3": [4, None, True]}, b"\x05\x06\x07"]


@pytest.fixture(scope="module")
def node() -> Iterator[NodeProcess]:
    process = NodeProcess()
    yield process
    process.close()


@pytest.fixture
async def peers(node: NodeProcess) -> AsyncIterator[NodeClients]:
    async with node_clients(node) as clients:
        yield clients


@pytest.fixture(scope="module")
def example_url() -> Iterator[str]:
    """Run the example on a free port, once per module; stop it by its PID."""
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLE), "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 20)
        assert ready, "the example did not start"
        line = process.stdout.readline().decode()
        assert line.startswith("protocol test server on "), line
        yield line.split()[-1].rstrip("/")
    finally:
        process.kill()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


@pytest.mark.parametrize("transport", list(TRANSPORTS))
@pytest.mark.parametrize("nsp", ["/", "/custom"])
async def test_the_v5_suite_app(
    peers: NodeClients, example_url: str, transport: str, nsp: str
) -> None:
    url = example_url + ("" if nsp == "/" else nsp)
    await peers.connect("with auth", url, auth={"token": "123"}, **TRANSPORTS[transport])
    await peers.connect("no auth", url, **TRANSPORTS[transport])
    assert await peers.wait_events("with auth", "auth") == [[{"token": "123"}]]
    assert await peers.wait_events("no auth", "auth") == [[{}]]
    await peers.emit("with auth", "message", *ARGS)
    assert await peers.wait_events("with auth", "message-back") == [ARGS]
    assert await peers.emit_with_ack("with auth", "message-with-ack", *ARGS) == ARGS
    if transport == "upgrade":
        await peers.wait_until(lambda: peers.of("with auth", "upgrade"))
        assert await peers.emit_with_ack("with auth", "message-with-ack", "after") == ["after"]


async def test_two_namespaces_on_one_connection_and_an_unknown_one(
    peers: NodeClients, example_url: str
) -> None:
    main = await peers.connect("main", example_url, transports=["websocket"])
    custom = await peers.connect_shared("custom", "main", "/custom")
    assert main["sid"] != custom["sid"]
    await peers.wait_events("custom", "auth")
    assert await peers.emit_with_ack("custom", "message-with-ack", b"\x01") == [b"\x01"]
    assert await peers.emit_with_ack("main", "message-with-ack", 2) == [2]
    refused = await peers.connect("nope", example_url + "/nope")
    assert refused == {"error": {"message": "Invalid namespace", "data": None}}
