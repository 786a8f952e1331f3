"""What validated payloads cost per event (``Server(validation=True)``).

Calls a handler through the wrapper that ``validation=True`` puts around a
hinted handler, against the bare handler, for a few typical hints; best of
``--rounds`` runs of ``--calls`` calls each (other processes only add time)::

    python benchmarks/validation.py [--calls 200000] [--rounds 5]

An unhinted handler is not wrapped at all: it costs nothing more.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from typing import Any

import pydantic

from triosio._server.validation import validated


@dataclasses.dataclass
class ChatMessage:
    room: str
    text: str


class Profile(pydantic.BaseModel):
    name: str
    age: int


def by_int(n: int) -> Any:
    return n


def by_dataclass(msg: ChatMessage) -> Any:
    return msg


def by_model(who: Profile) -> Any:
    return who


def by_list(items: list[str]) -> Any:
    return items


CASES = {
    "int": (by_int, 42),
    "dataclass (2 str fields)": (by_dataclass, {"room": "lobby", "text": "hello there"}),
    "pydantic model (2 fields)": (by_model, {"name": "ann", "age": 30}),
    "list[str] of 10": (by_list, ["word"] * 10),
}


def best(fn: Any, arg: Any, calls: int, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            fn(arg)
        times.append((time.perf_counter() - start) / calls)
    return min(times) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print("| hint | bare handler | validated | cost per event |")
    print("| --- | ---: | ---: | ---: |")
    for name, (fn, arg) in CASES.items():
        bare = best(fn, arg, args.calls, args.rounds)
        wrapped = best(validated("e", fn), arg, args.calls, args.rounds)
        print(f"| {name} | {bare:.2f} µs | {wrapped:.2f} µs | +{wrapped - bare:.2f} µs |")


if __name__ == "__main__":
    main()
