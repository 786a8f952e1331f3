"""triosio.redis's emitters alone: errors, a Redis restart, the streams wire.

Their messages and reach are tested in test_cluster.py (against the JavaScript
emitter, byte for byte, and through Node and triosio servers), and for the
streams emitters in test_streams_cluster.py (against a Node server's entries).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from cluster_peers import RedisProcess, free_port, require_binary

import triosio
from triosio._cluster.values import unpack
from triosio._redis.emitter import ClusterSyncLink, StreamsWire, Target
from triosio._redis.stream_entries import decode_entry
from triosio.redis import AsyncEmitter, AsyncStreamsEmitter, Emitter, ShardedEmitter, StreamsEmitter

pytestmark = pytest.mark.redis


@pytest.fixture
def redis() -> Iterator[RedisProcess]:
    server = RedisProcess(require_binary("redis-server"))
    try:
        yield server
    finally:
        server.stop()


def _subscriber(redis: RedisProcess, channel: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", redis.port), timeout=5)
    sock.sendall(b"*2\r\n$9\r\nSUBSCRIBE\r\n$%d\r\n%s\r\n" % (len(channel), channel))
    assert sock.recv(4096).startswith(b"*3\r\n$9\r\nsubscribe")
    return sock


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="scheme"):
        Emitter("http://127.0.0.1:1/0")
    emitter = Emitter(f"redis://127.0.0.1:{free_port()}/0", timeout=2)
    with pytest.raises(triosio.LocalProtocolError, match="reserved"):
        emitter.emit("connect")
    with pytest.raises(TypeError, match="room names"):
        emitter.to([1])  # type: ignore[list-item]
    with pytest.raises(ConnectionRefusedError):
        emitter.emit("news", 1)  # nobody listens on that port


def test_sync_emitter_survives_a_redis_restart(redis: RedisProcess) -> None:
    emitter = Emitter(redis.url)
    emitter.emit("before", 1)  # opens the connection
    redis.kill()
    redis.start()
    sub = _subscriber(redis, b"socket.io#/#")
    # The old connection is dead: the emitter notices and publishes on a new one.
    emitter.emit("after", 2)
    assert b"after" in sub.recv(4096)
    sub.close()
    emitter.close()


async def test_async_emitter_needs_async_with(redis: RedisProcess) -> None:
    emitter = AsyncEmitter(redis.url)
    with pytest.raises(RuntimeError, match="async with"):
        await emitter.emit("news", 1)
    async with emitter:
        await emitter.of("/x").to("r").emit("news", 1)
    assert "AsyncEmitter" in repr(emitter.to("r")) and "'r'" in repr(emitter.to("r"))


def test_streams_emitter_bad_input_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="stream_count"):
        StreamsEmitter(stream_count=0)
    with pytest.raises(ValueError, match="max_len"):
        AsyncStreamsEmitter(max_len=0)
    with pytest.raises(ValueError, match="scheme"):
        StreamsEmitter("http://127.0.0.1:1/0")
    with pytest.raises(triosio.LocalProtocolError, match="reserved"):
        StreamsEmitter(f"redis://127.0.0.1:{free_port()}/0").emit("disconnect")


def test_streams_wire_entries_and_channels() -> None:
    # Sans-I/O: which stream, which fields, and the server-side emit by pub/sub.
    wire = StreamsWire("s", 3, "p", 50)
    target = Target().of("/chat").to(["r1", "r2"]).except_("r3")
    command = wire.emit(target, "ev", (1, b"\x00"))
    assert command[:7] == (b"XADD", b"s-1", b"MAXLEN", b"~", b"50", b"*", b"uid")
    fields = dict(zip(command[6::2], command[7::2], strict=True))
    assert decode_entry(fields) == {
        "uid": "emitter",
        "nsp": "/chat",
        "type": 3,
        "data": {
            "packet": {"type": 2, "data": ["ev", 1, b"\x00"]},
            "opts": {"rooms": ["r1", "r2"], "except": ["r3"], "flags": {}},
        },
    }
    leave = wire.rooms_change(Target().to("a"), False, ("b",))
    assert leave[1] == b"s-2"  # "/"
    assert decode_entry(dict(zip(leave[6::2], leave[7::2], strict=True))) == {
        "uid": "emitter",
        "nsp": "/",
        "type": 5,
        "data": {"opts": {"rooms": ["a"], "except": [], "flags": {}}, "rooms": ["b"]},
    }
    sse = wire.server_side_emit(Target(), "hello", ({"a": 1},))
    assert sse[:2] == (b"PUBLISH", b"p#/#")
    assert unpack(sse[2]) == {
        "type": 9,
        "data": {"packet": ["hello", {"a": 1}]},
        "uid": "emitter",
        "nsp": "/",
    }


def test_sync_streams_emitter_survives_a_redis_restart(redis: RedisProcess) -> None:
    emitter = StreamsEmitter(redis.url, max_len=100)
    emitter.to("r").compress(False).emit("before", 1)  # opens the connection; XADD answered
    redis.kill()
    redis.start()
    emitter.volatile.emit("after", 2)
    reply = redis.command(b"XRANGE", b"socket.io", b"-", b"+")
    # Written once, on the new connection, after the old one was found dead.
    assert reply.count(b"after") == 1
    assert b'"flags":{"volatile":true}' in reply
    emitter.close()


async def test_async_streams_emitter(redis: RedisProcess) -> None:
    emitter = AsyncStreamsEmitter(redis.url, stream_name="st")
    with pytest.raises(RuntimeError, match="async with"):
        await emitter.emit("news", 1)
    async with emitter:
        await emitter.of("/x").to("r").compress(True).emit("news", 1)
        await emitter.sockets_join("j")
    reply = redis.command(b"XRANGE", b"st", b"-", b"+")
    assert b'"flags":{"compress":true}' in reply and b'"rooms":["j"]' in reply
    assert "AsyncStreamsEmitter" in repr(emitter) and "key='st'" in repr(emitter)


def test_cluster_link_reads_moved_addresses() -> None:
    # "host:port", ":port" (the host asked: an unknown endpoint), IPv6 bracketed.
    link = ClusterSyncLink("redis://u:p@10.0.0.1:7000", 1)
    assert link._address("10.0.0.2:7001") == "10.0.0.2:7001"
    assert link._address(":7002") == "10.0.0.1:7002"
    assert link._address("::1:7003") == "[::1]:7003"
    assert ClusterSyncLink("redis://[::1]", 1)._address(":7004") == "[::1]:7004"
    with pytest.raises(ValueError, match="subscription_mode"):
        ShardedEmitter(subscription_mode="sharded")
