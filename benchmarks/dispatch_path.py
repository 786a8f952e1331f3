"""CPU of the server's dispatch path for one echo event, in one process.

What ``Client.on_message`` costs for ``21["echo","hello"]`` (an EVENT asking for
an ack) from the decoding to the ack handed to the WebSocket, with no system
call, no scheduler and no load generator in the figure: the part of an echo
round trip that ``_server/dispatch.py`` decides, for changes too small to see
through ``run.py``'s noise on a shared machine. The real stack runs on
triosio.testing's in-memory network with one real client; the timed calls are
made from the connection's WebSocket reader position (the benchmark takes the
reader's place, as the reader would call ``on_message``), so an ``async def``
handler runs the path it runs on a WebSocket.

    python benchmarks/dispatch_path.py [--events 20000] [--rounds 7]
    TRIOSIO_SRC=<checkout> python benchmarks/dispatch_path.py   # another checkout

Handlers: ``plain`` (``def echo(*args): return args``) and ``async`` (the same
as ``async def``). Rounds alternate; the best round of each is reported, since
other processes only ever add time.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

if os.environ.get("TRIOSIO_SRC"):
    sys.path.insert(0, os.environ["TRIOSIO_SRC"])

import trio
import trio.lowlevel
import trio.testing

import triosio
import triosio.testing

MESSAGE = '21["echo","hello"]'
BATCH = 100  # events between yields (the client reads the acks meanwhile)


async def _measure(kind: str, events: int) -> float:
    sio = triosio.Server()
    clients: list[Any] = []

    @sio.on("connection")
    def connection(socket: triosio.Socket) -> None:
        clients.append(socket.client)
        if kind == "async":

            @socket.on("echo")
            async def echo_async(*args: Any) -> tuple[Any, ...]:
                return args

        else:

            @socket.on("echo")
            def echo(*args: Any) -> tuple[Any, ...]:
                return args

    net = triosio.testing.MemoryNetwork()
    async with (
        triosio.testing.serve_memory(sio, network=net),
        triosio.connect(
            "http://test/", connector=net.connector, transports=("websocket",)
        ) as client,
    ):
        await client.emit_with_ack("echo", "warm")
        (server_client,) = clients
        session = server_client.session
        # Take the reader's place (hand_off_reading is never called: the
        # handler never blocks).
        with trio.CancelScope() as scope:
            session._reader = trio.lowlevel.current_task()
            session._reader_scope = scope
            on_message = server_client.on_message
            spent = 0.0
            for _ in range(events // BATCH):
                start = time.perf_counter()
                for _ in range(BATCH):
                    await on_message(MESSAGE)
                spent += time.perf_counter() - start
                await trio.lowlevel.checkpoint()
                await trio.testing.wait_all_tasks_blocked()
        session._reader = None
    return spent / (events // BATCH * BATCH) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    best: dict[str, float] = {}
    for _ in range(args.rounds):
        for kind in ("plain", "async"):
            us = trio.run(_measure, kind, args.events)
            best[kind] = min(best.get(kind, us), us)
    src = os.environ.get("TRIOSIO_SRC") or "this checkout"
    print(f"dispatch path per echo event ({src}), best of {args.rounds} rounds:")
    for kind, us in best.items():
        print(f"  {kind:6s} {us:6.2f} µs")


if __name__ == "__main__":
    main()
