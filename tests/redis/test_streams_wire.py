"""The Redis Streams adapter's wire format, against what Node's adapter writes.

Sans-I/O checks of ``_redis/stream_entries.py`` and ``_cluster/ca_messages.py``
(the hash values were computed with the adapter's own ``hashCode`` in Node), then
a live one: a Node server with ``@socket.io/redis-streams-adapter`` 0.3.1 writes
broadcasts, joins and disconnects to the stream, and our encoder writes the same
fields, byte for byte (the uid aside). Then garbage in the stream and on the
channels: a triosio server logs it, drops it, and goes on serving.
"""

from __future__ import annotations

import base64
import json
import logging
import random
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest
import trio
from cluster_peers import (
    Admin,
    RedisProcess,
    ServerProcess,
    eventually,
    require_binary,
    require_node_modules,
)
from hypothesis import given
from hypothesis import strategies as st

import triosio
from triosio._cluster import ca_messages as cm
from triosio._cluster.values import WireError
from triosio._redis import stream_entries as se
from triosio.redis import RedisStreamsAdapter

# ------------------------------------------------------------------ sans-I/O


@pytest.mark.parametrize(
    ("nsp", "hashed", "mod3", "mod4"),
    [
        # Node: hashCode(s), hashCode(s) % 3, hashCode(s) % 4 (util.js of 0.3.1).
        ("/", 47, 2, 3),
        ("/chat", 46457863, 1, 3),
        ("/admin", 1438238848, 1, 0),
        ("/a-much-longer-namespace-name", 776179900, 1, 0),
        ("/\u00fcn\u00efc\u00f6d\u00e9", -301514778, 0, -2),
        ("/\U0001f600", 1818066, 0, 2),  # two UTF-16 units
        ("", 0, 0, 0),
    ],
)
def test_hash_code_and_stream_names_agree_with_node(
    nsp: str, hashed: int, mod3: int, mod4: int
) -> None:
    assert se.hash_code(nsp) == hashed
    assert se.stream_for(nsp, "socket.io", 1) == "socket.io"
    assert se.stream_for(nsp, "socket.io", 3) == f"socket.io-{mod3}"
    # JavaScript's remainder keeps the sign: a stream no reader reads, as in Node.
    assert se.stream_for(nsp, "s", 4) == f"s-{mod4}"
    assert se.stream_names("s", 3) == ["s-0", "s-1", "s-2"]


def _fields(flat: list[bytes]) -> dict[bytes, bytes]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


def test_entries_json_or_base64_msgpack() -> None:
    plain = cm.broadcast("u1", "/", ["ev", 1, "\u00e9"], ["r"], ["x"])
    flat = se.encode_entry(plain)
    assert flat[::2] == [b"uid", b"nsp", b"type", b"data"]
    fields = _fields(flat)
    assert fields[b"type"] == b"3"
    assert json.loads(fields[b"data"]) == {
        "packet": {"type": 2, "data": ["ev", 1, "\u00e9"]},
        "opts": {"rooms": ["r"], "except": ["x"], "flags": {}},
    }
    assert se.decode_entry(fields) == plain
    binary = cm.broadcast("u1", "/", ["ev", {"b": b"\x00\xff"}], [], [], volatile=True)
    fields = _fields(se.encode_entry(binary))
    assert not fields[b"data"].startswith(b"{")
    assert msgpack.unpackb(base64.b64decode(fields[b"data"])) == binary["data"]
    assert se.decode_entry(fields) == binary
    # onlyPlaintext: binary as Node's JSON.stringify writes a Buffer.
    fields = _fields(se.encode_entry(binary, only_plaintext=True))
    assert json.loads(fields[b"data"])["packet"]["data"][1] == {
        "b": {"type": "Buffer", "data": [0, 255]}
    }
    # Types that never carry binary are always JSON.
    join = cm.sockets_rooms("u1", "/", True, [], [], [b"\x01".decode()])
    assert _fields(se.encode_entry(join))[b"data"].startswith(b"{")
    assert se.decode_entry({b"uid": b"u", b"type": b"3"}) is None  # no nsp: skipped


