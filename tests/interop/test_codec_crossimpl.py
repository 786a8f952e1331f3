"""triosio's codecs against the npm reference parsers, both directions.

A corpus of packets is encoded by triosio and decoded by socket.io-parser,
engine.io-parser and socket.io-msgpack-parser, and encoded by them and decoded
by triosio; the results must be equal, and for the text formats the encodings
byte-identical. One ``node tests/js/codec.js`` serves the whole module.
"""

# The corpora keep one value per line, however long.
# ruff: noqa: E501

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

import pytest
from node_codec import (
    NodeCodec,
    eio_from_wire,
    eio_to_wire,
    from_wire,
    require_peers,
    same_packet,
    sio_from_wire,
    sio_to_wire,
    to_wire,
)

from triosio import ProtocolError
from triosio._proto import eio
from triosio._proto.backoff import Backoff
from triosio._proto.eio import EioPacket, EioType
from triosio._proto.msgpack_parser import MsgpackDecoder, MsgpackEncoder
from triosio._proto.sio import JSONDecoder, JSONEncoder, SioPacket, SioType

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def node() -> Iterator[NodeCodec]:
    require_peers()
    codec = NodeCodec()
    yield codec
    codec.close()


def _call(node: NodeCodec, op: str, **fields: Any) -> dict[str, Any]:
    response = node.call(op, **fields)
    assert "error" not in response, response["error"]
    return response


E, A = SioType.EVENT, SioType.ACK
SIO_CORPUS: list[SioPacket] = [
    SioPacket(SioType.CONNECT),
    SioPacket(SioType.CONNECT, "/admin"),
    SioPacket(SioType.CONNECT, "/", {"token": "123"}),
    SioPacket(SioType.CONNECT, "/admin", {"sid": "oSO0OpakMV_3jnilAAAA", "pid": None}),
    SioPacket(SioType.DISCONNECT),
    SioPacket(SioType.DISCONNECT, "/admin"),
    SioPacket(SioType.CONNECT_ERROR, "/", {"message": "Not authorized"}),
    SioPacket(SioType.CONNECT_ERROR, "/a", {"message": "no", "data": {"code": 4, "retry": False}}),
    SioPacket(SioType.CONNECT_ERROR, "/", "Invalid namespace"),
    SioPacket(E, "/", ["message", "hello"]),
    SioPacket(E, "/", ["foo"], 12),
    SioPacket(E, "/admin", ["bar", 1, -2.5, True, None, {"k": [1, 2, {"x": "y"}]}], 0),
    SioPacket(E, "/chat?room=1", ["x"], 2**53),
    SioPacket(E, "/", ["unicode", "h\u00e9llo \u20ac \U0001f600 \u2028\u2029 \x00\x1f \"'\\/"]),
    SioPacket(E, "/", ["lone", "\ud800", "a\udc00b"]),
    SioPacket(E, "/", ["numbers", 0, -0.0, 1.0, 0.1, 1e21, 1e-7, 5e-324, 1.7976931348623157e308]),
    SioPacket(E, "/", ["ints", 2**53, -(2**53), 2**31, -1]),
    SioPacket(E, "/", ["keys", {"b": 1, "a": 2, "z": {"y": 1, "x": 2}}]),
    SioPacket(E, "/", ["looks like a placeholder", {"_placeholder": True, "num": 0}]),
    SioPacket(A, "/", [], 1),
    SioPacket(A, "/admin", ["bar"], 13),
    SioPacket(A, "/", [None, {"ok": True}], 99),
    SioPacket(E, "/", ["baz", b"\x01\x02\x03\x04"]),
    SioPacket(E, "/admin", ["baz", b"\x01\x02", b"\x03\x04"]),
    SioPacket(E, "/", ["nested", {"a": [b"", {"b": b"\xff" * 300}], "c": b"c"}, [[b"deep"]]], 7),
    SioPacket(E, "/", ["ten", *[bytes([i]) * i for i in range(9)]]),
    SioPacket(A, "/", ["bar", b"\x01\x02\x03\x04"], 15),
    SioPacket(A, "/admin", [{"file": b"\x00" * 1000, "name": "x.bin"}], 1),
]
MSGPACK_EXTRA: list[SioPacket] = [
    SioPacket(
        E, "/", ["date", datetime.datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=datetime.UTC)]
    ),
    SioPacket(
        E,
        "/",
        [
            "dates",
            [datetime.datetime(1969, 12, 31, 23, 59, 59, 1000, tzinfo=datetime.UTC)],
            {"d": datetime.datetime(2100, 1, 1, tzinfo=datetime.UTC)},
        ],
    ),
    SioPacket(E, "/", ["big", 2**60, -(2**60), 2**53 + 2, 1.5]),
]
# msgpack strings are UTF-8, which cannot carry lone surrogates.
MSGPACK_CORPUS = [p for p in SIO_CORPUS if "lone" not in (p.data or [None])] + MSGPACK_EXTRA
# notepack.io 2.2.0 (in socket.io-msgpack-parser 3.0.2) writes integral doubles
# as integers, and those of 2**64 and above overflow (1e21 arrives as
# 3875820019684212736): a bug of the reference, so that direction leaves them out.
TOO_BIG_FOR_NOTEPACK = (1e21, 1.7976931348623157e308)
MSGPACK_FROM_JS = [
    SioPacket(p.type, p.nsp, [v for v in p.data if v not in TOO_BIG_FOR_NOTEPACK], p.id)
    if isinstance(p.data, list) and p.data[:1] == ["numbers"]
    else p
    for p in MSGPACK_CORPUS
]  # fmt: skip


