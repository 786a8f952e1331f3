"""Malformed messages on every adapter channel never crash triosio.

A triosio server runs in this process with the Redis adapter; another
publisher floods each of its channels (broadcast, room, request, response,
specific response, in two namespaces) with garbage: random bytes, random
MessagePack and JSON of every shape, mutations of valid messages, and the
messages that make a Node 8.3.0 server exit (redis-wire.md §3.3). Afterwards
the server must still serve its clients and the cluster: a broadcast from a
second server reaches its client, and fetch_sockets sees both servers. The
sans-I/O decoders are fuzzed with hypothesis in ``test_wire.py``.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest
import trio
from cluster_peers import RedisProcess, eventually, require_binary

import triosio
from triosio._cluster import messages as wire
from triosio._cluster.channels import Channels
from triosio.redis import RedisAdapter

pytestmark = pytest.mark.redis


@pytest.fixture
def redis() -> Iterator[RedisProcess]:
    server = RedisProcess(require_binary("redis-server"))
    try:
        yield server
    finally:
        server.stop()


def _server(url: str) -> triosio.Server:
    sio = triosio.Server(adapter=RedisAdapter(url, requests_timeout=2))

    @sio.on("connection")
    async def connected(socket: triosio.Socket, auth: Any) -> None:
        await socket.join(["fuzzroom", "42"])

    sio.of("/chat")
    return sio


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kinds = ["none", "bool", "int", "float", "str", "bytes"]
    if depth < 4:
        kinds += ["list", "map"] * 2
    kind = rng.choice(kinds)
    if kind == "none":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "int":
        return rng.choice(
            [0, 1, 2, 5, 7, 9, -1, 2**31, 2**63 - 1, -(2**63), rng.randint(-999, 999)]
        )
    if kind == "float":
        return rng.choice([0.5, float("nan"), float("inf"), -1e300, 2.0])
    if kind == "str":
        return rng.choice(["", "uid", "type", "rooms", "except", "opts", "/", "e", "\u00e9\u2713"])
    if kind == "bytes":
        return rng.randbytes(rng.randint(0, 8))
    if kind == "list":
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    keys = ["uid", "requestId", "type", "opts", "rooms", "except", "flags", "data", "packet",
            "nsp", "close", "sid", "room", "sockets", "clientCount"]  # fmt: skip
    return {rng.choice(keys): _random_value(rng, depth + 1) for _ in range(rng.randint(0, 5))}


def _valid_messages(uid: str) -> list[bytes]:
    return [
        wire.encode_broadcast(uid, "/", ["e", {"b": b"\x00"}], ["fuzzroom"], [], True),
        wire.encode_broadcast_request(uid, "rid123", "/", ["e", 1], [], [], 500),
        wire.encode_fetch(uid, "rid124", ["fuzzroom"], []),
        wire.encode_remote_rooms(uid, True, ["nobody"], [], ["x"]),
        wire.encode_server_side_emit(uid, ["sse", 1], "rid125"),
        wire.encode_broadcast_ack("rid126", {"a": [1, 2]}),
        wire.encode_client_count("rid127", 3),
    ]


def corpus(seed: int, count: int) -> Iterator[bytes]:
    """Malformed (and odd-but-valid) messages, reproducibly."""
    rng = random.Random(seed)
    # The shapes that make a Node 8.3.0 server exit (§3.3).
    yield msgpack.packb(["zzzzzz", {"type": 2, "data": ["e"], "nsp": "/"}])
    yield b"garbage"
    yield b'{"uid":"zzzzzz","requestId":"abc","type":5}'
    yield b"{bad"
    yield b'{"type":42}'
    yield b""
    yield b"\x91" * 100_000 + b"\xc0"  # deeper than any unpacker's stack
    yield b"{" + b"[" * 50_000 + b"]" * 50_000 + b"}"
    yield b'{"type":7,"requestId":"r","packet":{"type":2,"data":["e"]},"opts":{"rooms":1}}'
    valid = _valid_messages("fuzzer")
    for _ in range(count):
        roll = rng.random()
        if roll < 0.25:
            yield rng.randbytes(rng.randint(1, 64))
        elif roll < 0.5:
            yield msgpack.packb(_random_value(rng))
        elif roll < 0.65:
            text = json.dumps(_random_value(rng), default=lambda b: list(b))
            yield ("{" + text[1:] if text.startswith("{") else text).encode()
        elif roll < 0.55:
            shape = [rng.choice(["fuzzer", None, 5]), _random_value(rng), _random_value(rng)]
            yield msgpack.packb(shape)
        elif roll < 0.8:
            # Nearly right: every field there, each one possibly of the wrong kind.
            def maybe(good: Any) -> Any:
                return good if rng.random() < 0.7 else _random_value(rng)

            opts = {"rooms": maybe(["fuzzroom", 42]), "except": maybe([]), "flags": maybe({})}
            packet = {
                "type": maybe(2),
                "data": maybe(["ev", _random_value(rng)]),
                "nsp": maybe("/"),
            }
            if rng.random() < 0.4:
                yield msgpack.packb([maybe("fuzzer"), maybe(packet), maybe(opts)])
            else:
                request = {
                    "uid": maybe("fuzzer"),
                    "requestId": maybe("r" + str(rng.randrange(5))),
                    "type": rng.randrange(11),
                    "opts": maybe(opts),
                    "rooms": maybe(["x", 1.5]),
                    "packet": maybe(packet),
                    "data": maybe(["sse", _random_value(rng)]),
                    "close": maybe(False),
                    "sid": maybe("nobody"),
                    "clientCount": maybe(1),
                    "sockets": maybe([{"id": "s", "rooms": [1], "handshake": {}}]),
                }
                for key in rng.sample(sorted(request), rng.randrange(4)):
                    del request[key]
                if rng.random() < 0.5:
                    yield msgpack.packb(request)
                else:
                    yield json.dumps(request, default=list).encode()
        else:
            base = bytearray(rng.choice(valid))
            for _ in range(rng.randint(1, 4)):
                op = rng.random()
                i = rng.randrange(len(base))
                if op < 0.4:
                    base[i] = rng.randrange(256)
                elif op < 0.7:
                    del base[i:]
                    if not base:
                        base = bytearray(b"\x00")
                else:
                    base.insert(i, rng.randrange(256))
            yield bytes(base)


async def publish_all(port: int, messages: list[tuple[bytes, bytes]]) -> None:
    """PUBLISH each (channel, payload), pipelined on one connection, from Trio."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        for start in range(0, len(messages), 200):
            chunk = messages[start : start + 200]
            body = b"".join(
                b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n"
                % (len(channel), channel, len(payload), payload)
                for channel, payload in chunk
            )
            await stream.send_all(body)
            replies = b""
            while replies.count(b"\r\n") < len(chunk):
                data = await stream.receive_some(65536)
                assert data, "redis closed the connection"
                replies += data
            assert replies.startswith(b":"), replies[:100]


