"""Connection state recovery in a real browser: the socket.io-client browser bundle
(npm, pinned) in headless Chromium against a triosio server with recovery on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio
from proc_helpers import bundle_page, run_node

import triosio

COUNT = 20


@pytest.mark.browser
@pytest.mark.parametrize("transports", ["polling,websocket", "websocket", "polling"])
async def test_the_browser_client_recovers(transports: str, tmp_path: Path) -> None:
    chromium = bundle_page(tmp_path, "recovery")
    sio = triosio.Server(connection_state_recovery=triosio.ConnectionStateRecovery())
    sockets: list[triosio.Socket] = []

    @sio.on("connection")
    async def connection(socket: triosio.Socket) -> None:
        sockets.append(socket)
        if not socket.recovered:
            await socket.join("news")
            socket.data["n"] = len(sockets)
            await sio.to("news").emit("tick", 0)

    @sio.on("disconnect")
    async def gone(socket: triosio.Socket, reason: triosio.DisconnectReason) -> None:
        # The client is away (it waits a second to reconnect): what it misses.
        for n in range(1, COUNT + 1):
            await sio.to("news").emit("tick", n)
        await sio.to("elsewhere").emit("tick", "not for it")

    rooms: list[set[str]] = []

    @sio.on("live")
    async def live(socket: triosio.Socket) -> None:
        rooms.append(set(socket.rooms))
        await sio.to("news").emit("tick", "live")

    app = triosio.App(sio, static={"/": tmp_path})
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(triosio.serve, app, "127.0.0.1", 0)
        port = listeners[0].socket.getsockname()[1]
        out = await run_node(
            "recovery_browser.js",
            f"http://127.0.0.1:{port}",
            transports,
            str(COUNT),
            timeout=90,
            env={"CHROMIUM_PATH": chromium},
        )
        nursery.cancel_scope.cancel()
    result = json.loads(out.strip().splitlines()[-1])
    assert result["ok"], result
    first, again = result["connects"]
    assert not first["recovered"] and again["recovered"]
    assert again["id"] == first["id"]
    ticks = result["ticks"]
    # The reference client gets each event's offset as its last argument.
    assert [t[0] for t in ticks] == [*range(COUNT + 1), "live"]
    assert len({t[1] for t in ticks}) == len(ticks)
    old, back = sockets
    assert back.recovered and back.id == old.id and back.data == {"n": 1}
    assert rooms == [{old.id, "news"}]
