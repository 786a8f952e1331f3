"""The cluster checks of ``test_cluster.py``, with the sharded adapter on a Redis Cluster.

A private Redis Cluster of three masters (``redis_cluster.py``). Clusters: two
triosio processes with ``ShardedRedisAdapter``; and a triosio process beside a
Node socket.io 4.8.3 server with ``createShardedAdapter`` of
``@socket.io/redis-adapter`` 8.3.0, in each subscription mode. Every check of
``test_cluster.py`` (but the pub/sub emitter's) runs here too, both directions.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from cluster_peers import (
    Admin,
    Observers,
    ServerProcess,
    require_binary,
    require_node_modules,
)
from redis_cluster import RedisCluster
from test_cluster import (  # the same checks, collected again here with this module's cluster
    Cluster,
    env,
    test_broadcast_to_all,
    test_broadcast_to_rooms_joined_on_different_servers,
    test_broadcast_with_acks_across_servers,
    test_disconnect_sockets,
    test_errors_are_answers_not_crashes,
    test_fetch_sockets_counts_and_views,
    test_nested_binary_payloads,
    test_remote_socket_views,
    test_server_side_emit,
    test_sockets_join_then_room_broadcast,
)

pytestmark = pytest.mark.redis

__all__ = [
    "env",
    "test_broadcast_to_all",
    "test_broadcast_to_rooms_joined_on_different_servers",
    "test_broadcast_with_acks_across_servers",
    "test_disconnect_sockets",
    "test_errors_are_answers_not_crashes",
    "test_fetch_sockets_counts_and_views",
    "test_nested_binary_payloads",
    "test_remote_socket_views",
    "test_server_side_emit",
    "test_sockets_join_then_room_broadcast",
]

NODE_PACKAGES = ("socket.io", "socket.io-client", "@socket.io/redis-adapter", "redis")


@pytest.fixture(scope="module")
def redis_cluster() -> Iterator[RedisCluster]:
    nodes = RedisCluster(require_binary("redis-server"), require_binary("redis-cli"))
    try:
        yield nodes
    finally:
        nodes.stop()


@pytest.fixture(
    scope="module",
    params=[
        "triosio+triosio dynamic",
        "triosio+node static",
        "triosio+node dynamic",
        "triosio+node dynamic-private",
    ],
)
def cluster(request: pytest.FixtureRequest, redis_cluster: RedisCluster) -> Iterator[Cluster]:
    require_node_modules(*NODE_PACKAGES)
    pair, mode = request.param.split(" ")
    kind_b = pair.split("+")[1]
    options = ("--adapter", "sharded", "--mode", mode)
    a = ServerProcess("triosio", "A", redis_cluster.url, *options)
    try:
        b = ServerProcess(kind_b, "B", redis_cluster.url, *options)
    except BaseException:
        a.stop()
        raise
    try:
        adapter = "sharded-static" if mode == "static" else "sharded-dynamic"
        yield Cluster(a, b, redis_cluster, adapter=adapter)  # type: ignore[arg-type]
    finally:
        b.stop()
        a.stop()
    for server in (a, b):
        log = server.log()
        for bad in ("Traceback", "ERROR", "malformed", "Error:"):
            assert bad not in log, log


async def test_room_broadcasts_use_the_mode_s_channels(cluster: Cluster) -> None:
    # A broadcast to one public room, one private room (a socket's id) and
    # two rooms, from each side: in every mode each reaches exactly its clients.
    tag = uuid.uuid4().hex[:8]
    room = f"r-{tag}"
    async with Observers.open() as obs:
        ids = {}
        ids["a1"] = await obs.connect(
            "a1", cluster.a.url, {"name": "a1", "test": tag, "rooms": [room]}
        )
        ids["b1"] = await obs.connect(
            "b1", cluster.b.url, {"name": "b1", "test": tag, "rooms": [room]}
        )
        ids["b2"] = await obs.connect("b2", cluster.b.url, {"name": "b2", "test": tag})
        for server in (cluster.a, cluster.b):
            async with Admin.open(server) as admin:
                await admin.op("emit", rooms=[room], event="public", args=[server.name])
                await admin.op("emit", rooms=[ids["b2"]], event="private", args=[server.name])
                await admin.op("emit", rooms=[room, ids["b2"]], event="both", args=[server.name])
        for client in ("a1", "b1", "b2"):
            await obs.wait(lambda c=client: len(obs.received(c, "both")) == 2)
        assert sorted(obs.received("a1", "public")) == [["A"], ["B"]]
        assert sorted(obs.received("b1", "public")) == [["A"], ["B"]]
        assert obs.received("b2", "public") == []
        assert sorted(obs.received("b2", "private")) == [["A"], ["B"]]
        assert obs.received("a1", "private") == obs.received("b1", "private") == []
