"""The Redis adapter's wire format, against the recorded reference (redis-wire.md).

Sans-I/O: exact bytes of what we send, what we accept from Node peers and the
emitter, and hypothesis fuzzing of every decoder ("only ever WireError").
"""

from __future__ import annotations

import datetime
import json
import math
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from triosio._cluster import channels, messages, values
from triosio._cluster.channels import Channels
from triosio._cluster.messages import RequestType
from triosio._cluster.values import WireError
from triosio._proto.sio import JSONEncoder, SioPacket, SioType

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def j(payload: bytes) -> Any:
    assert payload[:1] == b"{"
    return json.loads(payload)


# ------------------------------------------------------------------ §1, §2


def test_channels_of_a_namespace() -> None:
    ch = Channels.make("socket.io", "/", "P78bnA")
    assert ch.broadcast == b"socket.io#/#"
    assert ch.pattern == b"socket.io#/#*"
    assert ch.request == b"socket.io-request#/#"
    assert ch.response == b"socket.io-response#/#"
    assert ch.specific_response == b"socket.io-response#/#P78bnA#"
    assert ch.for_rooms([]) == b"socket.io#/#"
    assert ch.for_rooms(["room-8f2d2891"]) == b"socket.io#/#room-8f2d2891#"
    assert ch.for_rooms(["r1", "r2"]) == b"socket.io#/#"
    assert ch.room_of(b"socket.io#/#") == ""
    assert ch.room_of(b"socket.io#/#a#b#") == "a#b"  # nothing is escaped
    assert ch.room_of(b"socket.io#/chat#") is None
    assert ch.response_for("ZEY7yf", specific=False) == b"socket.io-response#/#"
    assert ch.response_for("ZEY7yf", specific=True) == b"socket.io-response#/#ZEY7yf#"


def test_channels_with_a_key_and_glob_characters() -> None:
    ch = Channels.make("k", "/a*[b]?", "uid123")
    assert ch.broadcast == b"k#/a*[b]?#"
    assert ch.request == b"k-request#/a*[b]?#"
    # The pattern matches this namespace's channels only.
    assert ch.pattern == rb"k#/a\*\[b\]\?#*"


def test_uids_are_six_characters_of_uid2s_alphabet() -> None:
    uids = {channels.new_uid() for _ in range(200)}
    assert len(uids) == 200
    for uid in uids:
        assert len(uid) == 6
        assert set(uid) <= set(channels.UID_ALPHABET)


# ------------------------------------------------------------------ §4 broadcasts


def test_broadcast_bytes_match_the_recorded_listing() -> None:
    # socket.broadcast.emit("news", "hi"), 79 bytes (§4 byte listing).
    payload = messages.encode_broadcast(
        "-FALsq", "/", ["news", "hi"], [], ["y4S1sSwr8a-wIiMvAAAA"], volatile=False
    )
    expected = (
        b"\x93\xa6-FALsq"
        b"\x83\xa4type\x02\xa4data\x92\xa4news\xa2hi\xa3nsp\xa1/"
        b"\x83\xa5rooms\x90\xa6except\x91\xb4y4S1sSwr8a-wIiMvAAAA\xa5flags\x80"
    )
    assert len(payload) == 79
    assert payload == expected


def test_broadcast_binary_is_inline_and_flags_carry_volatile() -> None:
    data = ["bin", {"small": bytes(7), "nested": {"list": [b"\xab" * 300, "t", b""]}}]
    payload = messages.encode_broadcast("uidXYZ", "/", data, ["r"], [], volatile=True)
    assert b"\xc4\x07" + bytes(7) in payload
    assert b"\xc5\x01\x2c" + b"\xab" * 300 in payload
    assert b"\xc4\x00" in payload
    uid, packet, opts = msgpack.unpackb(payload)
    assert uid == "uidXYZ"
    assert packet == {"type": 2, "data": data, "nsp": "/"}
    assert list(packet) == ["type", "data", "nsp"]
    assert opts == {"rooms": ["r"], "except": [], "flags": {"volatile": True}}


