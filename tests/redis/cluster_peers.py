"""Processes for the cluster tests: a private redis-server, cluster servers, observers.

- :class:`RedisProcess`: ``redis-server`` on a free loopback port, no persistence;
  killed and restarted on the same port for the fault test.
- :class:`ServerProcess`: a cluster server, triosio (``cluster_server.py``) or
  Node (``tests/js/redis_node_server.js``), each with the Redis adapter.
- :class:`Admin`: a triosio client on a server's ``/admin`` namespace, which runs
  cluster operations on that server (see ``cluster_server.py``).
- :class:`Observers`: socket.io-client sockets in one node process
  (``tests/js/redis_clients.js``), recording what each receives.
- :class:`Ticks`: servers broadcasting numbered ticks under a fault, and what
  their observers got of them.

Every process is stopped by its PID, by whoever started it.
"""

from __future__ import annotations

import base64
import importlib.util
import itertools
import json
import math
import os
import select
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import trio

import triosio

HERE = Path(__file__).resolve().parent
JS_DIR = HERE.parent / "js"
TIMEOUT = 15.0


def _shared_helpers() -> Any:
    # tests/conftest.py by its path: "from conftest import ..." takes whichever
    # conftest module pytest imported last (other test folders have their own).
    path = HERE.parent / "conftest.py"
    spec = importlib.util.spec_from_file_location("_triosio_tests_conftest", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_helpers = _shared_helpers()
#: Skip (locally) or fail (under CI=true) when a tool is missing; see tests/conftest.py.
require_binary: Callable[[str], str] = _helpers.require_binary
require_node_modules: Callable[..., Path] = _helpers.require_node_modules


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


class RedisProcess:
    """A private ``redis-server``: loopback, a free port, nothing written to disk."""

    def __init__(self, binary: str, port: int | None = None, *, start: bool = True) -> None:
        self.binary = binary
        self.port = port or free_port()
        self.dir = tempfile.TemporaryDirectory(prefix="triosio-redis-")
        self.proc: subprocess.Popen[bytes] | None = None
        if start:
            self.start()

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it (again, on the same port) and wait until it answers PING."""
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--save", "",
                "--appendonly", "no",
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", self.dir.name,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            if self.ping():
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def ping(self) -> bool:
        """Whether it answers PING now."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def command(self, *args: bytes) -> bytes:
        """Send one command (RESP) and return the raw reply (for PUBLISH, NUMSUB)."""
        body = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(body)
            return s.recv(65536)

    def kill(self) -> None:
        """Kill it (SIGKILL), as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def stop(self) -> None:
        """Stop it and remove its directory."""
        if self.proc is not None:
            _stop(self.proc)
        self.dir.cleanup()


class ServerProcess:
    """A cluster server with the Redis adapter: ``kind`` is "triosio" or "node"."""

    def __init__(
        self, kind: str, name: str, redis_url: str, *args: str, env: dict[str, str] | None = None
    ) -> None:
        self.kind = kind
        self.name = name
        if kind == "triosio":
            cmd = [sys.executable, str(HERE / "cluster_server.py")]
        else:
            cmd = ["node", str(JS_DIR / "redis_node_server.js")]
        self.log_file = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [*cmd, "--redis", redis_url, "--name", name, *args],
            cwd=JS_DIR if kind == "node" else HERE,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log_file,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        self.port = self._read_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def _read_port(self) -> int:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 20
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.proc.stdout], [], [], max(left, 0))
            if not ready or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"{self.kind} server {self.name} did not start:\n{self.log()}")
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                continue
            line += chunk
        port: int = json.loads(line)["port"]
        return port

    def log(self) -> str:
        """What the server wrote on stderr so far."""
        if self.log_file.closed:
            return self._final_log
        self.log_file.seek(0)
        return self.log_file.read().decode("utf-8", "replace")

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.proc.poll() is None

    def stop(self) -> None:
        """Stop it by its PID."""
        _stop(self.proc)
        if not self.log_file.closed:
            self._final_log = self.log()
            self.log_file.close()

    def __repr__(self) -> str:
        return f"<{self.kind} server {self.name} :{getattr(self, 'port', '?')}>"


@contextmanager
def server_pair(redis_url: str, *args: str) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two triosio cluster servers, "A" and "B", on ``redis_url``; stopped after."""
    with ExitStack() as stack:
        a = ServerProcess("triosio", "A", redis_url, *args)
        stack.callback(a.stop)
        b = ServerProcess("triosio", "B", redis_url, *args)
        stack.callback(b.stop)
        yield a, b


class WorkerView:
    """One worker of ``triosio run --workers 2`` seen as a cluster server.

    Its ``url`` asks the acceptor for that worker (``?triosio-worker=N``).
    """

    def __init__(self, proc: Any, index: int, name: str) -> None:
        self.kind = "triosio"
        self.name = name
        self.proc = proc
        self.url = f"{proc.url}/?triosio-worker={index}"

    def log(self) -> str:
        """The log of the whole command (supervisor and workers)."""
        text: str = self.proc.log()
        return text

    def alive(self) -> bool:
        """Whether the supervisor still runs."""
        return bool(self.proc.proc.poll() is None)

    def stop(self) -> None:
        """Stop the whole command (both views do; the second does nothing)."""
        self.proc.stop()

    def __repr__(self) -> str:
        return f"<worker {self.name} of {self.proc.url}>"


class OpError(Exception):
    """A control operation failed on the server; ``reply`` holds its answer."""

    def __init__(self, reply: dict[str, Any]) -> None:
        super().__init__(reply.get("error"))
        self.reply = reply


class Admin:
    """Runs cluster operations on one server, through its ``/admin`` namespace."""

    def __init__(self, client: triosio.ClientSocket, server: ServerProcess) -> None:
        self.client = client
        self.server = server

    @classmethod
    @asynccontextmanager
    async def open(cls, server: ServerProcess) -> AsyncIterator[Admin]:
        """Connect to ``server``'s ``/admin``."""
        base, _, query = server.url.partition("?")
        url = base.rstrip("/") + "/admin" + ("?" + query if query else "")
        async with triosio.connect(url, transports=("websocket",), reconnection=False) as client:
            yield cls(client, server)

    async def op(self, op: str, **fields: Any) -> Any:
        """Run one operation; its result, or :class:`OpError`."""
        reply = await self.client.emit_with_ack("op", {"op": op, **fields}, timeout=30)
        if not isinstance(reply, dict) or "error" in reply:
            raise OpError(reply if isinstance(reply, dict) else {"error": repr(reply)})
        return reply.get("ok")


def from_wire(value: Any) -> Any:
    """``{"$bytes": base64}`` back to bytes, anywhere in ``value``."""
    if isinstance(value, list):
        return [from_wire(v) for v in value]
    if isinstance(value, dict):
        if set(value) == {"$bytes"}:
            return base64.b64decode(value["$bytes"])
        return {k: from_wire(v) for k, v in value.items()}
    return value


class Observers:
    """socket.io-client sockets (``redis_clients.js``) and what they received."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.events: dict[str, list[tuple[str, list[Any]]]] = {}
        self.disconnects: dict[str, str] = {}
        self._ids = itertools.count()
        self._replies: dict[int, dict[str, Any]] = {}
        self._changed = trio.Event()

    @classmethod
    @asynccontextmanager
    async def open(cls) -> AsyncIterator[Observers]:
        """Start the node process; stop it (by PID) when the block ends."""
        process = await trio.lowlevel.open_process(
            ["node", str(JS_DIR / "redis_clients.js")],
            cwd=JS_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self = cls(process)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._read)
                yield self
                nursery.cancel_scope.cancel()
        finally:
            assert process.stdin is not None
            with trio.move_on_after(5) as scope:
                scope.shield = True
                await process.stdin.aclose()
                await process.wait()
            if process.returncode is None:
                process.kill()
                with trio.move_on_after(5) as scope:
                    scope.shield = True
                    await process.wait()

    async def _read(self) -> None:
        assert self.process.stdout is not None
        buffer = b""
        while True:
            chunk = await self.process.stdout.receive_some(65536)
            if not chunk:
                return
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                message = json.loads(line)
                if "note" in message:
                    client = message["client"]
                    if message["note"] == "event":
                        item = (message["event"], from_wire(message["args"]))
                        self.events.setdefault(client, []).append(item)
                    else:
                        self.disconnects[client] = message["reason"]
                else:
                    self._replies[message["id"]] = message
                self._changed.set()
                self._changed = trio.Event()

    async def _command(self, op: str, **fields: Any) -> Any:
        assert self.process.stdin is not None
        cid = next(self._ids)
        line = json.dumps({"id": cid, "op": op, **fields}) + "\n"
        await self.process.stdin.send_all(line.encode())
        await self.wait(lambda: cid in self._replies)
        reply = self._replies.pop(cid)
        if "error" in reply:
            raise RuntimeError(f"{op} failed: {reply['error']}")
        return reply.get("ok")

    async def connect(
        self, client: str, url: str, auth: dict[str, Any], transports: list[str] | None = None
    ) -> str:
        """Connect socket ``client`` to ``url`` (over WebSocket unless ``transports``); its id."""
        extra = {"transports": transports} if transports else {}
        reply = await self._command("connect", client=client, url=url, auth=auth, **extra)
        sid: str = reply["sid"]
        return sid

    async def close(self, client: str) -> None:
        """Disconnect socket ``client``."""
        await self._command("close", client=client)

    def received(self, client: str, event: str) -> list[list[Any]]:
        """The arguments of each ``event`` that ``client`` received so far."""
        return [args for ev, args in self.events.get(client, ()) if ev == event]

    async def wait(self, condition: Callable[[], bool], timeout: float = TIMEOUT) -> None:
        """Wait until ``condition()`` holds (checked after each message from node)."""
        with trio.fail_after(timeout):
            while not condition():
                await self._changed.wait()

    async def wait_event(self, client: str, event: str, count: int = 1) -> list[list[Any]]:
        """Wait until ``client`` received ``event`` ``count`` times; their arguments."""
        try:
            await self.wait(lambda: len(self.received(client, event)) >= count)
        except trio.TooSlowError:
            raise AssertionError(
                f"{client} got {self.received(client, event)} for {event!r}, "
                f"expected {count}; all it got: {self.events.get(client)}"
            ) from None
        return self.received(client, event)


class Ticks:
    """Numbered ticks broadcast by servers (through their :class:`Admin`) every
    20 ms, to everyone (``tick``) and to ``room`` (``rtick``), for the fault tests."""

    def __init__(self, obs: Observers, room: str) -> None:
        self.obs = obs
        self.room = room
        self.seq: dict[str, int] = {}

    async def run(self, admin: Admin, name: str) -> None:
        """Broadcast ``name``'s ticks until cancelled."""
        self.seq[name] = 0
        while True:
            n = self.seq[name]
            await admin.op("emit", event="tick", args=[name, n])
            await admin.op("emit", rooms=[self.room], event="rtick", args=[name, n])
            self.seq[name] = n + 1
            await trio.sleep(0.02)

    def got(self, client: str, name: str, event: str = "tick") -> list[int]:
        """The numbers of ``name``'s ``event`` ticks that ``client`` received."""
        return [args[1] for args in self.obs.received(client, event) if args[0] == name]

    async def wait_crossing(
        self, pairs: list[tuple[str, str]], after: dict[str, int], timeout: float = 30
    ) -> None:
        """Until each (client, server) pair got a tick of each kind numbered past ``after``."""
        for event in ("tick", "rtick"):
            for client, name in pairs:
                try:
                    await self.obs.wait(
                        lambda e=event, c=client, n=name: any(  # type: ignore[misc]
                            k > after.get(n, -1) for k in self.got(c, n, e)
                        ),
                        timeout=timeout,
                    )
                except trio.TooSlowError:
                    raise AssertionError(
                        f"no {event} from {name} reached {client} past {after.get(name)}"
                    ) from None

    def assert_own_in_order(self, pairs: list[tuple[str, str]]) -> None:
        """Each server's own client got every one of its ticks, in order."""
        for client, name in pairs:
            own = self.got(client, name)
            assert own == list(range(len(own))), (client, own)


async def eventually(
    check: Callable[[], Any], timeout: float = TIMEOUT, interval: float = 0.05
) -> Any:
    """Call the async ``check`` until it returns a true value (or time runs out)."""
    deadline = trio.current_time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if trio.current_time() > deadline:
            raise AssertionError(f"still {value!r} after {timeout} s")
        await trio.sleep(interval)


def nan_safe(value: Any) -> Any:
    """NaN as None, as it crosses JSON (for comparisons)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
