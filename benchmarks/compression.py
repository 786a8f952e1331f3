"""What compression costs and saves: permessage-deflate and gzip long-polls.

    python benchmarks/compression.py [--clients 200] [--ticks 100] [--rounds 3]

Two parts, written between ``<!-- compression:start -->`` and
``<!-- compression:end -->`` in benchmarks/README.md:

- **Bytes on the wire** (exact, no server needed) for a chat message and a
  10 KiB JSON document: the WebSocket frame as it is, compressed on its own
  (triosio's default, ``server_no_context_takeover``), compressed with the
  connection's context (the second of two such messages), and a long-poll answer
  gzip-encoded.
- **Server CPU per delivery and memory per connection**: the benchmark server
  (``benchmarks/servers/triosio_server.py``) in a process of its own, deflate off,
  ``shared`` (the default: each message compressed once, for every recipient)
  and ``takeover`` (a compressor per connection, as the reference server does);
  ``--clients`` WebSocket clients offering permessage-deflate; one broadcast of
  ``--ticks`` copies of the 10 KiB document to all, flat out. CPU is the server
  process's utime+stime from ``/proc`` from the broadcast request until every
  client has every message; memory is its VmRSS growth per client, connected
  and after the broadcast. The variants are interleaved over ``--rounds``
  rounds; the median is reported. The clients only count frames (they do not
  inflate), so their cost stays small beside the server's.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import trio

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
README = BENCH / "README.md"
START, END = "<!-- compression:start -->", "<!-- compression:end -->"
sys.path.insert(0, str(BENCH / "servers"))
sys.path.insert(0, str(ROOT))

from _common import DOCUMENT  # noqa: E402

from triosio._engine.deflate import Deflater, Negotiated, http_compress  # noqa: E402
from triosio._engine.packet import OutPacket  # noqa: E402
from triosio._proto.eio import EioType  # noqa: E402

CHAT = json.dumps(
    [
        "chat",
        {
            "user": "alice",
            "text": "Hello everyone, the meeting moves to 3 pm.",
            "ts": 1764950400000,
        },
    ]
)
VARIANTS = ("off", "shared", "takeover")
OFFER = "permessage-deflate; client_max_window_bits"


# ------------------------------------------------------------ bytes on the wire


def wire_sizes() -> list[dict[str, Any]]:
    rows = []
    for name, text in (
        ("chat message", "42" + CHAT),
        ("10 KiB JSON document", '42["doc",' + DOCUMENT + "]"),
    ):
        packet = OutPacket(EioType.MESSAGE, text[1:])
        raw = len(packet.ws_frame)
        shared = len(packet.ws_deflated_frame(15, -1, 8))
        negotiated = Negotiated(1024, -1, 8, 15, 15, True, True)
        deflater = Deflater(negotiated)
        deflater.deflate(packet.ws_payload())
        takeover = len(deflater.deflate(packet.ws_payload())) + (2 if shared < 128 else 4)
        body = packet.poll_text.encode()
        rows.append(
            {
                "payload": name,
                "frame": raw,
                "shared": shared,
                "takeover": takeover,
                "poll": len(body),
                "gzip": len(http_compress(body, "gzip", -1)),
            }
        )
    return rows


# ------------------------------------------------------------ a raw client


def _mask(payload: bytes) -> bytes:
    head = (
        bytes((0x81, 0x80 | len(payload)))
        if len(payload) < 126
        else bytes((0x81, 0xFE)) + len(payload).to_bytes(2, "big")
    )
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class Client:
    """A WebSocket client that only counts the server's frames."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = bytearray()
        self.frames = 0
        self.bytes = 0
        self.extensions = ""
        self.first: list[bytes] = []  # the first frames' payloads (uncompressed ones)

    @classmethod
    async def open(cls, port: int, offer: bool) -> Client:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        head = (
            f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\n"
            + (f"Sec-WebSocket-Extensions: {OFFER}\r\n" if offer else "")
            + "\r\n"
        )
        await stream.send_all(head.encode())
        client = cls(stream)
        data = b""
        while b"\r\n\r\n" not in data:
            data += await stream.receive_some(65536)
        response, _, rest = data.partition(b"\r\n\r\n")
        match = re.search(rb"(?i)sec-websocket-extensions: ([^\r]*)", response)
        client.extensions = match.group(1).decode() if match else ""
        client.buffer += rest
        return client

    def _scan(self) -> None:
        buffer = self.buffer
        while len(buffer) >= 2:
            length = buffer[1] & 0x7F
            start = 2
            if length == 126:
                if len(buffer) < 4:
                    return
                length, start = int.from_bytes(buffer[2:4], "big"), 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                length, start = int.from_bytes(buffer[2:10], "big"), 10
            if len(buffer) < start + length:
                return
            if len(self.first) < 3:
                self.first.append(bytes(buffer[start : start + length]))
            self.frames += 1
            del buffer[: start + length]

    async def until(self, frames: int) -> None:
        self._scan()
        while self.frames < frames:
            data = await self.stream.receive_some(1 << 20)
            if not data:
                raise RuntimeError("the server closed")
            self.bytes += len(data)
            self.buffer += data
            self._scan()

    async def send(self, text: str) -> None:
        await self.stream.send_all(_mask(text.encode()))