def test_decode_a_node_broadcast_and_an_emitter_broadcast() -> None:
    node = msgpack.packb(
        [
            "uKwYjZ",
            {"type": 2, "data": ["all_msg", 1], "nsp": "/"},
            {"rooms": [], "except": [], "flags": {}},
        ]
    )
    got = messages.decode_broadcast(node, "/")
    assert got is not None
    assert (got.uid, got.data, got.rooms, got.exclude, got.volatile) == (
        "uKwYjZ",
        ["all_msg", 1],
        frozenset(),
        frozenset(),
        False,
    )
    # The emitter: uid "emitter", opts keys in another order, numbers as rooms.
    emitter = msgpack.packb(
        [
            "emitter",
            {"type": 2, "data": ["e", b"\x00"], "nsp": "/"},
            {"rooms": [42, "r"], "flags": {"volatile": True}, "except": [1.5]},
        ]
    )
    got = messages.decode_broadcast(emitter, "/")
    assert got is not None
    assert got.uid == channels.EMITTER_UID
    assert got.rooms == {"42", "r"} and got.exclude == {"1.5"} and got.volatile


def test_decode_broadcast_namespace_rules() -> None:
    no_nsp = msgpack.packb(["u", {"type": 2, "data": ["e"]}, {"rooms": [], "except": []}])
    assert messages.decode_broadcast(no_nsp, "/") is not None  # missing nsp means "/"
    assert messages.decode_broadcast(no_nsp, "/chat") is None
    other = msgpack.packb(["u", {"type": 2, "data": ["e"], "nsp": "/x"}, {}])
    assert messages.decode_broadcast(other, "/") is None
    binary_type = msgpack.packb(["u", {"type": 5, "data": ["e", b"1"], "nsp": "/"}, {}])
    assert messages.decode_broadcast(binary_type, "/") is not None


@pytest.mark.parametrize(
    "payload",
    [
        # §3.3: these make a Node 8.3.0 server exit.
        msgpack.packb(["u", {"type": 2, "data": ["e"], "nsp": "/"}]),
        b"garbage",
        # More that must be dropped.
        msgpack.packb("a string"),
        msgpack.packb(["u", "packet", {}]),
        msgpack.packb(["u", {"type": 2, "data": [], "nsp": "/"}, {}]),
        msgpack.packb(["u", {"type": 2, "data": [1, 2], "nsp": "/"}, {}]),
        msgpack.packb(["u", {"type": 2, "data": ["connect"], "nsp": "/"}, {}]),
        msgpack.packb(["u", {"type": 0, "data": ["e"], "nsp": "/"}, {}]),
        msgpack.packb(["u", {"type": 2, "data": ["e"], "nsp": "/"}, {"rooms": "abc"}]),
        msgpack.packb(["u", {"type": 2, "data": ["e"], "nsp": "/"}, {"rooms": [{}]}]),
        msgpack.packb(["u", {"type": 2, "data": ["e"], "nsp": "/"}, []]),
        msgpack.packb([1]) + b"\x00",  # trailing bytes
        b"\x81\x92\x01\x02\x03",  # an array as a map key
        b"\xdd\xff\xff\xff\xff",  # an array claiming 4 G items
        b"\x91" * 5000 + b"\xc0",  # deeper than the unpacker's stack
        b"",
    ],
)
def test_malformed_broadcasts_raise_wire_error(payload: bytes) -> None:
    with pytest.raises(WireError):
        messages.decode_broadcast(payload, "/")


# ------------------------------------------------------------------ §5 requests we send