def _ids(packet: SioPacket) -> str:
    return repr(packet)[:80]


def _decode(decoder: JSONDecoder | MsgpackDecoder, parts: list[str | bytes]) -> SioPacket:
    result = None
    for part in parts:
        assert result is None
        result = decoder.feed(part)
    assert result is not None
    return result


def _feed_parts(parts: list[str | bytes]) -> None:
    decoder = JSONDecoder()
    for part in parts:
        decoder.feed(part)


def _plain(packet: SioPacket) -> SioPacket:
    return SioPacket(
        {SioType.BINARY_EVENT: E, SioType.BINARY_ACK: A}.get(packet.type, packet.type),
        packet.nsp,
        packet.data,
        packet.id,
    )


# ------------------------------------------------------------------ socket.io-parser


@pytest.mark.parametrize("packet", SIO_CORPUS, ids=_ids)
def test_triosio_encodes_what_socketio_parser_decodes(node: NodeCodec, packet: SioPacket) -> None:
    parts = JSONEncoder().encode(packet)
    response = _call(node, "sio_decode", parts=to_wire(parts))
    assert not response["pending"]
    (decoded,) = response["packets"]
    assert same_packet(sio_from_wire(decoded), packet)


@pytest.mark.parametrize("packet", SIO_CORPUS, ids=_ids)
def test_socketio_parser_encodes_what_triosio_decodes(node: NodeCodec, packet: SioPacket) -> None:
    parts = from_wire(_call(node, "sio_encode", packet=sio_to_wire(packet))["parts"])
    assert _decode(JSONDecoder(), parts) == packet


@pytest.mark.parametrize("packet", SIO_CORPUS, ids=_ids)
def test_encodings_are_byte_identical(node: NodeCodec, packet: SioPacket) -> None:
    theirs = from_wire(_call(node, "sio_encode", packet=sio_to_wire(packet))["parts"])
    assert JSONEncoder().encode(packet) == theirs


# Refused by both: the reference throws, triosio raises a ProtocolError.
BOTH_REFUSE: list[list[str | bytes]] = [
    ["7"],
    ["2[]x"],
    ['2["a"'],
    ["2{}"],
    ['2"abc"'],
    ['2[{"toString":"foo"}]'],
    ['2["connect"]'],
    ['2["disconnecting",1]'],
    ['2["newListener"]'],
    ["0[]"],
    ["0null"],
    ['0"token"'],
    ["1{}"],
    ["1null"],
    ["4[]"],
    ["31{}"],
    ['5-["a"]'],
    ['5a-["a"]'],
    ['50-["a"]'],
    ['511-["a"]'],
    ['51-["hello",{"_placeholder":true,"num":"splice"}]', b"x"],
    ['51-["a",{"_placeholder":true,"num":1}]', b"x"],
    ['51-["a",{"_placeholder":true,"num":-1}]', b"x"],
    ['51-["a",{"_placeholder":true,"num":true}]', b"x"],
    [b"\x01"],
    ['51-["a",{"_placeholder":true,"num":0}]', '2["b"]'],
]


@pytest.mark.parametrize("parts", BOTH_REFUSE, ids=repr)
def test_both_refuse(node: NodeCodec, parts: list[str | bytes]) -> None:
    response = node.call("sio_decode", parts=to_wire(parts))
    assert "error" in response, response
    with pytest.raises(ProtocolError):
        _feed_parts(parts)


