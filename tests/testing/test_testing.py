"""triosio.testing: in-memory servers and clients on the Trio clock."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import pytest
import trio
import trio.testing

import triosio
import triosio.testing

Log = dict[str, list[tuple[Any, ...]]]


async def scenario(log: Log) -> None:
    """Three clients, two rooms, broadcasts, a frozen client (ping timeout), a reconnection."""

    def note(source: str, *entry: Any) -> None:
        log[source].append((trio.current_time(), *entry))

    sio = triosio.Server(ping_interval=10, ping_timeout=5)

    @sio.on("connection")
    async def connected(socket: triosio.Socket, auth: dict[str, Any]) -> None:
        name = auth["name"]
        # One log per source: events of different clients that happen at the
        # same instant may interleave either way (Trio's scheduling order).
        note(f"server/{name}", "connect")

        @socket.on("join")
        async def join(room: str) -> list[str]:
            await socket.join(room)
            await sio.to(room).emit("joined", name, room)
            return sorted(socket.rooms - {socket.id})

        @socket.on("say")
        async def say(room: str, text: str) -> None:
            await socket.to(room).emit("said", name, text)

        @socket.on("disconnect")
        def gone(reason: triosio.DisconnectReason) -> None:
            note(f"server/{name}", "disconnect", str(reason))

    async with triosio.testing.serve_memory(sio) as server:
        clients: dict[str, triosio.ClientSocket] = {}
        for name in ("ann", "bob", "cy"):
            client = await server.client(
                auth={"name": name},
                transports=["websocket"],
                random=lambda: 0.5,
                reconnection_delay=1,
                reconnection_delay_max=4,
            )
            for event in ("joined", "said"):
                client.on(event, lambda *args, n=name, e=event: note(n, e, *args))
            client.on("disconnect", lambda reason, n=name: note(n, "disconnect", str(reason)))
            client.on("connect", lambda n=name: note(n, "connect"))
            clients[name] = client
        for name, room in (("ann", "a"), ("bob", "a"), ("cy", "b")):
            note(name, "rooms", await clients[name].emit_with_ack("join", room, timeout=5))
            await server.wait_idle()
        await clients["ann"].emit("say", "a", "hello")
        await trio.sleep(1)
        server.link(clients["bob"]).freeze()
        await trio.sleep(40)  # bob's ping timeout, then his reconnection
        note("bob", "rooms", await clients["bob"].emit_with_ack("join", "a", timeout=5))
        await clients["ann"].emit("say", "a", "again")
        await trio.sleep(1)


def run_scenario() -> Log:
    log: Log = defaultdict(list)
    trio.run(scenario, log, clock=trio.testing.MockClock(autojump_threshold=0))
    return dict(log)


def test_fifty_runs_give_the_same_log_and_times() -> None:
    first = run_scenario()
    started = time.perf_counter()
    for _ in range(49):
        assert run_scenario() == first
    elapsed = time.perf_counter() - started
    # Minutes of protocol time per run, in a few milliseconds of real time.
    assert elapsed / 49 < 1.0
    assert first["ann"][-1][0] > 40  # simulated seconds
    # The scenario did what it says.
    assert [e[1:] for e in first["server/bob"]][:3] == [
        ("connect",),
        ("disconnect", "ping timeout"),
        ("connect",),
    ]
    assert [e[1:] for e in first["bob"] if e[1] in ("disconnect", "connect")] == [
        ("disconnect", "ping timeout"),
        ("connect",),
    ]
    assert [e[1:] for e in first["bob"]][-2:] == [("rooms", ["a"]), ("said", "ann", "again")]
    assert ("said", "ann", "hello") not in [e[1:] for e in first["cy"]]
    # The server's ping timeout fires exactly at ping + timeout after bob froze.
    (when,) = [e[0] for e in first["server/bob"] if e[1:] == ("disconnect", "ping timeout")]
    assert when == pytest.approx(15.0)


async def test_wait_idle_does_not_move_the_clock(autojump_clock: trio.testing.MockClock) -> None:
    sio = triosio.Server()
    got: list[str] = []
    async with triosio.testing.serve_memory(sio) as server:
        client = await server.client(transports=["websocket"])
        client.on("news", got.append)
        before = trio.current_time()
        await sio.emit("news", "fresh")
        await server.wait_idle()
        assert got == ["fresh"]
        assert trio.current_time() == before


@pytest.mark.parametrize("transports", [["polling"], ["websocket"], ["polling", "websocket"]])
async def test_cut_then_reconnect(
    autojump_clock: trio.testing.MockClock, transports: list[str]
) -> None:
    sio = triosio.Server()
    reasons: list[str] = []

    @sio.on("disconnect")
    def gone(socket: triosio.Socket, reason: triosio.DisconnectReason) -> None:
        reasons.append(str(reason))

    async with triosio.testing.serve_memory(sio) as server:
        client = await server.client(
            transports=transports, reconnection_delay=2, randomization_factor=0
        )
        back = trio.Event()
        client.on("connect", back.set)
        cut_at = trio.current_time()
        server.link(client).cut()
        with trio.fail_after(30):
            await back.wait()
        assert trio.current_time() - cut_at == pytest.approx(2.0)
        assert reasons[0] in ("transport close", "transport error")
        assert len(sio.sockets.sockets) == 1


async def test_refused_reconnections_follow_the_backoff(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sio = triosio.Server()
    async with triosio.testing.serve_memory(sio) as server:
        client = await server.client(
            transports=["websocket"],
            reconnection_attempts=4,
            reconnection_delay=1,
            reconnection_delay_max=5,
            randomization_factor=0,
        )
        link = server.link(client)
        attempts: list[float] = []
        failed = trio.Event()
        client.manager.on("reconnect_attempt", lambda n: attempts.append(trio.current_time()))
        client.manager.on("reconnect_failed", failed.set)
        link.refuse = True
        start = trio.current_time()
        link.cut()
        with trio.fail_after(60):
            await failed.wait()
        delays = [round(t - start, 3) for t in attempts]
        assert delays == [1.0, 3.0, 7.0, 12.0]  # 1, 2, 4, then capped at 5


async def test_a_client_that_stops_reading_is_dropped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sio = triosio.Server(max_buffered_bytes=64 * 1024)
    reasons: list[str] = []

    @sio.on("disconnect")
    def gone(socket: triosio.Socket, reason: triosio.DisconnectReason) -> None:
        reasons.append(str(reason))

    async with triosio.testing.serve_memory(sio, window=16 * 1024) as server:
        slow = await server.client(transports=["websocket"], reconnection=False)
        fast = await server.client(transports=["websocket"], reconnection=False)
        received: list[int] = []
        fast.on("tick", lambda i, _: received.append(i))
        server.link(slow).pause()
        payload = "x" * 1000
        for i in range(300):
            await sio.emit("tick", i, payload)
            await trio.sleep(0.01)  # a steady stream, not one burst
        await server.wait_idle()
        assert received == list(range(300))  # the fast client got everything, in order
        assert reasons == ["slow client"]
