"""Emitting from other threads: Server.run_from_thread (real clock: threads are involved)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import trio
from conftest import connect, serving, settle, until

import triosio
from triosio.testing import MemoryNetwork


async def test_run_from_thread(net: MemoryNetwork) -> None:
    sio = triosio.Server()

    @sio.on("connection")
    async def connection(socket: triosio.Socket) -> None:
        await socket.join("news")

    got: list[Any] = []
    with trio.fail_after(20):
        async with serving(sio, net), connect(net) as client:
            client.on("tick", got.append)
            client.on("room", lambda x: got.append(("room", x)))
            client.on("ask", lambda x: x * 2)
            await settle()

            def worker() -> list[Any]:
                # Any thread: a plain threading.Thread, not one Trio started.
                for n in range(50):
                    sio.run_from_thread(sio.emit, "tick", n)
                sio.run_from_thread(sio.to("news").emit, "room", "x")
                sockets = sio.run_from_thread(sio.fetch_sockets)
                return [
                    sio.run_from_thread(s.emit_with_ack, "ask", 21, timeout=5) for s in sockets
                ]

            results: list[list[Any]] = []
            thread = threading.Thread(target=lambda: results.append(worker()))
            thread.start()
            await trio.to_thread.run_sync(thread.join)
            await until(lambda: len(got) == 51)
    assert got == [*range(50), ("room", "x")]  # in the order the thread emitted
    assert results == [[42]]


def test_run_from_thread_needs_a_running_server() -> None:
    sio = triosio.Server()
    with pytest.raises(RuntimeError, match="not running"):
        sio.run_from_thread(sio.emit, "x")
