"""Two servers sharing one private Redis, with socket.io-client clients on each.

Clusters: two triosio processes; a triosio process beside a Node socket.io
4.8.3 server with @socket.io/redis-adapter 8.3.0; and the two workers of
``triosio run --workers 2``, through Redis (``--redis``) and through the bus
between the workers (the same protocol code on another bus). Every operation runs in both
directions (the server that acts, ``src``; the other, ``dst``). The servers stay
up for the module; each test uses rooms and auth of its own, so tests do not
see each other's clients.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cluster_peers import (
    HERE,
    JS_DIR,
    Admin,
    Observers,
    OpError,
    RedisProcess,
    ServerProcess,
    WorkerView,
    eventually,
    from_wire,
    require_binary,
    require_node_modules,
)
from support import WorkersProcess

pytestmark = pytest.mark.redis

NODE_PACKAGES = (
    "socket.io",
    "socket.io-client",
    "@socket.io/redis-adapter",
    "@socket.io/redis-emitter",
    "redis",
)


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisProcess]:
    server = RedisProcess(require_binary("redis-server"))
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Cluster:
    a: ServerProcess
    b: ServerProcess
    redis: RedisProcess
    adapter: str = "pubsub"  # "streams", "sharded-static", "sharded-dynamic"


CLUSTERS = ["triosio+triosio", "triosio+node", "workers", "workers+redis"]


def _start(kind: str, redis: RedisProcess) -> tuple[Any, Any]:
    if kind.startswith("workers"):
        extra = ("--redis", redis.url) if kind == "workers+redis" else ()
        proc = WorkersProcess("cluster_server:workers_app", 2, *extra, cwd=HERE)
        return WorkerView(proc, 0, "A"), WorkerView(proc, 1, "B")
    kind_b = kind.split("+")[1]
    a = ServerProcess("triosio", "A", redis.url)
    try:
        b = ServerProcess(kind_b, "B", redis.url)
    except BaseException:
        a.stop()
        raise
    return a, b


@pytest.fixture(scope="module", params=CLUSTERS)
def cluster(request: pytest.FixtureRequest, redis: RedisProcess) -> Iterator[Cluster]:
    require_node_modules(*NODE_PACKAGES)  # the clients are socket.io-client, always
    a, b = _start(request.param, redis)
    try:
        yield Cluster(a, b, redis)
    finally:
        b.stop()
        a.stop()
    for server in (a, b):
        # Normal traffic is never malformed, and nothing may crash or be logged
        # as an error (a Node peer exits on some malformed input).
        log = server.log()
        for bad in ("Traceback", "ERROR", "malformed", "Error:"):
            assert bad not in log, log


@dataclass
class Env:
    """One test's view: the acting server, the other, their clients."""

    src: ServerProcess
    dst: ServerProcess
    admin: Admin  # on src
    admin_dst: Admin
    obs: Observers
    tag: str
    room: str  # every client of the test is in it
    src_room: str  # joined by one client of src
    dst_room: str  # joined by one client of dst
    ids: dict[str, str]
    adapter: str = "pubsub"

    async def op(self, op: str, **fields: Any) -> Any:
        return await self.admin.op(op, **fields)

    async def fence(self, clients: tuple[str, ...] = ("s1", "s2", "d1", "d2")) -> None:
        # Messages from one server reach each client in order: once a later
        # broadcast has arrived, an earlier one that did not never will.
        n = next(_fences)
        await self.op("emit", rooms=[self.room], event="fence", args=[n])
        for client in clients:
            await self.obs.wait(lambda c=client: [n] in self.obs.received(c, "fence"))


_fences = itertools.count()


@pytest.fixture(params=["src=A", "src=B"])
async def env(request: pytest.FixtureRequest, cluster: Cluster) -> AsyncIterator[Env]:
    src, dst = (cluster.a, cluster.b) if request.param == "src=A" else (cluster.b, cluster.a)
    tag = uuid.uuid4().hex[:8]
    room, src_room, dst_room = f"all-{tag}", f"src-{tag}", f"dst-{tag}"
    async with Observers.open() as obs, Admin.open(src) as admin, Admin.open(dst) as admin_dst:
        ids = {}
        for client, server, rooms in (
            ("s1", src, [room, src_room]),
            ("s2", src, [room]),
            ("d1", dst, [room, dst_room]),
            ("d2", dst, [room]),
        ):
            auth = {"name": client, "test": tag, "rooms": rooms}
            ids[client] = await obs.connect(client, server.url, auth)

        async def joined() -> bool:
            # A client hears CONNECT before its server's connection handler
            # has joined it to its rooms (triosio runs the handler after the
            # reply; Node joins in the same tick): wait for the joins.
            for server_admin in (admin, admin_dst):
                found = await server_admin.op("fetchSockets", rooms=[room], local=True)
                if len(found) != 2:
                    return False
            return True

        await eventually(joined)
        yield Env(
            src, dst, admin, admin_dst, obs, tag, room, src_room, dst_room, ids, cluster.adapter
        )


