"""Starting and stopping the benchmark servers and running the load generator.

Shared by run.py (the benchmark table) and profile.py (a py-spy profile of one run).
Every process here is a child started with Popen and stopped through that handle, by
its PID; nothing is ever signalled by name.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
JS_DIR = BENCH_DIR / "js"
SERVERS_DIR = BENCH_DIR / "servers"
RUNS_DIR = BENCH_DIR / "_runs"
LOADGEN = JS_DIR / "loadgen.mjs"
HOST = "127.0.0.1"


@dataclass(frozen=True)
class ServerSpec:
    name: str
    label: str  # how the table names it
    argv: tuple[str, ...]  # the command, without --port and the ping options
    python: bool  # a Python process (py-spy can profile it)


def server_specs() -> dict[str, ServerSpec]:
    py = sys.executable
    node = shutil.which("node") or "node"
    return {
        spec.name: spec
        for spec in (
            ServerSpec("triosio", "triosio", (py, str(SERVERS_DIR / "triosio_server.py")), True),
            ServerSpec(
                "psio-aiohttp",
                "python-socketio + aiohttp",
                (py, str(SERVERS_DIR / "psio_aiohttp.py")),
                True,
            ),
            ServerSpec(
                "psio-aiohttp-uvloop",
                "python-socketio + aiohttp + uvloop",
                (py, str(SERVERS_DIR / "psio_aiohttp.py"), "--uvloop"),
                True,
            ),
            ServerSpec(
                "psio-uvicorn",
                "python-socketio + uvicorn",
                (py, str(SERVERS_DIR / "psio_uvicorn.py")),
                True,
            ),
            ServerSpec(
                "node", "Node socket.io", (node, str(SERVERS_DIR / "node_server.mjs")), False
            ),
        )
    }


class StartError(RuntimeError):
    """The server exited or never listened; the message carries the end of its log."""


def raise_fd_limit() -> int:
    """Raises this process's open-file limit to the hard limit; children inherit it.

    10,000 websocket clients need 10,000 descriptors in the server and as many in the
    generator, more than the usual soft limit of 1,024.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft == resource.RLIM_INFINITY or soft >= hard:
        return soft if soft != resource.RLIM_INFINITY else hard
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard
    return soft


def ensure_node_modules() -> None:
    """Installs the pinned npm packages of benchmarks/js when they are missing."""
    if (JS_DIR / "node_modules" / "ws" / "package.json").exists() and (
        JS_DIR / "node_modules" / "socket.io" / "package.json"
    ).exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is needed to install benchmarks/js (node and npm 20+)")
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=JS_DIR, check=True
    )


def _busy_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all cores since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields[:8]) - idle, sum(fields[:8])


def wait_until_quiet(limit: float, threshold: float = 0.25) -> float:
    """Waits up to `limit` seconds for the machine to be quiet; returns the busy cores seen.

    Quiet = other processes use less than `threshold` of a core over one second. The
    cores are shared with whatever else runs on the machine; starting a measurement
    while something else is busy makes it noisier. Returns the last load measured, so a
    run that could not wait it out can say so.
    """
    clk = os.sysconf("SC_CLK_TCK")
    deadline = time.monotonic() + limit
    while True:
        busy0, _ = _busy_ticks()
        time.sleep(1.0)
        busy1, _ = _busy_ticks()
        load = (busy1 - busy0) / clk
        if load < threshold or time.monotonic() >= deadline:
            return load


def free_port() -> int:
    """A port that is free now; the server binds it a moment later (loopback only)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.2)
        return probe.connect_ex((HOST, port)) == 0


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def stop(process: subprocess.Popen[Any], grace: float = 5.0) -> None:
    """Stops one child by its PID: SIGTERM, then SIGKILL after `grace` seconds."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait()


@dataclass
class RunningServer:
    spec: ServerSpec
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


@contextlib.contextmanager
def running_server(
    spec: ServerSpec,
    log: Path,
    *,
    ping_interval: float = 25.0,
    ping_timeout: float = 20.0,
    start_timeout: float = 20.0,
    extra_env: dict[str, str] | None = None,
) -> Iterator[RunningServer]:
    """Starts a server, waits until it listens, and always stops it afterwards."""
    port = free_port()
    argv = [
        *spec.argv,
        "--port",
        str(port),
        "--ping-interval",
        str(ping_interval),
        "--ping-timeout",
        str(ping_timeout),
    ]
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(extra_env or {}))
    with log.open("wb") as sink:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT, env=env
        )
    try:
        deadline = time.monotonic() + start_timeout
        while not _listening(port):
            if process.poll() is not None:
                raise StartError(f"exited with {process.returncode}:\n{_tail(log)}")
            if time.monotonic() > deadline:
                raise StartError(f"not listening after {start_timeout:.0f} s:\n{_tail(log)}")
            time.sleep(0.05)
        # Let the interpreter finish starting (py-spy attaches only once it has).
        time.sleep(0.3)
        yield RunningServer(spec, process, port, log)
    finally:
        stop(process)


def run_loadgen(
    server: RunningServer, args: Sequence[str], *, timeout: float, log: Path | None = None
) -> dict[str, Any]:
    """Runs one load generator mode against `server`; returns its JSON result.

    The generator reads the server's /proc entries itself, at the instants a measured
    phase starts and ends. A generator that hangs is killed after `timeout` seconds.
    """
    node = shutil.which("node") or "node"
    argv = [
        node,
        str(LOADGEN),
        *args,
        "--url",
        server.url,
        "--server-pid",
        str(server.pid),
        "--clk-tck",
        str(os.sysconf("SC_CLK_TCK")),
    ]
    stderr_sink = log.open("wb") if log is not None else subprocess.DEVNULL
    try:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr_sink
        )
        try:
            out, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"ok": False, "error": f"load generator timed out after {timeout:.0f} s"}
        finally:
            stop(process, grace=2.0)
    finally:
        if log is not None and not isinstance(stderr_sink, int):
            stderr_sink.close()
    lines = out.decode(errors="replace").strip().splitlines()
    if not lines:
        return {"ok": False, "error": f"load generator printed nothing (exit {process.returncode})"}
    try:
        result: dict[str, Any] = json.loads(lines[-1])
    except json.JSONDecodeError:
        return {"ok": False, "error": f"unreadable load generator output: {lines[-1][:200]}"}
    return result
