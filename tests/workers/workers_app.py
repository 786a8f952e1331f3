"""The application the worker tests serve: ``triosio run workers_app:sio --workers 2``."""

from __future__ import annotations

import os
from typing import Any

import triosio
import triosio.asgi

sio = triosio.Server(ping_interval=5, ping_timeout=10)


@sio.on("connection")
async def connected(socket: triosio.Socket, auth: Any) -> None:
    room = auth.get("room") if isinstance(auth, dict) else None
    if isinstance(room, str):
        await socket.join(room)


@sio.on("echo")
def echo(socket: triosio.Socket, *args: Any) -> Any:
    return args[0] if len(args) == 1 else list(args)


@sio.on("pid")
def pid(socket: triosio.Socket) -> int:
    return os.getpid()


@sio.on("shout")
async def shout(socket: triosio.Socket, room: str | None, text: str) -> int:
    if room:
        await sio.to(room).emit("news", text, os.getpid())
    else:
        await sio.emit("news", text, os.getpid())
    return os.getpid()


@sio.on("count")
async def count(socket: triosio.Socket, room: str | None) -> int:
    found = await (sio.to(room).fetch_sockets() if room else sio.fetch_sockets())
    return len(found)


@sio.on_server_side("ping-servers")
def ping_servers(text: str) -> int:
    return os.getpid()


@sio.on("ask-servers")
async def ask_servers(socket: triosio.Socket) -> list[Any]:
    return list(await sio.server_side_emit_with_ack("ping-servers", "hi", timeout=5))


HERE_IS_NOT_A_SERVER = 42


def make_app() -> triosio.App:
    """A factory of an App (for ``triosio run workers_app:make_app``)."""
    return triosio.App(triosio.Server())


def asgi_factory() -> triosio.asgi.ASGIApp:
    """A factory of an ASGI application (served by Hypercorn)."""
    return triosio.asgi.ASGIApp(triosio.Server())
