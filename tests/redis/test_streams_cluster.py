"""The cluster checks of ``test_cluster.py``, with the Redis Streams adapter.

Clusters: two triosio processes with ``RedisStreamsAdapter``; and a triosio
process beside a Node socket.io 4.8.3 server with
``@socket.io/redis-streams-adapter`` 0.3.1. Every check of ``test_cluster.py``
(but the pub/sub emitter's) runs here too, in both directions.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cluster_peers import RedisProcess, ServerProcess, require_binary, require_node_modules
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

NODE_PACKAGES = ("socket.io", "socket.io-client", "@socket.io/redis-streams-adapter", "redis")


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisProcess]:
    server = RedisProcess(require_binary("redis-server"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(
    scope="module", params=["triosio+triosio", "triosio+node", "triosio+node, 3 streams"]
)
def cluster(request: pytest.FixtureRequest, redis: RedisProcess) -> Iterator[Cluster]:
    require_node_modules(*NODE_PACKAGES)
    kind_b = request.param.split("+")[1].split(",")[0]
    # With several streams, "/" and "/chat" go to streams both sides must agree on.
    count = "3" if "3 streams" in request.param else "1"
    options = ("--adapter", "streams", "--stream-count", count)
    a = ServerProcess("triosio", "A", redis.url, *options)
    try:
        b = ServerProcess(kind_b, "B", redis.url, *options)
    except BaseException:
        a.stop()
        raise
    try:
        yield Cluster(a, b, redis, adapter="streams")
    finally:
        b.stop()
        a.stop()
    for server in (a, b):
        log = server.log()
        for bad in ("Traceback", "ERROR", "malformed", "Error:"):
            assert bad not in log, log
    # The broadcasts went through the stream(s), as Node's adapter writes them:
    # "/" is on socket.io-2 of 3 (hashCode("/") = 47), "/chat" on socket.io-1.
    streams = [b"socket.io"] if count == "1" else [b"socket.io-2", b"socket.io-1"]
    for stream in streams:
        reply = redis.command(b"XLEN", stream)
        assert reply.startswith(b":") and int(reply[1:].strip()) > 0, (stream, reply)
    if count == "3":
        assert redis.command(b"XLEN", b"socket.io-0") == b":0\r\n"
    redis.command(b"FLUSHALL")  # the next cluster starts afresh


async def test_broadcast_in_another_namespace(cluster: Cluster) -> None:
    # Node's broadcast packets carry no nsp: the message's counts. Both ways,
    # one namespace apart from the other (and /chat on its own stream when
    # streams are several: here one).
    import uuid

    from cluster_peers import Admin, Observers

    tag = uuid.uuid4().hex[:8]
    async with Observers.open() as obs:
        await obs.connect("a", cluster.a.url + "/chat", {"name": "a", "test": tag})
        await obs.connect("b", cluster.b.url + "/chat", {"name": "b", "test": tag})
        await obs.connect("a0", cluster.a.url, {"name": "a0", "test": tag})
        for server in (cluster.a, cluster.b):
            async with Admin.open(server) as admin:
                await admin.op("emit", nsp="/chat", event="chat", args=[server.name, tag])
        for client in ("a", "b"):
            await obs.wait(lambda c=client: len(obs.received(c, "chat")) == 2)
            assert sorted(obs.received(client, "chat")) == [["A", tag], ["B", tag]]
        async with Admin.open(cluster.a) as admin:
            await admin.op("emit", event="fence", args=[])
        await obs.wait(lambda: bool(obs.received("a0", "fence")))
        assert obs.received("a0", "chat") == []