ALL = ("s1", "s2", "d1", "d2")


def got(env: Env, client: str, event: str) -> list[list[Any]]:
    return env.obs.received(client, event)


async def test_broadcast_to_all(env: Env) -> None:
    payload = {"tag": env.tag, "text": "h\u00e9llo w\u00f6rld \u2713", "n": [1, 2.5, None, True]}
    await env.op("emit", event="all_msg", args=[payload, 42])
    for client in ALL:
        assert await env.obs.wait_event(client, "all_msg") == [[payload, 42]]
    # `local`: this server's clients only.
    await env.op("emit", event="local_msg", args=[1], local=True)
    await env.fence()
    for client in ALL:
        assert got(env, client, "local_msg") == ([[1]] if client.startswith("s") else [])


async def test_broadcast_to_rooms_joined_on_different_servers(env: Env) -> None:
    if env.adapter == "sharded-dynamic":
        # The other server subscribes to a room's own channel once the room
        # exists there, asynchronously (Node's adapter as triosio's): probe the
        # channel until it is live, so that the broadcast below is not lost.
        async def live() -> bool:
            if got(env, "d1", "probe"):
                return True
            await env.op("emit", rooms=[env.dst_room], event="probe", args=[])
            return False

        await eventually(live, interval=0.1)
    # One room, on the other server: its own channel (socket.io#/#<room>#).
    await env.op("emit", rooms=[env.dst_room], event="one", args=[env.tag])
    if env.adapter == "sharded-dynamic":
        # That channel is not ordered with the fence's: wait for it.
        await env.obs.wait(lambda: got(env, "d1", "one"))
    # Two rooms, one on each server: the namespace channel.
    await env.op("emit", rooms=[env.src_room, env.dst_room], event="two", args=[])
    # Everyone of the test but one room.
    await env.op("emit", rooms=[env.room], event="but", args=[], **{"except": [env.dst_room]})
    # socket.broadcast-like: everyone but one socket, by its id.
    await env.op("emit", rooms=[env.room], event="not_d2", args=[], **{"except": [env.ids["d2"]]})
    await env.fence()
    expected = {
        "one": {"d1"},
        "two": {"s1", "d1"},
        "but": {"s1", "s2", "d2"},
        "not_d2": {"s1", "s2", "d1"},
    }
    for event, receivers in expected.items():
        for client in ALL:
            assert len(got(env, client, event)) == (client in receivers), (event, client)


async def test_fetch_sockets_counts_and_views(env: Env) -> None:
    everyone = await env.op("fetchSockets", rooms=[env.room])
    assert sorted(s["data"]["name"] for s in everyone) == ["d1", "d2", "s1", "s2"]
    for s in everyone:
        assert s["remote"] == s["data"]["name"].startswith("d")
        assert s["id"] == env.ids[s["data"]["name"]]
        assert s["auth"]["test"] == env.tag
        assert s["id"] in s["rooms"] and env.room in s["rooms"]
    in_dst_room = await env.op("fetchSockets", rooms=[env.dst_room])
    assert [(s["data"]["name"], s["remote"]) for s in in_dst_room] == [("d1", True)]
    mine = [s for s in await env.op("fetchSockets") if s["data"].get("test") == env.tag]
    assert len(mine) == 4
    assert await env.op("fetchSockets", rooms=[f"nobody-{env.tag}"]) == []
    local = await env.op("fetchSockets", rooms=[env.room], local=True)
    assert sorted(s["data"]["name"] for s in local) == ["s1", "s2"]
    rooms = set(await env.op("allRooms"))
    if env.adapter == "streams" or env.adapter.startswith("sharded"):
        # socket.io-adapter's ClusterAdapter has no ALL_ROOMS request: this
        # server's rooms only, on Node as on triosio.
        assert {env.room, env.src_room, env.ids["s1"]} <= rooms
        assert env.dst_room not in rooms
    else:
        assert {env.room, env.src_room, env.dst_room, env.ids["d1"]} <= rooms
    assert await env.op("serverCount") == 2


