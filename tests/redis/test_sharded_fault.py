"""One node of the Redis Cluster killed and restarted under the sharded adapter's traffic.

Two triosio processes with ``ShardedRedisAdapter`` (dynamic mode) on a private
three-node Redis Cluster; both broadcast ticks every 20 ms, to everyone (the
namespace's channel) and to a room (the room's channel). The node that serves
the namespace's channel is killed (SIGKILL) and started again. Then local
delivery never stopped, both servers subscribed again (ticks cross again on
both channels), cluster requests work again, and nothing was logged as an error.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import pytest
import trio
from cluster_peers import (
    Admin,
    Observers,
    Ticks,
    eventually,
    require_binary,
    require_node_modules,
    server_pair,
)
from redis_cluster import RedisCluster

pytestmark = pytest.mark.redis


@pytest.fixture
def redis_cluster() -> Iterator[RedisCluster]:
    nodes = RedisCluster(require_binary("redis-server"), require_binary("redis-cli"))
    try:
        yield nodes
    finally:
        nodes.stop()


async def test_a_cluster_node_restarted_during_traffic(redis_cluster: RedisCluster) -> None:
    require_node_modules("socket.io-client")
    options = ("--adapter", "sharded", "--mode", "dynamic")
    tag = uuid.uuid4().hex[:8]
    room = f"room-{tag}"
    with server_pair(redis_cluster.url, *options) as (a, b):
        async with Observers.open() as obs, Admin.open(a) as admin_a, Admin.open(b) as admin_b:
            for client, server in (("a1", a), ("b1", b)):
                auth = {"name": client, "test": tag, "rooms": [room]}
                await obs.connect(client, server.url, auth)
            traffic = Ticks(obs, room)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(traffic.run, admin_a, "A")
                nursery.start_soon(traffic.run, admin_b, "B")
                await traffic.wait_crossing([("b1", "A"), ("a1", "B")], {"A": 5, "B": 5}, 20)
                owner = redis_cluster.owner_of("socket.io#/#")
                await trio.to_thread.run_sync(redis_cluster.restart, owner)
                await traffic.wait_crossing([("b1", "A"), ("a1", "B")], dict(traffic.seq))
                nursery.cancel_scope.cancel()
            traffic.assert_own_in_order([("a1", "A"), ("b1", "B")])
            assert obs.disconnects == {}

            async def fetched() -> bool:
                found = await admin_a.op("fetchSockets")
                return sum(s["data"].get("test") == tag for s in found) == 2

            await eventually(fetched, timeout=20)
            answers = await admin_b.op(
                "serverSideEmitWithAck", event="sse", args=[{"tag": tag}], timeout=5000
            )
            assert answers == [{"from": "A", "args": [{"tag": tag}]}]
        for server in (a, b):
            assert server.alive()
            log = server.log()
            for bad in ("Traceback", "ERROR", "malformed"):
                assert bad not in log, log


def _ssubscribe(port: int, channel: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"*2\r\n$10\r\nSSUBSCRIBE\r\n$%d\r\n%s\r\n" % (len(channel), channel))
    assert b"ssubscribe" in sock.recv(4096)
    return sock


def _wait_for(sock: socket.socket, expected: bytes) -> None:
    seen = b""
    while expected not in seen:
        chunk = sock.recv(4096)
        assert chunk, seen  # closed before it came
        seen += chunk


def test_sync_sharded_emitter_follows_moved_and_a_node_restart(
    redis_cluster: RedisCluster,
) -> None:
    # ShardedEmitter's own routing: a room on each node's slots (the URL's node
    # answers MOVED for the two others), then one of those nodes restarted.
    from triosio.redis import ShardedEmitter

    rooms: dict[int, str] = {}
    for i in range(300):
        room = f"rt-{i}"
        rooms.setdefault(redis_cluster.owner_of(f"socket.io#/#{room}#"), room)
        if len(rooms) == 3:
            break
    assert sorted(rooms) == [0, 1, 2]
    with ShardedEmitter(redis_cluster.url, subscription_mode="dynamic") as emitter:
        for owner, room in rooms.items():
            sub = _ssubscribe(redis_cluster.nodes[owner].port, f"socket.io#/#{room}#".encode())
            emitter.to(room).emit("hi", f"node-{owner}")
            _wait_for(sub, f"node-{owner}".encode())
            sub.close()
        # The emitter's connection to that node dies with it: the next emit
        # notices, connects again and publishes once.
        redis_cluster.restart(2)
        channel = f"socket.io#/#{rooms[2]}#".encode()
        sub = _ssubscribe(redis_cluster.nodes[2].port, channel)
        emitter.to(rooms[2]).emit("again", "after-restart")
        _wait_for(sub, b"after-restart")
        sub.close()


def test_sync_sharded_emitter_through_a_slot_migration(redis_cluster: RedisCluster) -> None:
    # Why ShardedEmitter has no ASK: during a migration, Redis serves a shard
    # channel's SPUBLISH on the slot's source node (channels are not keys that
    # move), and answers MOVED once the slot has moved, which it follows.
    from triosio.redis import ShardedEmitter

    room = "migrating"
    channel = f"socket.io#/#{room}#"
    source = redis_cluster.owner_of(channel)
    target = (source + 1) % 3
    slot = redis_cluster._cli(redis_cluster.nodes[0], "cluster", "keyslot", channel).strip()
    ids = [redis_cluster._cli(n, "cluster", "myid").strip() for n in redis_cluster.nodes]
    nodes = redis_cluster.nodes
    assert redis_cluster._cli(nodes[target], "cluster", "setslot", slot, "importing", ids[source])
    assert redis_cluster._cli(nodes[source], "cluster", "setslot", slot, "migrating", ids[target])
    with ShardedEmitter(redis_cluster.url, subscription_mode="dynamic") as emitter:
        sub = _ssubscribe(nodes[source].port, channel.encode())
        emitter.to(room).emit("hi", "while-migrating")
        _wait_for(sub, b"while-migrating")
        sub.close()
        for node in nodes:
            redis_cluster._cli(node, "cluster", "setslot", slot, "node", ids[target])
        assert redis_cluster.owner_of(channel) == target
        sub = _ssubscribe(nodes[target].port, channel.encode())
        emitter.to(room).emit("hi", "after-migrating")
        _wait_for(sub, b"after-migrating")
        sub.close()


async def test_the_sharded_writer_follows_a_slot_moved_under_it(
    redis_cluster: RedisCluster,
) -> None:
    # The writer queues each message on the node its map of slots names; when
    # the slot has moved since, that node answers MOVED and the message is
    # asked again (through the cluster client, which follows it): delivered
    # once, in order, on the new node.
    from triosio._cluster.ca_messages import MessageType
    from triosio._redis.sharded import ShardedTransport

    channel = "socket.io#/#"
    transport = ShardedTransport(
        redis_cluster.url,
        channel_prefix="socket.io",
        mode="static",
        requests_timeout=5.0,
        max_queued=100,
        reconnect=(0.05, 0.5),
        connect_timeout=5.0,
        redis_options={},
    )

    async def receive(*_: object) -> None:
        pass

    def message(n: int) -> dict[str, object]:
        return {"uid": "w", "nsp": "/", "type": MessageType.SERVER_SIDE_EMIT, "data": [f"m{n}"]}

    source = redis_cluster.owner_of(channel)
    target = (source + 1) % 3
    nodes = redis_cluster.nodes
    slot = redis_cluster._cli(nodes[0], "cluster", "keyslot", channel).strip()
    async with trio.open_nursery() as nursery:
        await nursery.start(transport.run, receive)
        sub = _ssubscribe(nodes[source].port, channel.encode())
        await transport.publish(message(0))
        await trio.to_thread.run_sync(_wait_for, sub, b"m0")
        sub.close()
        target_id = redis_cluster._cli(nodes[target], "cluster", "myid").strip()
        for node in nodes:  # the slot holds no keys: it moves at once
            redis_cluster._cli(node, "cluster", "setslot", slot, "node", target_id)
        assert redis_cluster.owner_of(channel) == target
        sub = _ssubscribe(nodes[target].port, channel.encode())
        for n in range(1, 4):
            transport.publish_nowait(message(n))
        seen = await trio.to_thread.run_sync(_read_until, sub, b"m3")
        nursery.cancel_scope.cancel()
    sub.close()
    # Each once, in order (m1 went to the old node first, MOVED, asked again).
    assert [seen.count(f"m{n}".encode()) for n in range(1, 4)] == [1, 1, 1], seen
    assert seen.index(b"m1") < seen.index(b"m2") < seen.index(b"m3")
    assert transport.dropped == 0


def _read_until(sock: socket.socket, expected: bytes) -> bytes:
    seen = b""
    while expected not in seen:
        chunk = sock.recv(4096)
        assert chunk, seen
        seen += chunk
    sock.settimeout(0.3)  # and whatever would follow (a duplicate)
    try:
        while chunk := sock.recv(4096):
            seen += chunk
    except TimeoutError:
        pass
    return seen
