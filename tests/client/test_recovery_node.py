"""Connection state recovery: triosio's client against the npm socket.io 4.8 server.

The server (connectionStateRecovery on) closes the client's connection and
broadcasts to its room while it is away; the client reconnects with its pid
and last offset and gets the same id, ``recovered`` true on both ends, its
room and data kept, and every missed event once, in order, without the offsets
in its arguments.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
from client_fixtures import require_kind
from real_peers import ServerProcess

import triosio


@pytest.mark.parametrize("transports", [["websocket"], ["polling"], ["polling", "websocket"]])
async def test_the_client_recovers_against_node(transports: list[str]) -> None:
    require_kind("node")
    server = ServerProcess("node", recovery=True)
    await server.start()
    try:
        with trio.fail_after(20):
            async with triosio.connect(
                server.url,
                transports=transports,
                reconnection_delay=0.5,
                randomization_factor=0,
            ) as client:
                assert not client.recovered
                first_id = client.id
                await client.emit_with_ack("join", "news")
                await client.emit_with_ack("data", {"k": 1})
                # The reference server recovers only a client that sends an
                # offset: it must have received an event first.
                pushed = trio.Event()
                client.on("pushed", lambda n: pushed.set())
                await client.emit("push", 1)
                await pushed.wait()
                ticks: list[tuple[Any, ...]] = []
                client.on("tick", lambda *args: ticks.append(args))
                back = trio.Event()
                client.on("connect", back.set)
                await client.emit("drop", "news", 20)
                await back.wait()
                assert client.recovered and client.id == first_id
                seen = await client.emit_with_ack("recovered")
                assert seen == {"sid": first_id, "recovered": True}
                assert "news" in await client.emit_with_ack("join", "other")
                assert await client.emit_with_ack("data") == {"value": {"k": 1}}
                while len(ticks) < 20:  # noqa: ASYNC110 (a bounded poll)
                    await trio.sleep(0.01)
                assert ticks == [(n,) for n in range(20)]
    finally:
        await server.stop()


async def test_a_server_without_recovery_gives_a_new_id() -> None:
    require_kind("node")
    server = ServerProcess("node")
    await server.start()
    try:
        with trio.fail_after(20):
            async with triosio.connect(
                server.url, reconnection_delay=0.5, randomization_factor=0
            ) as client:
                first_id = client.id
                back = trio.Event()
                client.on("connect", back.set)
                await client.emit("drop", "news", 3)
                await back.wait()
                assert not client.recovered and client.id != first_id
    finally:
        await server.stop()
