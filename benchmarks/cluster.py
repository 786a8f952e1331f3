"""Fan-out across two processes through the Redis adapters, against one process.

    python benchmarks/cluster.py               # writes the cluster part of benchmarks/README.md
    python benchmarks/cluster.py --quick       # 100 ticks instead of 1,000, 3 s at 10/s
    python benchmarks/cluster.py --clients 500 --no-readme

    python benchmarks/cluster.py --setups "two processes" "two processes, streams"

Needs ``redis-server`` (the Debian package), Node 20+ with the pinned packages of
``benchmarks/js`` and ``tests/js`` (the Redis adapters; both installed with ``npm ci``
when missing) and ``triosio[redis]``.

The setups, each with fresh processes on loopback and a private ``redis-server``
(a free port, no persistence):

- **one process**: a triosio server without adapter; N clients; it broadcasts.
- **one process + adapter**: the same server with the Redis adapter, alone in the
  cluster: every tick is also encoded and published to Redis, which nobody reads.
- **two processes**: servers A and B with the adapter; the N clients are on B, the
  ticks are emitted on A, so every delivery crosses Redis (publish on A, Redis,
  subscriber and decode on B, then B's fan-out).
- **two processes, streams**: the same with ``RedisStreamsAdapter``: A adds each
  tick to a Redis stream (XADD), B reads it (XREAD) and fans out.
- **two processes, streams + recovery**: the same with connection state recovery
  on (``ConnectionStateRecovery()``) on both servers: each tick is delivered once
  its stream entry id is known (its offset: A's reader hands A's router its own
  ticks; B encodes each with its offset) and kept in the router's short log.
- **two processes, sharded**: the same with ``ShardedRedisAdapter`` on a private
  Redis Cluster of three masters (``SPUBLISH`` on A, ``SSUBSCRIBE`` on B; redis CPU
  is the three nodes' sum).
- **two Node processes, pub/sub**, **..., streams** and **..., sharded**: the same
  two-process setups with Node socket.io 4.8.3 servers
  (``benchmarks/servers/node_cluster_server.mjs``) and the JavaScript adapters
  (``@socket.io/redis-adapter`` 8.3.0, ``@socket.io/redis-streams-adapter`` 0.3.1).

The load is the load benchmarks' own generator (``benchmarks/js/loadgen.mjs``, mode
``fanout``; see the load benchmarks' part of the README for how it measures), against
the server that holds the clients. Its control client asks that server for
``bench_broadcast``; in the two-process setup B relays the request to A with
``server_side_emit_with_ack`` and A emits the ticks. Scenarios: ``fanout`` (the ticks
flat out) and ``fanout-rate`` (10 ticks a second).

Reported: deliveries/s and latency (generator); **server CPU per delivery**: the CPU
of every triosio process over the measured round divided by the deliveries (B as the
generator reads it; A as it reads its own ``time.process_time()`` around its emit loop
plus 0.2 s for its writer to flush); and redis-server's CPU per delivery over the
whole generator run (its warm-up included), shown apart. The script also runs in
``serve`` mode: that is the server it starts.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
JS_DIR = BENCH_DIR / "js"
LOADGEN = JS_DIR / "loadgen.mjs"
TESTS_JS_DIR = BENCH_DIR.parent / "tests" / "js"
NODE_CLUSTER_SERVER = BENCH_DIR / "servers" / "node_cluster_server.mjs"
README = BENCH_DIR / "README.md"
RUNS_DIR = BENCH_DIR / "_runs"
HOST = "127.0.0.1"
START, END = "<!-- cluster:start -->", "<!-- cluster:end -->"


# ---------------------------------------------------------------- the server (serve mode)


def serve(port: int, redis_url: str | None, relay: bool, kind: str = "pubsub") -> None:
    """A triosio server with the load benchmarks' behaviour (bench_broadcast, echo, join)."""
    import trio
    import trio.lowlevel

    import triosio
    from triosio._server.cluster import Adapter

    adapter: Adapter | None = None
    if redis_url:
        from triosio.redis import RedisAdapter, RedisStreamsAdapter, ShardedRedisAdapter

        if kind == "sharded":
            adapter = ShardedRedisAdapter(redis_url, requests_timeout=600)
        elif kind in ("streams", "streams+recovery"):
            adapter = RedisStreamsAdapter(redis_url, requests_timeout=600)
        else:
            adapter = RedisAdapter(redis_url, requests_timeout=600)
    recovery = triosio.ConnectionStateRecovery() if kind.endswith("+recovery") else None
    sio = triosio.Server(adapter=adapter, connection_state_recovery=recovery)

    @sio.on("connection")
    async def connected(socket: triosio.Socket, auth: Any) -> None:
        @socket.on("echo")
        async def echo(*args: Any) -> tuple[Any, ...]:
            return args

        @socket.on("join")
        async def join(room: str) -> bool:
            await socket.join(room)
            return True

    async def broadcast(opts: dict[str, Any]) -> dict[str, Any]:
        n = int(opts["n"])
        rate = float(opts.get("rate") or 0)
        room = opts.get("room") or None
        payload = "x" * int(opts.get("size") or 0)
        target = sio.to(room) if room else sio
        cpu0 = time.process_time()
        started = time.perf_counter()
        start = trio.current_time()
        for seq in range(n):
            if rate > 0:
                await trio.sleep_until(start + seq / rate)
            await target.emit("tick", seq, time.time() * 1000.0, payload)
            if rate <= 0:
                await trio.lowlevel.checkpoint()
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        await trio.sleep(0.2)  # the adapter's writer publishes what is queued
        return {"sent": n, "elapsed_ms": elapsed_ms, "cpu_s": time.process_time() - cpu0}

    sio.on_server_side("bench_broadcast", broadcast)

    @sio.of("/control").on("connection")
    async def control(socket: triosio.Socket, auth: Any) -> None:
        @socket.on("bench_broadcast")
        async def bench_broadcast(opts: dict[str, Any]) -> dict[str, Any]:
            if relay:
                answers = await sio.server_side_emit_with_ack("bench_broadcast", opts, timeout=600)
                return dict(answers[0], relayed=True)
            return await broadcast(opts)

    trio.run(triosio.serve, sio, HOST, port)


