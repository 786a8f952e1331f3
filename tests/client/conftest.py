"""Fixtures of the client tests: the in-memory scripted peer and real servers."""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator

import pytest
import trio
from real_peers import ServerProcess, root_conftest
from scripted_peer import ScriptedPeer

#: The servers the interoperability tests run against. The triosio server joins
#: this list once it lands (see real_peers.py for the shape a kind provides).
SERVER_KINDS = ["node", "python"]


@pytest.fixture
def peer(nursery: trio.Nursery) -> ScriptedPeer:
    """The scripted in-memory peer (use with the ``autojump_clock`` fixture)."""
    return ScriptedPeer(nursery)


def _require(kind: str) -> None:
    helpers = root_conftest()
    if kind == "node":
        helpers.require_node_modules("socket.io")
    elif kind == "python":
        helpers.require(importlib.util.find_spec("socketio") is not None, "python-socketio")
        helpers.require(importlib.util.find_spec("aiohttp") is not None, "aiohttp")


@pytest.fixture(params=SERVER_KINDS)
async def server(request: pytest.FixtureRequest) -> AsyncIterator[ServerProcess]:
    """A real server, started for the test on 127.0.0.1 and stopped after it."""
    kind = request.param
    _require(kind)
    process = ServerProcess(kind)
    await process.start()
    try:
        yield process
    finally:
        await process.stop()
