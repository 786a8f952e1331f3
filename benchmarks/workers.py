"""1 worker against 2: ``triosio run --workers N``, fan-out and echo, CPU per operation.

    python benchmarks/workers.py               # 3 rounds, about 3 minutes
    python benchmarks/workers.py --rounds 1    # a quick look

Each round starts ``python -m triosio run triosio_workers:app`` with ``--workers
1`` (one process, no acceptor) and with ``--workers 2`` (the supervisor with its
acceptor and bus hub, and two workers), in alternating order, and drives each
with the load generator of ``run.py`` (``js/loadgen.mjs``): ``echo`` (clients
each with one echo-with-ack in flight) and ``fanout`` (broadcasts to every
client, sent by one worker; with 2 workers half the clients are on the other
one, reached through the bus). Server CPU is utime+stime of every process of
the command (supervisor included), read by the generator at the start and end
of the measured phase. The medians go to ``benchmarks/README.md`` between the
``workers:start`` and ``workers:end`` markers, the raw results to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
README = HERE / "README.md"


class Command:
    """``python -m triosio run`` on a free port; its pids; stopped by its PID."""

    def __init__(self, workers: int, target: str = "triosio_workers:app") -> None:
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "triosio",
                "run",
                target,
                "--port",
                "0",
                "--workers",
                str(workers),
                "--log-level",
                "info",
            ],
            cwd=HERE / "servers",
            stdout=self.log,
            stderr=self.log,
        )
        self.port = 0
        self.pids = [self.proc.pid]
        deadline = time.monotonic() + 30
        while True:
            self.log.seek(0)
            text = self.log.read().decode("utf-8", "replace")
            ports = re.findall(r"on http://127\.0\.0\.1:(\d+)", text)
            workers_up = re.findall(r"worker \d+ started \(pid (\d+)\)", text)
            if ports and (workers == 1 or len(workers_up) == workers):
                self.port = int(ports[0])
                self.pids += [int(p) for p in workers_up]
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"triosio run did not start:\n{text}")
            time.sleep(0.05)
        time.sleep(0.5)  # the workers import the app

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.log.close()


def loadgen(mode: str, cmd: Command, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        [
            "node",
            str(HERE / "js" / "loadgen.mjs"),
            mode,
            "--url",
            f"http://127.0.0.1:{cmd.port}",
            "--server-pid",
            ",".join(map(str, cmd.pids)),
            *args,
        ],
        cwd=HERE / "js",
        capture_output=True,
        timeout=300,
        check=False,
    )
    lines = out.stdout.decode().strip().splitlines()
    if not lines:
        raise RuntimeError(out.stderr.decode())
    result: dict[str, Any] = json.loads(lines[-1])
    if not result.get("ok"):
        raise RuntimeError(json.dumps(result))
    return result


def _cpu_of(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def handoffs(cmd: Command, count: int) -> dict[str, Any]:
    """``count`` handshakes, each on a connection of its own (``Connection: close``).

    What a connection costs: with 2 workers the acceptor reads its first head
    and passes it on; the supervisor's CPU is the acceptor's price.
    """
    import trio

    request = (
        b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Connection: close\r\n\r\n"
    )

    async def one() -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", cmd.port)
        async with stream:
            await stream.send_all(request)
            data = b""
            while chunk := await stream.receive_some(65536):
                data += chunk
            assert data.startswith(b"HTTP/1.1 200"), data[:100]

    async def run() -> float:
        started = time.perf_counter()
        left = iter(range(count))

        async def worker() -> None:
            for _ in left:
                await one()

        async with trio.open_nursery() as nursery:
            for _ in range(16):
                nursery.start_soon(worker)
        return time.perf_counter() - started

    before = [_cpu_of(pid) for pid in cmd.pids]
    wall = trio.run(run)
    after = [_cpu_of(pid) for pid in cmd.pids]
    used = [b - a for a, b in zip(before, after, strict=True)]
    return {
        "connections_per_s": count / wall,
        "cpu_per_connection_us": sum(used) / count * 1e6,
        "acceptor_cpu_per_connection_us": used[0] / count * 1e6 if len(used) > 1 else 0.0,
    }


def measure(workers: int, quick: bool) -> dict[str, Any]:
    cmd = Command(workers)
    try:
        handoff = handoffs(cmd, 1000 if quick else 3000)
        echo = loadgen("echo", cmd, "--clients", "50", "--duration", "3" if quick else "8",
                       "--warmup", "1")  # fmt: skip
        fanout = loadgen("fanout", cmd, "--clients", "500", "--n", "200" if quick else "1000")
    finally:
        cmd.stop()
    cmd = Command(workers, "triosio_workers:app_async")
    try:
        echo_async = loadgen("echo", cmd, "--clients", "50", "--duration", "3" if quick else "8",
                             "--warmup", "1")  # fmt: skip
    finally:
        cmd.stop()
    return {
        "workers": workers,
        "echo": echo,
        "echo_async": echo_async,
        "fanout": fanout,
        "handoff": handoff,
    }


def summarize(runs: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for workers in (1, 2):
        mine = [r for r in runs if r["workers"] == workers]
        echo_rate = [r["echo"]["rt_per_s"] for r in mine]
        echo_cpu = [r["echo"]["server_cpu_per_rt_us"] for r in mine]
        async_rate = [r["echo_async"]["rt_per_s"] for r in mine]
        async_cpu = [r["echo_async"]["server_cpu_per_rt_us"] for r in mine]
        fan_rate = [r["fanout"]["deliveries_per_s"] for r in mine]
        fan_cpu = [r["fanout"]["server_cpu_per_delivery_us"] for r in mine]
        conn_rate = [r["handoff"]["connections_per_s"] for r in mine]
        conn_cpu = [r["handoff"]["cpu_per_connection_us"] for r in mine]
        acceptor = [r["handoff"]["acceptor_cpu_per_connection_us"] for r in mine]
        out[workers] = {
            "echo_rate": statistics.median(echo_rate),
            "echo_cpu_us": statistics.median(echo_cpu),
            "async_rate": statistics.median(async_rate),
            "async_cpu_us": statistics.median(async_cpu),
            "fanout_rate": statistics.median(fan_rate),
            "fanout_cpu_us": statistics.median(fan_cpu),
            "conn_rate": statistics.median(conn_rate),
            "conn_cpu_us": statistics.median(conn_cpu),
            "acceptor_us": statistics.median(acceptor),
            "rounds": [
                f"{e:,.0f} rt/s, {f:,.0f} deliveries/s"
                for e, f in zip(echo_rate, fan_rate, strict=True)
            ],
        }
    return out


def table(summary: dict[int, dict[str, Any]], rounds: int) -> str:
    one, two = summary[1], summary[2]
    rows = [
        "| | 1 worker | 2 workers | 2 / 1 |",
        "| --- | ---: | ---: | ---: |",
        f"| echo (plain `def` handler) round trips/s, 50 clients | {one['echo_rate']:,.0f}"
        f" | {two['echo_rate']:,.0f} | {two['echo_rate'] / one['echo_rate']:.2f} |",
        f"| server CPU per round trip, µs | {one['echo_cpu_us']:.1f} | {two['echo_cpu_us']:.1f}"
        f" | {two['echo_cpu_us'] / one['echo_cpu_us']:.2f} |",
        f"| echo, `async def` handler, round trips/s | {one['async_rate']:,.0f}"
        f" | {two['async_rate']:,.0f} | {two['async_rate'] / one['async_rate']:.2f} |",
        f"| server CPU per round trip (`async def`), µs | {one['async_cpu_us']:.1f}"
        f" | {two['async_cpu_us']:.1f} | {two['async_cpu_us'] / one['async_cpu_us']:.2f} |",
        f"| fan-out deliveries/s (500 clients) | {one['fanout_rate']:,.0f}"
        f" | {two['fanout_rate']:,.0f} | {two['fanout_rate'] / one['fanout_rate']:.2f} |",
        f"| server CPU per delivery, µs | {one['fanout_cpu_us']:.2f}"
        f" | {two['fanout_cpu_us']:.2f} | {two['fanout_cpu_us'] / one['fanout_cpu_us']:.2f} |",
        f"| new connections/s (a handshake each, `Connection: close`) | {one['conn_rate']:,.0f}"
        f" | {two['conn_rate']:,.0f} | {two['conn_rate'] / one['conn_rate']:.2f} |",
        f"| server CPU per connection, µs | {one['conn_cpu_us']:.0f} | {two['conn_cpu_us']:.0f}"
        f" | {two['conn_cpu_us'] / one['conn_cpu_us']:.2f} |",
        f"| ... of which the acceptor (supervisor) | — | {two['acceptor_us']:.0f} | |",
    ]
    per_round = "; ".join(
        f"{n} worker{'s' if n > 1 else ''}: " + ", ".join(summary[n]["rounds"]) for n in (1, 2)
    )
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    return (
        f"Medians of {rounds} interleaved rounds, {time.strftime('%Y-%m-%d')}, {machine}; "
        "the machine was shared with other jobs. CPU: every process of the command "
        "(supervisor with acceptor and hub, and the workers).\n\n"
        + "\n".join(rows)
        + "\n"
        + f"\nEach round ({per_round}).\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="shorter phases")
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args()
    runs = []
    for r in range(args.rounds):
        for workers in (1, 2) if r % 2 == 0 else (2, 1):
            result = measure(workers, args.quick)
            print(json.dumps(result), flush=True)
            runs.append(result)
    text = table(summarize(runs), args.rounds)
    print(text)
    if not args.no_readme:
        readme = README.read_text()
        start, end = "<!-- workers:start -->", "<!-- workers:end -->"
        if start in readme and end in readme:
            head, rest = readme.split(start, 1)
            _, tail = rest.split(end, 1)
            README.write_text(head + start + "\n" + text + end + tail)


if __name__ == "__main__":
    main()