async def test_sockets_join_then_room_broadcast(env: Env) -> None:
    joined = f"joined-{env.tag}"
    # Published in order on one connection: the join is applied on the other
    # server before the broadcast arrives (§8.5).
    await env.op("socketsJoin", rooms=[env.room], change=[joined])
    await env.op("emit", rooms=[joined], event="after_join", args=[1])
    if env.adapter == "sharded-dynamic":
        # The sharded adapter's dynamic modes (Node's as triosio's) send a
        # one-room broadcast on the room's own channel, which the other server
        # subscribes to only once the join has made the room there: a
        # broadcast right after a remote join may be lost. Once subscribed,
        # it arrives.
        async def arrived() -> bool:
            if all(got(env, c, "after_join") for c in ("d1", "d2")):
                return True
            await env.op("emit", rooms=[joined], event="after_join", args=[1])
            return False

        await eventually(arrived, interval=0.1)
    # A Node server applies its own socketsJoin only when Redis echoes it back,
    # so its local delivery may come first (redis-wire.md §5); triosio applies
    # it before socketsJoin returns.
    receivers = ALL if env.src.kind == "triosio" else ("d1", "d2")
    for client in receivers:
        await env.obs.wait_event(client, "after_join")
    await env.op("socketsLeave", rooms=[env.dst_room], change=[joined])
    if env.adapter == "sharded-dynamic":
        # The same gap the other way: the leave travels on the namespace's
        # channel, the room broadcast on the room's. A broadcast to everyone
        # (the namespace's channel, after the leave) fences it.
        n = next(_fences)
        await env.op("emit", rooms=[], event="fence", args=[n])
        for client in ALL:
            await env.obs.wait(lambda c=client: [n] in env.obs.received(c, "fence"))
    await env.op("emit", rooms=[joined], event="after_leave", args=[2])
    await env.fence()
    for client in receivers:
        assert len(got(env, client, "after_leave")) == (client != "d1"), client


async def test_disconnect_sockets(env: Env) -> None:
    await env.op("disconnectSockets", rooms=[env.dst_room])
    await env.obs.wait(lambda: "d1" in env.obs.disconnects)
    assert env.obs.disconnects["d1"] == "io server disconnect"
    await env.fence(("s1", "s2", "d2"))
    assert set(env.obs.disconnects) == {"d1"}
    await env.op("disconnectSockets", rooms=[env.room])
    await env.obs.wait(lambda: set(env.obs.disconnects) == set(ALL))
    assert set(env.obs.disconnects.values()) == {"io server disconnect"}
    assert await env.op("fetchSockets", rooms=[env.room]) == []


async def test_server_side_emit(env: Env) -> None:
    first = {"tag": env.tag, "text": "h\u00e9llo", "n": 1}
    await env.op("serverSideEmit", event="sse", args=[first, "two"])
    received = await eventually(lambda: env.admin_dst.op("received", tag=env.tag))
    assert received == [["sse", [first, "two"], "/"]]
    # Never delivered to the server that sent it.
    assert await env.op("received", tag=env.tag) == []
    second = {"tag": env.tag, "n": 2}
    answers = await env.op("serverSideEmitWithAck", event="sse", args=[second], timeout=5000)
    assert answers == [{"from": env.dst.name, "args": [second]}]
    # Other namespaces are other adapters.
    chat = {"tag": env.tag, "n": 3}
    await env.op("serverSideEmit", nsp="/chat", event="sse", args=[chat])
    received = await eventually(lambda: env.admin_dst.op("received", tag=env.tag), interval=0.05)
    await eventually(lambda: _count(env.admin_dst, env.tag, 3))
    received = await env.admin_dst.op("received", tag=env.tag)
    assert received[-1] == ["sse", [chat], "/chat"]


async def _count(admin: Admin, tag: str, n: int) -> bool:
    return len(await admin.op("received", tag=tag)) >= n


