"""triosio's server against the npm socket.io-client 4.8.3 (one node process per module).

Every feature of the server guide, seen by the reference client over polling,
websocket and upgrade: events and acks both ways with nested binary,
namespaces (dynamic ones too), auth, CONNECT_ERROR with data, both kinds of
middleware, rooms and broadcasts, broadcast acks with a timeout,
fetch_sockets / sockets_join / sockets_leave / disconnect_sockets, and the
disconnect reasons seen at both ends.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import trio
from server_peers import TRANSPORTS, NodeClients, NodeProcess, node_clients, running

import triosio

pytestmark = pytest.mark.interop
Reason = triosio.DisconnectReason


@pytest.fixture(scope="module")
def node() -> Iterator[NodeProcess]:
    process = NodeProcess()
    yield process
    process.close()


@pytest.fixture
async def peers(node: NodeProcess) -> AsyncIterator[NodeClients]:
    async with node_clients(node) as clients:
        yield clients


async def until(check: Any, timeout: float = 10) -> Any:
    """Wait (real time) for a server-side condition."""
    with trio.fail_after(timeout):
        while not (result := check()):  # noqa: ASYNC110 (any condition)
            await trio.sleep(0.005)
    return result


NESTED = {"list": [1, b"\x00\xff", {"deep": b"bin", "n": None}], "text": "é"}


@pytest.mark.parametrize("transport", list(TRANSPORTS))
async def test_events_and_acks_both_ways(peers: NodeClients, transport: str) -> None:
    sio = triosio.Server()
    seen: list[Any] = []

    @sio.on("connection")
    async def connection(socket: triosio.Socket, auth: Any) -> None:
        seen.append(("auth", auth, socket.handshake.auth))
        await socket.emit("welcome", NESTED, b"\x01\x02")

        @socket.on("echo")
        def echo(*args: Any) -> tuple[Any, ...]:
            return args  # each item is one ack argument

        @socket.on("ask")
        async def ask(question: str) -> Any:
            # The server asks the client, which echoes; the answer goes back.
            return await socket.timeout(5).emit_with_ack("question", question, b"\x03")

        socket.on("nothing", lambda: None)  # acknowledged with no argument

    async with running(sio) as url:
        result = await peers.connect("c", url, auth={"token": "t"}, **TRANSPORTS[transport])
        assert "sid" in result
        assert await peers.wait_events("c", "welcome") == [[NESTED, b"\x01\x02"]]
        reply = await peers.emit_with_ack("c", "echo", "a", {"b": [b"\x02" * 3]}, 3)
        assert reply == ["a", {"b": [b"\x02" * 3]}, 3]
        assert await peers.emit_with_ack("c", "ask", "why?") == ["why?", b"\x03"]
        assert await peers.emit_with_ack("c", "nothing") == []
        if transport == "upgrade":
            await peers.wait_until(lambda: peers.of("c", "upgrade"))
            assert await peers.call("transport", client="c") == "websocket"
            # Still working after the upgrade.
            assert await peers.emit_with_ack("c", "echo", b"after") == [b"after"]
    assert seen == [("auth", {"token": "t"}, {"token": "t"})]


async def test_namespaces_multiplexed_and_invalid(peers: NodeClients) -> None:
    sio = triosio.Server()
    sockets: list[triosio.Socket] = []
    sio.on("connection", sockets.append)
    sio.of("/chat").on("connection", sockets.append)

    @sio.of("/chat").on("where")
    def where(socket: triosio.Socket) -> str:
        return socket.nsp.name

    async with running(sio) as url:
        main = await peers.connect("main", url, transports=["websocket"])
        chat = await peers.connect_shared("chat", "main", "/chat")
        assert main["sid"] != chat["sid"]
        assert await peers.emit_with_ack("chat", "where") == ["/chat"]
        await until(lambda: len(sockets) == 2)
        assert sockets[0].client is sockets[1].client  # one connection, two namespaces
        nope = await peers.connect("nope", url + "/nope")
        assert nope == {"error": {"message": "Invalid namespace", "data": None}}


async def test_dynamic_namespaces(peers: NodeClients) -> None:
    sio = triosio.Server()
    rooms = sio.of(re.compile(r"/room-\w+"))

    @rooms.on("connection")
    def connection(socket: triosio.Socket) -> None:
        socket.on("name", lambda: socket.nsp.name)

    async def allowed(name: str, auth: Any) -> bool:
        return name.startswith("/team-") and auth.get("member") is True

    sio.of(allowed).on("connection", lambda socket: None)

    async with running(sio) as url:
        await peers.connect("a", url + "/room-a", transports=["websocket"])
        await peers.connect("b", url + "/room-b", transports=["polling"])
        assert await peers.emit_with_ack("a", "name") == ["/room-a"]
        await rooms.emit("to all children", 1)
        await peers.wait_events("a", "to all children")
        await peers.wait_events("b", "to all children")
        ok = await peers.connect("t", url + "/team-x", auth={"member": True})
        assert "sid" in ok
        refused = await peers.connect("u", url + "/team-y", auth={"member": False})
        assert refused["error"]["message"] == "Invalid namespace"


@pytest.mark.parametrize("transport", ["polling", "websocket"])
async def test_middlewares_and_connect_error_data(
    peers: NodeClients, transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    sio = triosio.Server()
    admin = sio.of("/admin")
    errors: list[Any] = []

    @sio.use
    def authenticate(socket: triosio.Socket) -> None:
        if socket.handshake.auth.get("token") != "secret":
            raise triosio.ConnectionRefused("unauthorized", data={"code": 401, "hint": ["x"]})
        socket.data["user"] = "ann"

    @admin.use
    async def crash(socket: triosio.Socket) -> None:
        raise RuntimeError("a bug in a middleware")

    @sio.on("connection")
    def connection(socket: triosio.Socket) -> None:
        @socket.use
        def no_shouting(event: str, args: list[Any]) -> None:
            if event.isupper():
                raise ValueError(f"no shouting: {event}")
            args.append(socket.data["user"])

        socket.on("error", errors.append)
        socket.on("hi", lambda *args: args)
        socket.on("HI", lambda *args: args)

    async with running(sio) as url:
        opts = TRANSPORTS[transport]
        refused = await peers.connect("bad", url, auth={"token": "nope"}, **opts)
        data = {"code": 401, "hint": ["x"]}
        assert refused == {"error": {"message": "unauthorized", "data": data}}
        with caplog.at_level(logging.ERROR, "triosio.server"):
            crashed = await peers.connect("admin", url + "/admin", **opts)
        assert crashed["error"]["message"] == "Internal server error"
        assert any("a bug in a middleware" in str(r.exc_info) for r in caplog.records)
        await peers.connect("good", url, auth={"token": "secret"}, **opts)
        assert await peers.emit_with_ack("good", "hi", 1) == [1, "ann"]
        with pytest.raises(Exception, match="timeout"):
            await peers.emit_with_ack("good", "HI", 1, timeout=300)
    assert [str(e) for e in errors] == ["no shouting: HI"]


@pytest.mark.parametrize("transport", ["polling", "websocket"])
async def test_rooms_and_broadcasts(peers: NodeClients, transport: str) -> None:
    sio = triosio.Server()
    sockets: dict[str, triosio.Socket] = {}

    @sio.on("connection")
    async def connection(socket: triosio.Socket, auth: dict[str, Any]) -> None:
        await socket.join(auth["rooms"])
        sockets[auth["name"]] = socket

    members = {"a": ["red"], "b": ["red", "blue"], "c": ["blue"], "d": []}
    async with running(sio) as url:
        for name, rooms in members.items():
            auth = {"name": name, "rooms": rooms}
            await peers.connect(name, url, auth=auth, **TRANSPORTS[transport])
        await until(lambda: len(sockets) == 4)
        await sio.emit("e", "all")
        await sio.to("red").to("blue").except_("blue").emit("e", "red not blue")
        await sio.in_("red").in_("blue").emit("e", "red or blue")  # b once
        await sockets["b"].to("red").emit("e", "red but not b")
        await sockets["b"].broadcast.emit("e", "all but b")
        # Volatile: delivered to a client that can take it now. Over polling that
        # means a GET is waiting, so first let every client catch up.
        for name in members:
            await peers.wait_until(lambda n=name: len(peers.events(n, "e")) >= 2)
        await trio.sleep(0.2)
        await sio.volatile.to("blue").emit("e", "volatile blue")
        await sio.except_(sockets["d"].id).emit("e", "last")
        for name in members:
            await peers.wait_until(lambda n=name: ["last"] in peers.events(n, "e") or n == "d")
        await peers.wait_until(lambda: ["all but b"] in peers.events("d", "e"))
        got = {name: [args[0] for args in peers.events(name, "e")] for name in members}
    assert got == {
        "a": ["all", "red not blue", "red or blue", "red but not b", "all but b", "last"],
        "b": ["all", "red or blue", "volatile blue", "last"],
        "c": ["all", "red or blue", "all but b", "volatile blue", "last"],
        "d": ["all", "all but b"],
    }


async def test_broadcast_acks_with_timeout(peers: NodeClients) -> None:
    sio = triosio.Server()
    sockets: dict[str, triosio.Socket] = {}
    sio.on("connection", lambda socket, auth: sockets.setdefault(auth["name"], socket))
    async with running(sio) as url:
        await peers.connect("echo", url, auth={"name": "echo"}, transports=["websocket"])
        await peers.connect(
            "value", url, auth={"name": "value"}, transports=["polling"],
            acks={"q": {"value": ["v", {"bin": b"\x09"}]}},
        )
        await peers.connect(
            "mute", url, auth={"name": "mute"}, transports=["websocket"], acks={"q": "none"}
        )
        await until(lambda: len(sockets) == 3)
        everyone_but_mute = sio.except_(sockets["mute"].id)
        answers = await everyone_but_mute.timeout(5).emit_with_ack("q", 1)
        assert sorted(answers, key=str) == sorted([1, ("v", {"bin": b"\x09"})], key=str)
        start = trio.current_time()
        with pytest.raises(triosio.BroadcastAckTimeout) as info:
            await sio.timeout(0.5).emit_with_ack("q", 2)
        assert 0.5 <= trio.current_time() - start < 2
        expected = sorted([2, ("v", {"bin": b"\x09"})], key=str)
        assert sorted(info.value.responses, key=str) == expected
        assert info.value.missing == [sockets["mute"].id]
        assert all(len(s.acks) == 0 for s in sockets.values())


async def test_fetch_join_leave_disconnect(peers: NodeClients) -> None:
    sio = triosio.Server()
    sockets: dict[str, triosio.Socket] = {}
    reasons: dict[str, Any] = {}

    @sio.on("connection")
    async def connection(socket: triosio.Socket, auth: dict[str, Any]) -> None:
        await socket.join(auth["rooms"])
        sockets[auth["name"]] = socket
        socket.on("disconnect", lambda r: reasons.setdefault(auth["name"], r))

    async with running(sio) as url:
        for name, rooms in {"a": ["x"], "b": ["x"], "c": []}.items():
            await peers.connect(name, url, auth={"name": name, "rooms": rooms})
        await until(lambda: len(sockets) == 3)
        found = await sio.in_("x").fetch_sockets()
        assert {s.id for s in found} == {sockets["a"].id, sockets["b"].id}
        assert {s.handshake.auth["name"] for s in found} == {"a", "b"}
        await sio.in_("x").sockets_join("y")
        await sio.to("y").emit("e", "y")
        await peers.wait_events("b", "e")
        await sio.in_(sockets["a"].id).sockets_leave("y")
        await sio.to("y").emit("e", "y again")
        await peers.wait_until(lambda: len(peers.events("b", "e")) == 2)
        assert peers.events("a", "e") == [["y"]]
        await sio.in_("x").disconnect_sockets()
        assert await peers.wait_disconnect("a") == "io server disconnect"
        assert await peers.wait_disconnect("b") == "io server disconnect"
        assert {s.id for s in await sio.fetch_sockets()} == {sockets["c"].id}
        await sio.disconnect_sockets(close=True)
        assert await peers.wait_disconnect("c") == "io server disconnect"
    assert reasons == {n: Reason.SERVER_NAMESPACE_DISCONNECT for n in "abc"}


CASES = ["server namespace", "server close", "client namespace", "client closes", "shutdown"]


@pytest.mark.parametrize("transport", list(TRANSPORTS))
@pytest.mark.parametrize("case", CASES)
async def test_disconnect_reasons_at_both_ends(
    peers: NodeClients, transport: str, case: str
) -> None:
    sio = triosio.Server()
    sockets: list[triosio.Socket] = []
    seen: list[Any] = []

    @sio.on("connection")
    async def connection(socket: triosio.Socket) -> None:
        await socket.join("room")
        sockets.append(socket)

    @sio.on("disconnecting")
    def disconnecting(socket: triosio.Socket, reason: Any) -> None:
        seen.append(("disconnecting", reason, "room" in socket.rooms))

    @sio.on("disconnect")
    def disconnect(socket: triosio.Socket, reason: Any) -> None:
        seen.append(("disconnect", reason, "room" in socket.rooms))

    expected = {
        # case: (server-side reason, client-side reason)
        "server namespace": (Reason.SERVER_NAMESPACE_DISCONNECT, "io server disconnect"),
        "server close": (Reason.SERVER_NAMESPACE_DISCONNECT, "io server disconnect"),
        "client namespace": (Reason.CLIENT_NAMESPACE_DISCONNECT, "io client disconnect"),
        "client closes": (Reason.TRANSPORT_CLOSE, "forced close"),
        "shutdown": (Reason.SERVER_SHUTTING_DOWN, "transport close"),
    }[case]

    async with trio.open_nursery() as outer:
        listeners = await outer.start(triosio.serve, sio, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"
        await peers.connect("c", url, **TRANSPORTS[transport])
        if transport == "upgrade":
            await peers.wait_until(lambda: peers.of("c", "upgrade"))
        await until(lambda: sockets)
        if case == "server namespace":
            await sockets[0].disconnect()
        elif case == "server close":
            await sockets[0].disconnect(close=True)
        elif case == "client namespace":
            await peers.call("disconnect", client="c")
        elif case == "client closes":
            await peers.call("closeEngine", client="c")
        else:
            outer.cancel_scope.cancel()
        with trio.CancelScope(shield=True):
            assert await peers.wait_disconnect("c") == expected[1]
            await until(lambda: len(seen) == 2)
            await trio.sleep(0.1)
        assert peers.of("c", "disconnect") == [
            {"note": "disconnect", "client": "c", "reason": expected[1]}
        ]
        outer.cancel_scope.cancel()
    assert seen == [("disconnecting", expected[0], True), ("disconnect", expected[0], False)]


@pytest.mark.parametrize("transport", ["polling", "websocket"])
async def test_ping_timeout_of_a_frozen_client(peers: NodeClients, transport: str) -> None:
    sio = triosio.Server(ping_interval=0.2, ping_timeout=0.2)
    reasons: list[Any] = []

    @sio.on("connection")
    def connection(socket: triosio.Socket) -> None:
        socket.on("disconnect", reasons.append)

    async with running(sio) as url:
        await peers.connect("c", url, **TRANSPORTS[transport])
        await until(lambda: sio.engine.sessions)
        await peers.call("block", ms=1200)  # node answers once it is unfrozen
        await until(lambda: reasons)
        reason = await peers.wait_disconnect("c")
    assert reasons == [Reason.PING_TIMEOUT]
    # The client, unfrozen, finds its connection closed by the server.
    assert reason in ("transport close", "transport error", "ping timeout")
