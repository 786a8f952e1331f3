"""A Redis Cluster failover under the sharded adapters' traffic.

Three masters with one replica each (six ``redis-server`` processes on
loopback, ``cluster-node-timeout`` 1 s). Two triosio servers with the sharded
adapter (dynamic mode). Both broadcast ticks every 20 ms to everyone (the
namespace's channel) and to a room (the room's own channel). The master that
serves the namespace's channel is killed for good (SIGKILL); its replica is
promoted. Then ticks cross again both ways, on both channels; each server's
own ticks reached its own client in order, none lost (local delivery never
depends on Redis); no client was disconnected; and nothing was logged as an
error. What was published while no master served the slot is lost: sharded
pub/sub is at most once (docs/scaling.md).

Not with Node's ``createShardedAdapter`` beside: tried, its cluster client
(node-redis 4.7) kept reconnecting to the dead master and never read the new
slot map, so nothing reached or left the Node server through Redis after the
failover (docs/scaling.md says so); the triosio side is what is checked here.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import trio
from cluster_peers import (
    Admin,
    Observers,
    ServerProcess,
    Ticks,
    require_binary,
    require_node_modules,
)
from redis_cluster import RedisCluster

pytestmark = pytest.mark.redis


@pytest.fixture
def replicated_cluster() -> Iterator[RedisCluster]:
    nodes = RedisCluster(
        require_binary("redis-server"),
        require_binary("redis-cli"),
        replicas=1,
        node_timeout_ms=1000,
    )
    try:
        yield nodes
    finally:
        nodes.stop()


async def test_a_master_fails_over_to_its_replica(replicated_cluster: RedisCluster) -> None:
    require_node_modules("socket.io-client")
    options = ("--adapter", "sharded", "--mode", "dynamic")
    a = ServerProcess("triosio", "A", replicated_cluster.url, *options)
    try:
        b = ServerProcess("triosio", "B", replicated_cluster.url, *options)
    except BaseException:
        a.stop()
        raise
    tag = uuid.uuid4().hex[:8]
    room = f"room-{tag}"
    try:
        async with Observers.open() as obs, Admin.open(a) as admin_a, Admin.open(b) as admin_b:
            for client, server in (("a1", a), ("b1", b)):
                await obs.connect(
                    client, server.url, {"name": client, "test": tag, "rooms": [room]}
                )
            traffic = Ticks(obs, room)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(traffic.run, admin_a, "A")
                nursery.start_soon(traffic.run, admin_b, "B")
                await traffic.wait_crossing([("b1", "A"), ("a1", "B")], {"A": 5, "B": 5}, 20)
                killed, promoted = await trio.to_thread.run_sync(
                    replicated_cluster.fail_over, "socket.io#/#"
                )
                assert promoted != killed
                try:
                    await traffic.wait_crossing([("b1", "A"), ("a1", "B")], dict(traffic.seq))
                except AssertionError as exc:
                    raise AssertionError(
                        f"{exc}; logs:\n{a.log()[-3000:]}\n{b.log()[-3000:]}"
                    ) from None
                nursery.cancel_scope.cancel()
            traffic.assert_own_in_order([("a1", "A"), ("b1", "B")])
            assert obs.disconnects == {}
        for server in (a, b):
            assert server.alive()
            log = server.log()
            for bad in ("Traceback", "ERROR", "malformed"):
                assert bad not in log, log
    finally:
        b.stop()
        a.stop()
