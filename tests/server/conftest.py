"""Helpers for the Socket.IO server tests: the real stack on an in-memory network.

Every test here runs the real server (HTTP, Engine.IO, Socket.IO) on a
:class:`MemoryNetwork` and talks to it with the real Trio client or with raw
HTTP requests, under ``MockClock(autojump_threshold=0)``: minutes of protocol
time take milliseconds, the same way every run.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import h11
import pytest
import trio
import trio.testing

import triosio
import triosio.testing
from triosio.testing import MemoryNetwork

# A per-test limit in Trio (mock) time, so that a hang fails fast.
LIMIT = 600


@pytest.fixture
def net() -> MemoryNetwork:
    return MemoryNetwork()


@asynccontextmanager
async def serving(sio: triosio.Server, net: MemoryNetwork) -> AsyncIterator[triosio.Server]:
    """Serve ``sio`` on ``net`` for the duration of the block (triosio.testing)."""
    async with triosio.testing.serve_memory(sio, network=net):
        yield sio


def connect(
    net: MemoryNetwork, nsp: str = "/", transport: str = "websocket", **options: Any
) -> Any:
    """``triosio.connect`` to the in-memory server (no reconnection by default)."""
    transports = {
        "polling": ("polling",),
        "websocket": ("websocket",),
        "upgrade": ("polling", "websocket"),
    }[transport]
    options.setdefault("reconnection", False)
    return triosio.connect(
        f"http://test{nsp}", connector=net.connector, transports=transports, **options
    )


TRANSPORTS = ["polling", "websocket", "upgrade"]


async def settle() -> None:
    """Let every task run until all are blocked (messages delivered, handlers done)."""
    for _ in range(3):
        await trio.testing.wait_all_tasks_blocked()
        await trio.sleep(0.01)
    await trio.testing.wait_all_tasks_blocked()


async def until(check: Callable[[], Any], timeout: float = 30) -> Any:
    """Wait (in Trio time) until ``check()`` is truthy; return it."""
    with trio.fail_after(timeout):
        while not (result := check()):  # noqa: ASYNC110 (a test helper: any condition)
            await trio.sleep(0.01)
    return result


class RawPolling:
    """An Engine.IO polling client by hand, for exact bytes on the wire."""

    def __init__(self, net: MemoryNetwork, path: str = "/socket.io/") -> None:
        self.net = net
        self.path = path
        self.sid: str | None = None

    async def request(self, method: str, query: str, body: bytes = b"") -> tuple[int, bytes]:
        """One HTTP/1.1 request on a new connection; (status, body)."""
        stream = await self.net.connect()
        conn = h11.Connection(h11.CLIENT)
        headers = [("host", "test"), ("content-length", str(len(body)))]
        if body:
            headers.append(("content-type", "text/plain;charset=UTF-8"))
        data = conn.send(h11.Request(method=method, target=f"{self.path}?{query}", headers=headers))
        data += conn.send(h11.Data(data=body)) if body else b""
        data += conn.send(h11.EndOfMessage())
        await stream.send_all(data)
        status = 0
        out = b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(65536))
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                out += bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                break
        await stream.aclose()
        return status, out

    async def open(self) -> dict[str, Any]:
        """The handshake; returns the OPEN packet's data."""
        status, body = await self.request("GET", "EIO=4&transport=polling")
        assert status == 200, body
        assert body.startswith(b"0")
        handshake: dict[str, Any] = json.loads(body[1:])
        self.sid = handshake["sid"]
        return handshake

    async def post(self, *packets: str) -> int:
        """POST Engine.IO packets (text); the status."""
        status, _ = await self.request(
            "POST", f"EIO=4&transport=polling&sid={self.sid}", "\x1e".join(packets).encode()
        )
        return status

    async def get(self) -> tuple[int, list[str]]:
        """One long-poll GET; (status, packets)."""
        status, body = await self.request("GET", f"EIO=4&transport=polling&sid={self.sid}")
        return status, body.decode().split("\x1e") if status == 200 else [body.decode()]
