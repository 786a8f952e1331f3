"""No leaks: thousands of connect / join / emit / disconnect cycles over the
in-memory network leave the server as they found it — live objects by type
and tracemalloc's total back to their level after the first cycles."""

from __future__ import annotations

import gc
import tracemalloc
from collections import Counter
from typing import Any

import trio
import trio.testing

import triosio
import triosio.testing

CYCLES = 1000
WARM_UP = 100


def census() -> Counter[str]:
    gc.collect()
    return Counter(type(o).__name__ for o in gc.get_objects())


async def cycles(sio: triosio.Server, server: Any, count: int) -> None:
    for i in range(count):
        async with server.connect(auth={"n": i}, reconnection=False) as client:
            assert await client.emit_with_ack("hello", i, timeout=5) == i
            await sio.to("room").emit("news", i)
        await server.wait_idle()
        # The in-memory network keeps every connection it made (so that tests
        # can cut them); these are closed: the harness's, not the server's.
        server.network.connections.clear()


async def test_connection_cycles_leave_nothing_behind(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sio = triosio.Server()
    connections = 0

    @sio.on("connection")
    async def connected(socket: triosio.Socket) -> None:
        nonlocal connections
        connections += 1
        await socket.join("room")
        await socket.join(f"own {socket.id}")
        socket.on("hello", lambda n: n)

    async with triosio.testing.serve_memory(sio) as server:
        await cycles(sio, server, WARM_UP)
        await trio.sleep(60)  # every timer of the closed connections falls due
        tracemalloc.start()
        try:
            before_objects = census()
            before_bytes = tracemalloc.get_traced_memory()[0]
            await cycles(sio, server, CYCLES)
            await trio.sleep(60)
            after_objects = census()
            after_bytes = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        assert connections == WARM_UP + CYCLES
        assert sio.router.sockets("/") == {}
        assert sio.engine.sessions == {}
        grown = {
            k: v - before_objects[k] for k, v in after_objects.items() if v > before_objects[k]
        }
        # Nothing grows with the number of cycles (a few objects of the
        # interpreter's own caches may come and go).
        assert all(n < CYCLES // 10 for n in grown.values()), grown
        assert after_bytes - before_bytes < 200 * 1024, (before_bytes, after_bytes)
