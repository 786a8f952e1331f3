"""A chat server: rooms, history, typing indicators and private messages.

Run it with ``python examples/chat/server.py [--host 127.0.0.1] [--port 8000]``
and open http://127.0.0.1:8000/ in two browser windows. The page uses the
official socket.io browser client: served from this machine when the npm
``socket.io-client`` package is installed (``npm ci`` in examples/chat, which
``scripts/run-chat.sh`` does), from the official CDN otherwise.

Socket.IO events (namespace ``/``):

- ``join {name, room}`` with ack -> ``{"ok": true, "users": [...], "history": [...]}``
  or ``{"ok": false, "error": "..."}``. Joining another room leaves the current one.
- ``message text`` with ack -> everyone in the room, sender included, gets
  ``message {id, room, name, text, time}``; the ack is ``{"ok": true, "id": id}``.
- ``typing true|false`` -> the others in the room get ``typing {name, typing}``.
- ``private {to, text}`` -> only that user gets ``private {from, text}``.
- Everyone in a room gets ``users [names...]`` when someone joins or leaves, and
  everyone gets ``rooms [{name, users}]`` when the list of rooms changes.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

import triosio

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
CDN_BUNDLE = "https://cdn.socket.io/4.8.1/socket.io.min.js"
MAX_NAME = 24
MAX_ROOM = 32
MAX_TEXT = 1000
HISTORY = 50

log = logging.getLogger("chat")


@dataclass
class Room:
    """One chat room: who is in it and its recent messages."""

    name: str
    users: dict[str, str] = field(default_factory=dict)  # socket id -> user name
    history: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=HISTORY))


class Chat:
    """The chat's state and its Socket.IO handlers.

    All state lives in the Trio thread and is only touched by handlers, which
    run one at a time per client: no locks needed.
    """

    def __init__(self, sio: triosio.Server) -> None:
        self.sio = sio
        self.rooms: dict[str, Room] = {}
        self.names: dict[str, str] = {}  # user name -> socket id
        self.ids = itertools.count(1)
        sio.on("connection", self.connected)

    def _clean(self, value: Any, limit: int, what: str) -> str | dict[str, Any]:
        if not isinstance(value, str) or not value.strip():
            return {"ok": False, "error": f"the {what} must not be empty"}
        value = value.strip()
        if len(value) > limit:
            return {"ok": False, "error": f"the {what} is longer than {limit} characters"}
        return value

    def room_list(self) -> list[dict[str, Any]]:
        """Every room with its number of users, by name."""
        return [
            {"name": room.name, "users": len(room.users)}
            for room in sorted(self.rooms.values(), key=lambda r: r.name)
        ]

    async def connected(self, socket: triosio.Socket) -> None:
        """A client connected: give it the room list and its handlers."""
        await socket.emit("rooms", self.room_list())

        @socket.on("join")
        async def join(request: Any) -> dict[str, Any]:
            if not isinstance(request, dict):
                return {"ok": False, "error": "send {name, room}"}
            name = self._clean(request.get("name"), MAX_NAME, "name")
            if isinstance(name, dict):
                return name
            room_name = self._clean(request.get("room"), MAX_ROOM, "room")
            if isinstance(room_name, dict):
                return room_name
            owner = self.names.get(name)
            if owner is not None and owner != socket.id:
                return {"ok": False, "error": f"the name {name!r} is taken"}
            await self.leave(socket)
            self.names[name] = socket.id
            socket.data["name"] = name
            socket.data["room"] = room_name
            room = self.rooms.get(room_name)
            if room is None:
                room = self.rooms[room_name] = Room(room_name)
            room.users[socket.id] = name
            await socket.join(room_name)
            users = sorted(room.users.values())
            await self.sio.to(room_name).emit("users", users)
            await self.sio.emit("rooms", self.room_list())
            return {"ok": True, "users": users, "history": list(room.history)}

        @socket.on("message")
        async def message(text: Any) -> dict[str, Any]:
            room = self.rooms.get(socket.data.get("room", ""))
            if room is None:
                return {"ok": False, "error": "join a room first"}
            cleaned = self._clean(text, MAX_TEXT, "message")
            if isinstance(cleaned, dict):
                return cleaned
            item = {
                "id": next(self.ids),
                "room": room.name,
                "name": socket.data["name"],
                "text": cleaned,
                "time": int(time.time() * 1000),
            }
            room.history.append(item)
            await self.sio.to(room.name).emit("message", item)
            return {"ok": True, "id": item["id"]}

        @socket.on("typing")
        async def typing(active: Any) -> None:
            room_name = socket.data.get("room")
            if room_name is not None:
                await socket.to(room_name).emit(
                    "typing", {"name": socket.data["name"], "typing": bool(active)}
                )

        @socket.on("private")
        async def private(request: Any) -> dict[str, Any]:
            sender = socket.data.get("name")
            if sender is None:
                return {"ok": False, "error": "join a room first"}
            if not isinstance(request, dict):
                return {"ok": False, "error": "send {to, text}"}
            target = self.names.get(request.get("to", ""))
            if target is None:
                return {"ok": False, "error": "no such user"}
            text = self._clean(request.get("text"), MAX_TEXT, "message")
            if isinstance(text, dict):
                return text
            await self.sio.to(target).emit("private", {"from": sender, "text": text})
            return {"ok": True}

        @socket.on("disconnect")
        async def disconnect(reason: triosio.DisconnectReason) -> None:
            log.info("%s left (%s)", socket.data.get("name", socket.id), reason)
            await self.leave(socket)

    async def leave(self, socket: triosio.Socket) -> None:
        """Take the socket's user out of its room (on re-join and on disconnect)."""
        room_name = socket.data.pop("room", None)
        name = socket.data.pop("name", None)
        if name is not None and self.names.get(name) == socket.id:
            del self.names[name]
        room = self.rooms.get(room_name) if room_name is not None else None
        if room is None:
            return
        room.users.pop(socket.id, None)
        if socket.connected:
            await socket.leave(room_name)
        await self.sio.to(room.name).emit("users", sorted(room.users.values()))
        if not room.users:
            del self.rooms[room.name]
        await self.sio.emit("rooms", self.room_list())


