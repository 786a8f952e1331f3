"""Trio's convention on every client send path: *Cancelled means it did not happen*.

A call that raises ``trio.Cancelled`` sent nothing and left nothing behind to be
sent later (buffer, retry queue); a call that sent returns normally. An
``emit_with_ack`` whose packet went out may still be cancelled while it waits for
the acknowledgement: then the wait is what is cancelled, not the send.

Each path is driven through its send point with a cancel scope cancelled in
advance, so the first checkpoint it reaches raises. A *marker* event emitted
afterwards on the same socket shows the order: once the server has the marker,
anything the cancelled call had let out (or buffered) would have arrived before it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

import triosio
import triosio.testing

Call = Callable[[triosio.ClientSocket], Awaitable[Any]]


class Recording:
    """A triosio server that acknowledges every event and records what it got."""

    def __init__(self) -> None:
        self.sio = triosio.Server()
        self.got: list[tuple[str, tuple[Any, ...]]] = []
        self.sockets: list[triosio.Socket] = []
        self.changed = trio.lowlevel.ParkingLot()

        @self.sio.on("connection")
        def connected(socket: triosio.Socket, auth: Any) -> None:
            self.sockets.append(socket)

            @socket.on_any
            def any_event(name: str, *args: Any) -> None:
                self.got.append((name, args))
                self.changed.unpark_all()

            for name in ("x", "message", "marker"):
                socket.on(name, lambda *args: "ok")

    def names(self) -> list[str]:
        return [name for name, _ in self.got]

    async def wait_for_marker(self) -> None:
        with trio.fail_after(60):
            while "marker" not in self.names():
                await self.changed.park()


@asynccontextmanager
async def serving(
    window: int = 256 * 1024,
) -> AsyncIterator[tuple[Recording, triosio.testing.MemoryServer]]:
    recording = Recording()
    async with triosio.testing.serve_memory(recording.sio, window=window) as server:
        yield recording, server


async def cancelled_in_advance(call: Awaitable[Any]) -> bool:
    """Await ``call`` in a scope cancelled before it starts; whether it was cancelled."""
    with trio.CancelScope() as scope:
        scope.cancel()
        await call
    return scope.cancelled_caught


# The send paths of a connected socket, and of one that is not connected (the
# buffer). ``retries`` sends through the at-least-once queue.
PATHS: dict[str, Call] = {
    "emit": lambda s: s.emit("x", 1),
    "send": lambda s: s.send(1),
    "volatile emit": lambda s: s.volatile.emit("x", 1),
    "volatile send": lambda s: s.volatile.send(1),
    "emit_with_ack": lambda s: s.emit_with_ack("x", 1),
    "timeout emit_with_ack": lambda s: s.timeout(5).emit_with_ack("x", 1),
    "volatile emit_with_ack": lambda s: s.volatile.emit_with_ack("x", 1),
}


@pytest.mark.parametrize("connected", [True, False], ids=["connected", "disconnected"])
@pytest.mark.parametrize("retries", [0, 2])
@pytest.mark.parametrize("path", sorted(PATHS))
async def test_a_cancelled_send_sent_nothing(
    autojump_clock: trio.abc.Clock, path: str, retries: int, connected: bool
) -> None:
    # Not connected yet, the socket would buffer the event (or queue it, with
    # retries) for its connection.
    async with serving() as (recording, server):
        connector = server.network.connector
        async with triosio.Manager("http://triosio.test", connector=connector) as manager:
            sock = manager.socket("/", retries=retries, ack_timeout=5)
            if connected:
                await sock.connect()
            assert await cancelled_in_advance(PATHS[path](sock))
            await sock.connect()
            await sock.emit("marker")
            await recording.wait_for_marker()
            await trio.sleep(30)  # time for any retry of a packet that did go out
    assert recording.names() == ["marker"]


@pytest.mark.parametrize("retries", [0, 2])
@pytest.mark.parametrize("volatile", [False, True])
async def test_a_send_that_returns_was_sent(
    autojump_clock: trio.abc.Clock, retries: int, volatile: bool
) -> None:
    # The other half of the convention: without cancellation, every path sends.
    async with (
        serving() as (recording, server),
        server.connect(retries=retries, ack_timeout=5) as client,
    ):
        flags = client.volatile if volatile else client.timeout(5)
        await flags.emit("x", 1)
        assert await flags.emit_with_ack("x", 2) == "ok"
        await flags.send(3)
        await client.emit("marker")
        await recording.wait_for_marker()
    assert recording.got == [("x", (1,)), ("x", (2,)), ("message", (3,)), ("marker", ())]


async def test_an_emit_cancelled_while_waiting_for_queue_space_sent_nothing(
    autojump_clock: trio.abc.Clock,
) -> None:
    from triosio._client.connection import HIGH_WATER

    async with (
        serving(window=4096) as (recording, server),
        server.connect(transports=["websocket"]) as client,
    ):
        server.link(client).hold()  # the server stops reading: writes back up
        sent = 0
        with trio.move_on_after(10) as scope:
            for i in range(4 * HIGH_WATER):
                await client.emit("x", i)
                sent += 1
        assert scope.cancelled_caught  # the emit waited for queue space
        server.link(client).release()
        await client.emit("marker")
        await recording.wait_for_marker()
    # Every emit that returned arrived; the one cancelled while it waited did not.
    assert recording.got[:-1] == [("x", (i,)) for i in range(sent)]


async def test_an_emit_with_ack_cancelled_after_the_send_only_stops_waiting(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with serving() as (recording, server), server.connect() as client:
        with trio.move_on_after(1) as scope:
            await client.emit_with_ack("slow", 1)  # the server never acknowledges it
        assert scope.cancelled_caught
        await client.emit("marker")
        await recording.wait_for_marker()
    assert recording.names() == ["slow", "marker"]


async def test_an_event_cancelled_in_the_retry_queue_is_never_sent(
    autojump_clock: trio.abc.Clock,
) -> None:
    # With retries, events go out one at a time: "x" waits behind "slow", which
    # the server never acknowledges, and its caller gives up before its turn.
    async with (
        serving() as (recording, server),
        server.connect(retries=1, ack_timeout=5) as client,
    ):
        await client.emit("slow")
        with trio.move_on_after(1) as scope:
            await client.emit_with_ack("x", 1)
        assert scope.cancelled_caught
        await client.emit("marker")
        await recording.wait_for_marker()
    assert recording.names() == ["slow", "slow", "marker"]


async def test_a_cancelled_ack_sent_nothing(autojump_clock: trio.abc.Clock) -> None:
    # event.ack() is a send path too: cancelled, it sends nothing and the event
    # can still be acknowledged.
    answers: list[Any] = []
    async with (
        serving() as (recording, server),
        server.connect() as client,
        trio.open_nursery() as nursery,
    ):
        with client.events("question") as stream:
            (server_socket,) = recording.sockets

            async def ask() -> None:
                answers.append(await server_socket.emit_with_ack("question", timeout=10))

            nursery.start_soon(ask)
            event = await stream.__anext__()
            assert event.ack_requested
            assert await cancelled_in_advance(event.ack("cancelled"))
            await trio.sleep(1)
            assert answers == []
            await event.ack("sent")
    assert answers == ["sent"]


async def test_a_cancelled_disconnect_did_not_disconnect(autojump_clock: trio.abc.Clock) -> None:
    async with serving() as (recording, server), server.connect() as client:
        assert await cancelled_in_advance(client.disconnect())
        assert await cancelled_in_advance(client.manager.disconnect())
        assert client.connected
        await client.emit("marker")
        await recording.wait_for_marker()
        (server_socket,) = recording.sockets
        assert server_socket.connected