async def test_malformed_messages_on_every_channel_never_crash(
    redis: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="triosio")
    a, b = _server(redis.url), _server(redis.url)
    async with trio.open_nursery() as nursery:
        la = await nursery.start(triosio.serve, a, "127.0.0.1", 0)
        lb = await nursery.start(triosio.serve, b, "127.0.0.1", 0)
        url_a = f"http://127.0.0.1:{la[0].socket.getsockname()[1]}"
        url_b = f"http://127.0.0.1:{lb[0].socket.getsockname()[1]}"
        assert isinstance(a.adapter, RedisAdapter)
        uid_a = a.adapter.uids["/"]
        channels: list[bytes] = []
        for nsp in ("/", "/chat"):
            ch = Channels.make("socket.io", nsp, uid_a)
            channels += [
                ch.broadcast,
                ch.broadcast + b"fuzzroom#",
                ch.broadcast + b"42#",
                ch.request,
                ch.response,
                ch.specific_response,
            ]
        messages = [
            (channel, payload)
            for payload in corpus(seed=20261125, count=400)
            for channel in channels
        ]
        assert len(messages) > 4000
        # Clients in the rooms, so that room channels are decoded too. Some of
        # the garbage is a well-formed REMOTE_DISCONNECT: they may be kicked.
        async with (
            triosio.connect(url_a, transports=("websocket",), reconnection=False),
            triosio.connect(url_b, transports=("websocket",), reconnection=False),
        ):
            await publish_all(redis.port, messages)

        # Still alive and still a cluster member: a broadcast from the other
        # server reaches a new client, and both servers answer fetch_sockets.
        async with (
            triosio.connect(url_a, transports=("websocket",)) as client_a,
            triosio.connect(url_b, transports=("websocket",)) as client_b,
        ):
            got: list[Any] = []
            client_a.on("news", lambda *args: got.append(args))

            async def delivered() -> bool:
                await b.emit("news", "still here")
                await trio.sleep(0.05)
                return bool(got)

            await eventually(delivered, timeout=20)
            assert got[0] == ("still here",)
            sockets = await a.fetch_sockets()
            ids = {s.id: type(s).__name__ for s in sockets}
            assert ids[client_a.id] == "Socket" and ids[client_b.id] == "RemoteSocket"
        nursery.cancel_scope.cancel()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
    dropped = [r for r in caplog.records if "malformed" in r.getMessage()]
    assert dropped  # reported, at most once a second
    assert len(dropped) < 60
