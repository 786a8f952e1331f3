"""What one owner *task* for a socket's pending acknowledgements would cost.

A socket's pending acknowledgements have one owner object (``PendingAcks``),
changed only through synchronous methods, from the tasks that need to (the
emitting task, the router, the reader, the closer). The alternative is the
router task as owner: the reader would hand every incoming ACK to the router
(a command in its inbox and a wake-up of the router task) instead of
resolving it where it arrived. This measures both, in one process, on the
reader's path of one acknowledgement (``emit_with_ack``'s answer):

    direct  the reader resolves the ack itself
    router  the reader queues a command; the router task applies it

Each ack is followed by a schedule point, as the reader's next receive would
be, so the router really wakes up once per ack (an ack per round trip is the
common case). Runs alternate, and the best of each is reported, since other
processes on the machine only ever add time::

    python benchmarks/owners.py [--acks 100000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import trio

from triosio._server._commands import Call
from triosio._server.acks import PendingAcks
from triosio._server.router import Router


def _noop(sid: str, value: Any) -> None:
    pass


async def _direct(acks: PendingAcks, count: int) -> float:
    start = time.process_time()
    for i in range(count):
        acks.expect(i, _noop)
        acks.resolve(i, "value")
        await trio.lowlevel.checkpoint()
    return time.process_time() - start


async def _via_router(acks: PendingAcks, count: int) -> float:
    router = Router()
    async with trio.open_nursery() as nursery:
        await nursery.start(router.run)
        inbox = router._inbox
        start = time.process_time()
        for i in range(count):
            acks.expect(i, _noop)
            inbox.put_nowait(Call(lambda r, i=i: acks.resolve(i, "value")))
            await trio.lowlevel.checkpoint()
        while router.queued:
            await trio.lowlevel.checkpoint()
        elapsed = time.process_time() - start
        nursery.cancel_scope.cancel()
    return elapsed


async def main(count: int, rounds: int) -> None:
    acks = PendingAcks("sid")
    best = {"direct": float("inf"), "router": float("inf")}
    for _ in range(rounds):
        best["direct"] = min(best["direct"], await _direct(acks, count))
        best["router"] = min(best["router"], await _via_router(acks, count))
    for name, seconds in best.items():
        print(f"{name:7s} {seconds / count * 1e6:6.2f} us of CPU per ack")
    print(f"a router hop adds {(best['router'] - best['direct']) / count * 1e6:.2f} us per ack")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--acks", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    trio.run(main, options.acks, options.rounds)
