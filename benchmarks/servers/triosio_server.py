"""triosio, the benchmark behaviour (written against DESIGN.md's API sketch).

python benchmarks/servers/triosio_server.py --port 5000

TRIOSIO_RECOVERY=1 turns connection state recovery on (a checkout without it
ignores the variable). TRIOSIO_INSTRUMENT=metrics,tracing,admin (any of them)
turns instrumentation on, to measure its cost: Prometheus metrics (never scraped); OpenTelemetry
tracing with the SDK, a batch span processor and an exporter that drops what
it gets; the Admin UI in development mode with no UI connected.
"""

from __future__ import annotations

import os
import sys

# TRIOSIO_SRC=<a checkout>: benchmark that checkout's triosio, for before/after runs.
# An editable install's import hook would win over PYTHONPATH, so drop it first.
if os.environ.get("TRIOSIO_SRC"):
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
    sys.path.insert(0, os.environ["TRIOSIO_SRC"])

import time
from typing import Any

import trio
import trio.lowlevel
from _common import BroadcastPlan, now_ms, parse_args, result

import triosio


def build(ping_interval: float, ping_timeout: float, async_echo: bool = False) -> triosio.Server:
    # TRIOSIO_RECOVERY=1: connection state recovery on (every broadcast logged).
    recovery = (
        triosio.ConnectionStateRecovery() if os.environ.get("TRIOSIO_RECOVERY") == "1" else None
    )
    extra: dict[str, Any] = {}
    # TRIOSIO_DEFLATE=shared|takeover: permessage-deflate on (benchmarks/compression.py).
    deflate = os.environ.get("TRIOSIO_DEFLATE", "")
    if deflate:
        extra["per_message_deflate"] = triosio.PerMessageDeflate(
            server_no_context_takeover=deflate != "takeover"
        )
    sio = triosio.Server(
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        **extra,
        **({"connection_state_recovery": recovery} if recovery is not None else {}),
    )

    @sio.on("connection")
    async def connected(socket: triosio.Socket, auth: dict[str, Any] | None) -> None:
        if async_echo:  # (benchmarks/workers.py: the path of async handlers)

            @socket.on("echo")
            async def echo_async(*args: Any) -> tuple[Any, ...]:
                return args

        else:

            @socket.on("echo")
            def echo(*args: Any) -> tuple[Any, ...]:
                # A plain function, as it needs no await (so does python-socketio's).
                return args  # a tuple: each element is one ack argument

        @socket.on("join")
        async def join(room: str) -> bool:
            await socket.join(room)
            return True

    @sio.of("/control").on("connection")
    async def control_connected(socket: triosio.Socket, auth: dict[str, Any] | None) -> None:
        @socket.on("bench_broadcast")
        async def bench_broadcast(opts: Any) -> dict[str, Any]:
            plan = BroadcastPlan.from_request(opts)
            started = time.perf_counter()
            start_trio = trio.current_time()
            for seq in range(plan.n):
                if plan.rate > 0:
                    await trio.sleep_until(plan.due(start_trio, seq))
                if plan.room is None:
                    await sio.emit("tick", seq, now_ms(), plan.payload)
                else:
                    await sio.to(plan.room).emit("tick", seq, now_ms(), plan.payload)
                if plan.rate <= 0:
                    # Let the writers and readers run between broadcasts, the same as
                    # the other servers do; emit() may never need to suspend.
                    await trio.lowlevel.checkpoint()
            return result(plan, started)

    return sio


def instrument(sio: triosio.Server, which: str) -> None:
    for name in filter(None, which.split(",")):
        if name == "metrics":
            import triosio.metrics

            triosio.metrics.instrument(sio)
        elif name == "tracing":
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import (
                BatchSpanProcessor,
                SpanExporter,
                SpanExportResult,
            )

            import triosio.tracing

            class Drop(SpanExporter):
                def export(self, spans: Any) -> SpanExportResult:
                    return SpanExportResult.SUCCESS

            provider = TracerProvider()
            provider.add_span_processor(BatchSpanProcessor(Drop()))
            triosio.tracing.instrument(sio, tracer_provider=provider)
        elif name == "admin":
            import triosio.admin

            triosio.admin.instrument(sio, auth=False)
        else:
            raise SystemExit(f"TRIOSIO_INSTRUMENT: unknown {name!r}")
        print("instrumented:", name, flush=True)


def main() -> None:
    args = parse_args(__doc__ or "")
    print("triosio from", os.path.dirname(triosio.__file__), flush=True)
    # BENCH_ASYNC_ECHO=1: the echo-async scenario (an ``async def`` handler).
    sio = build(
        args.ping_interval, args.ping_timeout, os.environ.get("BENCH_ASYNC_ECHO") == "1"
    )
    instrument(sio, os.environ.get("TRIOSIO_INSTRUMENT", ""))
    trio.run(triosio.serve, sio, args.host, args.port)


if __name__ == "__main__":
    main()
