"""triosio.admin: the Admin UI's protocol (@socket.io/admin-ui 0.5.x), with a
triosio client in the UI's place on the in-memory network. The real UI, in
Chromium, is driven by tests/integration/test_admin_ui.py."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
from conftest import LIMIT, connect, serving, settle, until

import triosio
import triosio.admin
from triosio.testing import MemoryNetwork

CREDENTIALS = {"username": "admin", "password": "s3cret"}
ISO_DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


class UI:
    """What an Admin UI connected to the admin namespace received."""

    def __init__(self, socket: triosio.ClientSocket) -> None:
        self.socket = socket
        self.seen: list[tuple[str, tuple[Any, ...]]] = []
        socket.on_any(lambda event, *args: self.seen.append((event, args)))

    def of(self, event: str) -> list[tuple[Any, ...]]:
        return [args for name, args in self.seen if name == event]

    def last(self, event: str) -> tuple[Any, ...]:
        return self.of(event)[-1]


@asynccontextmanager
async def admin_ui(
    net: MemoryNetwork, auth: Any = CREDENTIALS, namespace: str = "/admin"
) -> AsyncIterator[UI]:
    # As the UI does: handlers first, then the namespace's CONNECT.
    manager = triosio.Manager(
        "http://test", connector=net.connector, transports=("websocket",), reconnection=False
    )
    async with manager:
        ui = UI(manager.socket(namespace, auth=auth))
        await ui.socket.connect()
        yield ui


def instrumented(**options: Any) -> triosio.Server:
    sio = triosio.Server()
    options.setdefault("auth", CREDENTIALS)
    triosio.admin.instrument(sio, server_id="test-server", **options)
    return sio


async def test_login_config_sockets_and_stats(autojump_clock: Any, net: MemoryNetwork) -> None:
    sio = instrumented()
    sio.of("/chat")
    with trio.fail_after(LIMIT):
        async with serving(sio, net), connect(net, query={"q": "1"}) as client:
            with pytest.raises(triosio.ConnectError, match="invalid credentials"):
                async with admin_ui(net, auth={"username": "admin", "password": "wrong"}):
                    pass
            with pytest.raises(triosio.ConnectError, match="invalid credentials"):
                async with admin_ui(net, auth=None):
                    pass
            async with admin_ui(net) as ui:
                await settle()
                (session_id,) = ui.of("session")[0]
                assert re.fullmatch(r"[0-9a-f]{16}", session_id)
                ((config,),) = ui.of("config")
                assert config == {
                    "supportedFeatures": [
                        "EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE",
                        "MDISCONNECT", "AGGREGATED_EVENTS", "ALL_EVENTS",
                    ]
                }  # fmt: skip
                ((sockets,),) = ui.of("all_sockets")
                (mine,) = [s for s in sockets if s["nsp"] == "/"]
                assert mine["id"] == client.id
                assert mine["rooms"] == [client.id]
                assert mine["transport"] == "websocket"
                assert len(mine["clientId"]) == 12
                assert mine["data"] == {}
                handshake = mine["handshake"]
                assert handshake["query"]["q"] == "1"
                assert set(handshake) == {
                    "address", "headers", "query", "issued", "secure", "time", "url", "xdomain",
                }  # fmt: skip
                # The admin socket itself is listed too, as in the reference.
                assert [s["nsp"] for s in sockets if s["nsp"] != "/"] == ["/admin"]
                (stats,) = ui.of("server_stats")[0]
                assert stats["serverId"] == "test-server"
                assert stats["clientsCount"] == 2
                assert stats["pollingClientsCount"] == 0
                assert {n["name"]: n["socketsCount"] for n in stats["namespaces"]} == {
                    "/": 1,
                    "/admin": 1,
                    "/chat": 0,
                }
                assert {"hostname", "pid", "uptime", "aggregatedEvents"} <= set(stats)
                # Then every 2 seconds, with the traffic since the last ones.
                await trio.sleep(2.5)
                later = [args[0] for args in ui.of("server_stats")[1:]]
                assert later
                kinds = {e["type"] for s in later for e in s["aggregatedEvents"]}
                assert {"rawConnection", "packetsIn", "bytesIn", "packetsOut", "bytesOut"} <= kinds

            # The session id lets the UI back in without the password.
            async with admin_ui(net, auth={"sessionId": session_id}) as ui:
                await settle()
                assert ui.of("session") == []
                assert ui.of("config")


async def test_changes_reach_the_ui(autojump_clock: Any, net: MemoryNetwork) -> None:
    sio = instrumented()
    sockets: list[triosio.Socket] = []

    @sio.on("connection")
    async def connection(socket: triosio.Socket) -> None:
        sockets.append(socket)
        socket.data["user"] = "ann"
        await socket.join("lobby")

    sio.on("hello", lambda socket, n: None)
    with trio.fail_after(LIMIT):
        async with serving(sio, net), admin_ui(net) as ui:
            async with connect(net, transport="upgrade") as client:
                await settle()
                (connected, when) = ui.last("socket_connected")
                assert connected["id"] == client.id
                assert connected["nsp"] == "/"
                assert connected["transport"] == "polling"
                assert ISO_DATE.match(when)
                assert ("/", "lobby", client.id) in [a[:3] for a in ui.of("room_joined")]
                # The upgrade to WebSocket is reported.
                await until(lambda: ui.of("socket_updated"))
                assert ui.last("socket_updated")[0] == {
                    "id": client.id,
                    "nsp": "/",
                    "transport": "websocket",
                }
                await client.emit("hello", 1)
                await sockets[0].emit("welcome", {"a": [1, 2]})
                await settle()
                assert ui.last("event_received")[:3] == ("/", client.id, ["hello", 1])
                assert ui.last("event_sent")[:3] == ("/", client.id, ["welcome", {"a": [1, 2]}])
                await sockets[0].leave("lobby")
                await settle()
                assert ui.last("room_left")[:3] == ("/", "lobby", client.id)
            await settle()
            nsp, sid, reason, when = ui.last("socket_disconnected")
            assert (nsp, sid, reason) == ("/", sockets[0].id, "client namespace disconnect")
            # Nothing about the admin namespace's own events.
            assert all(args[0] == "/" for args in ui.of("event_received") + ui.of("event_sent"))


async def test_the_uis_actions(autojump_clock: Any, net: MemoryNetwork) -> None:
    sio = instrumented()
    sockets: dict[str, triosio.Socket] = {}
    sio.on("connection", lambda s, auth: sockets.setdefault(auth["name"], s))
    with trio.fail_after(LIMIT):
        async with (
            serving(sio, net),
            admin_ui(net) as ui,
            connect(net, auth={"name": "a"}) as a,
            connect(net, auth={"name": "b"}) as b,
        ):
            got: list[Any] = []
            a.on("notice", got.append)
            b.on("notice", got.append)
            await settle()
            # One socket (the UI names it by its id, a room), then all of them.
            await ui.socket.emit("join", "/", "room1", a.id)
            await settle()
            assert "room1" in sockets["a"].rooms and "room1" not in sockets["b"].rooms
            await ui.socket.emit("join", "/", "room2")
            await settle()
            assert all("room2" in s.rooms for s in sockets.values())
            await ui.socket.emit("leave", "/", "room2", b.id)
            await settle()
            assert "room2" in sockets["a"].rooms and "room2" not in sockets["b"].rooms
            await ui.socket.emit("emit", "/", "room1", "notice", "to room1")
            await ui.socket.emit("emit", "/", None, "notice", "to all")
            await settle()
            assert sorted(got) == ["to all", "to all", "to room1"]
            # Nonsense is ignored, a namespace the server lacks is not created.
            await ui.socket.emit("join", "/nowhere", "r", None)
            await ui.socket.emit("join", 42, ["r"])
            await ui.socket.emit("_disconnect")
            await settle()
            assert "/nowhere" not in sio.namespaces
            b_id = b.id
            await ui.socket.emit("_disconnect", "/", False, b_id)
            await settle()
            assert not sockets["b"].connected
            assert sockets["b"].reason is triosio.DisconnectReason.SERVER_NAMESPACE_DISCONNECT
            assert sockets["a"].connected
            assert ui.last("socket_disconnected")[1:3] == (b_id, "server namespace disconnect")


async def test_read_only_and_production(autojump_clock: Any, net: MemoryNetwork) -> None:
    sio = instrumented(read_only=True, mode="production", auth=False)
    sockets: list[triosio.Socket] = []
    sio.on("connection", sockets.append)
    with trio.fail_after(LIMIT):
        async with serving(sio, net), admin_ui(net, auth=None) as ui:
            async with connect(net) as client:
                await client.emit("hello")
                await ui.socket.emit("_disconnect", "/", False, client.id)
                await trio.sleep(2.5)
                assert sockets[0].connected  # read only
                assert ui.of("config") == [({"supportedFeatures": ["AGGREGATED_EVENTS"]},)]
                assert ui.of("session") == []  # no login, no session
                # Production: no socket list, no per-socket messages; stats only.
                assert {name for name, _ in ui.seen} == {"config", "server_stats"}
                events = [e for (s,) in ui.of("server_stats") for e in s["aggregatedEvents"]]
                # The UI's connection and the client's.
                assert sum(e["count"] for e in events if e["type"] == "rawConnection") == 2
            await trio.sleep(2.5)
            events = [e for (s,) in ui.of("server_stats") for e in s["aggregatedEvents"]]
            closes = [e for e in events if e["type"] == "rawDisconnection"]
            assert [(e["subType"], e["count"]) for e in closes] == [("transport close", 1)]


async def test_auth_function_and_options(autojump_clock: Any, net: MemoryNetwork) -> None:
    async def check(auth: dict[str, Any]) -> bool:
        await trio.lowlevel.checkpoint()
        return auth.get("token") == "t0k"

    sio = instrumented(auth=check, namespace="/watch")
    with trio.fail_after(LIMIT):
        async with serving(sio, net):
            with pytest.raises(triosio.ConnectError, match="invalid credentials"):
                async with admin_ui(net, auth={"token": "no"}, namespace="/watch"):
                    pass
            async with admin_ui(net, auth={"token": "t0k"}, namespace="/watch") as ui:
                await settle()
                assert ui.of("config") and ui.of("session")
    with pytest.raises(ValueError, match="mode"):
        triosio.admin.instrument(triosio.Server(), auth=False, mode="staging")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="password"):
        triosio.admin.instrument(triosio.Server(), auth={"username": "x"})
    with pytest.raises(TypeError):
        triosio.admin.instrument(triosio.Server(), auth=True)  # type: ignore[arg-type]


async def test_odd_socket_data_still_lists(autojump_clock: Any, net: MemoryNetwork) -> None:
    sio = instrumented()

    @sio.on("connection")
    def connection(socket: triosio.Socket) -> None:
        socket.data["when"] = object()
        socket.data["nan"] = float("nan")
        socket.data["tags"] = {"a"}

    with trio.fail_after(LIMIT):
        async with serving(sio, net), connect(net) as client, admin_ui(net) as ui:
            await settle()
            ((sockets,),) = ui.of("all_sockets")
            (mine,) = [s for s in sockets if s["id"] == client.id]
            assert mine["data"]["nan"] is None
            assert mine["data"]["tags"] == ["a"]
            assert mine["data"]["when"].startswith("<object object")
