"""triosio.redis.Emitter / AsyncEmitter alone: errors, and a Redis restart.

Their messages and reach are tested in test_cluster.py (against the JavaScript
emitter, byte for byte, and through Node and triosio servers).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from cluster_peers import RedisProcess, free_port, require_binary

import triosio
from triosio.redis import AsyncEmitter, Emitter

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
