"""The cluster checks of ``test_cluster.py``, with the Redis Streams adapter.

Clusters: two triosio processes with ``RedisStreamsAdapter``; and a triosio
process beside a Node socket.io 4.8.3 server with
``@socket.io/redis-streams-adapter`` 0.3.1. Every check of ``test_cluster.py``
(but the pub/sub emitter's) runs here too, in both directions.
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
    RedisProcess,
    ServerProcess,
    eventually,
    from_wire,
    require_binary,
    require_node_modules,
)
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


# ------------------------------------------------------------------ the Python streams emitter
#
# StreamsEmitter (plain code) and AsyncStreamsEmitter (Trio, asyncio) write what
# a server of the streams adapter writes; @socket.io/redis-streams-adapter 0.3
# has no emitter of its own, so the proof is twofold: the Node server's clients
# obey them, and their entries are those a Node server writes for the same call.


def _stream_count(request: pytest.FixtureRequest) -> int:
    return 3 if "3 streams" in request.node.callspec.params["cluster"] else 1


def _run_streams_emitter(mode: str, url: str, count: int, ops: list[dict[str, Any]]) -> None:
    # Blocking ("sync" or "asyncio"), for a thread of its own, as in a worker.
    from test_cluster import _apply

    from triosio.redis import AsyncStreamsEmitter, StreamsEmitter

    if mode == "sync":
        with StreamsEmitter(url, stream_count=count) as emitter:
            for op in ops:
                _apply(emitter, op)
        return

    async def main() -> None:
        async with AsyncStreamsEmitter(url, stream_count=count) as emitter:
            for op in ops:
                await _apply(emitter, op)

    asyncio.run(main())


@pytest.mark.parametrize("mode", ["sync", "asyncio", "trio"])
async def test_python_streams_emitter_reaches_clients_on_both_servers(
    cluster: Cluster, mode: str, request: pytest.FixtureRequest
) -> None:
    from test_cluster import _apply

    from triosio.redis import AsyncStreamsEmitter

    count = _stream_count(request)
    tag = uuid.uuid4().hex[:8]
    room, gone = f"sem-{tag}", f"sem-gone-{tag}"
    async with (
        Observers.open() as obs,
        Admin.open(cluster.a) as admin_a,
        Admin.open(cluster.b) as admin_b,
    ):
        await obs.connect("a1", cluster.a.url, {"name": "a1", "test": tag, "rooms": [room]})
        await obs.connect("a2", cluster.a.url, {"name": "a2", "test": tag})
        await obs.connect("b1", cluster.b.url, {"name": "b1", "test": tag, "rooms": [room]})
        await obs.connect("b2", cluster.b.url, {"name": "b2", "test": tag, "rooms": [gone]})
        await obs.connect("c", cluster.b.url + "/chat", {"name": "c", "test": tag})
        blob = {"$bytes": "AAEC/w=="}
        ops = [
            {"op": "emit", "event": "sem_all", "args": [tag, {"b": blob}]},
            {"op": "emit", "rooms": [room], "event": "sem_room", "args": [tag]},
            {"op": "emit", "except": [room], "event": "sem_except", "args": []},
            {"op": "emit", "nsp": "/chat", "event": "sem_chat", "args": [tag]},
            {"op": "socketsJoin", "rooms": [room], "change": [room + "-z"]},
            {"op": "emit", "rooms": [room + "-z"], "event": "sem_joined", "args": []},
            {"op": "socketsLeave", "rooms": [room], "change": [room + "-z"]},
            {"op": "emit", "rooms": [room + "-z"], "event": "sem_left", "args": []},
            {"op": "serverSideEmit", "event": "sse", "args": [{"tag": tag, "n": 1}]},
            {"op": "emit", "event": "sem_end", "args": []},
            {"op": "disconnectSockets", "rooms": [gone]},
        ]
        if mode == "trio":
            async with AsyncStreamsEmitter(cluster.redis.url, stream_count=count) as emitter:
                for op in ops:
                    await _apply(emitter, op)
        else:
            await trio.to_thread.run_sync(_run_streams_emitter, mode, cluster.redis.url, count, ops)
        for client in ("a1", "a2", "b1", "b2"):
            await obs.wait_event(client, "sem_end")
            assert obs.received(client, "sem_all") == [[tag, {"b": b"\x00\x01\x02\xff"}]]
            in_room = client.endswith("1")
            assert len(obs.received(client, "sem_room")) == in_room
            assert len(obs.received(client, "sem_except")) == (not in_room)
            assert len(obs.received(client, "sem_joined")) == in_room
            assert obs.received(client, "sem_left") == []
            assert obs.received(client, "sem_chat") == []
        await obs.wait(lambda: bool(obs.received("c", "sem_chat")))
        assert obs.received("c", "sem_chat") == [[tag]]
        await obs.wait(lambda: "b2" in obs.disconnects)
        assert obs.disconnects == {"b2": "io server disconnect"}
        for admin in (admin_a, admin_b):
            received = await eventually(lambda a=admin: a.op("received", tag=tag))
            assert received == [["sse", [{"tag": tag, "n": 1}], "/"]]


async def _last_entry(url: str, stream: bytes) -> tuple[bytes, dict[bytes, bytes]]:
    import coredis

    client = coredis.Redis.from_url(url, decode_responses=False)
    async with client:
        entries = await client.xrevrange(stream, count=1)
    if not entries:
        return b"", {}
    return entries[0].identifier, dict(entries[0].field_values)


@pytest.mark.parametrize("cluster", ["triosio+node", "triosio+node, 3 streams"], indirect=True)
async def test_python_streams_emitter_writes_what_a_node_server_writes(
    cluster: Cluster, request: pytest.FixtureRequest
) -> None:
    # The entry a Node server (B) adds for a call, beside the emitter's for the
    # same call: every field the same, byte for byte, but the sender's uid.
    from test_cluster import _apply

    from triosio.redis import StreamsEmitter

    count = _stream_count(request)
    stream = b"socket.io" if count == 1 else b"socket.io-2"  # "/" (hashCode 47 % 3)
    chat = b"socket.io" if count == 1 else b"socket.io-1"  # "/chat"
    blob = {"$bytes": "AAEC/w=="}
    ops = [
        {"op": "emit", "event": "e", "args": ["x", 1, 2.5, None, True, {"a": [1, [2]]}]},
        {"op": "emit", "rooms": ["r1", "r2"], "except": ["r3"], "event": "e", "args": [-7]},
        {"op": "emit", "rooms": ["r1"], "volatile": True, "event": "e", "args": []},
        {"op": "emit", "event": "e", "args": ["bin", {"b": blob}]},
        {"op": "emit", "nsp": "/chat", "rooms": ["r"], "event": "e", "args": ["h\u00e9"]},
        {"op": "socketsJoin", "rooms": ["r1"], "except": ["r2"], "change": ["j1", "j2"]},
        {"op": "socketsLeave", "nsp": "/chat", "change": ["j1"]},
        {"op": "disconnectSockets", "rooms": ["r1"], "close": True},
        {"op": "disconnectSockets"},
    ]
    url = cluster.redis.url
    async with Admin.open(cluster.b) as admin:
        with StreamsEmitter(url, stream_count=count) as emitter:
            for op in ops:
                where = chat if op.get("nsp") == "/chat" else stream
                fields = {k: v for k, v in op.items() if k not in ("op", "volatile")}
                fields["args"] = from_wire(op.get("args", []))  # bytes reach Node as a Buffer
                before, _ = await _last_entry(url, where)
                await admin.op(op["op"], volatile=op.get("volatile", False), **fields)

                async def added(where: bytes = where, before: bytes = before) -> Any:
                    # Node's XADD is on its way when the op returns: wait for it.
                    entry_id, entry = await _last_entry(url, where)
                    return entry if entry_id != before else None

                from_node = await eventually(added)
                target = emitter.volatile if op.get("volatile") else emitter
                await trio.to_thread.run_sync(_apply, target, op)
                _, from_py = await _last_entry(url, where)
                assert from_py.pop(b"uid") == b"emitter"
                assert from_node.pop(b"uid") != b"emitter"
                assert list(from_py.items()) == list(from_node.items()), op
