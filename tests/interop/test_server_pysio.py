"""triosio's server against python-socketio's AsyncClient (asyncio, in a thread of its own).

The AsyncClient runs on its own asyncio loop in a worker thread; the server
runs in the test's Trio run on 127.0.0.1. The client script returns what it
saw, and the test compares it with what the server saw.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import trio
from server_peers import running

import triosio

socketio = pytest.importorskip("socketio")
pytest.importorskip("aiohttp")

pytestmark = pytest.mark.interop


def make_server(seen: list[Any]) -> triosio.Server:
    sio = triosio.Server()
    chat = sio.of("/chat")

    @sio.on("connection")
    async def connection(socket: triosio.Socket, auth: Any) -> None:
        seen.append(("auth", auth))
        await socket.emit("welcome", {"blob": b"\x00\x01", "list": [1, {"b": b"\xff"}]})

        @socket.on("echo")
        def echo(*args: Any) -> tuple[Any, ...]:
            return args

        @socket.on("ask me")
        async def ask_me() -> None:
            answer = await socket.emit_with_ack("question", 20, timeout=5)
            seen.append(("answer", answer))
            await socket.emit("answer", answer)

        @socket.on("join")
        async def join(room: str) -> None:
            await socket.join(room)
            await sio.to(room).emit("room news", room)

        @socket.on("kick me")
        async def kick_me() -> None:
            await socket.disconnect()

        socket.on("disconnect", lambda reason: seen.append(("disconnect", reason)))

    @chat.on("where")
    def where(socket: triosio.Socket) -> str:
        return socket.nsp.name

    return sio


async def client_script(url: str, transports: list[str]) -> dict[str, Any]:
    seen: dict[str, Any] = {"events": []}
    client = socketio.AsyncClient(reconnection=False)
    kicked = asyncio.Event()

    @client.on("welcome")
    async def welcome(data: Any) -> None:
        seen["events"].append(("welcome", data))

    @client.on("question")
    async def question(n: int) -> int:
        return n * 2

    @client.on("answer")
    async def answer(value: Any) -> None:
        seen["events"].append(("answer", value))

    @client.on("room news")
    async def room_news(room: str) -> None:
        seen["events"].append(("room news", room))

    @client.on("disconnect")
    async def disconnect(reason: Any = None) -> None:
        seen["disconnect"] = str(reason)
        kicked.set()

    await client.connect(
        url,
        auth={"token": "py"},
        transports=transports,
        namespaces=["/", "/chat"],
        wait_timeout=5,
    )
    seen["transport"] = client.transport()
    seen["echo"] = await client.call("echo", ("a", b"\x02", {"n": [1, 2]}), timeout=5)
    seen["single"] = await client.call("echo", {"x": b"\x03"}, timeout=5)
    seen["where"] = await client.call("where", namespace="/chat", timeout=5)
    await client.emit("ask me")
    await client.emit("join", "lobby")
    for _ in range(200):
        if len(seen["events"]) >= 3:
            break
        await asyncio.sleep(0.01)
    await client.emit("kick me")
    await asyncio.wait_for(kicked.wait(), 5)
    await client.disconnect()
    return seen


@pytest.mark.parametrize(
    "transports", [["polling"], ["websocket"], ["polling", "websocket"]], ids=str
)
async def test_python_socketio_async_client(transports: list[str]) -> None:
    seen: list[Any] = []
    sio = make_server(seen)
    async with running(sio) as url:
        with trio.fail_after(30):
            result = await trio.to_thread.run_sync(
                asyncio.run, client_script(url, transports)
            )
    assert result["transport"] == transports[-1]
    assert result["echo"] == ("a", b"\x02", {"n": [1, 2]})
    assert result["single"] == {"x": b"\x03"}
    assert result["where"] == "/chat"
    assert sorted(result["events"], key=str) == sorted(
        [
            ("welcome", {"blob": b"\x00\x01", "list": [1, {"b": b"\xff"}]}),
            ("answer", 40),
            ("room news", "lobby"),
        ],
        key=str,
    )
    assert result["disconnect"] == "server disconnect"
    assert seen[0] == ("auth", {"token": "py"})
    assert ("answer", 40) in seen
    assert ("disconnect", triosio.DisconnectReason.SERVER_NAMESPACE_DISCONNECT) in seen