async def test_broadcast_with_acks_across_servers(env: Env) -> None:
    answers = await env.op("emitWithAck", rooms=[env.room], event="poll", args=[7], timeout=5000)
    assert sorted(a["client"] for a in answers) == ["d1", "d2", "s1", "s2"]
    assert all(a == {"client": a["client"], "event": "poll", "first": 7} for a in answers)
    # One room on the other server only.
    answers = await env.op(
        "emitWithAck", rooms=[env.dst_room], event="poll", args=[b"\x00\xff"], timeout=5000
    )
    assert answers == [{"client": "d1", "event": "poll", "first": b"\x00\xff"}]
    # Nobody there: done at once, empty.
    assert await env.op("emitWithAck", rooms=[f"no-{env.tag}"], event="p", timeout=5000) == []


async def test_nested_binary_payloads(env: Env) -> None:
    payload = {
        "tag": env.tag,
        "small": bytes([0, 1, 2, 0x7F, 0x80, 0xFE, 0xFF]),
        "nested": {"list": [bytes([0xAB]) * 300, "text between buffers", b""]},
        "all": bytes(range(256)),
    }
    await env.op("emit", rooms=[env.room], event="bin", args=[payload, b"second"])
    for client in ALL:
        assert await env.obs.wait_event(client, "bin") == [[payload, b"second"]]


async def test_remote_socket_views(env: Env) -> None:
    d1 = env.ids["d1"]
    view = await env.op("remote", sid=d1, action="emit", event="direct", args=[env.tag])
    assert view == {"remote": True}
    assert await env.obs.wait_event("d1", "direct") == [[env.tag]]
    extra = f"extra-{env.tag}"
    await env.op("remote", sid=d1, action="join", rooms=[extra])
    rooms = await eventually(lambda: _rooms_of(env, d1, extra))
    assert extra in rooms
    await env.op("emit", rooms=[extra], event="extra", args=[])
    await env.obs.wait_event("d1", "extra")
    await env.op("remote", sid=d1, action="leave", rooms=[extra])
    await eventually(lambda: _left(env, d1, extra))
    await env.op("remote", sid=d1, action="disconnect")
    await env.obs.wait(lambda: "d1" in env.obs.disconnects)
    await env.fence(("s1", "s2", "d2"))
    assert set(env.obs.disconnects) == {"d1"}
    assert [s["id"] for s in got(env, "s2", "direct")] == []


async def _rooms_of(env: Env, sid: str, room: str) -> list[str]:
    found = await env.op("fetchSockets", rooms=[room])
    return found[0]["rooms"] if found and found[0]["id"] == sid else []


async def _left(env: Env, sid: str, room: str) -> bool:
    return await env.op("fetchSockets", rooms=[room]) == []


async def test_errors_are_answers_not_crashes(env: Env) -> None:
    # A server-side emit nobody answers in time (no handler for it anywhere).
    with pytest.raises(OpError) as info:
        await env.op(
            "serverSideEmitWithAck", event="nobody_listens", args=[{"tag": 1}], timeout=300
        )
    assert "timeout" in str(info.value).lower() or "time" in str(info.value)


# ------------------------------------------------------------------ the emitter