@pytest.mark.parametrize(
    "fields",
    [
        {b"nsp": b"/", b"type": b"3"},
        {b"nsp": b"/", b"uid": b"u"},
        {b"nsp": b"/", b"uid": b"u", b"type": b"three"},
        {b"nsp": b"\xff", b"uid": b"u", b"type": b"3"},
        {b"nsp": b"/", b"uid": b"u", b"type": b"3", b"data": b"{bad"},
        {b"nsp": b"/", b"uid": b"u", b"type": b"3", b"data": b"!!notbase64"},
        {b"nsp": b"/", b"uid": b"u", b"type": b"3", b"data": base64.b64encode(b"\xc1")},
    ],
)
def test_malformed_entries_raise_wire_error(fields: dict[bytes, bytes]) -> None:
    with pytest.raises(WireError):
        cm.parse(se.decode_entry(fields))


def test_which_messages_go_by_pub_sub() -> None:
    assert not se.is_ephemeral(cm.broadcast("u", "/", ["e"], [], []))
    assert se.is_ephemeral(cm.broadcast("u", "/", ["e"], [], [], request_id="r", timeout_ms=5))
    assert se.is_ephemeral(cm.server_side_emit("u", "/", ["e"]))
    assert se.is_ephemeral(cm.fetch_sockets("u", "/", "r", [], []))
    assert not se.is_ephemeral(cm.sockets_rooms("u", "/", False, [], [], ["a"]))
    assert not se.is_ephemeral(cm.disconnect_sockets("u", "/", [], [], True))


def test_parse_every_type() -> None:
    m = cm.parse(cm.broadcast("u", "/", ["e", 1], ["a"], ["b"], True))
    assert m is not None and (m.type, m.data, m.rooms, m.exclude, m.volatile) == (
        cm.MessageType.BROADCAST, ["e", 1], {"a"}, {"b"}, True,
    )  # fmt: skip
    m = cm.parse(cm.broadcast("u", "/", ["e"], [], [], request_id="r", timeout_ms=1500))
    assert m is not None and (m.request_id, m.timeout) == ("r", 1.5)
    m = cm.parse(cm.sockets_rooms("u", "/", True, ["a"], [], ["x", "y"]))
    assert m is not None and (m.type, m.change) == (cm.MessageType.SOCKETS_JOIN, ("x", "y"))
    m = cm.parse(cm.disconnect_sockets("u", "/", [], [], True))
    assert m is not None and m.close
    m = cm.parse(cm.fetch_sockets("u", "/", "r", ["a"], []))
    assert m is not None and (m.request_id, m.rooms) == ("r", {"a"})
    m = cm.parse(cm.server_side_emit("u", "/", ["e", 2], "r"))
    assert m is not None and (m.data, m.request_id) == (["e", 2], "r")
    m = cm.parse(cm.fetch_sockets_response("u", "/", "r", [{"id": "s"}]))
    assert m is not None and m.sockets == [{"id": "s"}]
    m = cm.parse(cm.broadcast_client_count("u", "/", "r", 3))
    assert m is not None and m.client_count == 3
    m = cm.parse(cm.broadcast_ack("u", "/", "r", {"v": 1}))
    assert m is not None and m.value == {"v": 1}
    m = cm.parse({"type": 2, "uid": "u", "nsp": "/"})
    assert m is not None and m.type is cm.MessageType.HEARTBEAT
    assert cm.parse({"type": 99, "uid": "u", "nsp": "/"}) is None
    # The message's namespace counts, not the packet's (Node's have none).
    other = cm.broadcast("u", "/chat", ["e"], [], [])
    other["data"]["packet"]["nsp"] = "/other"
    m = cm.parse(other)
    assert m is not None and (m.nsp, m.data) == ("/chat", ["e"])
    assert len(cm.new_id()) == 16 and int(cm.new_id(), 16) >= 0


