"""Namespaces: the main one, of(), dynamic ones, CONNECT with auth, refusals, timeouts."""

from __future__ import annotations

import re
from typing import Any

import pytest
import trio
from conftest import LIMIT, RawPolling, connect, serving, settle

import triosio
from triosio.testing import MemoryNetwork


async def test_connection_handler_gets_socket_and_auth(
    autojump_clock: Any, net: MemoryNetwork
) -> None:
    sio = triosio.Server()
    seen: list[Any] = []

    @sio.on("connection")
    def two(socket: triosio.Socket, auth: Any) -> None:
        seen.append(("two", socket.nsp.name, auth))

    @sio.on("connect")  # the other name works too, and one-argument handlers
    async def one(socket: triosio.Socket) -> None:
        seen.append(("one", socket.connected))

    with trio.fail_after(LIMIT):
        async with serving(sio, net), connect(net, auth={"token": "t"}) as client:
            await settle()
            assert client.connected
    assert seen == [("two", "/", {"token": "t"}), ("one", True)]


async def test_socket_ids_are_per_namespace(autojump_clock: Any, net: MemoryNetwork) -> None:
    sio = triosio.Server()
    chat = sio.of("chat")  # the leading slash is added
    assert chat.name == "/chat"
    assert sio.of("/chat") is chat
    sockets: list[triosio.Socket] = []
    sio.on("connection", sockets.append)
    chat.on("connection", sockets.append)

    with trio.fail_after(LIMIT):
        async with serving(sio, net), connect(net) as client:
            other = client.manager.socket("/chat")
            await other.connect()
            await settle()
            main, chat_socket = sockets
            assert main.id == client.id
            assert chat_socket.id == other.id
            assert main.id != chat_socket.id
            # Socket ids are not the Engine.IO session id (v5).
            assert main.session.sid not in (main.id, chat_socket.id)
            assert main.client is chat_socket.client
            assert set(sio.sockets.sockets) == {main.id}
            assert set(chat.sockets) == {chat_socket.id}
            assert sio.namespaces.keys() == {"/", "/chat"}


async def test_unknown_namespace_gets_exactly_invalid_namespace(
    autojump_clock: Any, net: MemoryNetwork
) -> None:
    sio = triosio.Server()
    with trio.fail_after(LIMIT):
        async with serving(sio, net):
            raw = RawPolling(net)
            await raw.open()
            assert await raw.post("40/nope,") == 200
            status, packets = await raw.get()
            assert status == 200
            assert packets == ['44/nope,{"message":"Invalid namespace"}']
            # The connection stays usable: the main namespace still connects.
            assert await raw.post("40") == 200
            status, packets = await raw.get()
            assert packets[0].startswith('40{"sid":"')


async def test_unknown_namespace_is_a_connect_error_for_the_client(
    autojump_clock: Any, net: MemoryNetwork
) -> None:
    sio = triosio.Server()
    with trio.fail_after(LIMIT):
        async with serving(sio, net):
            with pytest.raises(triosio.ConnectError) as info:
                async with connect(net, "/nope"):
                    pass
    assert info.value.message == "Invalid namespace"


async def test_connect_timeout_closes_a_client_that_connects_no_namespace(
    autojump_clock: Any, net: MemoryNetwork
) -> None:
    sio = triosio.Server(connect_timeout=5, ping_interval=100, ping_timeout=100)
    with trio.fail_after(LIMIT):
        async with serving(sio, net):
            raw = RawPolling(net)
            await raw.open()
            start = trio.current_time()
            _, packets = await raw.get()  # held until the server gives up
            assert packets == ["1"]  # CLOSE
            assert 5 <= trio.current_time() - start < 6
            await settle()
            assert sio.engine.sessions == {}

            # A client that does connect a namespace in time stays.
            async with connect(net) as client:
                await trio.sleep(30)
                assert client.connected


