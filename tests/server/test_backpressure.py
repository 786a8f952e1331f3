"""Slow clients: bounded queues, the documented policy, and backpressure for producers."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import pytest
import trio
from conftest import LIMIT, RawPolling, connect, serving, settle

import triosio
from triosio.testing import MemoryNetwork

Reason = triosio.DisconnectReason
BLOB = "x" * 4000


async def test_a_stuck_client_is_disconnected_others_are_not_delayed(
    autojump_clock: Any,
) -> None:
    net = MemoryNetwork(window=16_384)
    sio = triosio.Server(max_buffered_bytes=64_000)
    sockets: dict[str, triosio.Socket] = {}
    reasons: dict[str, Any] = {}

    @sio.on("connection")
    def connection(socket: triosio.Socket, auth: dict[str, str]) -> None:
        sockets[auth["name"]] = socket
        socket.on("disconnect", lambda r: reasons.setdefault(auth["name"], r))

    got: dict[str, list[int]] = {}
    with trio.fail_after(LIMIT):
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(serving(sio, net))
            for i in range(20):
                name = f"fast{i}"
                client = await stack.enter_async_context(connect(net, auth={"name": name}))
                got[name] = []
                client.on("n", lambda n, _blob, name=name: got[name].append(n))
            stuck = await stack.enter_async_context(connect(net, auth={"name": "stuck"}))
            stuck_reasons: list[Any] = []
            stuck.on("disconnect", stuck_reasons.append)
            await settle()
            net.connections[-1].pause_client()  # it stops reading

            for n in range(200):
                start = trio.current_time()
                await sio.emit("n", n, BLOB)
                assert trio.current_time() == start  # a broadcast never waits for a client
                # 100 broadcasts a second: the fast clients keep up. (A burst larger
                # than max_buffered_bytes would be too much for every client.)
                await trio.sleep(0.01)
            await settle()
            assert all(numbers == list(range(200)) for numbers in got.values())
            assert reasons == {"stuck": Reason.SLOW_CLIENT}
            assert "stuck" not in {s for s, x in sockets.items() if x.connected}
            assert len(await sio.fetch_sockets()) == 20


async def test_direct_emits_wait_for_space(autojump_clock: Any) -> None:
    net = MemoryNetwork(window=16_384)
    sio = triosio.Server(max_buffered_bytes=64_000)
    sockets: list[triosio.Socket] = []
    sio.on("connection", sockets.append)
    got: list[int] = []
    with trio.fail_after(LIMIT):
        async with serving(sio, net), connect(net) as client:
            client.on("n", lambda n, _blob: got.append(n))
            await settle()
            (socket,) = sockets
            connection = net.connections[-1]
            connection.pause_client()
            sent: list[int] = []

            async def produce() -> None:
                for n in range(100):
                    await socket.emit("n", n, BLOB)  # backpressure: waits when full
                    sent.append(n)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(produce)
                await settle()
                await trio.sleep(10)
                stalled = len(sent)
                assert 0 < stalled < 100  # the producer waits, the client stays
                assert socket.connected
                connection.resume_client()
            await settle()
    assert got == list(range(100))


async def test_acks_wait_for_space_too(autojump_clock: Any) -> None:
    # A client that asks for acks and never reads them ends up not being read:
    # its own events wait, instead of the server queueing acks without bound.
    net = MemoryNetwork(window=16_384)
    sio = triosio.Server(max_buffered_bytes=64_000, max_pending_events=4)
    handled: list[int] = []

    @sio.on("echo")
    def echo(socket: triosio.Socket, n: int, blob: str) -> tuple[int, str]:
        handled.append(n)
        return n, blob

    with trio.fail_after(LIMIT):
        async with serving(sio, net), connect(net) as client:
            connection = net.connections[-1]
            connection.pause_client()
            with trio.move_on_after(30):
                async with trio.open_nursery() as nursery:
                    for n in range(200):
                        nursery.start_soon(client.emit_with_ack, "echo", n, BLOB)
            assert len(handled) < 200  # the server stopped taking events
            sessions = list(sio.engine.sessions.values())
            assert sessions
            assert all(s.buffered_bytes < 200_000 for s in sessions)
            connection.resume_client()
            await settle()


async def test_a_polling_client_that_stops_polling(autojump_clock: Any, net: MemoryNetwork) -> None:
    sio = triosio.Server(max_buffered_packets=50, ping_interval=1000, ping_timeout=1000)
    reasons: list[Any] = []

    @sio.on("connection")
    def connection(socket: triosio.Socket) -> None:
        socket.on("disconnect", reasons.append)

    with trio.fail_after(LIMIT):
        async with serving(sio, net):
            raw = RawPolling(net)
            await raw.open()
            await raw.post("40")
            _, packets = await raw.get()
            assert packets[0].startswith("40")
            for n in range(49):
                await sio.volatile.emit("v", n)  # no GET pending: dropped
                await sio.emit("n", n)
            await settle()
            assert reasons == []
            await sio.emit("n", 49)
            await sio.emit("n", 50)
            await settle()
            assert reasons == [Reason.SLOW_CLIENT]


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_volatile_to_one_socket(
    autojump_clock: Any, net: MemoryNetwork, transport: str
) -> None:
    sio = triosio.Server()
    sockets: list[triosio.Socket] = []
    sio.on("connection", sockets.append)
    got: list[int] = []
    with trio.fail_after(LIMIT):
        async with serving(sio, net), connect(net, transport=transport) as client:
            client.on("v", got.append)
            await settle()
            for n in range(5):
                await sockets[0].volatile.emit("v", n)
                await trio.sleep(1)
            await settle()
    assert got == [0, 1, 2, 3, 4]  # a client that keeps up gets them all
