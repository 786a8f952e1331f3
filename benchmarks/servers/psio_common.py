"""The python-socketio benchmark server's handlers, shared by its aiohttp and ASGI runs."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import socketio  # type: ignore[import-untyped]
from _common import BroadcastPlan, now_ms, result


def build(async_mode: str, ping_interval: float, ping_timeout: float) -> socketio.AsyncServer:
    sio = socketio.AsyncServer(
        async_mode=async_mode,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        http_compression=False,
        # No Origin check: the generator sends no Origin header, as non-browser clients don't.
        cors_allowed_origins="*",
        logger=False,
        engineio_logger=False,
    )

    if os.environ.get("BENCH_ASYNC_ECHO") == "1":

        @sio.on("echo")
        async def echo_async(sid: str, *args: Any) -> tuple[Any, ...]:
            # The echo-async scenario: what most applications write.
            return args

    else:

        @sio.on("echo")
        def echo(sid: str, *args: Any) -> tuple[Any, ...]:
            # A plain function, as it needs no await (so does triosio's).
            return args  # a tuple: each element is one ack argument

    @sio.on("join")
    async def join(sid: str, room: str) -> bool:
        await sio.enter_room(sid, room)
        return True

    @sio.on("bench_broadcast", namespace="/control")
    async def bench_broadcast(sid: str, opts: Any) -> dict[str, Any]:
        plan = BroadcastPlan.from_request(opts)
        started = time.perf_counter()
        for seq in range(plan.n):
            if plan.rate > 0:
                delay = plan.due(started, seq) - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            await sio.emit("tick", (seq, now_ms(), plan.payload), to=plan.room, namespace="/")
            if plan.rate <= 0:
                # emit() only queues on each socket and never suspends, so without
                # this the writers would not run until the whole burst was queued.
                await asyncio.sleep(0)
        return result(plan, started)

    return sio
