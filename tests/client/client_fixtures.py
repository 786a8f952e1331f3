"""Fixtures of the client tests: the in-memory scripted peer and real servers.

Test modules import the fixtures they use (``from client_fixtures import
peer_fixture``; the fixture is named ``peer``).
This is not a conftest.py on purpose: every conftest.py is imported as the module
"conftest", and tests elsewhere import helpers from the root one by that name.
"""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator

import pytest
import trio
from real_peers import ServerProcess, root_conftest
from scripted_peer import ScriptedPeer

#: The servers the interoperability tests run against.
SERVER_KINDS = ["node", "python", "triosio"]


@pytest.fixture(name="peer")
def peer_fixture(nursery: trio.Nursery) -> ScriptedPeer:
    """The scripted in-memory peer (use with the ``autojump_clock`` fixture)."""
    return ScriptedPeer(nursery)


def require_kind(kind: str) -> None:
    """Skip (or fail under CI) unless what the ``kind`` of server needs is there."""
    helpers = root_conftest()
    if kind == "node":
        helpers.require_node_modules("socket.io", "socket.io-msgpack-parser")
    elif kind == "python":
        helpers.require(importlib.util.find_spec("socketio") is not None, "python-socketio")
        helpers.require(importlib.util.find_spec("aiohttp") is not None, "aiohttp")
        helpers.require(importlib.util.find_spec("msgpack") is not None, "msgpack")


@pytest.fixture(name="server", params=SERVER_KINDS)
async def server_fixture(request: pytest.FixtureRequest) -> AsyncIterator[ServerProcess]:
    """A real server, started for the test on 127.0.0.1 and stopped after it."""
    kind = request.param
    require_kind(kind)
    process = ServerProcess(kind)
    await process.start()
    try:
        yield process
    finally:
        await process.stop()