async def test_dynamic_namespace_by_regex(autojump_clock: Any, net: MemoryNetwork) -> None:
    sio = triosio.Server()
    parent = sio.of(re.compile(r"/room-\d+"))
    seen: list[str] = []
    order: list[str] = []

    @parent.use
    def parent_middleware(socket: triosio.Socket) -> None:
        order.append("parent middleware")

    @parent.on("connection")
    async def connection(socket: triosio.Socket, auth: Any) -> None:
        seen.append(socket.nsp.name)
        assert socket.nsp.parent is parent
        if not socket.nsp.middlewares()[1:]:
            socket.nsp.use(lambda s: order.append("child middleware"))

        @socket.on("hello")
        def hello() -> str:
            return socket.nsp.name

    with trio.fail_after(LIMIT):
        async with serving(sio, net):
            async with connect(net, "/room-1") as one, connect(net, "/room-22") as two:
                assert await one.emit_with_ack("hello") == "/room-1"
                assert await two.emit_with_ack("hello") == "/room-22"
                assert set(parent.children) == {"/room-1", "/room-22"}
                assert sio.of("/room-1") is parent.children["/room-1"]

                # A broadcast on the parent reaches every child namespace.
                got: list[Any] = []
                one.on("news", lambda x: got.append(("one", x)))
                two.on("news", lambda x: got.append(("two", x)))
                await parent.emit("news", 1)
                await parent.to("nowhere").emit("news", 2)
                await settle()
                assert sorted(got) == [("one", 1), ("two", 1)]
                sockets = await parent.fetch_sockets()
                assert {s.nsp.name for s in sockets} == {"/room-1", "/room-22"}

                # Broadcast acks on a parent collect from every child.
                one.on("ping", lambda: "a")
                two.on("ping", lambda: "b")
                assert sorted(await parent.timeout(5).emit_with_ack("ping")) == ["a", "b"]

                async with connect(net, "/room-1") as again:
                    assert again.connected
            with pytest.raises(triosio.ConnectError):
                async with connect(net, "/room-x"):
                    pass
    assert seen == ["/room-1", "/room-22", "/room-1"]
    # The parent's middlewares run first, then the child's own.
    assert order == ["parent middleware", "parent middleware", "parent middleware",
                     "child middleware"]


async def test_dynamic_namespace_by_predicate(autojump_clock: Any, net: MemoryNetwork) -> None:
    sio = triosio.Server()

    async def allowed(name: str, auth: Any) -> bool:
        await trio.sleep(0.1)
        return name.startswith("/team-") and auth.get("member") is True

    def crashing(name: str, auth: Any) -> bool:
        raise RuntimeError("a bug in the predicate")

    sio.of(crashing)  # logged, counts as "no"
    team = sio.of(allowed)
    team.on("connection", lambda socket: None)
    with trio.fail_after(LIMIT):
        async with serving(sio, net):
            async with connect(net, "/team-a", auth={"member": True}) as client:
                assert client.connected
            with pytest.raises(triosio.ConnectError) as info:
                async with connect(net, "/team-b", auth={"member": False}):
                    pass
            assert info.value.message == "Invalid namespace"
    assert set(team.children) == {"/team-a"}


async def test_connection_handler_refusing_disconnects(
    autojump_clock: Any, net: MemoryNetwork
) -> None:
    sio = triosio.Server()

    @sio.on("connection")
    def connection(socket: triosio.Socket) -> None:
        raise triosio.ConnectionRefused("no room for you")

    reasons: list[Any] = []
    with trio.fail_after(LIMIT):
        async with serving(sio, net), connect(net) as client:
            client.on("disconnect", reasons.append)
            await settle()
            assert not client.connected
    assert reasons == [triosio.DisconnectReason.IO_SERVER_DISCONNECT]


async def test_rooms_joined_in_a_middleware(autojump_clock: Any, net: MemoryNetwork) -> None:
    # As in the reference: a middleware may join (and leave) rooms; the socket
    # is in them from its registration, before its CONNECT reply goes out, so
    # a broadcast right after the client hears CONNECT reaches it.
    sio = triosio.Server()
    in_middleware: list[frozenset[str]] = []
    at_connection: list[frozenset[str]] = []

    @sio.use
    async def place(socket: triosio.Socket) -> None:
        await socket.join(["team-a", "lobby", "gone"])
        await socket.leave("gone")
        in_middleware.append(socket.rooms)

    @sio.on("connection")
    def connected(socket: triosio.Socket) -> None:
        at_connection.append(socket.rooms)

    with trio.fail_after(LIMIT):
        async with serving(sio, net), connect(net) as client:
            got: list[Any] = []
            client.on("news", got.append)
            await sio.to("team-a").emit("news", "for team a")
            await settle()
            assert got == ["for team a"]
            expected = {client.id, "team-a", "lobby"}
            assert in_middleware == [expected]
            assert at_connection == [expected]
            (socket,) = await sio.in_("lobby").fetch_sockets()
            assert socket.rooms == expected
