"""Broadcasts: rooms, exclusions, flags, acks, fetch/join/leave/disconnect, order."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
import trio
from conftest import LIMIT, TRANSPORTS, connect, serving, settle

import triosio
from triosio.testing import MemoryNetwork

Reason = triosio.DisconnectReason


async def never(*args: Any) -> None:
    """A client handler that never acknowledges."""
    await trio.sleep_forever()


class Room:
    """A server and named clients, each joining the rooms named in its auth."""

    def __init__(self, sio: triosio.Server) -> None:
        self.sio = sio
        self.sockets: dict[str, triosio.Socket] = {}
        self.clients: dict[str, Any] = {}
        self.got: dict[str, list[tuple[str, tuple[Any, ...]]]] = {}

        @sio.on("connection")
        async def connection(socket: triosio.Socket, auth: dict[str, Any]) -> None:
            await socket.join(auth["rooms"])
            self.sockets[auth["name"]] = socket

    def received(self, name: str, event: str | None = None) -> list[tuple[Any, ...]]:
        return [args for e, args in self.got[name] if event is None or e == event]


@asynccontextmanager
async def room(
    net: MemoryNetwork, members: dict[str, list[str]], transport: str = "websocket", **options: Any
) -> AsyncIterator[Room]:
    sio = triosio.Server(**options)
    world = Room(sio)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(serving(sio, net))
        for name, rooms in members.items():
            client = await stack.enter_async_context(
                connect(net, transport=transport, auth={"name": name, "rooms": rooms})
            )
            world.clients[name] = client
            world.got[name] = []
            client.on_any(lambda e, *a, n=name: world.got[n].append((e, a)))
        await settle()
        yield world


MEMBERS = {"a": ["red"], "b": ["red", "blue"], "c": ["blue"], "d": []}


async def test_targets(autojump_clock: Any, net: MemoryNetwork) -> None:
    with trio.fail_after(LIMIT):
        async with room(net, MEMBERS) as w:
            sio, s = w.sio, w.sockets
            await sio.emit("all", 1)
            await sio.to("red").emit("red", 2)
            await sio.in_("red").to("blue").emit("red or blue", 3)  # b gets one copy
            await sio.to("red", "blue").except_("blue").emit("red not blue", 4)
            await sio.except_("red").emit("not red", 5)
            await s["b"].to("red").emit("red but not b", 6)
            await s["b"].broadcast.emit("all but b", 7)
            await s["a"].broadcast.to("blue").emit("legacy", 8)  # 0.9: socket.broadcast.to(room)
            await s["a"].to(s["c"].id).emit("private", 9)  # a socket id is a room
            await sio.sockets.in_("blue").emit("sockets in", 10)
            await sio.to("nobody").emit("nobody", 11)
            await s["c"].except_("red").emit("not red, not c", 12)
            await settle()
    events = {n: [e for e, _ in w.got[n]] for n in w.got}
    assert events == {
        "a": ["all", "red", "red or blue", "red not blue", "red but not b", "all but b"],
        "b": ["all", "red", "red or blue", "legacy", "sockets in"],
        "c": ["all", "red or blue", "not red", "all but b", "legacy", "private", "sockets in"],
        "d": ["all", "not red", "all but b", "not red, not c"],
    }
    assert w.received("a", "all") == [(1,)]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_tasks_emits_arrive_in_order(
    autojump_clock: Any, net: MemoryNetwork, transport: str
) -> None:
    # Direct emits, room broadcasts and namespace broadcasts from one task, mixed:
    # each client gets its share in the order they were made.
    with trio.fail_after(LIMIT):
        async with room(net, {"a": ["r"], "b": ["r"], "c": []}, transport=transport) as w:
            sio, s = w.sio, w.sockets
            for i in range(300):
                kind = i % 4
                if kind == 0:
                    await s["a"].emit("n", i)
                elif kind == 1:
                    await sio.to("r").emit("n", i)
                elif kind == 2:
                    await sio.emit("n", i)
                else:
                    await s["c"].emit("n", i)
            await settle()
            await trio.sleep(5)
    numbers = {n: [args[0] for args in w.received(n, "n")] for n in w.got}
    assert numbers["a"] == [i for i in range(300) if i % 4 in (0, 1, 2)]
    assert numbers["b"] == [i for i in range(300) if i % 4 in (1, 2)]
    assert numbers["c"] == [i for i in range(300) if i % 4 in (2, 3)]


async def test_a_broadcast_is_encoded_once(autojump_clock: Any, net: MemoryNetwork) -> None:
    members = {f"m{i}": ["all"] for i in range(20)}
    with trio.fail_after(LIMIT):
        async with room(net, members) as w:
            calls: list[Any] = []
            original = w.sio.encoder

            class Counting:
                def encode(self, packet: Any) -> Any:
                    calls.append(packet)
                    return original.encode(packet)

            w.sio.encoder = Counting()  # type: ignore[assignment]
            await w.sio.to("all").emit("big", b"\x00" * 1000, {"x": [1, 2, 3]})
            await settle()
    assert len(calls) == 1
    assert all(w.received(n, "big") == [(b"\x00" * 1000, {"x": [1, 2, 3]})] for n in members)


async def test_volatile_and_flags(autojump_clock: Any, net: MemoryNetwork) -> None:
    with trio.fail_after(LIMIT):
        async with room(net, {"fast": ["r"], "stuck": ["r"]}) as w:
            sio = w.sio
            # "stuck" stops reading: its TCP window fills up, then its queue.
            stuck = net.connections[-1]
            stuck.pause_client()
            blob = "x" * 10_000
            for i in range(100):
                await sio.volatile.emit("tick", i, blob)
                await trio.sleep(0.1)  # time enough for a reading client
            await sio.compress(False).local.to("r").emit("reliable", 1)
            await settle()
            stuck.resume_client()
            await settle()
            assert len(w.received("fast", "tick")) == 100
            # Volatile packets that could not go out at once were dropped.
            dropped = 100 - len(w.received("stuck", "tick"))
            assert dropped > 50
            assert w.received("stuck", "reliable") == [(1,)]
            assert w.clients["stuck"].connected


async def test_broadcast_acks(autojump_clock: Any, net: MemoryNetwork) -> None:
    with trio.fail_after(LIMIT):
        async with room(net, {"a": ["r"], "b": ["r"], "slow": ["r"], "out": []}) as w:
            sio, c = w.sio, w.clients
            c["a"].on("q", lambda x: ("a", x))
            c["b"].on("q", lambda x: "b")
            c["out"].on("q", lambda x: "out")
            c["slow"].on("q", never)
            # Every recipient answers:
            got = await sio.except_(w.sockets["slow"].id).timeout(5).emit_with_ack("q", 1)
            assert sorted(map(str, got)) == sorted(map(str, [("a", 1), "b", "out"]))
            # One never answers: a partial result and the missing socket, after 3 s.
            start = trio.current_time()
            with pytest.raises(triosio.BroadcastAckTimeout) as info:
                await sio.to("r").timeout(3).emit_with_ack("q", 2)
            assert trio.current_time() - start == pytest.approx(3)
            assert sorted(map(str, info.value.responses)) == sorted(map(str, [("a", 2), "b"]))
            assert info.value.missing == [w.sockets["slow"].id]
            assert isinstance(info.value, TimeoutError)
            # No recipient at all: an empty list at once.
            assert await sio.to("nobody").emit_with_ack("q", timeout=3) == []
            # The per-socket ack entries are all gone.
            await settle()
            assert all(len(s.acks) == 0 for s in w.sockets.values())
            with pytest.raises(ValueError, match="timeout"):
                await sio.emit_with_ack("q")


async def test_broadcast_ack_when_a_recipient_leaves(
    autojump_clock: Any, net: MemoryNetwork
) -> None:
    with trio.fail_after(LIMIT):
        async with room(net, {"a": [], "leaver": []}) as w:
            w.clients["a"].on("q", lambda: "a")
            w.clients["leaver"].on("q", never)
            leaver = w.sockets["leaver"]

            async def leave() -> None:
                await trio.sleep(1)
                await leaver.disconnect()

            start = trio.current_time()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(leave)
                with pytest.raises(triosio.BroadcastAckTimeout) as info:
                    await w.sio.timeout(100).emit_with_ack("q")
            # Known as soon as the recipient is gone, not at the timeout.
            assert trio.current_time() - start < 2
            assert info.value.responses == ["a"]
            assert info.value.missing == [leaver.id]


async def test_cancelled_broadcast_ack_leaves_nothing_behind(
    autojump_clock: Any, net: MemoryNetwork
) -> None:
    with trio.fail_after(LIMIT):
        async with room(net, {"a": [], "b": []}) as w:
            for client in w.clients.values():
                client.on("q", never)
            with trio.move_on_after(1):
                await w.sio.timeout(100).emit_with_ack("q")
            assert all(len(s.acks) == 0 for s in w.sockets.values())
            # Cancelled before the router even saw the broadcast:
            with trio.CancelScope() as scope:
                scope.cancel()
                await w.sio.timeout(100).emit_with_ack("q")
            await settle()
            assert all(len(s.acks) == 0 for s in w.sockets.values())


async def test_fetch_join_leave_disconnect(autojump_clock: Any, net: MemoryNetwork) -> None:
    with trio.fail_after(LIMIT):
        async with room(net, MEMBERS) as w:
            sio, s = w.sio, w.sockets
            assert {x.id for x in await sio.fetch_sockets()} == {x.id for x in s.values()}
            red = await sio.in_("red").fetch_sockets()
            assert {x.id for x in red} == {s["a"].id, s["b"].id}
            await sio.in_("blue").sockets_join("green", "yellow")
            assert {x.id for x in await sio.in_("green").fetch_sockets()} == {s["b"].id, s["c"].id}
            await sio.except_("red").sockets_leave("blue")
            assert s["c"].rooms == {s["c"].id, "green", "yellow"}
            await sio.sockets_join("everyone")
            assert all("everyone" in x.rooms for x in s.values())
            await sio.server_side_emit("hello", 1)  # one process: a no-op
            assert await sio.server_side_emit_with_ack("hello", timeout=1) == []

            reasons: dict[str, list[Any]] = {n: [] for n in s}
            for name, client in w.clients.items():
                client.on("disconnect", reasons[name].append)
            await sio.in_("red").disconnect_sockets()
            assert not s["a"].connected and not s["b"].connected
            await sio.in_("green").disconnect_sockets(close=True)
            await settle()
            assert {x.id for x in await sio.fetch_sockets()} == {s["d"].id}
    assert reasons == {
        "a": [Reason.IO_SERVER_DISCONNECT],
        "b": [Reason.IO_SERVER_DISCONNECT],
        "c": [Reason.IO_SERVER_DISCONNECT],
        "d": [Reason.IO_CLIENT_DISCONNECT],
    }
    assert s["c"].reason is Reason.SERVER_NAMESPACE_DISCONNECT


async def test_disconnect_sockets_from_a_handler_finishes_even_if_cancelled(
    autojump_clock: Any, net: MemoryNetwork
) -> None:
    with trio.fail_after(LIMIT):
        async with room(net, {f"m{i}": ["r"] for i in range(5)}) as w:
            sio = w.sio

            @w.sockets["m0"].on("kick everyone")
            async def kick() -> None:
                # Its own connection is closed too: this handler is cancelled
                # part way, and every socket is disconnected all the same.
                await sio.in_("r").disconnect_sockets(close=True)

            await w.clients["m0"].emit("kick everyone")
            await settle()
            assert await sio.fetch_sockets() == []
            assert sio.engine.sessions == {}


async def test_adapter_events(autojump_clock: Any, net: MemoryNetwork) -> None:
    sio = triosio.Server()
    log: list[tuple[str, ...]] = []
    adapter = sio.sockets.adapter
    for event in ("create-room", "delete-room", "join-room", "leave-room"):
        adapter.on(event, lambda *args, e=event: log.append((e, *args)))

    async def later(room: str) -> None:
        log.append(("async create-room", room))

    adapter.on("create-room", later)
    with pytest.raises(ValueError, match="unknown adapter event"):
        adapter.on("nonsense", print)

    sockets: list[triosio.Socket] = []
    sio.on("connection", sockets.append)
    with trio.fail_after(LIMIT):
        async with serving(sio, net):
            async with connect(net):
                await settle()
                (socket,) = sockets
                await socket.join("r")
                await socket.leave("r")
                await settle()
            await settle()
    sid = socket.id
    assert log == [
        ("create-room", sid),
        ("join-room", sid, sid),
        ("async create-room", sid),
        ("create-room", "r"),
        ("join-room", "r", sid),
        ("async create-room", "r"),
        ("leave-room", "r", sid),
        ("delete-room", "r"),
        ("leave-room", sid, sid),
        ("delete-room", sid),
    ]