def find_client_bundle() -> Path | None:
    """The socket.io browser bundle from an installed npm socket.io-client, if any."""
    for base in (HERE, HERE.parent.parent / "tests" / "js"):
        bundle = base / "node_modules" / "socket.io-client" / "dist" / "socket.io.min.js"
        if bundle.is_file():
            return bundle
    return None


class ClientBundle:
    """Serves ``/vendor/socket.io.min.js``: the local bundle, or a redirect to the CDN."""

    path = "/vendor/"

    def __init__(self) -> None:
        self.bundle = find_client_bundle()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()

    async def shutdown(self) -> None:
        await trio.lowlevel.checkpoint()

    async def handle(self, exchange: Any) -> None:
        if exchange.request.path != "/vendor/socket.io.min.js":
            await exchange.respond(404, [("content-type", "text/plain")], b"not found")
        elif self.bundle is None:
            await exchange.respond(302, [("location", CDN_BUNDLE)], b"")
        else:
            body = await trio.Path(self.bundle).read_bytes()
            await exchange.respond(200, [("content-type", "text/javascript; charset=utf-8")], body)


def make_app() -> tuple[triosio.App, Chat]:
    """The chat's HTTP application (Socket.IO, the client bundle, the page)."""
    sio = triosio.Server()
    chat = Chat(sio)
    return triosio.App(sio, ClientBundle(), static={"/": STATIC}), chat


async def main(host: str, port: int) -> None:
    """Serve the chat until interrupted."""
    app, _chat = make_app()
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(triosio.serve, app, host, port)
        port = listeners[0].socket.getsockname()[1]  # the real one when --port 0
        bundle = find_client_bundle()
        source = f"local ({bundle})" if bundle else f"CDN ({CDN_BUNDLE})"
        print(f"chat server on http://{host}:{port}/ — socket.io client: {source}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        trio.run(main, args.host, args.port)
    except KeyboardInterrupt:
        pass
