"""Sessions for connection state recovery in Redis, as the streams adapter keeps them.

``triosio._redis.sessions`` against ``@socket.io/redis-streams-adapter`` 0.3.1's
own ``persistSession`` / ``restoreSession`` (``tests/js/redis_streams_session.js``):
a session Node stores is restored here, one stored here is restored by Node,
with the same missed packets (broadcasts of Node and of a triosio server, in
the stream after the client's offset), and each session only once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import coredis
import pytest
import trio
from cluster_peers import (
    JS_DIR,
    RedisProcess,
    eventually,
    from_wire,
    require_binary,
    require_node_modules,
)

import triosio
from triosio._redis import sessions
from triosio.redis import RedisStreamsAdapter

pytestmark = pytest.mark.redis


@pytest.fixture
def redis() -> Iterator[RedisProcess]:
    server = RedisProcess(require_binary("redis-server"))
    try:
        yield server
    finally:
        server.stop()


async def node(redis: RedisProcess, *ops: dict[str, Any]) -> list[Any]:
    result = await trio.run_process(
        ["node", str(JS_DIR / "redis_streams_session.js"), "--redis", redis.url,
         "--ops", json.dumps(ops)],
        cwd=JS_DIR,
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    return [from_wire(json.loads(line)) for line in result.stdout.decode().splitlines()]


def test_sans_io_parts() -> None:
    session = {"sid": "s", "pid": "p", "rooms": ["s", "r", 5], "data": {"b": b"\x00"}}
    assert sessions.decode_session(sessions.encode_session(session)) == {
        "sid": "s", "pid": "p", "rooms": ["s", "r", "5"], "data": {"b": b"\x00"},
    }  # fmt: skip
    assert sessions.selects(["s", "r"], [], [])
    assert sessions.selects(["s", "r"], ["r", "q"], [])
    assert not sessions.selects(["s", "r"], ["q"], [])
    assert not sessions.selects(["s", "r"], [], ["s"])
    assert sessions.session_key("abc") == b"sio:session:abc"
    for bad in (b"!!", b"", b"kQ==", b"gaNzaWSg"):  # not base64 / nil / [] / {"sid": ""}
        with pytest.raises(sessions.WireError):
            sessions.decode_session(bad)


async def test_sessions_cross_between_node_and_triosio(redis: RedisProcess) -> None:
    require_node_modules("socket.io", "@socket.io/redis-streams-adapter", "redis")
    async with coredis.Redis.from_url(redis.url, decode_responses=False) as client:
        await node(redis, {"op": "emit", "event": "before", "args": []})
        (first,) = await client.xrange(b"socket.io")
        offset = first.identifier.decode()

        # Broadcasts after the offset: Node's, then a triosio server's.
        await node(
            redis,
            {"op": "emit", "rooms": ["r1"], "event": "n1", "args": [1, {"$bytes": "AP8="}]},
            {"op": "emit", "rooms": ["r2"], "event": "n2", "args": []},
            {"op": "emit", "except": ["r1"], "event": "n3", "args": []},
            {"op": "emit", "rooms": ["r1"], "event": "n4", "args": [], "volatile": True},
            {"op": "emit", "nsp": "/chat", "event": "c1", "args": []},
        )
        adapter = RedisStreamsAdapter(redis.url)
        sio = triosio.Server(adapter=adapter)
        async with trio.open_nursery() as nursery:
            await nursery.start(sio.run)
            await sio.to("r1").emit("t1", {"x": b"\x01"})
            await sio.emit("t2")
            await sio.to("r9").emit("t3")
            await eventually(lambda: _has(client, 9))
            ids = [e.identifier.decode() for e in await client.xrange(b"socket.io")]
            # Through the adapter (what the server's recovery hook will call).
            kept = {"sid": "S0", "pid": "P0", "rooms": ["S0"], "data": None}
            await adapter._persist_session(kept, 60_000)
            back = await adapter._restore_session("/", "P0", ids[6])
            assert back == {**kept, "missedPackets": [["t2", ids[7]]]}
            nursery.cancel_scope.cancel()

        data = {"name": "n", "b": {"$bytes": "AQI="}}
        session = {"sid": "S1", "pid": "P1", "rooms": ["S1", "r1"], "data": data}
        # Node stores, triosio restores.
        await node(redis, {"op": "persist", "session": session})
        restored = await sessions.restore_session(client, "socket.io", "/", "P1", offset)
        assert restored is not None
        expected_missed = [
            ["n1", 1, b"\x00\xff", ids[1]],
            ["t1", {"x": b"\x01"}, ids[6]],
            ["t2", ids[7]],
        ]
        assert restored == {
            "sid": "S1",
            "pid": "P1",
            "rooms": ["S1", "r1"],
            "data": {"name": "n", "b": b"\x01\x02"},
            "missedPackets": expected_missed,
        }
        # Once: taken out of Redis.
        assert await sessions.restore_session(client, "socket.io", "/", "P1", offset) is None
        (gone,) = await node(redis, {"op": "restore", "pid": "P1", "offset": offset})
        assert gone == {"rejected": "session or offset not found"}

        # triosio stores, Node restores: the same session, the same packets
        # (and the volatile one, which Node replays and triosio does not).
        await sessions.persist_session(client, {**session, "data": from_wire(data)}, 60_000)
        assert 0 < await client.pttl(b"sio:session:P1") <= 60_000
        (by_node,) = await node(redis, {"op": "restore", "pid": "P1", "offset": offset})
        assert by_node["missedPackets"] == [
            expected_missed[0],
            ["n4", ids[4]],
            *expected_missed[1:],
        ]
        assert {k: by_node[k] for k in ("sid", "pid", "rooms", "data")} == {
            "sid": "S1", "pid": "P1", "rooms": ["S1", "r1"], "data": from_wire(data),
        }  # fmt: skip

        # No recovery: a bad offset, or one no longer in the stream.
        await sessions.persist_session(client, {**session, "pid": "P2"}, 60_000)
        assert await sessions.restore_session(client, "socket.io", "/", "P2", "nope") is None
        assert await sessions.restore_session(client, "socket.io", "/", "P2", "1-0") is None
        # Another namespace sees only its own broadcasts.
        await sessions.persist_session(client, {**session, "pid": "P3"}, 60_000)
        chat = await sessions.restore_session(client, "socket.io", "/chat", "P3", offset)
        assert chat is not None and chat["missedPackets"] == [["c1", ids[5]]]


async def _has(client: Any, n: int) -> bool:
    return len(await client.xrange(b"socket.io")) >= n
