"""The server's memory over many connection cycles: flat after warm-up?

A triosio server runs in its own process; this one opens and closes
connections to it over real loopback sockets, ``--parallel`` at a time, each
one a whole cycle: connect (WebSocket), join a room (in the server's
``connection`` handler), one acknowledged event, a broadcast to the room,
disconnect. Every ``--every`` cycles the server's RSS (``/proc``) is sampled::

    python benchmarks/connection_cycles.py [--cycles 50000] [--parallel 20] [--every 2500]

Prints one JSON line per sample and a summary: RSS after warm-up (the first
10 % of the cycles) against RSS at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time

import trio

import triosio

SERVER = textwrap.dedent(
    """
    import trio, triosio

    sio = triosio.Server()

    @sio.on("connection")
    async def connected(socket):
        await socket.join("room")
        socket.on("hello", lambda n: n)

    @sio.on("disconnect")
    async def gone(socket, reason):
        await sio.to("room").emit("left", socket.id)

    async def main():
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(triosio.serve, sio, "127.0.0.1", 0)
            print(listeners[0].socket.getsockname()[1], flush=True)

    trio.run(main)
    """
)


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


async def run(url: str, pid: int, cycles: int, parallel: int, every: int) -> list[dict[str, float]]:
    samples: list[dict[str, float]] = []
    done = 0
    start = time.monotonic()

    async def worker(share: int) -> None:
        nonlocal done
        for _ in range(share):
            async with triosio.connect(url, transports=["websocket"], reconnection=False) as c:
                if await c.emit_with_ack("hello", 1, timeout=10) != 1:
                    raise RuntimeError("a wrong acknowledgement")
            done += 1
            if done % every == 0:
                sample = {
                    "cycles": done,
                    "rss_kib": rss_kib(pid),
                    "seconds": round(time.monotonic() - start, 1),
                }
                samples.append(sample)
                print(json.dumps(sample), flush=True)

    async with trio.open_nursery() as nursery:
        for i in range(parallel):
            nursery.start_soon(worker, cycles // parallel + (i < cycles % parallel))
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=50_000)
    parser.add_argument("--parallel", type=int, default=20)
    parser.add_argument("--every", type=int, default=2500)
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
        before = rss_kib(server.pid)
        samples = trio.run(
            run, f"http://127.0.0.1:{port}", server.pid, args.cycles, args.parallel, args.every
        )
        time.sleep(1)
        warm = next(s for s in samples if s["cycles"] >= args.cycles // 10)
        print(
            json.dumps(
                {
                    "rss_start_kib": before,
                    "rss_after_warm_up_kib": warm["rss_kib"],
                    "rss_end_kib": rss_kib(server.pid),
                    "growth_after_warm_up_kib": rss_kib(server.pid) - warm["rss_kib"],
                }
            )
        )
    finally:
        server.terminate()  # by PID: the server this script started
        server.wait(10)


if __name__ == "__main__":
    main()
