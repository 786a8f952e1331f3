"""The cluster checks of ``test_cluster.py``, with the sharded adapter on a Redis Cluster.

A private Redis Cluster of three masters (``redis_cluster.py``). Clusters: two
triosio processes with ``ShardedRedisAdapter``; and a triosio process beside a
Node socket.io 4.8.3 server with ``createShardedAdapter`` of
``@socket.io/redis-adapter`` 8.3.0, in each subscription mode. Every check of
``test_cluster.py`` (but the pub/sub emitter's) runs here too, both directions.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import trio
from cluster_peers import (
    Admin,
    Observers,
    ServerProcess,
    eventually,
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


# ------------------------------------------------------------------ the Python sharded emitter
#
# ShardedEmitter (plain code; its own MOVED-led connections to the nodes) and
# AsyncShardedEmitter (Trio, asyncio; coredis's cluster client) publish what a
# server of the sharded adapter publishes; the JavaScript emitter has no sharded
# mode, so the proof is that the clients of Node and triosio servers obey them.
# A broadcast to one room goes to the room's own channel in the dynamic modes,
# which is not ordered with the namespace's: it is probed until live (as the
# other checks do) and waited for, not fenced.


def _sharded_mode(request: pytest.FixtureRequest) -> str:
    return str(request.node.callspec.params["cluster"].split(" ")[1])


def _run_sharded_emitter(mode: str, url: str, sub_mode: str, ops: list[dict[str, Any]]) -> None:
    # Blocking ("sync" or "asyncio"), for a thread of its own, as in a worker.
    from test_cluster import _apply

    from triosio.redis import AsyncShardedEmitter, ShardedEmitter

    if mode == "sync":
        with ShardedEmitter(url, subscription_mode=sub_mode) as emitter:
            for op in ops:
                _apply(emitter, op)
        return

    async def main() -> None:
        async with AsyncShardedEmitter(url, subscription_mode=sub_mode) as emitter:
            for op in ops:
                await _apply(emitter, op)

    asyncio.run(main())


@pytest.mark.parametrize("mode", ["sync", "asyncio", "trio"])
async def test_python_sharded_emitter_reaches_clients_on_both_servers(
    cluster: Cluster, mode: str, request: pytest.FixtureRequest
) -> None:
    from test_cluster import _apply

    from triosio.redis import AsyncShardedEmitter

    sub_mode = _sharded_mode(request)
    url = cluster.redis.url

    async def run(ops: list[dict[str, Any]]) -> None:
        if mode == "trio":
            async with AsyncShardedEmitter(url, subscription_mode=sub_mode) as emitter:
                for op in ops:
                    await _apply(emitter, op)
        else:
            await trio.to_thread.run_sync(_run_sharded_emitter, mode, url, sub_mode, ops)

    tag = uuid.uuid4().hex[:8]
    room, gone, other = f"shem-{tag}", f"shem-gone-{tag}", f"shem-none-{tag}"
    async with (
        Observers.open() as obs,
        Admin.open(cluster.a) as admin_a,
        Admin.open(cluster.b) as admin_b,
    ):
        await obs.connect("a1", cluster.a.url, {"name": "a1", "test": tag, "rooms": [room]})
        await obs.connect("a2", cluster.a.url, {"name": "a2", "test": tag})
        await obs.connect("b1", cluster.b.url, {"name": "b1", "test": tag, "rooms": [room]})
        await obs.connect("b2", cluster.b.url, {"name": "b2", "test": tag, "rooms": [gone]})

        async def live() -> bool:
            # The room's channel (dynamic modes) is subscribed on both servers.
            if obs.received("a1", "probe") and obs.received("b1", "probe"):
                return True
            await run([{"op": "emit", "rooms": [room], "event": "probe", "args": []}])
            return False

        await eventually(live, interval=0.1)
        blob = {"$bytes": "AAEC/w=="}
        await run(
            [
                {"op": "emit", "event": "sh_all", "args": [tag, {"b": blob}]},
                {"op": "emit", "rooms": [room], "event": "sh_room", "args": [tag, {"b": blob}]},
                {"op": "emit", "except": [room], "event": "sh_except", "args": []},
                {"op": "socketsJoin", "rooms": [room], "change": [room + "-z"]},
                # Two rooms: the namespace's channel, after the join.
                {"op": "emit", "rooms": [room + "-z", other], "event": "sh_joined"},
                {"op": "socketsLeave", "rooms": [room], "change": [room + "-z"]},
                {"op": "emit", "rooms": [room + "-z", other], "event": "sh_left"},
                {"op": "serverSideEmit", "event": "sse", "args": [{"tag": tag, "n": 1}]},
                {"op": "emit", "event": "sh_end", "args": []},
                {"op": "disconnectSockets", "rooms": [gone]},
            ]
        )
        for client in ("a1", "a2", "b1", "b2"):
            await obs.wait_event(client, "sh_end")
            assert obs.received(client, "sh_all") == [[tag, {"b": b"\x00\x01\x02\xff"}]]
            in_room = client.endswith("1")
            if in_room:
                await obs.wait(lambda c=client: bool(obs.received(c, "sh_room")))
            assert obs.received(client, "sh_room") == in_room * [[tag, {"b": b"\x00\x01\x02\xff"}]]
            assert len(obs.received(client, "sh_except")) == (not in_room)
            assert len(obs.received(client, "sh_joined")) == in_room
            assert obs.received(client, "sh_left") == []
        await obs.wait(lambda: "b2" in obs.disconnects)
        assert obs.disconnects == {"b2": "io server disconnect"}
        for admin in (admin_a, admin_b):
            received = await eventually(lambda a=admin: a.op("received", tag=tag))
            assert received == [["sse", [{"tag": tag, "n": 1}], "/"]]
