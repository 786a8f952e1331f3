"""A master of the Redis Cluster killed for good; its replica takes over.

Three masters and three replicas on loopback (``cluster-node-timeout`` 1 s);
a triosio server A (``ShardedRedisAdapter``) and a server B, triosio or Node
(``createShardedAdapter``), both in dynamic mode, broadcast ticks every 20 ms,
to everyone (the namespace's channel) and to a room (the room's channel). The
master serving the namespace's channel is killed (SIGKILL) and not started
again: once its replica is promoted, the triosio adapters find the new master
(their subscriptions and their publishes) by themselves, and ticks cross again
both ways on both channels, without any client disconnected. Sharded pub/sub
is at most once: ticks published during the failover may be lost, none arrives
twice or out of order.

node-redis 4 (under ``createShardedAdapter``) reads the cluster's slots again
only on ``MOVED``/``ASK``: after a master's death it retries the dead address
for ever (redis/node-redis#2141, #2806). So in the mixed case the Node server is
restarted after the failover, as its operators must; the triosio server, never
restarted, then exchanges ticks with it on both channels.
"""

from __future__ import annotations

import itertools
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
    return all(a < b for a, b in itertools.pairwise(values))


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
    servers = {"A": ServerProcess("triosio", "A", seed, *options)}
    tag = uuid.uuid4().hex[:8]
    room = f"room-{tag}"
    seq = {"A": 0, "B": 0}
    try:
        servers["B"] = ServerProcess(kind_b, "B", seed, *options)
        async with Observers.open() as obs:
            clients: dict[str, str] = {}  # client -> its server's name

            async def join(name: str, *names: str) -> None:
                for client in names:
                    await obs.connect(client, servers[name].url, {"name": client, "rooms": [room]})
                    clients[client] = name

            async def ticks(admin: Admin, name: str) -> None:
                while True:
                    await admin.op("emit", event="tick", args=[name, seq[name]])
                    await admin.op("emit", rooms=[room], event="rtick", args=[name, seq[name]])
                    seq[name] += 1
                    await trio.sleep(0.02)

            def ticks_from(client: str, name: str, event: str) -> list[int]:
                return [args[1] for args in obs.received(client, event) if args[0] == name]

            def missing_after(mark: dict[str, int]) -> list[tuple[str, str, str]]:
                return [
                    (client, name, event)
                    for client in clients
                    for name in ("A", "B")
                    for event in ("tick", "rtick")
                    if not any(n > mark[name] for n in ticks_from(client, name, event))
                ]

            async def all_cross_after(mark: dict[str, int], timeout: float) -> None:
                try:
                    await obs.wait(lambda: not missing_after(mark), timeout=timeout)
                except trio.TooSlowError:
                    logs = "\n".join(f"{n}:\n{s.log()}" for n, s in servers.items())
                    missing = missing_after(mark)
                    raise AssertionError(f"no tick after {mark}: {missing}\n{logs}") from None

            await join("A", "a1", "a2")
            await join("B", "b1", "b2")
            async with (
                Admin.open(servers["A"]) as admin_a,
                Admin.open(servers["B"]) as admin_b,
                trio.open_nursery() as traffic,
            ):
                traffic.start_soon(ticks, admin_a, "A")
                traffic.start_soon(ticks, admin_b, "B")
                await all_cross_after({"A": 3, "B": 3}, timeout=15)
                promoted = await trio.to_thread.run_sync(cluster.fail_over, victim)
                assert cluster.owner_of("socket.io#/#") == promoted
                if kind_b == "triosio":
                    # The adapters notice the failover when their connections
                    # to the dead master break, then find the new one.
                    await all_cross_after(dict(seq), timeout=20)
                traffic.cancel_scope.cancel()
            if kind_b == "node":
                # See the module's docstring: node-redis 4 stays on the dead master.
                servers["B"].stop()
                for client in ("b1", "b2"):
                    del clients[client]
                servers["B"] = ServerProcess(kind_b, "B", seed, *options)
                await join("B", "b3", "b4")
                async with (
                    Admin.open(servers["A"]) as admin_a,
                    Admin.open(servers["B"]) as admin_b,
                    trio.open_nursery() as traffic,
                ):
                    traffic.start_soon(ticks, admin_a, "A")
                    traffic.start_soon(ticks, admin_b, "B")
                    await all_cross_after(dict(seq), timeout=20)
                    traffic.cancel_scope.cancel()

            for client, home in clients.items():
                for name in ("A", "B"):
                    for event in ("tick", "rtick"):
                        got = ticks_from(client, name, event)
                        # At most once: gaps during the failover, never twice.
                        assert _increasing(got), (client, name, event, got)
                        if name == home:
                            # A server's own clients are served without Redis.
                            assert got == list(range(got[0], got[0] + len(got))), (client, event)
            assert not set(obs.disconnects) & set(clients), obs.disconnects
        for server in servers.values():
            assert server.alive()
            log = server.log()
            for bad in ("Traceback", "ERROR", "malformed"):
                assert bad not in log, log
    finally:
        for server in servers.values():
            server.stop()