# ------------------------------------------------------------ the server


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure(variant: str, clients: int, ticks: int) -> dict[str, float]:
    """One variant's run: its own server process, then the clients."""
    port = _free_port()
    env = dict(os.environ, TRIOSIO_DEFLATE="" if variant == "off" else variant)
    env["PYTHONPATH"] = str(ROOT)
    server = subprocess.Popen(
        [
            sys.executable,
            str(BENCH / "servers" / "triosio_server.py"),
            "--port",
            str(port),
            "--ping-interval",
            "600",
            "--ping-timeout",
            "600",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        return trio.run(_drive, server.pid, port, variant, clients, ticks)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


async def _drive(pid: int, port: int, variant: str, clients: int, ticks: int) -> dict[str, float]:
    with trio.fail_after(60):
        while True:
            try:
                (await trio.open_tcp_stream("127.0.0.1", port)).socket.close()
                break
            except OSError:
                await trio.sleep(0.05)
        await trio.sleep(0.3)
        rss0 = _rss(pid)
        socks = []
        for _ in range(clients):
            client = await Client.open(port, offer=True)
            await client.send("40")
            await client.until(2)  # OPEN, CONNECT
            socks.append(client)
        expected = "permessage-deflate" if variant != "off" else ""
        assert all(c.extensions.startswith(expected) for c in socks), socks[0].extensions
        await trio.sleep(0.3)
        rss1 = _rss(pid)
        control = await Client.open(port, offer=False)
        await control.send("40/control,")
        await control.until(2)
        cpu0 = _cpu(pid)
        await control.send(
            f'42/control,1["bench_broadcast",{{"n":{ticks},"rate":0,"document":true}}]'
        )
        async with trio.open_nursery() as nursery:
            for client in socks:
                nursery.start_soon(client.until, 2 + ticks)
        cpu1 = _cpu(pid)
        rss2 = _rss(pid)
        received = sum(c.bytes for c in socks)
        for client in socks:
            client.stream.socket.close()
        control.stream.socket.close()
    deliveries = clients * ticks
    return {
        "cpu_us": (cpu1 - cpu0) / deliveries * 1e6,
        "bytes": received / deliveries,
        "kib_connected": (rss1 - rss0) / clients / 1024,
        "kib_after": (rss2 - rss0) / clients / 1024,
    }


# ------------------------------------------------------------ report


def render(
    sizes: list[dict[str, Any]],
    results: dict[str, dict[str, float]],
    args: argparse.Namespace,
    started: str,
) -> str:
    lines = [
        f"Measured {started} UTC with `python benchmarks/compression.py --clients {args.clients} "
        f"--ticks {args.ticks} --rounds {args.rounds}` (median of the rounds) on "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        "the machine was shared with other work, so CPU figures are within its noise "
        "(compare the rows, measured interleaved).",
        "",
        "**Bytes on the wire** (WebSocket frame, or long-poll body):",
        "",
        "| payload | frame | deflate, on its own (default) | deflate, with context "
        "| poll body | gzip poll body |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in sizes:
        lines.append(
            f"| {row['payload']} | {row['frame']:,} | {row['shared']:,} | {row['takeover']:,} "
            f"| {row['poll']:,} | {row['gzip']:,} |"
        )
    lines += [
        "",
        "A chat message is under the 1 KiB threshold: it goes uncompressed (compressing "
        "it would save a few bytes for the CPU of a compression).",
        "",
        f"**Broadcast of the 10 KiB document to {args.clients:,} clients**, "
        f"{args.ticks} times, flat out (as a string argument, so its quotes are escaped):",
        "",
        "| permessage-deflate | server CPU/delivery (µs) | bytes/delivery "
        "| memory/connection, connected (KiB) | after the broadcast (KiB) |",
        "| --- | --- | --- | --- | --- |",
    ]
    names = {
        "off": "off",
        "shared": "on, each message on its own (default)",
        "takeover": "on, a context per connection",
    }
    for variant in VARIANTS:
        r = results[variant]
        lines.append(
            f"| {names[variant]} | {r['cpu_us']:.1f} | {r['bytes']:,.0f} "
            f"| {r['kib_connected']:.1f} | {r['kib_after']:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--ticks", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args()
    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M")
    sizes = wire_sizes()
    runs: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    for round_ in range(args.rounds):
        for variant in VARIANTS:
            result = measure(variant, args.clients, args.ticks)
            print(f"round {round_ + 1} {variant}: {result}", flush=True)
            runs[variant].append(result)
    results = {v: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for v, rs in runs.items()}
    table = render(sizes, results, args, started)
    print(table)
    if not args.no_readme:
        text = README.read_text()
        if START in text:
            head, rest = text.split(START, 1)
            _, tail = rest.split(END, 1)
            README.write_text(f"{head}{START}\n{table}\n{END}{tail}")
        else:
            README.write_text(text.rstrip() + f"\n\n## Compression\n\n{START}\n{table}\n{END}\n")


if __name__ == "__main__":
    main()
