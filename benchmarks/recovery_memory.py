"""What connection state recovery keeps in memory, and whether it all goes.

A triosio server with recovery on runs in its own process; 1,000 triosio
clients (WebSocket, real loopback sockets) connect to it from this one, all in
one room. Each cycle: a broadcast (so every client has an offset), then every
client's TCP connection is closed under it (the server keeps 1,000 sessions),
20 broadcasts go out while they are away (kept in the log), the clients
reconnect and recover (same id, every missed broadcast), and the server's
memory is read again. Figures come from the server: its RSS (``/proc``), the
bytes Python has allocated (``tracemalloc``), and what recovery keeps::

    python benchmarks/recovery_memory.py [--clients 1000] [--cycles 3] [--src CHECKOUT]

Expect RSS to grow in the first cycle (the allocator's high-water mark) and
then stay. Between cycles the traced bytes grow by the log of packets (it
expires with the window, 60 s here) and by the closed connections' heartbeat
timers (they leave the server's timer heap when they fall due, within the ping
interval); the last figure, taken after both, should be back at the level of
"connected".
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import trio

import triosio

HERE = Path(__file__).resolve().parent

SERVER = textwrap.dedent(
    """
    import gc, sys, tracemalloc
    tracemalloc.start()
    import trio, triosio

    sio = triosio.Server(
        connection_state_recovery=triosio.ConnectionStateRecovery(max_disconnection_duration=60)
    )

    @sio.on("connection")
    async def connected(socket):
        if not socket.recovered:
            await socket.join("all")

    @sio.on("burst")
    async def burst(socket, n):
        for i in range(n):
            await sio.to("all").emit("tick", i)
        return n

    @sio.on("stats")
    def stats(socket):
        gc.collect()
        with open("/proc/self/status") as f:
            rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
        recovery = sio.router.recovery
        return {
            "rss_kib": rss,
            "traced_kib": tracemalloc.get_traced_memory()[0] // 1024,
            "sockets": len(sio.router.sockets("/")),
            "kept_sessions": recovery.kept_sessions,
            "kept_packets": recovery.kept_packets,
            "kept_bytes": recovery.kept_bytes,
            "objects": len(gc.get_objects()),
            "by_type": by_type(),
        }

    def by_type():
        counts = {}
        for o in gc.get_objects():
            name = type(o).__name__
            counts[name] = counts.get(name, 0) + 1
        return counts

    async def main():
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(triosio.serve, sio, "127.0.0.1", 0)
            print(listeners[0].socket.getsockname()[1], flush=True)

    trio.run(main)
    """
)


class Cuttable:
    """A client connector that remembers its TCP streams, so they can be cut."""

    def __init__(self) -> None:
        self.streams: list[trio.SocketStream] = []

    async def __call__(self, host: str, port: int, tls: object = None) -> trio.abc.Stream:
        stream = await trio.open_tcp_stream(host, port)
        self.streams.append(stream)
        return stream

    async def cut(self) -> None:
        streams, self.streams = self.streams, []
        for stream in streams:
            await stream.aclose()


async def run(url: str, clients: int, cycles: int, settle: float) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    connector = Cuttable()
    ticks = [0] * clients
    drops = [0] * clients
    sockets: list[triosio.ClientSocket] = []
    async with trio.open_nursery() as nursery:
        control = await nursery.start(_client, url, None, None)

        async def stats(label: str) -> None:
            row = await control.emit_with_ack("stats", timeout=30)
            row["at"] = label
            types = row.pop("by_type")
            # Objects by type that grew since the same point of the cycle before.
            phase = label.split(": ")[-1]
            earlier = [r for r in rows if r["at"].split(": ")[-1] == phase]
            if earlier:
                last = earlier[-1]["types"]
                row["grown"] = {
                    k: v - last.get(k, 0) for k, v in types.items() if v - last.get(k, 0) > 0
                }
            print(json.dumps(row), flush=True)
            row["types"] = types
            rows.append(row)

        await stats("start")
        for i in range(clients):
            sockets.append(await nursery.start(_client, url, connector, (ticks, drops, i)))
        await stats("connected")
        for cycle in range(1, cycles + 1):
            await control.emit_with_ack("burst", 1, timeout=30)
            await _until(lambda: all(t >= 1 for t in ticks))
            before = [s.id for s in sockets]
            ticks[:] = [0] * clients
            await stats(f"cycle {cycle}: before the drop")
            await connector.cut()
            await _until(lambda c=cycle: all(d >= c for d in drops))
            await control.emit_with_ack("burst", 20, timeout=30)
            await stats(f"cycle {cycle}: away (sessions kept)")
            await _until(lambda: all(s.connected for s in sockets), 120)
            await _until(lambda: all(t >= 20 for t in ticks))
            recovered = sum(s.recovered for s in sockets)
            same = sum(s.id == b for s, b in zip(sockets, before, strict=True))
            exact = sum(t == 20 for t in ticks)
            print(
                f"cycle {cycle}: {recovered} recovered, {same} same id, "
                f"{exact} got exactly the 20 missed",
                flush=True,
            )
            ticks[:] = [0] * clients
            await stats(f"cycle {cycle}: recovered")
        # Past the window (and the heartbeat timers of the closed connections,
        # which leave the server's timer heap when they fall due): nothing kept.
        await trio.sleep(settle)
        await stats("after the window")
        nursery.cancel_scope.cancel()
    return rows


async def _client(
    url: str,
    connector: Cuttable | None,
    counter: tuple[list[int], list[int], int] | None,
    *,
    task_status: trio.TaskStatus[triosio.ClientSocket] = trio.TASK_STATUS_IGNORED,
) -> None:
    options: dict[str, Any] = {"transports": ["websocket"]}
    if connector is not None:
        # Back after 1.5-4.5 s: long enough for all to be away at once.
        options.update(connector=connector, reconnection_delay=3, randomization_factor=0.5)
    async with triosio.connect(url, **options) as client:
        if counter is not None:
            ticks, drops, i = counter

            def tick(n: int) -> None:
                ticks[i] += 1

            def dropped(reason: object) -> None:
                drops[i] += 1

            client.on("tick", tick)
            client.on("disconnect", dropped)
        task_status.started(client)
        await trio.sleep_forever()


async def _until(check: Any, timeout: float = 60) -> None:
    with trio.fail_after(timeout):
        while not check():  # noqa: ASYNC110 (a benchmark's poll)
            await trio.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--settle", type=float, default=65, help="seconds to wait at the end")
    parser.add_argument("--src", help="a checkout whose triosio the server runs")
    args = parser.parse_args()
    env = dict(os.environ)
    if args.src:
        env["PYTHONPATH"] = args.src
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER], stdout=subprocess.PIPE, env=env, text=True
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        trio.run(run, f"http://127.0.0.1:{port}", args.clients, args.cycles, args.settle)
    finally:
        server.terminate()  # by PID: the server this script started
        server.wait(10)


if __name__ == "__main__":
    main()