@pytest.mark.parametrize(
    "message",
    [
        None,
        [],
        {"type": "3", "uid": "u", "nsp": "/"},
        {"type": 3, "nsp": "/"},
        {"type": 3, "uid": "u", "nsp": "/"},
        {"type": 3, "uid": "u", "nsp": "/", "data": {"packet": {"data": ["e"]}}},
        {"type": 3, "uid": "u", "nsp": "/", "data": {"packet": {"data": []}, "opts": {}}},
        {"type": 3, "uid": "u", "nsp": "/", "data": {"packet": {"data": ["connect"]}, "opts": {}}},
        {"type": 4, "uid": "u", "nsp": "/", "data": {"rooms": ["a"]}},
        {"type": 4, "uid": "u", "nsp": "/", "data": {"opts": {"rooms": 5}, "rooms": []}},
        {"type": 7, "uid": "u", "nsp": "/", "data": {"opts": {}}},
        {"type": 8, "uid": "u", "nsp": "/", "data": {"requestId": "r"}},
        {"type": 9, "uid": "u", "nsp": "/", "data": {"packet": "e"}},
        {"type": 11, "uid": "u", "nsp": "/", "data": {"requestId": "r", "clientCount": "3"}},
        {"type": 12, "uid": "u", "nsp": "/", "data": {"requestId": 5}},
    ],
)
def test_malformed_messages_raise_wire_error(message: Any) -> None:
    with pytest.raises(WireError):
        cm.parse(message)


