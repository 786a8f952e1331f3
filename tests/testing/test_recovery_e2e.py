"""Connection state recovery end to end: a triosio client and server in memory.

A client cut from the network while broadcasts go on gets, once it is back,
every broadcast it missed exactly once and in order, with the same socket id,
rooms and data, and ``recovered`` true on both sides; after the window it is a
new socket. All on the mock clock.
"""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

import triosio
import triosio.testing


def recovering_server(window: float = 120) -> tuple[triosio.Server, list[triosio.Socket]]:
    sio = triosio.Server(
        connection_state_recovery=triosio.ConnectionStateRecovery(
            max_disconnection_duration=window
        )
    )
    sockets: list[triosio.Socket] = []

    @sio.on("connection")
    async def connected(socket: triosio.Socket) -> None:
        sockets.append(socket)
        if not socket.recovered:
            await socket.join("news")
            socket.data["first_seen"] = trio.current_time()

    return sio, sockets


async def until(check: Any) -> None:
    while not check():  # noqa: ASYNC110 (a test helper: any condition)
        await trio.sleep(0.1)


async def run_drop_and_return(
    transport: str, away: float, window: float = 120
) -> tuple[triosio.ClientSocket, list[triosio.Socket], list[Any], set[str]]:
    sio, sockets = recovering_server(window)
    got: list[Any] = []
    async with triosio.testing.serve_memory(sio) as server:
        client = await server.client(
            transports=[transport], reconnection_delay=1, randomization_factor=0
        )
        client.on("tick", lambda *args: got.append(args))
        await sio.to("news").emit("tick", 0)
        await until(lambda: len(got) == 1)
        lost = trio.Event()
        client.on("disconnect", lambda reason: lost.set())
        link = server.link(client)
        link.refuse = True  # it stays away until we let it back
        link.cut()
        await lost.wait()
        for n in range(1, 21):
            await sio.to("news").emit("tick", n)
            await sio.emit("tick", f"to all {n}")
        await sio.to("elsewhere").emit("tick", "not for it")
        await sio.volatile.emit("tick", "volatile, so lost")
        await trio.sleep(away)
        back = trio.Event()
        client.on("connect", back.set)
        link.refuse = False
        await back.wait()
        await sio.to("news").emit("tick", "live")
        await until(lambda: got and got[-1] == ("live",))
        rooms = set(sockets[-1].rooms)
        await client.disconnect()
    return client, sockets, got, rooms


async def test_a_client_back_within_the_window_gets_everything_once_in_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    for transport in ("websocket", "polling"):
        with trio.fail_after(600):
            client, sockets, got, rooms = await run_drop_and_return(transport, away=30)
        first, again = sockets
        assert again.recovered and client.recovered
        assert again.id == first.id
        assert rooms == {first.id, "news"}
        assert again.data == first.data
        expected = [(0,)]
        for n in range(1, 21):
            expected += [(n,), (f"to all {n}",)]
        # No offset in what the app gets; nothing twice, nothing lost, in order.
        assert got == [*expected, ("live",)], transport


async def test_past_the_window_the_client_is_a_new_socket(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(600):
        client, sockets, got, rooms = await run_drop_and_return("websocket", away=130, window=120)
    first, again = sockets
    assert not again.recovered and not client.recovered
    assert again.id != first.id
    assert rooms == {again.id, "news"}  # joined afresh by the connection handler
    assert got == [(0,), ("live",)]
