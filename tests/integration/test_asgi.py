"""The ASGI front end under Hypercorn's Trio worker: the same sessions, another HTTP server."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve

import triosio
import triosio.asgi


def make_server() -> triosio.Server:
    sio = triosio.Server()

    @sio.on("connection")
    async def connected(socket: triosio.Socket, auth: dict[str, Any]) -> None:
        await socket.join("all")

        @socket.on("echo")
        async def echo(*args: Any) -> tuple[Any, ...]:
            return args

        @socket.on("shout")
        async def shout(text: str) -> None:
            await sio.to("all").emit("heard", text)

        @socket.on("ask")
        async def ask(text: str) -> Any:
            # Waits for its own client's answer: the WebSocket must be read
            # meanwhile (the reader hands its reading off to a new task).
            return await socket.emit_with_ack("question", text, timeout=5)

    return sio


async def plain_app(scope: Any, receive: Any, send: Any) -> None:
    """Another ASGI app, for everything outside the triosio paths."""
    if scope["type"] == "http":
        headers = [(b"content-length", b"13")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"the other app"})


@pytest.fixture
async def asgi_url() -> AsyncIterator[str]:
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = None
    stop = trio.Event()
    app = triosio.asgi.ASGIApp(make_server(), other_app=plain_app)
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
            functools.partial(hypercorn_serve, app, config, shutdown_trigger=stop.wait)
        )
        yield binds[0]
        stop.set()


@pytest.mark.parametrize("transports", [["polling"], ["websocket"], ["polling", "websocket"]])
async def test_events_acks_and_broadcasts(asgi_url: str, transports: list[str]) -> None:
    with trio.fail_after(20):
        async with (
            triosio.connect(asgi_url, transports=transports) as one,
            triosio.connect(asgi_url, transports=transports) as two,
        ):
            heard: list[str] = []
            got = trio.Event()

            def on_heard(text: str) -> None:
                heard.append(text)
                got.set()

            two.on("heard", on_heard)
            reply = await one.emit_with_ack("echo", 1, b"\x00\xff", {"a": [2]}, timeout=5)
            assert reply == (1, b"\x00\xff", {"a": [2]})
            await one.emit("shout", "hello")
            await got.wait()
            assert heard == ["hello"]
            assert one.manager.transport == transports[-1] or transports == ["polling", "websocket"]


@pytest.mark.parametrize("transports", [["polling"], ["websocket"], ["polling", "websocket"]])
async def test_a_handler_waiting_for_its_own_clients_answer(
    asgi_url: str, transports: list[str]
) -> None:
    with trio.fail_after(20):
        async with triosio.connect(asgi_url, transports=transports) as one:
            one.on("question", lambda text: text.upper())
            for text in ("a", "b", "c"):
                assert await one.emit_with_ack("ask", text, timeout=5) == text.upper()
            assert await one.emit_with_ack("echo", 1, timeout=5) == 1


async def test_other_paths_go_to_the_other_app(asgi_url: str) -> None:
    host, port = asgi_url.removeprefix("http://").split(":")
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        await stream.send_all(b"GET /elsewhere HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        data = b""
        with trio.fail_after(10):
            while chunk := await stream.receive_some():
                data += chunk
    assert data.startswith(b"HTTP/1.1 200")
    assert data.endswith(b"the other app")