# ---------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def stop(process: subprocess.Popen[Any]) -> None:
    """Stop one child by its PID: SIGTERM, then SIGKILL after 5 s."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_listening(port: int, process: subprocess.Popen[Any], what: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        with socket.socket() as probe:
            probe.settimeout(0.2)
            if probe.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port}")


@contextlib.contextmanager
def redis_server(log_dir: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is needed (apt-get install redis-server)")
    port = free_port()
    with (log_dir / "redis.log").open("wb") as log:
        process = subprocess.Popen(
            [binary, "--save", "", "--appendonly", "no", "--port", str(port),
             "--bind", HOST, "--dir", str(log_dir)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_listening(port, process, "redis-server")
            yield f"redis://{HOST}:{port}/0", process
        finally:
            stop(process)


def _cluster_node_port() -> int:
    # A Redis Cluster node also listens on port + 10000 (its bus).
    while True:
        port = free_port()
        if port + 10000 <= 65535:
            with socket.socket() as probe, contextlib.suppress(OSError):
                probe.bind((HOST, port + 10000))
                return port


@contextlib.contextmanager
def redis_cluster(log_dir: Path) -> Iterator[tuple[str, list[subprocess.Popen[bytes]]]]:
    """Three ``redis-server`` masters formed into a Redis Cluster (no replicas)."""
    binary, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if binary is None or cli is None:
        raise SystemExit("redis-server and redis-cli are needed (apt-get install redis-server)")
    with contextlib.ExitStack() as stack:
        processes, ports = [], []
        for i in range(3):
            port = _cluster_node_port()
            node_dir = log_dir / f"rcluster-{port}"
            node_dir.mkdir(exist_ok=True)
            log = stack.enter_context((node_dir / "redis.log").open("wb"))
            process = subprocess.Popen(
                [binary, "--save", "", "--appendonly", "no", "--port", str(port),
                 "--bind", HOST, "--dir", str(node_dir), "--cluster-enabled", "yes"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
            stack.callback(stop, process)
            wait_listening(port, process, f"redis-server (cluster node {i})")
            processes.append(process)
            ports.append(port)
        subprocess.run(
            [cli, "--cluster", "create", *(f"{HOST}:{p}" for p in ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        for port in ports:
            while (
                b"cluster_state:ok"
                not in subprocess.run(
                    [cli, "-p", str(port), "cluster", "info"], capture_output=True, check=False
                ).stdout
            ):
                if time.monotonic() > deadline:
                    raise RuntimeError("the Redis Cluster did not form")
                time.sleep(0.1)
        yield f"redis://{HOST}:{ports[0]}", processes


@contextlib.contextmanager
def triosio_server(
    log: Path,
    redis_url: str | None = None,
    relay: bool = False,
    adapter: str = "pubsub",
    node: bool = False,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A benchmark server: triosio (this script's ``serve``) or Node (``node=True``)."""
    port = free_port()
    if node:
        argv = [shutil.which("node") or "node", str(NODE_CLUSTER_SERVER), "--port", str(port)]
        argv += ["--adapter", adapter]
    else:
        argv = [sys.executable, __file__, "serve", "--port", str(port), "--adapter", adapter]
    if redis_url:
        argv += ["--redis", redis_url]
    if relay:
        argv.append("--relay")
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_listening(port, process, f"triosio server ({log.name})")
            yield f"http://{HOST}:{port}", process
        finally:
            stop(process)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def loadgen(url: str, pid: int, clients: int, ticks: int, rate: float) -> dict[str, Any]:
    argv = [
        shutil.which("node") or "node", str(LOADGEN), "fanout",
        "--url", url, "--server-pid", str(pid), "--clk-tck", str(os.sysconf("SC_CLK_TCK")),
        "--clients", str(clients), "--n", str(ticks), "--rate", str(rate), "--size", "32",
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"loadgen failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def wait_until_quiet(limit: float) -> None:
    """Wait up to ``limit`` s for other processes to leave the cores (< 0.25 core busy)."""
    clk = os.sysconf("SC_CLK_TCK")
    deadline = time.monotonic() + limit

    def busy() -> int:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields[:8]) - fields[3] - fields[4]

    while time.monotonic() < deadline:
        b0 = busy()
        time.sleep(1.0)
        if (busy() - b0) / clk < 0.25:
            return