def test_requests_are_json_as_recorded() -> None:
    assert j(messages.encode_fetch("uKwYjZ", "z97uZo", [], [])) == {
        "uid": "uKwYjZ",
        "requestId": "z97uZo",
        "type": 5,
        "opts": {"rooms": [], "except": []},
    }
    assert messages.encode_fetch("uKwYjZ", "sXIvEE", ["room-8f2d2891"], []) == (
        b'{"uid":"uKwYjZ","requestId":"sXIvEE","type":5,'
        b'"opts":{"rooms":["room-8f2d2891"],"except":[]}}'
    )
    assert messages.encode_all_rooms("P78bnA", "5dOTmE") == (
        b'{"uid":"P78bnA","requestId":"5dOTmE","type":1}'
    )
    assert messages.encode_remote_rooms("uKwYjZ", True, [], [], ["joinall-0a2be286"]) == (
        b'{"uid":"uKwYjZ","type":2,"opts":{"rooms":[],"except":[]},"rooms":["joinall-0a2be286"]}'
    )
    assert messages.encode_remote_rooms("P78bnA", False, ["r1"], [], ["r1"]) == (
        b'{"uid":"P78bnA","type":3,"opts":{"rooms":["r1"],"except":[]},"rooms":["r1"]}'
    )
    assert messages.encode_remote_disconnect("uKwYjZ", ["kick-80f1232c"], [], False) == (
        b'{"uid":"uKwYjZ","type":4,"opts":{"rooms":["kick-80f1232c"],"except":[]},"close":false}'
    )
    assert messages.encode_server_side_emit("P78bnA", ["ping_servers", 5], "nPnpiw") == (
        b'{"uid":"P78bnA","requestId":"nPnpiw","type":6,"data":["ping_servers",5]}'
    )
    assert messages.encode_server_side_emit("uKwYjZ", ["sse", {"t": "h\u00e9"}]) == (
        '{"uid":"uKwYjZ","type":6,"data":["sse",{"t":"h\u00e9"}]}'.encode()
    )


def test_responses_are_as_recorded() -> None:
    assert messages.encode_fetch_response("191uOP", []) == b'{"requestId":"191uOP","sockets":[]}'
    assert messages.encode_rooms_response("5dOTmE", ["a", "r1"]) == (
        b'{"requestId":"5dOTmE","rooms":["a","r1"]}'
    )
    assert messages.encode_server_side_ack("nPnpiw", {"from": "B", "n": 5}) == (
        b'{"type":6,"requestId":"nPnpiw","data":{"from":"B","n":5}}'
    )
    assert messages.encode_client_count("tAYZfN", 1) == (
        b'{"type":8,"requestId":"tAYZfN","clientCount":1}'
    )
    ack = messages.encode_broadcast_ack("tAYZfN", {"user": "bob", "n": 7})
    assert ack[:1] != b"{"
    assert msgpack.unpackb(ack) == {
        "type": 9,
        "requestId": "tAYZfN",
        "packet": {"user": "bob", "n": 7},
    }
    # An ack without arguments still carries the field (null).
    assert msgpack.unpackb(messages.encode_broadcast_ack("x", None)) == {
        "type": 9,
        "requestId": "x",
        "packet": None,
    }


def test_broadcast_request_is_a_msgpack_map_of_five_in_the_recorded_order() -> None:
    payload = messages.encode_broadcast_request("wX0Gpm", "tAYZfN", "/", ["poll", 7], [], [], 2000)
    assert payload[0] == 0x85
    message = msgpack.unpackb(payload)
    assert list(message) == ["uid", "requestId", "type", "packet", "opts"]
    assert message == {
        "uid": "wX0Gpm",
        "requestId": "tAYZfN",
        "type": 7,
        "packet": {"type": 2, "data": ["poll", 7], "nsp": "/"},
        "opts": {"rooms": [], "except": [], "flags": {"timeout": 2000}},
    }
    assert payload.endswith(b"\xa5flags\x81\xa7timeout\xcd\x07\xd0")


def test_json_carries_what_node_would_send_for_values_json_cannot_hold() -> None:
    payload = messages.encode_server_side_emit("u", ["e", b"\x01\x02", math.nan, {1: (2, 3)}])
    assert j(payload)["data"] == ["e", {"type": "Buffer", "data": [1, 2]}, None, {"1": [2, 3]}]
    # Nothing in it can stop an answer from being sent.
    weird = messages.encode_fetch_response("r", [{"id": "s", "data": {"o": object()}}])
    assert j(weird)["sockets"][0]["data"] == {"o": None}


# ------------------------------------------------------------------ §5 requests we receive


