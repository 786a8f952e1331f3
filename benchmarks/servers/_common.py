"""What every Python benchmark server shares: the command line and the broadcast plan.

The behaviour itself is defined in benchmarks/README.md ("The benchmark servers").
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def parse_args(
    description: str, extra: Callable[[argparse.ArgumentParser], None] | None = None
) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    # Seconds, like python-socketio's and triosio's options (Node takes the same flags).
    parser.add_argument("--ping-interval", type=float, default=25.0)
    parser.add_argument("--ping-timeout", type=float, default=20.0)
    if extra is not None:
        extra(parser)
    return parser.parse_args()


def now_ms() -> float:
    """The send stamp of a tick: wall-clock milliseconds, the clock the generator reads."""
    return time.time() * 1000.0


# A realistic 10 KiB JSON document (benchmarks/compression.py broadcasts it).
DOCUMENT = json.dumps(
    [
        {"id": i, "user": f"user{i % 17}", "text": f"message number {i}", "tags": ["a", "b"]}
        for i in range(150)
    ]
)


@dataclass(frozen=True)
class BroadcastPlan:
    """A `bench_broadcast` request: n ticks, flat out (rate 0) or at `rate` per second."""

    n: int
    rate: float
    room: str | None
    payload: str

    @classmethod
    def from_request(cls, opts: Any) -> BroadcastPlan:
        if not isinstance(opts, dict):
            raise TypeError(f"bench_broadcast takes an object, not {opts!r}")
        room = opts.get("room")
        return cls(
            n=int(opts["n"]),
            rate=float(opts.get("rate") or 0.0),
            room=str(room) if room else None,
            payload=DOCUMENT if opts.get("document") else "x" * int(opts.get("size") or 0),
        )

    def due(self, start: float, seq: int) -> float:
        """When tick `seq` is due on a fixed schedule, so slow emits do not lower the rate."""
        return start + seq / self.rate


def result(plan: BroadcastPlan, started: float) -> dict[str, Any]:
    return {"sent": plan.n, "elapsed_ms": (time.perf_counter() - started) * 1000.0}