# ---------------------------------------------------------------- the runs


#: Each setup: (servers: "triosio" or "node", adapter: None, "pubsub", "streams" or
#: "sharded", processes).
SETUPS: dict[str, tuple[str, str | None, int]] = {
    "one process": ("triosio", None, 1),
    "one process + adapter": ("triosio", "pubsub", 1),
    "two processes": ("triosio", "pubsub", 2),
    "two processes, streams": ("triosio", "streams", 2),
    "two processes, streams + recovery": ("triosio", "streams+recovery", 2),
    "two Node processes, pub/sub": ("node", "pubsub", 2),
    "two Node processes, streams": ("node", "streams", 2),
    "two processes, sharded": ("triosio", "sharded", 2),
    "two Node processes, sharded": ("node", "sharded", 2),
}


def run_one(setup: str, scenario: str, args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    ticks, rate = (args.ticks, 0.0) if scenario == "fanout" else (int(10 * args.rate_s), 10.0)
    stem = re.sub(r"[^a-zA-Z0-9]+", "-", setup.replace("+", "plus")) + f"-{scenario}"
    impl, adapter, processes = SETUPS[setup]
    node = impl == "node"
    with contextlib.ExitStack() as stack:
        redis_url = None
        redis_pids: list[int] = []
        if adapter == "sharded":
            redis_url, nodes = stack.enter_context(redis_cluster(log_dir))
            redis_pids = [node.pid for node in nodes]
        elif adapter is not None:
            redis_url, redis_proc = stack.enter_context(redis_server(log_dir))
            redis_pids = [redis_proc.pid]
        sender_pid = None
        if processes == 2:
            _, sender = stack.enter_context(
                triosio_server(log_dir / f"{stem}-A.log", redis_url, False, adapter or "", node)
            )
            sender_pid = sender.pid
            url, receiver = stack.enter_context(
                triosio_server(log_dir / f"{stem}-B.log", redis_url, True, adapter or "", node)
            )
        else:
            url, receiver = stack.enter_context(
                triosio_server(log_dir / f"{stem}.log", redis_url, adapter=adapter or "pubsub")
            )
        time.sleep(0.5)
        wait_until_quiet(args.quiet_wait)
        redis_cpu0 = sum(cpu_seconds(pid) for pid in redis_pids)
        result = loadgen(url, receiver.pid, args.clients, ticks, rate)
        redis_cpu = sum(cpu_seconds(pid) for pid in redis_pids) - redis_cpu0 if redis_pids else None
        ack = result.get("server_ack") or {}
        received = result["received"] or 1
        cpu_s = result["server_cpu_s"] + (ack.get("cpu_s", 0.0) if sender_pid else 0.0)
        return {
            "setup": setup,
            "scenario": scenario,
            "ok": result["ok"],
            "clients": args.clients,
            "ticks": ticks,
            "deliveries": result["received"],
            "deliveries_per_s": result["deliveries_per_s"],
            "server_cpu_us_per_delivery": cpu_s / received * 1e6,
            "receiver_cpu_us_per_delivery": result["server_cpu_s"] / received * 1e6,
            "sender_cpu_us_per_tick": (ack["cpu_s"] / ticks * 1e6) if sender_pid else None,
            "redis_cpu_us_per_delivery": None if redis_cpu is None else redis_cpu / received * 1e6,
            "gen_cpu_util": result.get("gen_cpu_util"),
            # Cores' worth of CPU that processes outside this run used meanwhile.
            "other_load": _other_load(result, ack.get("cpu_s", 0.0) if sender_pid else 0.0),
            "latency": result.get("latency"),
            "loadgen": result,
        }


def _other_load(result: dict[str, Any], sender_cpu_s: float) -> float | None:
    # The generator counts every process but itself and the server it measures as
    # "other": take out the sender (A) we know of. redis-server stays in: it is
    # small, and per-run totals are in results.json.
    other = result.get("other_cpu_util")
    wall = result.get("wall_s") or 0
    if other is None or wall <= 0:
        return None
    return max(0.0, other - sender_cpu_s / wall)


def _ms(latency: dict[str, Any] | None, key: str) -> str:
    if not latency or latency.get(key) is None:
        return "n/a"
    return f"{latency[key]:.1f}"


def table(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    cpu = _first_match("/proc/cpuinfo", r"^model name\s*:\s*(.+)$") or "?"
    import importlib.metadata as md

    versions = ", ".join(f"{p} {md.version(p)}" for p in ("triosio", "trio", "coredis", "msgpack"))
    redis_version = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True, check=False
    ).stdout.split()[2:3]
    lines = [
        "## Cluster fan-out (Redis adapters)",
        "",
        "Written by `python benchmarks/cluster.py`"
        + (" --quick" if args.quick else "")
        + "; do not edit by hand. How it is measured: the docstring of that script.",
        "",
        f"- Machine: {cpu}, {len(os.sched_getaffinity(0))} cores (shared by the servers, "
        "redis-server and the generator)",
        f"- Python {platform.python_version()}, {versions}, "
        f"redis-server {redis_version[0].removeprefix('v=') if redis_version else '?'}",
        f"- Node {_node_version()}: {_node_packages()}",
        f"- {args.clients} clients; `fanout`: {args.ticks} ticks flat out; "
        f"`fanout-rate`: 10 ticks/s for {args.rate_s:g} s; 32-byte payload",
        f"- Date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d')}; "
        f"{results[0].get('rounds', 1) if results else 1} interleaved round(s) per setup, "
        "the median run (by server CPU) shown; the machine was shared with other work",
        "",
        "| scenario | setup | deliveries/s | server CPU per delivery | of which the sender "
        "(per tick) | redis-server CPU per delivery | p50 / p99 latency (ms) | other load "
        "| clean |",
        "|---|---|---:|---:|---:|---:|---:|---:|:-:|",
    ]
    for r in results:
        sender = r["sender_cpu_us_per_tick"]
        redis_cpu = r["redis_cpu_us_per_delivery"]
        other = r.get("other_load")
        lines.append(
            f"| `{r['scenario']}` | {r['setup']} | {r['deliveries_per_s']:,.0f} "
            f"| {r['server_cpu_us_per_delivery']:.2f} µs "
            f"| {'n/a' if sender is None else f'{sender:.0f} µs'} "
            f"| {'n/a' if redis_cpu is None else f'{redis_cpu:.3f} µs'} "
            f"| {_ms(r['latency'], 'p50_ms')} / {_ms(r['latency'], 'p99_ms')} "
            f"| {'n/a' if other is None else f'{other:.2f}'} "
            f"| {'yes' if r['ok'] else 'NO'} |"
        )
    lines += [
        "",
        "*Server CPU per delivery* sums every server process: for two processes, B's "
        "fan-out plus A's share (its emit loop, the encoding and the publishing, per "
        "tick in the next column, spread over the clients). Flat out, *deliveries/s* is "
        "the generator's ceiling on these shared cores (see the load benchmarks), not the "
        "servers'. Flat out, the two-process latency is queueing: A publishes its ticks "
        "far faster than B fans them out, and nothing pushes back across Redis (within "
        "one process, emitting waits for the router), so the ticks wait on B's side. "
        "*Other load*: cores' worth of CPU that processes outside the run used meanwhile "
        "(a quiet machine shows about 0; redis-server counts here).",
    ]
    if any(r["setup"] == "two processes, streams" for r in results):
        lines += [
            "",
            "*Streams, flat out*: B's reader takes up to `read_count` (100) entries per "
            "`XREAD` and hands them to the router back to back, so the router writes a "
            "burst of ticks to each client in one go (as it does for a burst of local "
            "emits); the pub/sub subscriber hands over one message at a time. That, not "
            "the transport, is most of the difference in CPU per delivery and latency "
            "flat out; at 10 ticks a second there is nothing to batch and the streams "
            "adapter costs the sender a little more per tick (the XADD reply).",
        ]
    return "\n".join(lines)


def _node_version() -> str:
    node = shutil.which("node")
    if node is None:
        return "?"
    done = subprocess.run([node, "--version"], capture_output=True, text=True, check=False)
    return done.stdout.strip().removeprefix("v") or "?"


def _node_packages() -> str:
    found = []
    for name in ("socket.io", "@socket.io/redis-adapter", "@socket.io/redis-streams-adapter"):
        try:
            meta = json.loads((TESTS_JS_DIR / "node_modules" / name / "package.json").read_text())
        except OSError:
            continue
        found.append(f"{name} {meta['version']}")
    return ", ".join(found) or "?"


def _first_match(path: str, pattern: str) -> str | None:
    try:
        match = re.search(pattern, Path(path).read_text(), re.MULTILINE)
    except OSError:
        return None
    return match.group(1).strip() if match else None


def write_readme(section: str) -> None:
    text = README.read_text()
    block = f"{START}\n{section}\n{END}"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        _, tail = rest.split(END, 1)
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    README.write_text(text)


def ensure_node_modules(node_setups: bool = False) -> None:
    wanted = [(JS_DIR, "ws")]
    if node_setups:
        wanted.append((TESTS_JS_DIR, "@socket.io/redis-streams-adapter"))
    for where, package in wanted:
        if (where / "node_modules" / package / "package.json").exists():
            continue
        npm = shutil.which("npm")
        if npm is None:
            raise SystemExit(f"npm is needed to install {where} (node and npm 20+)")
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=where, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else "")
    sub = parser.add_subparsers(dest="command")
    serve_cmd = sub.add_parser("serve", help="run one benchmark server (used by the runs)")
    serve_cmd.add_argument("--port", type=int, required=True)
    serve_cmd.add_argument("--redis")
    serve_cmd.add_argument("--relay", action="store_true")
    serve_cmd.add_argument(
        "--adapter",
        choices=("pubsub", "streams", "streams+recovery", "sharded"),
        default="pubsub",
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--ticks", type=int, default=None)
    parser.add_argument("--no-readme", action="store_true")
    parser.add_argument("--quiet-wait", type=float, default=20.0)
    parser.add_argument(
        "--from-results", type=Path, help="write the table from a saved results.json, no run"
    )
    parser.add_argument(
        "--scenarios",
        nargs="+",
        default=["fanout", "fanout-rate"],
        choices=["fanout", "fanout-rate"],
    )
    parser.add_argument("--setups", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every setup this many times, interleaved (the order reversed every "
        "other round); the table shows each setup's median run by server CPU",
    )
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.port, args.redis, args.relay, args.adapter)
        return
    args.ticks = args.ticks or (100 if args.quick else 1000)
    args.rate_s = 3.0 if args.quick else 10.0
    if args.from_results:
        saved = json.loads(args.from_results.read_text())
        args.clients, args.ticks = saved[0]["clients"], saved[0]["ticks"]
        args.rate_s = next((r["ticks"] / 10 for r in saved if r["scenario"] != "fanout"), 10.0)
        section = table(medians(saved), args)
        print(section)
        if not args.no_readme:
            write_readme(section)
        return
    ensure_node_modules(any(SETUPS[s][0] == "node" for s in args.setups))
    log_dir = RUNS_DIR / f"cluster-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    log_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for scenario in args.scenarios:
        for round_no in range(args.rounds):
            order = args.setups if round_no % 2 == 0 else args.setups[::-1]
            for setup in order:
                print(f"{scenario} #{round_no + 1}: {setup} ...", file=sys.stderr, flush=True)
                result = run_one(setup, scenario, args, log_dir)
                result["round"] = round_no + 1
                results.append(result)
                print(
                    f"  {result['deliveries_per_s']:,.0f} deliveries/s, "
                    f"{result['server_cpu_us_per_delivery']:.2f} µs server CPU per delivery"
                    + ("" if result["ok"] else "  (NOT CLEAN)"),
                    file=sys.stderr,
                    flush=True,
                )
    (log_dir / "results.json").write_text(json.dumps(results, indent=2))
    section = table(medians(results), args)
    print(section)
    if not args.no_readme:
        write_readme(section)


def medians(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per scenario and setup, the run with the median server CPU per delivery."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["scenario"], r["setup"]), []).append(r)
    chosen = []
    for runs in groups.values():
        runs = sorted(runs, key=lambda r: r["server_cpu_us_per_delivery"])
        chosen.append(dict(runs[(len(runs) - 1) // 2], rounds=len(runs)))
    return chosen


if __name__ == "__main__":
    main()
