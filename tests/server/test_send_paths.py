"""Send paths and the lifecycle, over the real stack on the in-memory network.

- *Cancelled means it did not happen* (trio's channels): an emit that raises
  ``Cancelled`` wrote and queued nothing; one that wrote does not raise it.
  Direct (the router's inbox is empty) and queued paths alike.
- One membership rule: a socket that is DISCONNECTING but still in the
  router's tables gets an emit whichever path it takes.
- A socket whose session closes after its registration was queued but before
  the router applied it never connected: no ``disconnect`` handler runs (as
  with the reference server, which ignores a socket whose connection closed
  while its middlewares ran).
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
from conftest import LIMIT, connect, serving, settle

import triosio
from triosio._server._commands import Call
from triosio._server.lifecycle import SocketState
from triosio.testing import MemoryNetwork

Reason = triosio.DisconnectReason


async def test_a_cancelled_direct_emit_wrote_nothing(
    autojump_clock: Any, net: MemoryNetwork
) -> None:
    sio = triosio.Server()
    sockets: list[triosio.Socket] = []
    sio.on("connection", sockets.append)
    got: list[Any] = []
    with trio.fail_after(LIMIT):
        async with serving(sio, net), connect(net) as client:
            client.on("n", got.append)
            await settle()
            (socket,) = sockets
            assert sio.router.queued == 0  # the direct path
            with trio.CancelScope() as scope:
                scope.cancel()
                await socket.emit("n", 1)
            assert scope.cancelled_caught
            await socket.emit("n", 2)
            await settle()
    assert got == [2]


async def test_a_cancelled_queued_emit_queued_nothing(
    autojump_clock: Any, net: MemoryNetwork
) -> None:
    sio = triosio.Server()
    sockets: list[triosio.Socket] = []
    sio.on("connection", sockets.append)
    got: list[Any] = []
    with trio.fail_after(LIMIT):
        async with serving(sio, net), connect(net) as client:
            client.on("n", got.append)
            client.on("b", lambda x: got.append(("b", x)))
            await settle()
            (socket,) = sockets
            await sio.emit("b", 0)  # queued, not yet applied: the inbox is not empty
            assert sio.router.queued == 1
            with trio.CancelScope() as scope:
                scope.cancel()
                await socket.emit("n", 1)
            assert scope.cancelled_caught
            await settle()
    assert got == [("b", 0)]


@pytest.mark.parametrize("burst", [1, 63, 64, 65, 200])
async def test_emits_cut_by_cancellation_match_what_arrived(
    autojump_clock: Any, net: MemoryNetwork, burst: int
) -> None:
    # The emitting task is cancelled at the first point another task gets to
    # run (the direct path yields every 64 writes); every emit that returned
    # arrived, and nothing else did.
    sio = triosio.Server()
    sockets: list[triosio.Socket] = []
    sio.on("connection", sockets.append)
    got: list[int] = []
    with trio.fail_after(LIMIT):
        async with serving(sio, net), connect(net) as client:
            client.on("n", got.append)
            await settle()
            (socket,) = sockets
            returned = 0
            with trio.CancelScope() as scope:

                async def cancel_when_scheduled() -> None:
                    scope.cancel()

                async with trio.open_nursery() as nursery:
                    for _ in range(burst):
                        nursery.start_soon(cancel_when_scheduled)
                    for i in range(1000):
                        await socket.emit("n", i)
                        returned += 1
            assert scope.cancelled_caught
            await settle()
    assert got == list(range(returned))
    assert 0 < returned < 1000


@pytest.mark.parametrize("path", ["direct", "queued"])
async def test_a_disconnecting_socket_gets_an_emit_on_either_path(
    autojump_clock: Any, net: MemoryNetwork, path: str
) -> None:
    sio = triosio.Server()
    sockets: list[triosio.Socket] = []
    sio.on("connection", sockets.append)
    release_listener = trio.Event()
    release_disconnecting = trio.Event()

    @sio.on("disconnecting")
    async def disconnecting(socket: triosio.Socket, reason: Any) -> None:
        await release_disconnecting.wait()  # the socket stays in the tables

    got: list[Any] = []
    with trio.fail_after(LIMIT):
        async with serving(sio, net), connect(net) as client:
            client.on("late", got.append)
            await settle()
            (socket,) = sockets

            @socket.on_any_outgoing
            async def hold(event: str, *args: Any) -> None:
                await release_listener.wait()
                if path == "queued":
                    # Something queued ahead: the emit must take the inbox.
                    await sio.to("nobody").emit("other")
                    assert sio.router.queued == 1

            async with trio.open_nursery() as nursery:
                nursery.start_soon(socket.emit, "late", 1)  # held past its check
                await settle()
                socket.client.closer.request(socket, Reason.SERVER_SHUTTING_DOWN)
                assert socket.state is SocketState.DISCONNECTING
                assert sio.router.holds(socket)
                release_listener.set()
                await settle()
                assert got == [1]
                release_disconnecting.set()
            await socket.wait_disconnected()
            assert not sio.router.holds(socket)


async def test_a_session_that_closes_before_the_router_registers_the_socket(
    autojump_clock: Any, net: MemoryNetwork
) -> None:
    sio = triosio.Server()
    seen: list[str] = []
    sockets: list[triosio.Socket] = []
    sio.on("connection", lambda socket: seen.append("connection"))
    sio.on("disconnecting", lambda socket, reason: seen.append("disconnecting"))
    sio.on("disconnect", lambda socket, reason: seen.append("disconnect"))

    @sio.use
    def close_once_queued(socket: triosio.Socket) -> None:
        # Ahead of the registration in the router's inbox: the session
        # closes between the registration being queued and being applied.
        session = socket.client.session
        sockets.append(socket)
        sio.router._inbox.put_nowait(Call(lambda router: session.close_nowait()))

    with trio.fail_after(LIMIT):
        async with serving(sio, net):
            with pytest.raises(triosio.ConnectError):
                async with connect(net):
                    pass
            await settle()
            (socket,) = sockets
            assert socket.state is SocketState.DISCONNECTED
            assert socket.reason is None  # it never connected, so never disconnected
            assert not sio.router.holds(socket)
            assert sio.router.sockets("/") == {}
            assert socket.client.sockets == {}
    assert seen == []