# The emitter publishes to Redis: not for the workers' own bus.
@pytest.mark.parametrize(
    "cluster", [c for c in CLUSTERS if c != "workers"], indirect=True
)  # fmt: skip
async def test_emitter_reaches_clients_on_both_servers(cluster: Cluster) -> None:
    import trio

    tag = uuid.uuid4().hex[:8]
    room = f"em-{tag}"
    async with Observers.open() as obs:
        await obs.connect("a1", cluster.a.url, {"name": "a1", "test": tag, "rooms": [room]})
        await obs.connect("a2", cluster.a.url, {"name": "a2", "test": tag})
        await obs.connect("b1", cluster.b.url, {"name": "b1", "test": tag, "rooms": [room]})
        await obs.connect("b2", cluster.b.url, {"name": "b2", "test": tag})
        blob = {"$bytes": "AAEC/w=="}
        ops = [
            {"op": "emit", "event": "emitter_all", "args": [tag, {"b": blob}]},
            {"op": "emit", "rooms": [room], "event": "emitter_room", "args": [tag]},
            {"op": "socketsJoin", "rooms": [room], "change": [room + "-z"]},
            {"op": "emit", "rooms": [room + "-z"], "event": "emitter_joined", "args": []},
            {"op": "emit", "event": "dates", "dates": 1704164645678},
            {"op": "emit", "event": "emitter_end", "args": []},
        ]
        result = await trio.run_process(
            [
                "node",
                str(JS_DIR / "redis_emitter.js"),
                "--redis",
                cluster.redis.url,
                "--ops",
                __import__("json").dumps(ops),
            ],
            cwd=JS_DIR,
            capture_stderr=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr.decode()
        for client in ("a1", "a2", "b1", "b2"):
            await obs.wait_event(client, "emitter_end")
            assert obs.received(client, "emitter_all") == [[tag, {"b": b"\x00\x01\x02\xff"}]]
            in_room = client.endswith("1")
            assert len(obs.received(client, "emitter_room")) == in_room
            assert len(obs.received(client, "emitter_joined")) == in_room
            # As a Node server writes them to its clients (Date.toJSON(), null...).
            assert obs.received(client, "dates") == [
                ["2024-01-02T03:04:05.678Z", None, None, [None, 1], {"b": 2}]
            ], client


# ------------------------------------------------------------------ the Python emitter
#
# triosio.redis.Emitter (plain code) and AsyncEmitter (Trio, asyncio) run the
# same operations as the JavaScript emitter above, reaching the clients of both
# servers (the second one a Node server in the triosio+node cluster).


def _apply(emitter: Any, op: dict[str, Any]) -> Any:
    # One operation; returns what the emitter returns (a coroutine for AsyncEmitter).
    target = emitter.of(op["nsp"]) if op.get("nsp") else emitter
    if op.get("rooms"):
        target = target.to(op["rooms"])
    if op.get("except"):
        target = target.except_(op["except"])
    for flag in op.get("flags", []):  # in call order, as redis_emitter.js sets them
        target = target.volatile if flag == "volatile" else target.compress(flag == "compress")
    args = from_wire(op.get("args", []))
    if op["op"] == "emit":
        return target.emit(op["event"], *args)
    if op["op"] == "socketsJoin":
        return target.sockets_join(op["change"])
    if op["op"] == "socketsLeave":
        return target.sockets_leave(op["change"])
    if op["op"] == "disconnectSockets":
        return target.disconnect_sockets(bool(op.get("close")))
    assert op["op"] == "serverSideEmit"
    return target.server_side_emit(op["event"], *args)


def run_python_emitter(mode: str, url: str, ops: list[dict[str, Any]]) -> Any:
    """Run ``ops`` with the Python emitter ``mode`` ("sync", "asyncio"), blocking."""
    from triosio.redis import AsyncEmitter, Emitter

    if mode == "sync":
        with Emitter(url) as emitter:
            for op in ops:
                _apply(emitter, op)
        return None

    async def main() -> None:
        async with AsyncEmitter(url) as emitter:
            for op in ops:
                await _apply(emitter, op)

    import asyncio

    return asyncio.run(main())


async def run_emitter(mode: str, url: str, ops: list[dict[str, Any]]) -> None:
    import trio

    from triosio.redis import AsyncEmitter

    if mode == "trio":
        async with AsyncEmitter(url) as emitter:
            for op in ops:
                await _apply(emitter, op)
    else:
        # Plain code and asyncio run in a thread of their own, as in a worker.
        await trio.to_thread.run_sync(run_python_emitter, mode, url, ops)


@pytest.mark.parametrize("cluster", [c for c in CLUSTERS if c != "workers"], indirect=True)
@pytest.mark.parametrize("mode", ["sync", "asyncio", "trio"])
async def test_python_emitter_reaches_clients_on_both_servers(cluster: Cluster, mode: str) -> None:
    tag = uuid.uuid4().hex[:8]
    room, gone = f"pem-{tag}", f"pem-gone-{tag}"
    async with (
        Observers.open() as obs,
        Admin.open(cluster.a) as admin_a,
        Admin.open(cluster.b) as admin_b,
    ):
        await obs.connect("a1", cluster.a.url, {"name": "a1", "test": tag, "rooms": [room]})
        await obs.connect("a2", cluster.a.url, {"name": "a2", "test": tag})
        await obs.connect("b1", cluster.b.url, {"name": "b1", "test": tag, "rooms": [room]})
        await obs.connect("b2", cluster.b.url, {"name": "b2", "test": tag, "rooms": [gone]})
        blob = {"$bytes": "AAEC/w=="}
        ops = [
            {"op": "emit", "event": "pem_all", "args": [tag, {"b": blob}]},
            {"op": "emit", "rooms": [room], "event": "pem_room", "args": [tag]},
            {"op": "emit", "except": [room], "event": "pem_except", "args": []},
            {"op": "socketsJoin", "rooms": [room], "change": [room + "-z"]},
            {"op": "emit", "rooms": [room + "-z"], "event": "pem_joined", "args": []},
            {"op": "socketsLeave", "rooms": [room], "change": [room + "-z"]},
            {"op": "emit", "rooms": [room + "-z"], "event": "pem_left", "args": []},
            {"op": "serverSideEmit", "event": "sse", "args": [{"tag": tag, "n": 1}]},
            {"op": "emit", "event": "pem_end", "args": []},
            {"op": "disconnectSockets", "rooms": [gone]},
        ]
        await run_emitter(mode, cluster.redis.url, ops)
        for client in ("a1", "a2", "b1", "b2"):
            await obs.wait_event(client, "pem_end")
            assert obs.received(client, "pem_all") == [[tag, {"b": b"\x00\x01\x02\xff"}]]
            in_room = client.endswith("1")
            assert len(obs.received(client, "pem_room")) == in_room
            assert len(obs.received(client, "pem_except")) == (not in_room)
            assert len(obs.received(client, "pem_joined")) == in_room
            assert obs.received(client, "pem_left") == []
        await obs.wait(lambda: "b2" in obs.disconnects)
        assert obs.disconnects == {"b2": "io server disconnect"}
        for admin in (admin_a, admin_b):
            received = await eventually(lambda a=admin: a.op("received", tag=tag))
            assert received == [["sse", [{"tag": tag, "n": 1}], "/"]]


async def _capture(url: str, run: Any) -> list[tuple[bytes, bytes]]:
    # Everything published on Redis while `run()` runs, as (channel, payload).
    import coredis
    import trio

    seen: list[tuple[bytes, bytes]] = []
    client = coredis.Redis.from_url(url, decode_responses=False)
    async with client, client.pubsub(ignore_subscribe_messages=True) as pubsub:
        await pubsub.psubscribe(b"wirecmp*")
        await run()
        await client.publish(b"wirecmp-end", b"")
        with trio.fail_after(10):
            while not seen or seen[-1][0] != b"wirecmp-end":
                message = await pubsub.get_message()
                if message is not None:
                    seen.append((message["channel"], message["data"]))
    return seen[:-1]


@pytest.mark.parametrize("cluster", ["triosio+triosio"], indirect=True)  # for its Redis
async def test_python_emitter_writes_what_the_js_emitter_writes(cluster: Cluster) -> None:
    import json

    import trio

    from triosio.redis import Emitter

    require_node_modules(*NODE_PACKAGES)
    blob = {"$bytes": "AAEC/w=="}
    ops = [
        {"op": "emit", "event": "e", "args": ["x", 1, 2.5, None, True, {"b": blob}, [1, [2]]]},
        {"op": "emit", "rooms": ["r1"], "event": "e", "args": []},
        {"op": "emit", "rooms": ["r1", "r2"], "except": ["r3"], "event": "e", "args": [-7]},
        {"op": "emit", "nsp": "/chat", "rooms": ["r"], "event": "e", "args": ["h\u00e9"]},
        {"op": "emit", "rooms": ["r1"], "flags": ["volatile"], "event": "e", "args": []},
        {"op": "emit", "flags": ["compress", "volatile"], "event": "e", "args": [1]},
        {"op": "emit", "flags": ["volatile", "no-compress"], "event": "e", "args": [2]},
        {"op": "emit", "flags": ["no-compress", "volatile", "compress"], "event": "e"},
        {"op": "socketsJoin", "rooms": ["r1"], "except": ["r2"], "change": ["j1", "j2"]},
        {"op": "socketsLeave", "nsp": "/chat", "change": ["j1"]},
        {"op": "disconnectSockets", "rooms": ["r1"], "close": True},
        {"op": "disconnectSockets"},
        {"op": "serverSideEmit", "event": "sse", "args": [{"a": 1}, "two"]},
    ]
    url = cluster.redis.url

    async def js() -> None:
        result = await trio.run_process(
            ["node", str(JS_DIR / "redis_emitter.js"), "--redis", url, "--key", "wirecmp",
             "--ops", json.dumps(ops)],
            cwd=JS_DIR, capture_stderr=True, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr.decode()

    async def py() -> None:
        def run() -> None:
            with Emitter(url, key_prefix="wirecmp") as emitter:
                for op in ops:
                    _apply(emitter, op)

        await trio.to_thread.run_sync(run)

    from_js = await _capture(url, js)
    from_py = await _capture(url, py)
    assert len(from_js) == len(ops)
    # Byte for byte: the same channels, the same MessagePack and JSON.
    assert from_py == from_js