# triosio refuses on purpose what the reference lets through (and why).
STRICTER: list[tuple[list[str | bytes], str]] = [
    ([""], "an empty message (JS reads Number('') == 0: a CONNECT)"),
    (["2"], "an EVENT without its payload (the spec: the payload is mandatory)"),
    (['2[1,"a"]'], "event names must be strings (the issue's rule; JS also takes numbers)"),
    (["3[]"], "an ACK without an ack id answers nothing"),
    ([f"2{2**53 + 1}" + '["a"]'], "ack ids above 2**53 lose precision in JavaScript"),
    (['2 ["a"]'], "JS reads the space as ack id 0 (Number(' ') == 0)"),
    (['52-["a",{"_placeholder":true,"num":0}]', b"x", b"y"], "an attachment no placeholder uses"),
]


@pytest.mark.parametrize(("parts", "why"), STRICTER, ids=[s[1] for s in STRICTER])
def test_stricter_than_the_reference(node: NodeCodec, parts: list[str | bytes], why: str) -> None:
    response = _call(node, "sio_decode", parts=to_wire(parts))
    assert len(response["packets"]) == 1, why  # the reference accepts it...
    with pytest.raises(ProtocolError):  # ...triosio does not
        _feed_parts(parts)


# ------------------------------------------------------------------ msgpack


@pytest.mark.parametrize("packet", MSGPACK_CORPUS, ids=_ids)
def test_triosio_msgpack_decoded_by_the_reference(node: NodeCodec, packet: SioPacket) -> None:
    (data,) = MsgpackEncoder().encode(packet)
    (decoded,) = _call(node, "msgpack_decode", data=to_wire(data))["packets"]
    assert same_packet(sio_from_wire(decoded), _plain(packet))


@pytest.mark.parametrize("packet", MSGPACK_FROM_JS, ids=_ids)
def test_reference_msgpack_decoded_by_triosio(node: NodeCodec, packet: SioPacket) -> None:
    data = from_wire(_call(node, "msgpack_encode", packet=sio_to_wire(packet))["data"])
    assert MsgpackDecoder().feed(data) == _plain(packet)


def test_msgpack_browser_arraybuffer_and_undefined(node: NodeCodec) -> None:
    # A browser's binary is an ArrayBuffer (notepack: ext type 0, not bin), and
    # undefined in an array is fixext 1 type 0; 8 bytes must not pass for a Date.
    wire = {
        "type": 2,
        "nsp": "/",
        "data": [
            "e",
            {"$arraybuffer": "AQIDBAUGBwg="},
            {"$arraybuffer": "/w=="},
            {"$undefined": 1},
        ],
    }
    data = from_wire(_call(node, "msgpack_encode", packet=wire)["data"])
    assert MsgpackDecoder().feed(data) == SioPacket(
        E, "/", ["e", bytes(range(1, 9)), b"\xff", None]
    )


def test_msgpack_of_the_javascript_client_shape(node: NodeCodec) -> None:
    # socket.io-client sends {type, data, options, id, nsp}: extra keys are ignored.
    wire = {"type": 2, "data": ["e", 1], "options": {"compress": True}, "id": 3, "nsp": "/x"}
    data = from_wire(_call(node, "msgpack_encode", packet=wire)["data"])
    assert MsgpackDecoder().feed(data) == SioPacket(E, "/x", ["e", 1], 3)


# ------------------------------------------------------------------ engine.io-parser

EIO_CORPUS: list[EioPacket] = [
    EioPacket(EioType.OPEN, eio.encode_open(eio.Handshake("lv_VI97HAXpY6yYWAAAC", ("websocket",), 25000, 20000, 1_000_000))[1:]),
    EioPacket(EioType.CLOSE),
    EioPacket(EioType.PING),
    EioPacket(EioType.PING, "probe"),
    EioPacket(EioType.PONG, "probe"),
    EioPacket(EioType.MESSAGE, "hello"),
    EioPacket(EioType.MESSAGE, '2["message","\u20ac\u20ac\u20ac \U0001f600"]'),
    EioPacket(EioType.MESSAGE, b"\x01\x02\x03\x04"),
    EioPacket(EioType.MESSAGE, bytes(range(256))),
    EioPacket(EioType.MESSAGE, b""),
    EioPacket(EioType.UPGRADE),
    EioPacket(EioType.NOOP),
]  # fmt: skip


