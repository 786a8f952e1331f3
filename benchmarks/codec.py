"""Socket.IO packet codec speed: triosio's JSON parser beside python-socketio's.

    python benchmarks/codec.py [--quick] [--no-readme]

Measures encodes and decodes per second, in one process and one run, for three
events: a small one (``["message", "hello"]``), one of about 1 KiB of JSON, and
one carrying a 64 KiB binary attachment. triosio encodes with
``JSONEncoder.encode`` and decodes through the strict incremental
``JSONDecoder.feed`` (every check on); python-socketio with
``socketio.packet.Packet(...).encode()`` and ``Packet(encoded_packet=...)`` plus
``add_attachment`` for the binary. Both sides are checked to give the same
packets before anything is timed. Each figure is the best of several rounds
(timeit's rule: the minimum is the least disturbed), with the cyclic GC off
during the rounds, as timeit does, for both.

The table (with the machine) replaces the part of benchmarks/README.md between
``<!-- codec:start -->`` and ``<!-- codec:end -->``; the rest of the file is left
alone.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

from socketio.packet import EVENT as PSIO_EVENT
from socketio.packet import Packet

from triosio._proto.sio import JSONDecoder, JSONEncoder, SioPacket, SioType

README = Path(__file__).resolve().parent / "README.md"
START, END = "<!-- codec:start -->", "<!-- codec:end -->"


def _kib_event() -> list[Any]:
    """A chat-like event whose encoded packet is 1024 bytes."""

    def build(filler: int) -> list[Any]:
        return [
            "chat message",
            {
                "id": 184467,
                "room": "lobby",
                "user": {"id": 42, "name": "alice", "roles": ["member", "moderator"]},
                "text": ("Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 20)[:filler],
                "sent_at": 1714979289123,
                "score": 0.875,
                "tags": ["greeting", "short"],
                "reply_to": None,
                "edited": False,
            },
        ]

    base = len(JSONEncoder().encode(SioPacket(SioType.EVENT, "/", build(0)))[0])
    return build(1024 - base)


@dataclass(frozen=True)
class Case:
    """One event to encode and decode."""

    name: str
    data: list[Any]


CASES = [
    Case('small event `["message", "hello"]`', ["message", "hello"]),
    Case("1 KiB event", _kib_event()),
    Case(
        "event with a 64 KiB binary attachment",
        ["upload", {"name": "photo.jpg", "data": bytes(range(256)) * 256}],
    ),
]


@dataclass(frozen=True)
class Codec:
    """How one implementation encodes and decodes an event on ``/``.

    ``encoder(data)`` and ``decoder(parts)`` return the call to time, as tight as
    the library's API allows (no wrapper around a single call), so the figures
    are the codecs' and not the harness's.
    """

    name: str
    encoder: Callable[[list[Any]], Callable[[], list[Any]]]
    decoder: Callable[[list[Any]], Callable[[], Any]]
    data_of: Callable[[Any], Any]


def _triosio() -> Codec:
    encoder = JSONEncoder()
    decoder = JSONDecoder()  # one per connection, reused, as a session does

    def encode(data: list[Any]) -> Callable[[], list[Any]]:
        # The packet is built in the timed call, as python-socketio builds its Packet.
        return lambda: encoder.encode(SioPacket(SioType.EVENT, "/", data))

    def decode(parts: list[Any]) -> Callable[[], Any]:
        if len(parts) == 1:
            return partial(decoder.feed, parts[0])
        text, *attachments = parts

        def feed_all() -> Any:
            packet = decoder.feed(text)
            for attachment in attachments:
                packet = decoder.feed(attachment)
            return packet

        return feed_all

    return Codec("triosio", encode, decode, lambda packet: packet.data)


def _python_socketio() -> Codec:
    def encode(data: list[Any]) -> Callable[[], list[Any]]:
        return lambda: Packet(PSIO_EVENT, data=data, namespace="/").encode()

    def decode(parts: list[Any]) -> Callable[[], Any]:
        if len(parts) == 1:
            return partial(Packet, encoded_packet=parts[0])
        text, *attachments = parts

        def add_all() -> Any:
            # As python-socketio's server does: the text, then each attachment.
            packet = Packet(encoded_packet=text)
            for attachment in attachments:
                packet.add_attachment(attachment)
            return packet

        return add_all

    return Codec("python-socketio", encode, decode, lambda packet: packet.data)


def _parts(encoded: Any) -> list[Any]:
    # python-socketio gives a str, or a list when there are attachments.
    return encoded if isinstance(encoded, list) else [encoded]


def _calibrate(func: Callable[[], object], round_seconds: float) -> int:
    """How many calls take about ``round_seconds`` (as timeit.autorange does)."""
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            func()
        if time.perf_counter() - start >= round_seconds / 5:
            return number * 5
        number *= 2


def _rates(
    calls: dict[str, Callable[[], object]], rounds: int, round_seconds: float
) -> dict[str, float]:
    """Calls per second of each function: the best of ``rounds`` rounds.

    The implementations take turns, round by round, so that whatever else the
    machine is doing falls on both alike.
    """
    numbers = {name: _calibrate(func, round_seconds) for name, func in calls.items()}
    best = dict.fromkeys(calls, float("inf"))
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(rounds):
            for name, func in calls.items():
                start = time.perf_counter()
                for _ in range(numbers[name]):
                    func()
                best[name] = min(best[name], time.perf_counter() - start)
    finally:
        if gc_was_enabled:
            gc.enable()
    return {name: numbers[name] / best[name] for name in calls}


def _check(codecs: list[Codec]) -> None:
    """Every codec decodes every codec's encoding to the same data."""
    for case in CASES:
        for producer in codecs:
            parts = _parts(producer.encoder(case.data)())
            for consumer in codecs:
                got = consumer.data_of(consumer.decoder(parts)())
                assert got == case.data, (case.name, producer.name, consumer.name)