def test_parse_requests_from_node_and_the_emitter() -> None:
    fetch = values.load_message(
        b'{"uid":"zz","requestId":"abc","type":5,"opts":{"rooms":["r",42],"except":[]}}'
    )
    request = messages.parse_request(fetch, "/")
    assert request is not None and request.type is RequestType.REMOTE_FETCH
    assert request.rooms == {"r", "42"} and request.request_id == "abc"

    join = messages.parse_request(
        values.load_message(b'{"type":2,"opts":{"rooms":["r2"],"except":[]},"rooms":["z"]}'), "/"
    )
    assert join is not None and join.uid is None and join.change == ("z",)
    assert join.rooms == {"r2"}

    kick = messages.parse_request(
        values.load_message(b'{"type":4,"opts":{"rooms":["r2"],"except":[]},"close":true}'), "/"
    )
    assert kick is not None and kick.close and not kick.legacy

    legacy = messages.parse_request(
        values.load_message(b'{"uid":"u","requestId":"q","type":2,"sid":"S","room":"R"}'), "/"
    )
    assert legacy is not None and legacy.legacy and legacy.sid == "S" and legacy.change == ("R",)

    sse = messages.parse_request(
        values.load_message(b'{"uid":"emitter","type":6,"data":["from_emitter",1]}'), "/"
    )
    assert sse is not None and sse.data == ["from_emitter", 1] and sse.request_id is None

    ack_broadcast = messages.parse_request(
        values.load_message(
            messages.encode_broadcast_request("u", "rid", "/", ["poll", 7], ["r"], [], 2000)
        ),
        "/",
    )
    assert ack_broadcast is not None and ack_broadcast.type is RequestType.BROADCAST
    assert ack_broadcast.data == ["poll", 7] and ack_broadcast.timeout == 2.0


@pytest.mark.parametrize(
    "payload",
    [
        b'{"uid":"zzzzzz","requestId":"abc","type":5}',  # crashes Node (§3.3)
        b'{"type":1}',
        b'{"type":2,"opts":"x"}',
        b'{"type":2}',
        b'{"type":6,"data":"x"}',
        b'{"type":6,"data":[]}',
        b'{"type":7,"requestId":"r","packet":{"type":2,"data":["e"]}}',
        b'{"type":7,"packet":{"type":2,"data":["e"]},"opts":{}}',
        b'{"type":5,"requestId":7,"opts":{}}',
        b"[1, 2]",
        b"{bad",
        b'{"a":NaN}',
        b"{" + b"[" * 500 + b"]" * 500 + b"}",
        b"{\xff}",
        b"\xc1",
    ],
)
def test_malformed_requests_raise_wire_error(payload: bytes) -> None:
    with pytest.raises(WireError):
        messages.parse_request(values.load_message(payload), "/")


@pytest.mark.parametrize(
    "payload", [b'{"type":42}', b'{"type":"x"}', b"{}", b'{"type":8,"requestId":"r"}']
)
def test_unknown_requests_are_ignored(payload: bytes) -> None:
    assert messages.parse_request(values.load_message(payload), "/") is None


def test_responses() -> None:
    response = messages.parse_response(values.load_message(b'{"requestId":"r","sockets":[]}'))
    assert response is not None and response.request_id == "r" and response.type is None
    assert messages.parse_response(values.load_message(b'{"sockets":[]}')) is None
    assert messages.parse_response(values.load_message(b'{"requestId":5}')) is None
    with pytest.raises(WireError):
        messages.parse_response(values.load_message(msgpack.packb([1])))


# ------------------------------------------------------------------ §3.2 values


def test_timestamps_become_date_to_json_strings() -> None:
    recorded = bytes.fromhex("d7ffa1a5d60065937d25")  # 2024-01-02T03:04:05.678Z
    assert values.plain(values.unpack(recorded)) == "2024-01-02T03:04:05.678Z"
    whole = msgpack.packb(msgpack.Timestamp(1704164645))
    assert whole[:2] == b"\xd6\xff"
    assert values.plain(values.unpack(whole)) == "2024-01-02T03:04:05.000Z"
    assert values.date_to_json(0) == "1970-01-01T00:00:00.000Z"
    assert values.date_to_json(-1) == "1969-12-31T23:59:59.999Z"
    assert values.date_to_json(-62198755200000) == "-000001-01-01T00:00:00.000Z"
    assert values.date_to_json(253402300800000) == "+010000-01-01T00:00:00.000Z"
    assert values.date_to_json(8_640_000_000_000_001) is None  # Invalid Date: toJSON() is null
    far = msgpack.packb(msgpack.Timestamp(2**44))
    assert values.plain(values.unpack(far)) is None