def _eio_ids(packet: EioPacket) -> str:
    return repr(packet)[:60]


@pytest.mark.parametrize("packet", EIO_CORPUS, ids=_eio_ids)
def test_engineio_frames_both_ways(node: NodeCodec, packet: EioPacket) -> None:
    frame = eio.encode_ws(packet)
    decoded = _call(node, "eio_decode_packet", data=to_wire(frame))["packet"]
    assert eio_from_wire(decoded) == packet
    theirs = from_wire(
        _call(node, "eio_encode_packet", packet=eio_to_wire(packet), supportsBinary=True)["encoded"]
    )
    assert theirs == frame
    assert eio.decode_ws(theirs) == packet


@pytest.mark.parametrize("packet", EIO_CORPUS, ids=_eio_ids)
def test_engineio_payload_parts_both_ways(node: NodeCodec, packet: EioPacket) -> None:
    # Without binary support (polling), binary goes as "b" + base64.
    theirs = _call(node, "eio_encode_packet", packet=eio_to_wire(packet), supportsBinary=False)
    assert theirs["encoded"] == eio.encode_payload_part(packet)


PAYLOADS: list[list[EioPacket]] = [
    [EioPacket(EioType.MESSAGE, "hello"), EioPacket(EioType.PING), EioPacket(EioType.MESSAGE, "world")],
    [EioPacket(EioType.MESSAGE, "hello"), EioPacket(EioType.MESSAGE, b"\x01\x02\x03\x04")],
    [EioPacket(EioType.MESSAGE, "4hello"), EioPacket(EioType.MESSAGE, "\u20ac\u20ac\u20ac")],
    [EioPacket(EioType.MESSAGE, '51-["a",{"_placeholder":true,"num":0}]'), EioPacket(EioType.MESSAGE, b"\xff\x00")],
    [EioPacket(EioType.CLOSE)],
    [EioPacket(EioType.MESSAGE, b"")] * 3,
    EIO_CORPUS[1:],
]  # fmt: skip


@pytest.mark.parametrize("packets", PAYLOADS, ids=lambda ps: f"{len(ps)} packets")
def test_engineio_payloads_both_ways(node: NodeCodec, packets: list[EioPacket]) -> None:
    body = eio.encode_payload(packets)
    decoded = _call(node, "eio_decode_payload", body=body)["packets"]
    assert [eio_from_wire(p) for p in decoded] == packets
    theirs = _call(node, "eio_encode_payload", packets=[eio_to_wire(p) for p in packets])["body"]
    assert theirs == body
    assert eio.decode_payload(theirs, max_packets=len(packets)) == packets
    reader = eio.PayloadReader(max_packets=len(packets))
    raw = theirs.encode("utf-8")
    got = [p for i in range(len(raw)) for p in reader.feed(raw[i : i + 1])]
    assert got + reader.close() == packets


@pytest.mark.parametrize("frame", ["", "7", "x", "bAQID"], ids=repr)
def test_engineio_both_refuse(node: NodeCodec, frame: str) -> None:
    decoded = _call(node, "eio_decode_packet", data=frame)["packet"]
    if frame.startswith("b"):
        # engine.io-parser reads "b..." as base64 even in a frame; we do not.
        assert decoded["type"] == "message"
    else:
        assert decoded["type"] == "error"
    with pytest.raises(ProtocolError):
        eio.decode_ws(frame)


# ------------------------------------------------------------------ backoff


@pytest.mark.parametrize(
    ("low", "high", "jitter", "draws"),
    [
        (1.0, 5.0, 0.5, [0.0, 0.25, 0.35, 0.5, 0.99, 0.123456]),
        (0.1, 60.0, 0.5, [0.7, 0.05, 0.91]),
        (2.0, 30.0, 1.0, [0.19, 0.28, 0.999]),
        (1.0, 5.0, 0.0, [0.5]),
    ],
)
def test_backoff_matches_socketio_client(
    node: NodeCodec, low: float, high: float, jitter: float, draws: list[float]
) -> None:
    count = 40
    theirs = _call(
        node,
        "backoff",
        min=low * 1000,
        max=high * 1000,
        jitter=jitter,
        draws=draws,
        count=count,
    )["delays"]
    source = iter(draws * count)
    ours = Backoff(min_delay=low, max_delay=high, jitter=jitter, random=lambda: next(source))
    assert [round(ours.duration() * 1000) for _ in range(count)] == theirs