def measure(rounds: int, round_seconds: float) -> list[dict[str, Any]]:
    """Encode and decode rates for every case and codec."""
    codecs = [_triosio(), _python_socketio()]
    _check(codecs)
    rows = []
    for case in CASES:
        encoders = {codec.name: codec.encoder(case.data) for codec in codecs}
        decoders = {
            codec.name: codec.decoder(_parts(codec.encoder(case.data)())) for codec in codecs
        }
        for direction, calls in (("encode", encoders), ("decode", decoders)):
            rates = _rates(calls, rounds, round_seconds)
            rows.append({"case": case.name, "direction": direction, **rates})
    return rows


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _rate_text(rate: float) -> str:
    return f"{rate:,.0f}"


def render(rows: list[dict[str, Any]], rounds: int, round_seconds: float, load: float) -> str:
    """The README section: heading, machine, table, method."""
    versions = {name: metadata.version(name) for name in ("triosio", "python-socketio")}
    lines = [
        START,
        "## Codec",
        "",
        "Socket.IO packets encoded and decoded per second, one event on `/`, by triosio's",
        "default (JSON) parser and by python-socketio's `socketio.packet.Packet`, in the",
        "same process and run. Written by `python benchmarks/codec.py`; do not edit by hand.",
        "",
        f"- Machine: {_cpu_model()}, {os.cpu_count()} cores",
        f"- Python {platform.python_version()} ({platform.python_implementation()}),"
        f" triosio {versions['triosio']}, python-socketio {versions['python-socketio']}",
        f"- Date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d')}; load average at the start"
        f" {load:.2f} (other work on the machine slows both libraries alike: they take"
        " turns)",
        "",
        "| Event | Direction | triosio (ops/s) | python-socketio (ops/s) | ratio |",
        "|---|---|---:|---:|---:|",
    ]
    for row in rows:
        ratio = row["triosio"] / row["python-socketio"]
        lines.append(
            f"| {row['case']} | {row['direction']} | {_rate_text(row['triosio'])} |"
            f" {_rate_text(row['python-socketio'])} | {ratio:.2f}x |"
        )
    lines += [
        "",
        "Method: triosio encodes with `JSONEncoder.encode(SioPacket(...))` and decodes",
        "through the strict incremental `JSONDecoder.feed` (one decoder, reused, every check",
        "on: depth, integer digits, payload shape, placeholders); python-socketio with",
        "`Packet(EVENT, data, namespace='/').encode()` and `Packet(encoded_packet=...)`",
        "plus `add_attachment()`. Each side decodes the other's output to the same data",
        f"before timing. Best of {rounds} rounds of about {round_seconds:g} s each, the two",
        "libraries taking turns round by round, cyclic GC off during the rounds (as",
        "`timeit` does), for both. Ratio: triosio's rate over python-socketio's.",
        END,
    ]
    return "\n".join(lines)


def write_readme(section: str) -> None:
    """Replace the codec section of benchmarks/README.md (create what is missing)."""
    text = README.read_text(encoding="utf-8") if README.exists() else "# Benchmarks\n"
    if START in text and END in text:
        before, rest = text.split(START, 1)
        _, after = rest.split(END, 1)
        text = before + section + after
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    README.write_text(text, encoding="utf-8")


def main() -> None:
    """Measure, print the table, and write it into benchmarks/README.md."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short rounds (a smoke run)")
    parser.add_argument("--no-readme", action="store_true", help="print only")
    args = parser.parse_args()
    rounds, round_seconds = (2, 0.05) if args.quick else (7, 0.4)
    load = os.getloadavg()[0]
    rows = measure(rounds, round_seconds)
    section = render(rows, rounds, round_seconds, load)
    print(section)
    if not args.no_readme:
        write_readme(section)


if __name__ == "__main__":
    main()