_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() | st.binary(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(st.dictionaries(st.sampled_from([b"uid", b"nsp", b"type", b"data"]), st.binary()))
def test_fuzz_entries(fields: dict[bytes, bytes]) -> None:
    try:
        cm.parse(se.decode_entry(fields))
    except WireError:
        pass


@given(st.sampled_from(list(cm.MessageType)), st.dictionaries(st.text(), _values, max_size=5))
def test_fuzz_messages(kind: cm.MessageType, data: dict[str, Any]) -> None:
    try:
        cm.parse({"type": kind.value, "uid": "u", "nsp": "/", "data": data})
    except WireError:
        pass


# ------------------------------------------------------------------ live, with Node


@pytest.fixture
def redis() -> Iterator[RedisProcess]:
    server = RedisProcess(require_binary("redis-server"))
    try:
        yield server
    finally:
        server.stop()


async def _entries(
    url: str, stream: bytes = b"socket.io"
) -> list[tuple[bytes, dict[bytes, bytes]]]:
    import coredis

    async with coredis.Redis.from_url(url, decode_responses=False) as client:
        found = await client.xrange(stream)
    return [(e.identifier, dict(e.field_values)) for e in found]


@pytest.mark.redis
async def test_node_entries_match_ours_byte_for_byte(redis: RedisProcess) -> None:
    require_node_modules("socket.io", "@socket.io/redis-streams-adapter", "redis")
    node = ServerProcess("node", "N", redis.url, "--adapter", "streams")
    try:
        async with Admin.open(node) as admin:
            await admin.op("emit", event="plain", args=[1, "\u00e9", {"a": None}])
            await admin.op("emit", rooms=["r1"], event="bin", args=[{"b": b"\x00\xff"}])
            await admin.op("emit", rooms=["r1", "r2"], event="v", args=[], volatile=True)
            await admin.op("emit", event="x", args=[], **{"except": ["r3"]})
            await admin.op("socketsJoin", rooms=["r1"], change=["r4"])
            await admin.op("socketsLeave", change=["r4"])
            await admin.op("disconnectSockets", rooms=["r5"], close=True)
            await admin.op("emit", nsp="/chat", event="chat", args=[2])
            entries = await eventually(lambda: _n_entries(redis.url, 8))
    finally:
        node.stop()
    uids = {fields[b"uid"] for _, fields in entries}
    assert len(uids) == 2  # one per namespace adapter
    ours = []
    for _, fields in entries:
        message = se.decode_entry(fields)
        assert message is not None
        parsed = cm.parse(message)
        assert parsed is not None
        ours.append(se.encode_entry(_reencode(parsed)))
    # Our encoder, given what Node meant, writes what Node wrote.
    assert [_fields(flat) for flat in ours] == [fields for _, fields in entries]
    assert [int(f[b"type"]) for _, f in entries] == [3, 3, 3, 3, 4, 5, 6, 3]
    bin_data = se.decode_entry(entries[1][1])
    assert bin_data is not None
    assert bin_data["data"]["packet"]["data"] == ["bin", {"b": b"\x00\xff"}]
    assert not entries[1][1][b"data"].startswith(b"{")  # base64 MessagePack


async def _n_entries(url: str, n: int) -> list[tuple[bytes, dict[bytes, bytes]]] | None:
    found = await _entries(url)
    return found if len(found) >= n else None


def _reencode(m: cm.Message) -> dict[str, Any]:
    k = cm.MessageType
    if m.type is k.BROADCAST:
        return cm.broadcast(m.uid, m.nsp, m.data, sorted(m.rooms), sorted(m.exclude), m.volatile)
    if m.type in (k.SOCKETS_JOIN, k.SOCKETS_LEAVE):
        join = m.type is k.SOCKETS_JOIN
        return cm.sockets_rooms(m.uid, m.nsp, join, sorted(m.rooms), sorted(m.exclude), m.change)
    assert m.type is k.DISCONNECT_SOCKETS
    return cm.disconnect_sockets(m.uid, m.nsp, sorted(m.rooms), sorted(m.exclude), m.close)


@pytest.mark.redis
async def test_garbage_in_the_stream_and_on_the_channels_never_crashes(
    redis: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    import coredis

    caplog.set_level(logging.WARNING, logger="triosio")
    a = triosio.Server(adapter=RedisStreamsAdapter(redis.url, requests_timeout=2))
    b = triosio.Server(adapter=RedisStreamsAdapter(redis.url, requests_timeout=2))
    rng = random.Random(20261205)
    async with trio.open_nursery() as nursery:
        la = await nursery.start(triosio.serve, a, "127.0.0.1", 0)
        await nursery.start(triosio.serve, b, "127.0.0.1", 0)
        url_a = f"http://127.0.0.1:{la[0].socket.getsockname()[1]}"
        assert isinstance(a.adapter, RedisStreamsAdapter)
        uid_a = a.adapter.uids["/"]
        async with coredis.Redis.from_url(redis.url, decode_responses=False) as r:
            for i in range(300):
                data = rng.choice(
                    [
                        rng.randbytes(rng.randint(0, 30)),
                        b"{" + rng.randbytes(10),
                        base64.b64encode(msgpack.packb([rng.random(), {"x": None}])),
                        json.dumps({"packet": {"type": 2, "data": ["e"]}, "opts": i}).encode(),
                        json.dumps({"opts": {"rooms": [i]}, "rooms": "x", "close": 1}).encode(),
                    ]
                )
                kind = str(rng.choice([3, 4, 5, 6, 7, 9, 42, -1])).encode()
                await r.xadd(
                    b"socket.io", {b"uid": b"zz", b"nsp": b"/", b"type": kind, b"data": data}
                )
                channel = rng.choice([b"socket.io#/#", f"socket.io#/#{uid_a}#".encode()])
                await r.publish(channel, rng.choice([data, msgpack.packb({"type": int(kind)})]))
        async with triosio.connect(url_a, transports=("websocket",)) as client:
            got: list[Any] = []
            client.on("news", lambda *args: got.append(args))

            async def delivered() -> bool:
                await b.emit("news", "still here")
                await trio.sleep(0.05)
                return bool(got)

            await eventually(delivered, timeout=20)
            assert got[0] == ("still here",)
            assert len(await b.fetch_sockets()) == 1
        nursery.cancel_scope.cancel()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
    assert any("malformed" in r.getMessage() for r in caplog.records)
