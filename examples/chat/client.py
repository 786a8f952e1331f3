"""A terminal chat client for examples/chat/server.py, written with triosio.connect.

Usage: ``python examples/chat/client.py NAME [--room lobby] [--url http://127.0.0.1:8000]``

Type a line to send it; ``/to NAME text`` sends a private message; ``/join ROOM``
changes rooms; ``/quit`` (or end of input) leaves. It reconnects by itself when
the server goes away, and joins its room again when it is back.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import trio

import triosio


def show(line: str) -> None:
    """Print one line at once (the output may be a pipe)."""
    print(line, flush=True)


def stamp(ms: int) -> str:
    """HH:MM:SS of a millisecond timestamp."""
    return time.strftime("%H:%M:%S", time.localtime(ms / 1000))


async def read_lines() -> Any:
    """Lines of standard input, read without blocking the Trio loop."""
    stream = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    buffer = b""
    async with stream:
        while True:
            data = await stream.receive_some(4096)
            if not data:
                if buffer:
                    yield buffer.decode("utf-8", "replace")
                return
            buffer += data
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                yield line.decode("utf-8", "replace")


async def main(name: str, room: str, url: str) -> None:
    """Chat until the input ends or ``/quit``."""
    state = {"room": room}
    async with triosio.connect(url, reconnection_delay_max=2.0) as client:

        async def join(target: str) -> bool:
            reply = await client.emit_with_ack("join", {"name": name, "room": target}, timeout=10)
            if not reply.get("ok"):
                show(f"! cannot join #{target}: {reply.get('error')}")
                return False
            state["room"] = target
            show(f"* you are in #{target} with {', '.join(reply['users'])}")
            for item in reply["history"]:
                show(f"[{stamp(item['time'])}] {item['name']}: {item['text']}")
            return True

        @client.on("message")
        def message(item: dict[str, Any]) -> None:
            show(f"[{stamp(item['time'])}] {item['name']}: {item['text']}")

        @client.on("private")
        def private(item: dict[str, Any]) -> None:
            show(f"(private) {item['from']}: {item['text']}")

        @client.on("users")
        def users(names: list[str]) -> None:
            show(f"* in #{state['room']}: {', '.join(names)}")

        @client.on("disconnect")
        def disconnected(reason: Any) -> None:
            if reason != triosio.DisconnectReason.IO_CLIENT_DISCONNECT:
                show(f"* disconnected ({reason}); reconnecting…")

        @client.on("connect")
        async def reconnected() -> None:
            # Fires again after every reconnection: the server forgot us, join again.
            show("* connected")
            await join(state["room"])

        if not await join(room):
            return
        async for line in read_lines():
            line = line.strip()
            if not line:
                continue
            if line == "/quit":
                break
            if line.startswith("/join "):
                await join(line[6:].strip())
            elif line.startswith("/to "):
                _, _, rest = line.partition(" ")
                target, _, text = rest.partition(" ")
                request = {"to": target, "text": text}
                reply = await client.emit_with_ack("private", request, timeout=10)
                if reply.get("ok"):
                    show(f"(private to {target}) {text}")
                else:
                    show(f"! {reply.get('error')}")
            else:
                reply = await client.emit_with_ack("message", line, timeout=10)
                if not reply.get("ok"):
                    show(f"! {reply.get('error')}")
    show("* bye")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="triosio terminal chat client")
    parser.add_argument("name")
    parser.add_argument("--room", default="lobby")
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    args = parser.parse_args()
    try:
        trio.run(main, args.name, args.room, args.url)
    except KeyboardInterrupt:
        pass
    except triosio.ConnectError as exc:
        sys.exit(f"cannot connect to {args.url}: {exc.message}")
