"""Connection state recovery across servers, with the Redis Streams adapter.

The npm socket.io-client 4.8 (``tests/js/server_clients.js``) connects to one
server of a cluster, joins a room, gets a packet, and drops (its Engine.IO
connection is closed under it); while it waits to reconnect, broadcasts go on
from every server; it then reconnects to ANOTHER server, which recovers it:
same id, ``recovered`` true, its rooms, and every packet it missed once, in
order, each with its offset: the stream entry id (what Node's adapter gives).

Clusters: two triosio servers (two adapters, nothing shared but Redis); and a
triosio server beside a Node socket.io 4.8.3 server with
``@socket.io/redis-streams-adapter`` 0.3.1 and ``connectionStateRecovery``,
both directions. And what must not be recovered (an unknown pid, a garbage
offset, Redis down) connects as a new socket, at once.
"""

from __future__ import annotations

import re
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from cluster_peers import Admin, RedisProcess, ServerProcess, require_binary, require_node_modules

import triosio
from triosio.redis import RedisStreamsAdapter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "interop"))
from server_peers import NodeClients, NodeProcess, node_clients, running

pytestmark = pytest.mark.redis

ENTRY_ID = re.compile(r"[0-9]+-[0-9]+")
# The client waits this long before reconnecting: the broadcasts it misses
# are sent meanwhile (each takes milliseconds).
RECONNECT_MS = 1500


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisProcess]:
    server = RedisProcess(require_binary("redis-server"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def node() -> Iterator[NodeProcess]:
    require_node_modules("socket.io-client", "socket.io", "@socket.io/redis-streams-adapter")
    process = NodeProcess()
    yield process
    process.close()


@pytest.fixture
async def peers(node: NodeProcess, redis: RedisProcess) -> AsyncIterator[NodeClients]:
    redis.command(b"FLUSHALL")
    async with node_clients(node) as clients:
        yield clients


class Member:
    """A triosio server of the cluster, in this process, and its sockets."""

    def __init__(self, redis_url: str, **adapter_options: Any) -> None:
        self.adapter = RedisStreamsAdapter(redis_url, block_time=0.5, **adapter_options)
        self.sio = triosio.Server(
            adapter=self.adapter,
            connection_state_recovery=triosio.ConnectionStateRecovery(
                max_disconnection_duration=60
            ),
        )
        self.sockets: list[triosio.Socket] = []
        self.url = ""

        @self.sio.on("connection")
        async def connection(socket: triosio.Socket, auth: dict[str, Any]) -> None:
            self.sockets.append(socket)
            if not socket.recovered:
                await socket.join(auth.get("rooms") or [])
                socket.data["name"] = auth.get("name")

    async def tick(self, value: Any, room: str = "news") -> None:
        await self.sio.to(room).emit("tick", value)


@asynccontextmanager
async def members(redis: RedisProcess, count: int) -> AsyncIterator[list[Member]]:
    async with AsyncExitStack() as stack:
        found = []
        for _ in range(count):
            member = Member(redis.url)
            member.url = await stack.enter_async_context(running(member.sio))
            found.append(member)
        yield found


async def until(check: Any, timeout: float = 15) -> Any:
    with trio.fail_after(timeout):
        while not (result := check()):  # noqa: ASYNC110 (any condition)
            await trio.sleep(0.01)
    return result


async def session_stored(redis: RedisProcess) -> None:
    # The dropped socket's session is in Redis (stored by its server's task).
    with trio.fail_after(15):
        while redis.command(b"KEYS", b"sio:session:*").startswith(b"*0"):  # noqa: ASYNC110
            await trio.sleep(0.01)


def stream_length(redis: RedisProcess) -> int:
    reply = redis.command(b"XLEN", b"socket.io")
    return int(reply[1:].strip())


async def in_stream(redis: RedisProcess, *emits: Any) -> None:
    """Run each emit once the one before is in the stream: their order there
    (the order every server delivers them in) is the order here."""
    for emit in emits:
        before = stream_length(redis)
        await emit
        with trio.fail_after(15):
            while stream_length(redis) == before:  # noqa: ASYNC110 (another process)
                await trio.sleep(0.005)


async def drop(peers: NodeClients, client: str, to: str) -> None:
    """Close ``client``'s connection; it will reconnect to ``to``."""
    await peers.call("moveTo", client=client, url=to)
    await peers.call("closeEngine", client=client)


async def connect(peers: NodeClients, url: str, **auth: Any) -> dict[str, Any]:
    return await peers.connect(
        "c",
        url,
        reconnection=True,
        reconnectionDelay=RECONNECT_MS,
        randomizationFactor=0,
        transports=["websocket"],
        auth=auth,
    )


def check_ticks(ticks: list[list[Any]], expected: list[Any]) -> None:
    assert [args[0] for args in ticks] == expected
    offsets = [args[-1] for args in ticks]
    assert all(isinstance(o, str) and ENTRY_ID.fullmatch(o) for o in offsets), offsets
    order = [tuple(int(part) for part in o.split("-")) for o in offsets]
    assert order == sorted(set(order)), offsets  # increasing: none twice, none out of order


async def test_recovered_by_another_triosio_server(redis: RedisProcess, peers: NodeClients) -> None:
    async with members(redis, 2) as (a, b):
        await connect(peers, a.url, rooms=["news"], name="c")
        await until(lambda: a.sockets and "news" in a.sockets[0].rooms)
        await a.tick(0)
        await peers.wait_events("c", "tick", 1)
        await drop(peers, "c", b.url)
        await until(lambda: not a.sockets[0].connected)
        assert a.sockets[0].reason is triosio.DisconnectReason.TRANSPORT_CLOSE
        await session_stored(redis)
        # Missed, from both servers, to its room or everyone; not for it:
        # another room, volatile, local.
        await in_stream(
            redis,
            a.tick(1),
            b.tick(2),
            b.sio.emit("tick", 3),
            a.tick("not for it", room="elsewhere"),
            b.sio.volatile.emit("tick", "volatile"),
            a.tick(4),
        )
        await a.sio.local.emit("tick", "A only, no offset")
        await until(lambda: len(peers.of("c", "connect")) == 2)
        await in_stream(redis, b.tick("live"), a.tick("live from A"))
        ticks = await peers.wait_events("c", "tick", 7)
        await trio.sleep(0.2)  # nothing more comes
        ticks = peers.events("c", "tick")
        first, again = peers.of("c", "connect")
        assert not first["recovered"] and again["recovered"]
        assert again["sid"] == first["sid"]
        check_ticks(ticks, [0, 1, 2, 3, 4, "live", "live from A"])
        (back,) = b.sockets
        assert back.recovered and back.id == first["sid"]
        assert back.rooms == {back.id, "news"} and back.data == {"name": "c"}
        # Taken once: the session is no longer in Redis.
        assert redis.command(b"KEYS", b"sio:session:*").startswith(b"*0")


async def test_direct_emits_are_recovered_too(redis: RedisProcess, peers: NodeClients) -> None:
    # With recovery, a socket's own emits go through the stream (to its own
    # room), as Node's do: the server it reconnects to replays them.
    async with members(redis, 2) as (a, b):
        await connect(peers, a.url, name="c")
        socket = await until(lambda: a.sockets and a.sockets[0])
        await socket.emit("tick", 0)
        await peers.wait_events("c", "tick", 1)
        await drop(peers, "c", b.url)
        await until(lambda: not socket.connected)
        await session_stored(redis)
        await in_stream(redis, b.sio.to(socket.id).emit("tick", 1), a.sio.emit("tick", 2))
        await until(lambda: len(peers.of("c", "connect")) == 2)
        await b.sockets[0].emit("tick", 3)
        ticks = await peers.wait_events("c", "tick", 4)
        check_ticks(ticks, [0, 1, 2, 3])
        assert peers.of("c", "connect")[1]["recovered"]


@pytest.fixture
def node_server(redis: RedisProcess) -> Iterator[ServerProcess]:
    require_node_modules("socket.io", "@socket.io/redis-streams-adapter", "redis")
    server = ServerProcess("node", "N", redis.url, "--adapter", "streams", "--recovery", "60")
    try:
        yield server
    finally:
        server.stop()
    log = server.log()
    for bad in ("Error:", "TypeError"):
        assert bad not in log, log


async def test_from_node_to_triosio(
    redis: RedisProcess, peers: NodeClients, node_server: ServerProcess
) -> None:
    async with members(redis, 1) as (t,), Admin.open(node_server) as n:
        await connect(peers, node_server.url, rooms=["news"], name="c")
        await n.op("emit", rooms=["news"], event="tick", args=[0])
        await peers.wait_events("c", "tick", 1)
        await drop(peers, "c", t.url)
        await session_stored(redis)
        await in_stream(
            redis,
            n.op("emit", rooms=["news"], event="tick", args=[1]),
            t.tick(2),
            n.op("emit", event="tick", args=[3]),
            n.op("emit", rooms=["elsewhere"], event="tick", args=["not for it"]),
        )
        await until(lambda: len(peers.of("c", "connect")) == 2)
        await n.op("emit", rooms=["news"], event="tick", args=["live"])
        ticks = await peers.wait_events("c", "tick", 5)
        first, again = peers.of("c", "connect")
        assert again["recovered"] and again["sid"] == first["sid"]
        check_ticks(ticks, [0, 1, 2, 3, "live"])
        (back,) = t.sockets
        assert back.recovered and back.rooms == {back.id, "news"}
        assert back.data == {"name": "c", "test": None}  # Node's socket.data


async def test_from_triosio_to_node(
    redis: RedisProcess, peers: NodeClients, node_server: ServerProcess
) -> None:
    async with members(redis, 1) as (t,), Admin.open(node_server) as n:
        await connect(peers, t.url, rooms=["news"], name="c")
        await until(lambda: t.sockets and "news" in t.sockets[0].rooms)
        await t.tick(0)
        await peers.wait_events("c", "tick", 1)
        await drop(peers, "c", node_server.url)
        await until(lambda: not t.sockets[0].connected)
        await session_stored(redis)
        await in_stream(
            redis,
            t.tick(1),
            n.op("emit", rooms=["news"], event="tick", args=[2]),
            t.tick("not for it", room="elsewhere"),
            t.sio.emit("tick", 3),
        )
        await until(lambda: len(peers.of("c", "connect")) == 2)
        await t.tick("live")
        ticks = await peers.wait_events("c", "tick", 5)
        first, again = peers.of("c", "connect")
        assert again["recovered"] and again["sid"] == first["sid"]
        check_ticks(ticks, [0, 1, 2, 3, "live"])
        (view,) = await n.op("fetchSockets", local=True)
        assert view["id"] == first["sid"] and view["rooms"] == sorted([first["sid"], "news"])


@pytest.mark.parametrize(
    "auth",
    [
        {"pid": "unknown", "offset": "1-0"},
        {"pid": "unknown", "offset": "not an offset"},
        {"pid": "unknown", "offset": 12},
        {"pid": "unknown"},
        {"pid": ["not", "a", "pid"], "offset": "1-0"},
    ],
    ids=["unknown pid", "garbage offset", "offset not a string", "no offset", "bad pid"],
)
async def test_what_cannot_be_recovered_connects_anew(
    redis: RedisProcess, peers: NodeClients, auth: dict[str, Any]
) -> None:
    async with members(redis, 1) as (a,):
        with trio.fail_after(10):
            result = await peers.connect("c", a.url, transports=["websocket"], auth=auth)
        assert "sid" in result
        (socket,) = a.sockets
        assert not socket.recovered and socket.id == result["sid"]
        assert not peers.of("c", "connect")[0]["recovered"]


async def test_a_stored_session_with_an_offset_trimmed_away(
    redis: RedisProcess, peers: NodeClients
) -> None:
    # The stream no longer holds the client's offset (max_len): not recovered.
    async with members(redis, 1) as (a,):
        await connect(peers, a.url, rooms=["news"])
        await until(lambda: a.sockets and "news" in a.sockets[0].rooms)
        await a.tick(0)
        await peers.wait_events("c", "tick", 1)
        await drop(peers, "c", a.url)
        await session_stored(redis)
        redis.command(b"XTRIM", b"socket.io", b"MAXLEN", b"0")
        await until(lambda: len(peers.of("c", "connect")) == 2)
        first, again = peers.of("c", "connect")
        assert not again["recovered"] and again["sid"] != first["sid"]


async def test_redis_down_during_the_restore(redis: RedisProcess, peers: NodeClients) -> None:
    # Redis goes away while the client is away: its CONNECT gets a new socket,
    # promptly, and the server goes on; what it broadcasts meanwhile waits
    # for Redis (its offset is its entry id), then arrives.
    async with members(redis, 1) as (a,):
        await connect(peers, a.url, rooms=["news"])
        await until(lambda: a.sockets and "news" in a.sockets[0].rooms)
        await a.tick(0)
        await peers.wait_events("c", "tick", 1)
        await drop(peers, "c", a.url)
        await session_stored(redis)
        redis.kill()
        try:
            with trio.fail_after(RECONNECT_MS / 1000 + 10):
                await until(lambda: len(peers.of("c", "connect")) == 2)
            first, again = peers.of("c", "connect")
            assert not again["recovered"] and again["sid"] != first["sid"]
            await a.sio.emit("tick", "after")
        finally:
            redis.start()
        ticks = await peers.wait_events("c", "tick", 2)
        check_ticks(ticks[1:], ["after"])


async def test_a_restore_that_hangs_is_given_up(
    redis: RedisProcess, peers: NodeClients, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Redis stops answering (CLIENT PAUSE) as the client comes back: its
    # CONNECT waits at most the restore timeout, then gets a new socket.
    monkeypatch.setattr("triosio._server.lifecycle.RESTORE_TIMEOUT", 0.5)
    async with members(redis, 1) as (a,):
        await connect(peers, a.url, rooms=["news"])
        await until(lambda: a.sockets and "news" in a.sockets[0].rooms)
        await a.tick(0)
        await peers.wait_events("c", "tick", 1)
        await drop(peers, "c", a.url)
        await session_stored(redis)
        redis.command(b"CLIENT", b"PAUSE", b"4000")
        with trio.fail_after(RECONNECT_MS / 1000 + 2.5):  # well before the pause ends
            await until(lambda: len(peers.of("c", "connect")) == 2)
        first, again = peers.of("c", "connect")
        assert not again["recovered"] and again["sid"] != first["sid"]
        redis.command(b"CLIENT", b"UNPAUSE")


async def test_own_broadcasts_are_delivered_in_stream_order_even_before_their_answer() -> None:
    # The reader may reach one of our entries before the writer has Redis's
    # answer (two connections): it waits for the writer, then delivers ours
    # up to there, in id order; one it passed without seeing (trimmed) is
    # delivered too; an entry that was never a logged broadcast of ours does
    # not wait once nothing is on its way. No Redis needed: the transport's
    # own bookkeeping, driven as its writer and reader drive it.
    from triosio._redis.streams import RedisStreamsTransport

    transport = RedisStreamsTransport(
        "redis://127.0.0.1:1/0",
        stream_name="s",
        stream_count=1,
        channel_prefix="p",
        max_len=10,
        read_count=10,
        block_ms=10,
        only_plaintext=False,
        requests_timeout=1.0,
        max_queued=10,
        reconnect=(0.1, 1.0),
        connect_timeout=1.0,
        redis_options={},
    )
    got: list[str | None] = []
    stream = b"s"
    transport._in_flight = 2  # the writer sent two logged broadcasts
    async with trio.open_nursery() as nursery:
        reached = trio.Event()

        async def reader() -> None:
            await transport._reached(stream, b"5-0")  # the second one, seen first
            reached.set()

        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        assert got == [] and not reached.is_set()  # waiting for the writer
        # The writer gets both answers, in order.
        transport._in_flight -= 2
        transport._handed(stream, b"4-0", got.append)
        transport._handed(stream, b"5-0", got.append)
        transport._wake_reader()
        await reached.wait()
    assert got == ["4-0", "5-0"]
    # Not a logged broadcast of ours, nothing on its way: no wait.
    with trio.fail_after(1):
        await transport._reached(stream, b"6-0")
    # Passed without being seen (trimmed before the reader got there).
    transport._handed(stream, b"7-0", got.append)
    transport._handed(stream, b"9-0", got.append)
    transport._passed(stream, b"8-0")
    assert got == ["4-0", "5-0", "7-0"]
    # Refused by Redis (no id): at once, without an offset.
    transport._handed(stream, None, got.append)
    assert got == ["4-0", "5-0", "7-0", None]
