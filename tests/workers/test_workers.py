"""``triosio run --workers 2``: sticky sessions, broadcasts across workers, supervision.

Each test runs a real supervisor (``python -m triosio run workers_app:sio``, the app
in ``tests/workers/workers_app.py``) on a free loopback port, stopped by its PID.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h11
import pytest
import trio
from support import WorkersProcess, require_node_modules, until

import triosio

HERE = Path(__file__).resolve().parent


def _cluster_peers() -> Any:
    # The socket.io-client observers of the Redis tests, by path.
    path = HERE.parent / "redis" / "cluster_peers.py"
    spec = importlib.util.spec_from_file_location("_workers_cluster_peers", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def server() -> Iterator[WorkersProcess]:
    proc = WorkersProcess("workers_app:sio", 2, cwd=HERE)
    try:
        yield proc
    finally:
        assert proc.stop() == 0
        log = proc.log()
        assert "Traceback" not in log and "ERROR" not in log, log


class RawPolling:
    """An Engine.IO long-polling client over one keep-alive HTTP connection (h11)."""

    def __init__(self, stream: trio.SocketStream, port: int) -> None:
        self.stream = stream
        self.port = port
        self.conn = h11.Connection(h11.CLIENT)
        self.requests = 0

    @classmethod
    async def open(cls, port: int) -> RawPolling:
        return cls(await trio.open_tcp_stream("127.0.0.1", port), port)

    async def request(self, method: str, query: str, body: bytes = b"") -> tuple[int, bytes]:
        headers = [("host", f"127.0.0.1:{self.port}"), ("content-length", str(len(body)))]
        if body:
            headers.append(("content-type", "text/plain;charset=UTF-8"))
        data = self.conn.send(
            h11.Request(method=method, target=f"/socket.io/?EIO=4&transport=polling{query}",
                        headers=headers)
        )  # fmt: skip
        data += self.conn.send(h11.Data(data=body)) if body else b""
        data += self.conn.send(h11.EndOfMessage())
        await self.stream.send_all(data)
        self.requests += 1
        status, out = 0, b""
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                chunk = await self.stream.receive_some(65536)
                if not chunk:
                    raise ConnectionError("the server closed the connection")
                self.conn.receive_data(chunk)
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                out += bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
                    self.conn.start_next_cycle()
                return status, out

    async def handshake(self, worker: int | None = None) -> str:
        pin = f"&triosio-worker={worker}" if worker is not None else ""
        status, body = await self.request("GET", pin)
        assert status == 200, body
        sid: str = json.loads(body[1:])["sid"]
        return sid


class PollingSession:
    """One Socket.IO client of the main namespace, over long-polling only."""

    def __init__(self, http: RawPolling, sid: str) -> None:
        self.http = http
        self.sid = sid
        self.acks: dict[int, Any] = {}

    async def post(self, packet: str) -> None:
        status, body = await self.http.request("POST", f"&sid={self.sid}", packet.encode())
        assert (status, body) == (200, b"ok"), (status, body, self.sid)

    async def get(self) -> list[str]:
        status, body = await self.http.request("GET", f"&sid={self.sid}")
        assert status == 200, (status, body, self.sid)
        packets = body.decode().split("\x1e")
        for packet in packets:
            if packet == "2":
                await self.post("3")  # a ping: pong
        return packets

    async def connect(self) -> None:
        await self.post("40")
        packets = await self.get()
        assert packets[0].startswith("40{"), packets

    async def call(self, n: int, event: str, *args: Any) -> Any:
        await self.post(f"42{n}" + json.dumps([event, *args]))
        while n not in self.acks:
            for packet in await self.get():
                if packet.startswith("43"):
                    ack_id, _, rest = packet[2:].partition("[")
                    self.acks[int(ack_id)] = json.loads("[" + rest)
        return self.acks.pop(n)


async def test_long_polling_client_makes_10000_requests_without_losing_its_session(
    server: WorkersProcess,
) -> None:
    # Two polling-only clients, one on each worker, each on one keep-alive
    # connection making 10,000 requests (5,000 request/response round trips:
    # a POST and the GET that brings the answer), and its handshake. Every one
    # must find its session: "Session ID unknown" would fail a status check.
    calls = 5_000
    pids: dict[int, int] = {}
    counts = []

    async def one(worker: int) -> None:
        http = await RawPolling.open(server.port)
        async with http.stream:
            session = PollingSession(http, await http.handshake(worker))
            await session.connect()
            pids[worker] = (await session.call(0, "pid"))[0]
            for n in range(1, calls):
                assert await session.call(n, "echo", n) == [n]
            counts.append(http.requests)

    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            for worker in (0, 1):
                nursery.start_soon(one, worker)
    assert min(counts) >= 10_000
    assert pids == server.pids  # each on its worker


async def test_one_keep_alive_connection_carries_sessions_of_both_workers(
    server: WorkersProcess,
) -> None:
    # A client that pools its connections may send requests of a session held
    # by worker 1 over a connection the acceptor gave worker 0: that worker
    # gives the connection back and the acceptor routes it again.
    http = await RawPolling.open(server.port)
    other = await RawPolling.open(server.port)
    async with http.stream, other.stream:
        # (A handshake on a connection a worker holds stays there: any worker
        # can open a session. So b opens on a connection of its own.)
        a = PollingSession(http, await http.handshake(worker=0))
        b = PollingSession(http, await other.handshake(worker=1))
        assert a.sid.startswith("w0-") and b.sid.startswith("w1-")
        await a.connect()
        await b.connect()
        with trio.fail_after(30):
            await _alternate(a, b, server)


async def _alternate(a: PollingSession, b: PollingSession, server: WorkersProcess) -> None:
    if True:
        for n in range(20):
            pid_a = await a.call(n, "pid")
            pid_b = await b.call(n, "pid")
            assert [pid_a[0], pid_b[0]] == [server.pids[0], server.pids[1]]


async def test_unknown_and_foreign_sessions_are_answered_like_a_single_server(
    server: WorkersProcess,
) -> None:
    for sid in ("nonsense", "w0-nonexistent", "w1-nonexistent", "w9-outofrange", "w99999-x"):
        http = await RawPolling.open(server.port)
        async with http.stream:
            with trio.fail_after(10):
                status, body = await http.request("GET", f"&sid={sid}")
            assert status == 400, (sid, status, body)
            assert json.loads(body) == {"code": 1, "message": "Session ID unknown"}


@pytest.mark.parametrize("transport", ["polling", "websocket"])
async def test_broadcasts_reach_triosio_and_js_clients_on_every_worker(
    server: WorkersProcess, transport: str
) -> None:
    require_node_modules("socket.io-client")
    peers = _cluster_peers()
    got: dict[str, list[Any]] = {}
    with trio.fail_after(60):
        await _broadcasts(server, transport, peers, got)


async def _broadcasts(
    server: WorkersProcess, transport: str, peers: Any, got: dict[str, list[Any]]
) -> None:
    async with peers.Observers.open() as obs, trio.open_nursery() as nursery:
        clients = []
        for worker in (0, 1):
            name = f"js{worker}"
            room = f"b-{transport}"
            url = f"{server.url}/?triosio-worker={worker}"
            await obs.connect(name, url, {"room": room}, [transport])
            client = await nursery.start(_triosio_client, server, worker, transport, got, room)
            clients.append(client)
        pids = [await c.emit_with_ack("pid", timeout=10) for c in clients]
        assert pids == [server.pids[0], server.pids[1]]
        for sender, client in enumerate(clients):
            text = f"from {sender} over {transport}"
            assert await client.emit_with_ack("shout", None, text, timeout=10) == pids[sender]
            for name in ("js0", "js1"):
                await obs.wait(lambda n=name, e=[text, pids[sender]]: e in obs.received(n, "news"))
            expected = [text, pids[sender]]
            await until(lambda e=expected: all(e in got.get(f"py{w}", []) for w in (0, 1)))
        # fetch_sockets and server-side emits reach the other worker too.
        assert await clients[0].emit_with_ack("count", room, timeout=10) == 4
        assert await clients[1].emit_with_ack("ask-servers", timeout=10) == [pids[0]]
        nursery.cancel_scope.cancel()


async def _triosio_client(
    server: WorkersProcess,
    worker: int,
    transport: str,
    got: dict[str, list[Any]],
    room: str,
    *,
    task_status: trio.TaskStatus[triosio.ClientSocket],
) -> None:
    name = f"py{worker}"
    async with triosio.connect(
        server.url,
        query={"triosio-worker": str(worker)},
        transports=(transport,),
        auth={"room": room},
    ) as client:

        @client.on("news")
        def news(text: str, pid: int) -> None:
            got.setdefault(name, []).append([text, pid])

        task_status.started(client)
        await trio.sleep_forever()


async def _reconnecting_client(
    url: str,
    name: str,
    log: dict[str, list[str]],
    transport: str,
    *,
    task_status: trio.TaskStatus[triosio.ClientSocket],
) -> None:
    async with triosio.connect(
        url, transports=(transport,), reconnection_delay=0.1, reconnection_delay_max=0.5
    ) as client:

        @client.on("connect")
        def connected() -> None:
            log.setdefault(name, []).append("connect")

        @client.on("disconnect")
        def disconnected(reason: str) -> None:
            log.setdefault(name, []).append("disconnect")

        task_status.started(client)
        await trio.sleep_forever()


async def test_a_worker_killed_under_load_is_restarted_and_no_other_client_notices() -> None:
    proc = WorkersProcess("workers_app:sio", 2, cwd=HERE)
    try:
        with trio.fail_after(90):
            await _kill_one(proc)
    finally:
        proc.stop()


async def _kill_one(proc: WorkersProcess) -> None:
    if True:
        victim = proc.pids[0]
        log: dict[str, list[str]] = {}
        async with trio.open_nursery() as nursery:
            clients = {}
            for i in range(6):
                # Victims 0, 2, 4 and survivors 1, 3, 5; 2 and 3 long-polling.
                url = f"{proc.url}/?triosio-worker={i % 2}"
                transport = "polling" if i in (2, 3) else "websocket"
                clients[i] = await nursery.start(_reconnecting_client, url, f"c{i}", log, transport)
            pids = {i: await c.emit_with_ack("pid", timeout=10) for i, c in clients.items()}
            assert {pids[i] for i in (0, 2, 4)} == {victim}
            errors: list[BaseException] = []
            done = dict.fromkeys(clients, 0)

            async def load(i: int) -> None:
                # Everyone makes round trips; a survivor's may never fail.
                n = 0
                while True:
                    n += 1
                    try:
                        assert await clients[i].emit_with_ack("echo", n, timeout=5) == n
                        done[i] += 1
                    except Exception as exc:
                        if i % 2:
                            errors.append(exc)
                            raise
                        await trio.sleep(0.05)  # a victim, between worker and reconnection

            for i in clients:
                nursery.start_soon(load, i)
            await trio.sleep(0.3)
            os.kill(victim, signal.SIGKILL)
            before = dict(done)
            with trio.fail_after(30):
                await until(lambda: bool(proc.log()) and proc.pids[0] != victim, 30)
                # The victim's clients reconnect (to either worker) and work.
                for i in (0, 2, 4):
                    await until(lambda i=i: "connect" in log.get(f"c{i}", []), 30)
                    mark = done[i]
                    await until(lambda i=i, mark=mark: done[i] > mark + 10, 30)
            await trio.sleep(0.3)
            assert all(done[i] > before[i] + 10 for i in (1, 3, 5)), (before, done)
            nursery.cancel_scope.cancel()
        assert not errors
        for i in (1, 3, 5):
            assert f"c{i}" not in log, log  # (the first connect came before the handlers)
        for i in (0, 2, 4):
            assert log[f"c{i}"][:2] == ["disconnect", "connect"], log
        assert "worker 0 exited (killed by SIGKILL); restarting it" in proc.log()


async def test_sigterm_to_the_supervisor_drains_every_worker() -> None:
    proc = WorkersProcess("workers_app:sio", 2, cwd=HERE)
    reasons: dict[int, str] = {}
    try:
        async with trio.open_nursery() as nursery:
            nursery.cancel_scope.deadline = trio.current_time() + 60  # then the checks fail

            async def client(worker: int, transport: str, task_status: Any) -> None:
                url = f"{proc.url}/?triosio-worker={worker}"
                async with triosio.connect(url, transports=(transport,), reconnection=False) as c:

                    @c.on("disconnect")
                    def gone(reason: str) -> None:
                        reasons[len(reasons)] = reason

                    assert await c.emit_with_ack("echo", 1, timeout=10) == 1
                    task_status.started()
                    await trio.sleep_forever()

            for worker in (0, 1):
                for transport in ("polling", "websocket"):
                    await nursery.start(client, worker, transport)
            proc.proc.send_signal(signal.SIGTERM)
            await until(lambda: len(reasons) == 4, 20)
            await until(lambda: proc.proc.poll() is not None, 20)
            nursery.cancel_scope.cancel()
        assert proc.proc.returncode == 0
        assert set(reasons.values()) == {"transport close"}, reasons
        assert all(_gone(pid) for pid in proc.pids.values())
    finally:
        proc.stop()
    log = proc.log()
    assert "did not stop in time" not in log and "Traceback" not in log, log


def _gone(pid: int) -> bool:
    # Exited (a zombie until the supervisor, itself gone, is reaped by init).
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1].startswith("Z")
    except OSError:
        return True