@given(st.integers(min_value=-62135596800000, max_value=253402300799999))
def test_date_to_json_agrees_with_datetime(ms: int) -> None:
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
    when = epoch + datetime.timedelta(milliseconds=ms)
    expected = f"{when.year:04d}-" + when.strftime("%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
    assert values.date_to_json(ms) == expected


def test_values_as_a_node_server_passes_them_on() -> None:
    value = values.unpack(
        msgpack.packb({"nan": math.nan, "inf": -math.inf, 1: "int key", "list": [1.5, b"\x00"]})
    )
    assert values.plain(value) == {"nan": None, "inf": None, "1": "int key", "list": [1.5, b"\x00"]}
    # notepack's legacy type-0 values (§3.2).
    legacy = b"\x93" + b"\xd4\x00\x00" + b"\xd7\x00" + (1000).to_bytes(8, "big") + b"\xc7\x02\x00ab"
    assert values.plain(values.unpack(legacy)) == [None, "1970-01-01T00:00:01.000Z", b"ab"]
    undefined_in_map = b"\x82\xa1a\xd4\x00\x00\xa1b\x01"
    assert values.plain(values.unpack(undefined_in_map)) == {"b": 1}
    # Another extension type: [type, data].
    assert values.plain(values.unpack(msgpack.packb(msgpack.ExtType(5, b"xy")))) == [5, b"xy"]
    with pytest.raises(WireError):
        values.plain(values.unpack(b"\x91" * 200 + b"\xc0"))


def test_js_string() -> None:
    assert [values.js_string(v) for v in (42, 1.5, 1e21, True, None, "x", -0.0)] == [
        "42",
        "1.5",
        "1e+21",
        "true",
        "null",
        "x",
        "0",
    ]
    with pytest.raises(WireError):
        values.js_string({})


# ------------------------------------------------------------------ fuzzing

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=20)
    | st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=9))
    | st.builds(msgpack.Timestamp, st.integers(-(2**34), 2**34), st.integers(0, 999_999_999)),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8) | st.integers(-(2**63), 2**63 - 1), inner, max_size=4)
    ),
    max_leaves=20,
)


def _everything(payload: bytes) -> None:
    # Every decoder: a result or WireError, nothing else.
    for nsp in ("/", "/chat"):
        try:
            got = messages.decode_broadcast(payload, nsp)
        except WireError:
            pass
        else:
            if got is not None:
                _encodable(got.data)
        try:
            message = values.load_message(payload)
        except WireError:
            continue
        try:
            request = messages.parse_request(message, nsp)
        except WireError:
            pass
        else:
            if request is not None and request.data:
                _encodable(request.data)
        try:
            messages.parse_response(message)
        except WireError:
            pass


def _encodable(data: list[Any]) -> None:
    # What we would pass on to clients must be encodable as Node would send it.
    try:
        value = values.plain(data)
    except WireError:
        return
    JSONEncoder().encode(SioPacket(SioType.EVENT, "/", value, None))


@FUZZ
@given(st.binary(max_size=200))
def test_fuzz_random_bytes(payload: bytes) -> None:
    _everything(payload)
    _everything(b"{" + payload)


@FUZZ
@given(msgpack_values, msgpack_values, msgpack_values, st.booleans())
def test_fuzz_well_formed_msgpack_of_any_shape(
    uid: Any, packet: Any, opts: Any, wrap: bool
) -> None:
    _everything(msgpack.packb([uid, packet, opts], datetime=False))
    shaped = ["u", {"type": 2, "data": ["ev", packet], "nsp": "/"}, {"rooms": [uid], "flags": opts}]
    _everything(msgpack.packb(shaped))
    request = {
        "uid": uid,
        "requestId": "r",
        "type": 7,
        "packet": {"data": ["e", opts]},
        "opts": packet,
    }
    _everything(msgpack.packb(request if wrap else [request]))


@FUZZ
@given(
    st.integers(min_value=-1, max_value=11),
    st.dictionaries(
        st.sampled_from(
            [
                "uid",
                "requestId",
                "opts",
                "rooms",
                "except",
                "data",
                "close",
                "sid",
                "room",
                "packet",
                "clientCount",
                "sockets",
            ]
        ),
        json_values,
        max_size=6,
    ),
)
def test_fuzz_json_requests_and_responses(kind: int, fields: dict[str, Any]) -> None:
    message = {"type": kind, **fields}
    _everything(json.dumps(message).encode())
    _everything(json.dumps(message, allow_nan=True).encode())
