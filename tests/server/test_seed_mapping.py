"""One test per row of docs/seed-mapping.md: the 0.9-era call and its triosio twin.

Each test does what the old call did and checks the same effect on real clients.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
import trio
from conftest import LIMIT, connect, serving, settle

import triosio
from triosio.testing import MemoryNetwork


class World:
    def __init__(self, sio: triosio.Server) -> None:
        self.sio = sio
        self.sockets: dict[str, triosio.Socket] = {}
        self.clients: dict[str, Any] = {}
        self.got: dict[str, list[tuple[Any, ...]]] = {}


@asynccontextmanager
async def world(
    net: MemoryNetwork, rooms: dict[str, list[str]], sio: triosio.Server | None = None
) -> AsyncIterator[World]:
    sio = sio or triosio.Server()
    w = World(sio)

    # 0.9: io.sockets.on('connection', function (socket) { ... })
    @sio.sockets.on("connection")
    async def connection(socket: triosio.Socket, auth: dict[str, Any]) -> None:
        # 0.9: socket.join(room)
        for room in auth["rooms"]:
            await socket.join(room)
        w.sockets[auth["name"]] = socket

    async with AsyncExitStack() as stack:
        await stack.enter_async_context(serving(sio, net))
        for name, names in rooms.items():
            client = await stack.enter_async_context(
                connect(net, auth={"name": name, "rooms": names})
            )
            w.clients[name] = client
            w.got[name] = []
            client.on_any(lambda e, *a, n=name: w.got[n].append((e, *a)))
        await settle()
        yield w


MEMBERS = {"a": ["room"], "b": ["room"], "c": []}


async def test_io_sockets_emit(autojump_clock: Any, net: MemoryNetwork) -> None:
    # io.sockets.emit('news', data)  ->  await sio.emit("news", data)
    async with world(net, MEMBERS) as w:
        await w.sio.sockets.emit("news", 1)
        await w.sio.emit("news", 2)
        await settle()
    assert all(got == [("news", 1), ("news", 2)] for got in w.got.values())


async def test_io_sockets_socket_id_emit(autojump_clock: Any, net: MemoryNetwork) -> None:
    # io.sockets.socket(id).emit('hi')  ->  await sio.sockets.sockets[id].emit("hi")
    async with world(net, MEMBERS) as w:
        sid = w.sockets["b"].id
        await w.sio.sockets.sockets[sid].emit("hi", 1)
        await w.sio.to(sid).emit("hi", 2)  # or: its own room
        await settle()
    assert w.got == {"a": [], "b": [("hi", 1), ("hi", 2)], "c": []}


async def test_socket_broadcast_emit(autojump_clock: Any, net: MemoryNetwork) -> None:
    # socket.broadcast.emit('news')  ->  await socket.broadcast.emit("news")
    async with world(net, MEMBERS) as w:
        await w.sockets["a"].broadcast.emit("news")
        await settle()
    assert w.got == {"a": [], "b": [("news",)], "c": [("news",)]}


async def test_socket_broadcast_to_room_emit(autojump_clock: Any, net: MemoryNetwork) -> None:
    # socket.broadcast.to('room').emit('news')  ->  the same, awaited
    async with world(net, MEMBERS) as w:
        await w.sockets["a"].broadcast.to("room").emit("news")
        await w.sockets["a"].to("room").emit("news2")  # the 1.x+ spelling
        await settle()
    assert w.got == {"a": [], "b": [("news",), ("news2",)], "c": []}


async def test_io_sockets_in_room_emit(autojump_clock: Any, net: MemoryNetwork) -> None:
    # io.sockets.in('room').emit('news')  ->  await sio.sockets.in_("room").emit("news")
    async with world(net, MEMBERS) as w:
        await w.sio.sockets.in_("room").emit("news")
        await w.sio.in_("room").emit("news2")
        await settle()
    assert w.got == {"a": [("news",), ("news2",)], "b": [("news",), ("news2",)], "c": []}


async def test_io_sockets_clients(autojump_clock: Any, net: MemoryNetwork) -> None:
    # io.sockets.clients()  ->  await sio.fetch_sockets()  (or sio.sockets.sockets.values())
    async with world(net, MEMBERS) as w:
        everyone = {s.id for s in await w.sio.fetch_sockets()}
        assert everyone == {s.id for s in w.sockets.values()}
        assert set(w.sio.sockets.sockets) == everyone


async def test_io_sockets_clients_room(autojump_clock: Any, net: MemoryNetwork) -> None:
    # io.sockets.clients('room')  ->  await sio.in_("room").fetch_sockets()
    async with world(net, MEMBERS) as w:
        members = {s.id for s in await w.sio.in_("room").fetch_sockets()}
        assert members == {w.sockets["a"].id, w.sockets["b"].id}


async def test_manager_rooms(autojump_clock: Any, net: MemoryNetwork) -> None:
    # io.sockets.manager.rooms  ->  sio.sockets.adapter.rooms
    # (0.9 keyed rooms "/room" and "" for everyone; now "room", and each socket's id)
    async with world(net, MEMBERS) as w:
        rooms = w.sio.sockets.adapter.rooms
        assert rooms["room"] == {w.sockets["a"].id, w.sockets["b"].id}
        assert rooms[w.sockets["c"].id] == {w.sockets["c"].id}


async def test_manager_room_clients(autojump_clock: Any, net: MemoryNetwork) -> None:
    # io.sockets.manager.roomClients[id]  ->  sio.sockets.adapter.sids[id] or socket.rooms
    async with world(net, MEMBERS) as w:
        a = w.sockets["a"]
        assert w.sio.sockets.adapter.sids[a.id] == {a.id, "room"}
        assert a.rooms == {a.id, "room"}


async def test_io_of(autojump_clock: Any, net: MemoryNetwork) -> None:
    # io.of('/some').on('connection', fn); io.of('/some').emit(...)  ->  sio.of("/some")
    sio = triosio.Server()
    some = sio.of("/some")
    some.on("connection", lambda socket: None)
    got: list[Any] = []
    async with serving(sio, net), connect(net, "/some") as client:
        client.on("x", got.append)
        await some.emit("x", 1)
        await settle()
    assert got == [1]


async def test_socket_join_leave_set_get(autojump_clock: Any, net: MemoryNetwork) -> None:
    # socket.join/leave(room), socket.set('nick', v) / socket.get('nick', fn)
    #   ->  await socket.join/leave(room); socket.data["nick"] = v
    async with world(net, {"a": []}) as w:
        a = w.sockets["a"]
        await a.join("x")
        a.data["nick"] = "ann"
        assert a.rooms == {a.id, "x"}
        await a.leave("x")
        assert a.rooms == {a.id}
        assert a.data["nick"] == "ann"


async def test_emit_with_callback(autojump_clock: Any, net: MemoryNetwork) -> None:
    # socket.emit('ask', data, function (answer) {...})  ->  await socket.emit_with_ack(...)
    # socket.on('ask', function (data, fn) { fn(answer) })  ->  the handler returns it
    async with world(net, {"a": []}) as w:
        w.clients["a"].on("ask", lambda x: x + 1)
        assert await w.sockets["a"].emit_with_ack("ask", 1, timeout=5) == 2

        @w.sockets["a"].on("question")
        def question(x: int) -> int:
            return x * 10

        assert await w.clients["a"].emit_with_ack("question", 4) == 40


async def test_send_and_message(autojump_clock: Any, net: MemoryNetwork) -> None:
    # socket.send(msg) / socket.on('message', fn)  ->  await socket.send(msg); on("message")
    async with world(net, {"a": []}) as w:
        heard: list[Any] = []
        w.sockets["a"].on("message", heard.append)
        await w.sockets["a"].send("hello")
        await w.sio.send("all")
        await w.clients["a"].send("back")
        await settle()
    assert w.got["a"] == [("message", "hello"), ("message", "all")]
    assert heard == ["back"]


async def test_socket_volatile_emit(autojump_clock: Any, net: MemoryNetwork) -> None:
    # socket.volatile.emit('tick')  ->  await socket.volatile.emit("tick")
    async with world(net, {"a": []}) as w:
        await w.sockets["a"].volatile.emit("tick")
        await w.sio.volatile.emit("tick")
        await settle()
    assert w.got["a"] == [("tick",), ("tick",)]


async def test_disconnect_and_handshake(autojump_clock: Any, net: MemoryNetwork) -> None:
    # socket.handshake, socket.id, socket.on('disconnect'), socket.disconnect()
    async with world(net, {"a": []}) as w:
        a = w.sockets["a"]
        assert a.handshake.headers["host"] == "test"
        assert isinstance(a.id, str)
        reasons: list[Any] = []
        a.on("disconnect", reasons.append)
        await a.disconnect()
        assert reasons == [triosio.DisconnectReason.SERVER_NAMESPACE_DISCONNECT]


async def test_configure_set_enable_disable(
    autojump_clock: Any, net: MemoryNetwork, caplog: pytest.LogCaptureFixture
) -> None:
    # io.configure(function () { io.set('transports', ['websocket']);
    #   io.set('heartbeat interval', 10); io.set('close timeout', 5);
    #   io.set('authorization', fn); io.set('log level', 1);
    #   io.enable/disable(...) })  ->  Server options, a middleware, logging
    sio = triosio.Server(transports=["websocket"], ping_interval=10, ping_timeout=5)
    logging.getLogger("triosio").setLevel(logging.WARNING)  # 'log level'

    @sio.use  # 'authorization'
    def authorization(socket: triosio.Socket) -> None:
        if socket.handshake.auth.get("token") != "t":
            raise triosio.ConnectionRefused("not authorized")

    with trio.fail_after(LIMIT):
        async with serving(sio, net):
            with pytest.raises(triosio.ConnectError):  # polling is not allowed
                async with connect(net, transport="polling", auth={"token": "t"}):
                    pass
            with pytest.raises(triosio.ConnectError, match="not authorized"):
                async with connect(net, auth={"token": "bad"}):
                    pass
            async with connect(net, auth={"token": "t"}) as client:
                assert client.manager.transport == "websocket"
                await trio.sleep(60)  # heartbeats every 10 s keep it alive
                assert client.connected


async def test_set_origins(autojump_clock: Any, net: MemoryNetwork) -> None:
    # io.set('origins', 'http://app.example:80')  ->  Server(cors_allowed_origins=[...])
    sio = triosio.Server(cors_allowed_origins=["http://app.example"])
    sio.on("connection", lambda socket: None)
    with trio.fail_after(LIMIT):
        async with serving(sio, net):
            async with connect(net, headers={"Origin": "http://app.example"}) as client:
                assert client.connected
            with pytest.raises(triosio.ConnectError):
                async with connect(net, headers={"Origin": "http://evil.example"}):
                    pass
