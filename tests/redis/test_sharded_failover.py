"""A master of the Redis Cluster killed for good; its replica takes over.

Three masters and three replicas on loopback (``cluster-node-timeout`` 1 s);
a triosio server (``ShardedRedisAdapter``) and a Node server
(``createShardedAdapter``), both in dynamic mode, broadcast ticks every 20 ms,
to everyone (the namespace's channel) and to a room (the room's channel). The
master serving the namespace's channel is killed (SIGKILL) and not started
again: once its replica is promoted, both adapters find the new master (their
subscriptions and their publishes), and ticks cross again both ways on both
channels. Sharded pub/sub is at most once: ticks published during the failover
may be lost, none arrives twice or out of order.
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
    require_binary,
    require_node_modules,
)
from redis_cluster import RedisCluster

pytestmark = pytest.mark.redis

NODE_PACKAGES = ("socket.io", "socket.io-client", "@socket.io/redis-adapter", "redis")


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


def _increasing(values: list[int]) -> bool:
    return all(a < b for a, b in zip(values, values[1:], strict=False))


@pytest.mark.parametrize("kind_b", ["triosio", "node"])
async def test_a_master_fails_over_to_its_replica(
    replicated_cluster: RedisCluster, kind_b: str
) -> None:
    require_node_modules(*NODE_PACKAGES)
    cluster = replicated_cluster
    victim = cluster.owner_of("socket.io#/#")
    # The servers' seed node survives (a deployment lists several seeds).
    seed = cluster.url_of(next(i for i in cluster.masters() if i != victim))
    options = ("--adapter", "sharded", "--mode", "dynamic")
    a = ServerProcess("triosio", "A", seed, *options)
    try:
        b = ServerProcess(kind_b, "B", seed, *options)
    except BaseException:
        a.stop()
        raise
    tag = uuid.uuid4().hex[:8]
    room = f"room-{tag}"
    try:
        async with Observers.open() as obs, Admin.open(a) as admin_a, Admin.open(b) as admin_b:
            clients = {"a1": a, "a2": a, "b1": b, "b2": b}
            for client, server in clients.items():
                await obs.connect(client, server.url, {"name": client, "rooms": [room]})
            seq = {"A": 0, "B": 0}

            async def ticks(admin: Admin, name: str) -> None:
                while True:
                    await admin.op("emit", event="tick", args=[name, seq[name]])
                    await admin.op("emit", rooms=[room], event="rtick", args=[name, seq[name]])
                    seq[name] += 1
                    await trio.sleep(0.02)

            def ticks_from(client: str, name: str, event: str) -> list[int]:
                return [args[1] for args in obs.received(client, event) if args[0] == name]

            def all_after(mark: dict[str, int]) -> bool:
                return all(
                    any(n > mark[name] for n in ticks_from(client, name, event))
                    for client in clients
                    for name in ("A", "B")
                    for event in ("tick", "rtick")
                )

            async with trio.open_nursery() as traffic:
                traffic.start_soon(ticks, admin_a, "A")
                traffic.start_soon(ticks, admin_b, "B")
                await obs.wait(lambda: all_after({"A": 3, "B": 3}))
                promoted = await trio.to_thread.run_sync(cluster.fail_over, victim)
                assert cluster.owner_of("socket.io#/#") == promoted
                # Both adapters notice the failover when their connections
                # to the dead master break, then find the new one.
                failed_over_at = dict(seq)
                try:
                    await obs.wait(lambda: all_after(failed_over_at), timeout=20)
                except trio.TooSlowError:
                    missing = [
                        (client, name, event)
                        for client in clients
                        for name in ("A", "B")
                        for event in ("tick", "rtick")
                        if not any(n > failed_over_at[name] for n in ticks_from(client, name, event))
                    ]
                    raise AssertionError(
                        f"no tick after the failover: {missing}\nA:\n{a.log()}\nB:\n{b.log()}"
                    ) from None
                traffic.cancel_scope.cancel()

            for client in clients:
                for name in ("A", "B"):
                    for event in ("tick", "rtick"):
                        got = ticks_from(client, name, event)
                        # At most once: gaps during the failover, never twice.
                        assert _increasing(got), (client, name, event, got)
                        if clients[client].name == name:
                            # A server's own clients are served without Redis.
                            assert got == list(range(len(got))), (client, name, event)
            assert obs.disconnects == {}
        for server in (a, b):
            assert server.alive()
            log = server.log()
            for bad in ("Traceback", "ERROR", "malformed"):
                assert bad not in log, log
    finally:
        b.stop()
        a.stop()
