"""The Admin UI across a cluster: two triosio servers sharing a private Redis;
the UI (a triosio client in its place) on one sees both servers and the
other's sockets, and acts on them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
from cluster_peers import RedisProcess, require_binary

import triosio
import triosio.admin
from triosio.redis import RedisAdapter

pytestmark = pytest.mark.redis


async def eventually(check: Any, timeout: float = 15) -> None:
    with trio.fail_after(timeout):
        while not check():  # noqa: ASYNC110 (any condition)
            await trio.sleep(0.05)


@asynccontextmanager
async def two_servers() -> AsyncIterator[tuple[str, str]]:
    redis = RedisProcess(require_binary("redis-server"))
    try:
        servers = []
        for name in ("A", "B"):
            sio = triosio.Server(adapter=RedisAdapter(redis.url))
            triosio.admin.instrument(sio, auth=False, server_id=name)
            servers.append(sio)
        async with trio.open_nursery() as nursery:
            urls = []
            for sio in servers:
                listeners = await nursery.start(triosio.serve, sio, "127.0.0.1", 0)
                urls.append(f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}")
            yield urls[0], urls[1]
            nursery.cancel_scope.cancel()
    finally:
        redis.stop()


async def test_every_server_shows_up_and_the_ui_acts_across() -> None:
    async with (
        two_servers() as (url_a, url_b),
        triosio.connect(url_a, transports=("websocket",), reconnection=False) as first,
        triosio.Manager(url_b, transports=("websocket",), reconnection=False) as manager,
    ):
        seen: list[tuple[str, tuple[Any, ...]]] = []
        ui = manager.socket("/admin")
        ui.on_any(lambda event, *args: seen.append((event, args)))
        await ui.connect()

        def of(event: str) -> list[tuple[Any, ...]]:
            return [args for name, args in seen if name == event]

        # The UI is on B; A's socket is in its list, with its client id and
        # transport carried in the socket's data (as the reference does).
        await eventually(lambda: of("all_sockets"))
        ((sockets,),) = of("all_sockets")
        (remote,) = [s for s in sockets if s["id"] == first.id]
        assert remote["nsp"] == "/"
        assert remote["transport"] == "websocket"
        assert len(remote["clientId"]) == 12
        assert remote["data"] == {}

        # Both servers' stats arrive (B's own, A's through Redis).
        await eventually(lambda: {s["serverId"] for (s,) in of("server_stats")} == {"A", "B"})

        disconnected = trio.Event()
        async with triosio.connect(url_a, transports=("websocket",), reconnection=False) as second:
            second.on("disconnect", lambda reason: disconnected.set())
            second_id = second.id
            await eventually(lambda: any(s["id"] == second_id for s, _ in of("socket_connected")))
            # The UI's disconnect, sent to B, disconnects the socket on A.
            await ui.emit("_disconnect", "/", False, second_id)
            with trio.fail_after(10):
                await disconnected.wait()
            await eventually(lambda: any(a[1] == second_id for a in of("socket_disconnected")))
        assert first.connected
