"""Socket.IO v5 packets through the default (JSON) parser and the msgpack parser.

Golden vectors: tests/proto/vectors/socketio.json (examples of
https://socket.io/docs/v4/socket-io-protocol/, each citing its section).
"""

from __future__ import annotations

import dataclasses
import datetime
import pickle
from typing import Any

import pytest
from proto_golden import (
    UNSPECIFIED,
    Case,
    cases,
    decoded_form,
    ids,
    load,
    sio_packet,
    value,
)

from triosio import AttachmentMismatch, LocalProtocolError, ProtocolError
from triosio._proto import eio
from triosio._proto.eio import EioPacket, EioType
from triosio._proto.msgpack_parser import MsgpackDecoder, MsgpackEncoder, MsgpackParser
from triosio._proto.sio import (
    JSONDecoder,
    JSONEncoder,
    JSONParser,
    Limits,
    SioPacket,
    SioType,
)

PACKETS = cases("socketio", "packets")
BINARY_PACKETS = [case for case in PACKETS if len(case.data["encoded"]) > 1]
SESSION = cases("socketio", "session", "frames")

# Appended to a whole text packet, each of these makes it invalid.
GARBAGE = ["]x", "x", "}", ",", "[", "\x00", ' "', "\ud800"]


def _feed_all(decoder: JSONDecoder, parts: list[str | bytes]) -> SioPacket:
    """Feed a text packet and its attachments; only the last may give a packet."""
    *head, last = parts
    for part in head:
        assert decoder.feed(part) is None
        assert decoder.pending
    packet = decoder.feed(last)
    assert packet is not None
    assert not decoder.pending
    return packet


def test_packet_types_match_the_table() -> None:
    table = load("socketio")["types"]["table"]
    assert {t.name: t.value for t in SioType} == table


# ------------------------------------------------------------------ JSON parser


@pytest.mark.parametrize("case", PACKETS, ids=ids)
def test_encode(case: Case) -> None:
    assert JSONEncoder().encode(sio_packet(case.data["packet"])) == value(case.data["encoded"])


@pytest.mark.parametrize("case", PACKETS, ids=ids)
def test_encode_from_plain_type(case: Case) -> None:
    # EVENT/ACK with bytes become BINARY_EVENT/BINARY_ACK by themselves, and a
    # BINARY_* packet without bytes is sent as the plain type.
    packet = decoded_form(sio_packet(case.data["packet"]))
    assert JSONEncoder().encode(packet) == value(case.data["encoded"])


@pytest.mark.parametrize("case", PACKETS, ids=ids)
def test_decode(case: Case) -> None:
    decoder = JSONDecoder()
    packet = _feed_all(decoder, value(case.data["encoded"]))
    assert packet == decoded_form(sio_packet(case.data["packet"]))


@pytest.mark.parametrize("case", PACKETS, ids=ids)
def test_decode_attachments_one_at_a_time(case: Case) -> None:
    text, *attachments = value(case.data["encoded"])
    decoder = JSONDecoder()
    result = decoder.feed(text)
    for attachment in attachments:
        assert result is None  # nothing until the last attachment
        result = decoder.feed(attachment)
    assert result == decoded_form(sio_packet(case.data["packet"]))
    assert not decoder.pending


@pytest.mark.parametrize("case", PACKETS, ids=ids)
def test_decoder_is_reusable(case: Case) -> None:
    # One decoder per connection: the same packet twice gives the same result.
    decoder = JSONDecoder()
    parts = value(case.data["encoded"])
    expected = decoded_form(sio_packet(case.data["packet"]))
    assert _feed_all(decoder, parts) == expected
    assert _feed_all(decoder, parts) == expected


def _text(case: Case) -> str:
    """The Socket.IO text of a vector (a session frame without its Engine.IO "4")."""
    if "frame" in case.data:
        return str(case.data["frame"][1:])
    return str(case.data["encoded"][0])


@pytest.mark.parametrize("case", PACKETS + SESSION, ids=ids)
def test_text_prefixes_decode_or_raise_protocol_errors(case: Case) -> None:
    text = _text(case)
    for cut in range(len(text)):
        decoder = JSONDecoder()
        try:
            result = decoder.feed(text[:cut])
        except ProtocolError:
            assert not decoder.pending  # reset before raising
            continue
        # A prefix that decodes is a packet in its own right ("0/admin", "21").
        assert result is None or isinstance(result, SioPacket)


@pytest.mark.parametrize("case", PACKETS + SESSION, ids=ids)
@pytest.mark.parametrize("garbage", GARBAGE)
def test_text_trailing_garbage_is_refused(case: Case, garbage: str) -> None:
    decoder = JSONDecoder()
    with pytest.raises(ProtocolError):
        decoder.feed(_text(case) + garbage)
    assert not decoder.pending


@pytest.mark.parametrize("case", PACKETS, ids=ids)
def test_extra_attachment_is_refused(case: Case) -> None:
    decoder = JSONDecoder()
    _feed_all(decoder, value(case.data["encoded"]))
    with pytest.raises(AttachmentMismatch):
        decoder.feed(b"\x01")


@pytest.mark.parametrize("case", BINARY_PACKETS, ids=ids)
def test_text_while_attachments_pending_is_refused(case: Case) -> None:
    text, *_ = value(case.data["encoded"])
    decoder = JSONDecoder()
    assert decoder.feed(text) is None
    with pytest.raises(AttachmentMismatch):
        decoder.feed(text)
    assert not decoder.pending


# ------------------------------------------------------------------ sample session


@pytest.mark.parametrize("case", SESSION, ids=ids)
def test_session_frame_decodes(case: Case) -> None:
    frame = eio.decode_ws(case.data["frame"])
    assert frame.type is EioType.MESSAGE
    assert isinstance(frame.data, str)
    expected = decoded_form(sio_packet(case.data["packet"]))
    decoder = JSONDecoder()
    result = decoder.feed(frame.data)
    if result is None:  # the BINARY_ACK: its attachment follows in its own frame
        result = decoder.feed(eio.decode_ws(UNSPECIFIED).data)
    assert result == expected


@pytest.mark.parametrize("case", SESSION, ids=ids)
def test_session_frame_encodes(case: Case) -> None:
    text, *attachments = JSONEncoder().encode(sio_packet(case.data["packet"]))
    assert isinstance(text, str)
    assert eio.encode_ws(EioPacket(EioType.MESSAGE, text)) == case.data["frame"]
    assert attachments in ([], [UNSPECIFIED])


# ------------------------------------------------------------------ more shapes


@pytest.mark.parametrize(
    ("packet", "encoded"),
    [
        (SioPacket(SioType.CONNECT, "/", {"token": "123"}), ['0{"token":"123"}']),
        (SioPacket(SioType.CONNECT_ERROR, "/", "not allowed"), ['4"not allowed"']),
        (SioPacket(SioType.ACK, "/", [], 0), ["30[]"]),
        (SioPacket(SioType.ACK, "/", [], 2**53), [f"3{2**53}[]"]),
        (SioPacket(SioType.EVENT, "/a/b?x=1", ["e"]), ['2/a/b?x=1,["e"]']),
        (SioPacket(SioType.EVENT, "/", ["\u20ac", "\U0001f600"]), ['2["\u20ac","\U0001f600"]']),
        (
            SioPacket(SioType.EVENT, "/", ["e", {"a": [b"", {"b": b"x"}]}, b"y"], 7),
            [
                '53-7["e",{"a":[{"_placeholder":true,"num":0},'
                '{"b":{"_placeholder":true,"num":1}}]},{"_placeholder":true,"num":2}]',
                b"",
                b"x",
                b"y",
            ],
        ),
        # A placeholder-shaped object in a packet without bytes is plain data.
        (
            SioPacket(SioType.EVENT, "/", ["e", {"_placeholder": True, "num": 0}]),
            ['2["e",{"_placeholder":true,"num":0}]'],
        ),
    ],
)
def test_round_trip(packet: SioPacket, encoded: list[str | bytes]) -> None:
    assert JSONEncoder().encode(packet) == encoded
    assert _feed_all(JSONDecoder(), encoded) == packet


def test_bytearray_and_memoryview_are_binary() -> None:
    packet = SioPacket(SioType.EVENT, "/", ["e", bytearray(b"a"), memoryview(b"b")])
    assert JSONEncoder().encode(packet) == [
        '52-["e",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]',
        b"a",
        b"b",
    ]


def test_tuples_encode_as_arrays() -> None:
    assert JSONEncoder().encode(SioPacket(SioType.EVENT, "/", ("e", (1, 2)))) == ['2["e",[1,2]]']


@pytest.mark.parametrize(
    "packet",
    [
        SioPacket(SioType.EVENT, "admin", ["e"]),
        SioPacket(SioType.EVENT, "/a,b", ["e"]),
        SioPacket(SioType.EVENT, "/", ["e"], -1),
        SioPacket(SioType.EVENT, "/", ["e"], 2**53 + 1),
        SioPacket(SioType.EVENT, "/", ["e"], True),
        SioPacket(SioType.EVENT, "/", ["e", float("nan")]),
        SioPacket(SioType.EVENT, "/", ["e", float("inf")]),
        SioPacket(SioType.EVENT, "/", ["e", float("-inf")]),
        SioPacket(SioType.EVENT, "/", ["e", b"x", float("nan")]),
        SioPacket(SioType.EVENT, "/", ["e", object()]),
        SioPacket(SioType.EVENT, "/", ["e", {("tuple", "key"): 1}]),
        SioPacket(SioType.CONNECT, "/", {"bytes": b"x"}),
        SioPacket(SioType.CONNECT_ERROR, "/", {"nan": float("nan")}),
    ],
    ids=repr,
)
def test_encoder_refuses(packet: SioPacket) -> None:
    with pytest.raises(LocalProtocolError):
        JSONEncoder().encode(packet)


def test_encoder_refuses_circular_data() -> None:
    data: list[Any] = ["e"]
    data.append(data)
    with pytest.raises(LocalProtocolError):
        JSONEncoder().encode(SioPacket(SioType.EVENT, "/", data))


def test_packets_are_frozen_values() -> None:
    packet = SioPacket(SioType.EVENT, "/", ["e"], 1)
    with pytest.raises(AttributeError):
        packet.id = 2  # type: ignore[misc]
    assert packet == SioPacket(SioType.EVENT, "/", ["e"], 1)
    assert packet != SioPacket(SioType.EVENT, "/", ["e"], 2)
    assert SioPacket(SioType.CONNECT) == SioPacket(SioType.CONNECT, "/", None, None)
    # The hand-written __init__ keeps the dataclass protocol working.
    assert dataclasses.replace(packet, id=2) == SioPacket(SioType.EVENT, "/", ["e"], 2)
    assert pickle.loads(pickle.dumps(packet)) == packet
    assert SioPacket.__match_args__ == ("type", "nsp", "data", "id")


def test_parser_objects() -> None:
    parser = JSONParser()
    assert parser.name == "json"
    assert isinstance(parser.encoder(), JSONEncoder)
    decoder = parser.decoder(Limits(max_attachments=2))
    assert isinstance(decoder, JSONDecoder)
    assert decoder.limits.max_attachments == 2


# ------------------------------------------------------------------ msgpack parser


def _msgpack_round_trip(packet: SioPacket) -> SioPacket:
    (encoded,) = MsgpackEncoder().encode(packet)
    assert isinstance(encoded, bytes)
    decoder = MsgpackDecoder()
    result = decoder.feed(encoded)
    assert not decoder.pending
    return result


@pytest.mark.parametrize("case", PACKETS + SESSION, ids=ids)
def test_msgpack_round_trip_of_document_packets(case: Case) -> None:
    # The msgpack parser carries bytes inline: no attachments, no BINARY_* types.
    packet = sio_packet(case.data["packet"])
    assert _msgpack_round_trip(packet) == decoded_form(packet)


def test_msgpack_wire_shape() -> None:
    import msgpack

    (encoded,) = MsgpackEncoder().encode(SioPacket(SioType.BINARY_ACK, "/admin", [b"\x01"], 15))
    assert isinstance(encoded, bytes)
    assert msgpack.unpackb(encoded) == {"type": 3, "data": [b"\x01"], "nsp": "/admin", "id": 15}
    (encoded,) = MsgpackEncoder().encode(SioPacket(SioType.CONNECT))
    assert isinstance(encoded, bytes)
    assert msgpack.unpackb(encoded) == {"type": 0, "nsp": "/"}


def test_msgpack_ignores_unknown_keys_and_nil_fields() -> None:
    # socket.io-client adds "options"; python-socketio sends "data": nil on CONNECT.
    import msgpack

    decoder = MsgpackDecoder()
    raw = {"type": 2, "data": ["e"], "nsp": "/", "options": {"compress": True}}
    assert decoder.feed(msgpack.packb(raw)) == SioPacket(SioType.EVENT, "/", ["e"])
    raw = {"type": 0, "data": None, "nsp": "/", "id": None}
    assert decoder.feed(msgpack.packb(raw)) == SioPacket(SioType.CONNECT)


def test_msgpack_datetime_round_trip() -> None:
    when = datetime.datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=datetime.UTC)
    packet = SioPacket(SioType.EVENT, "/", ["e", when])
    assert _msgpack_round_trip(packet) == packet


_HEAD = b"\x83\xa4type\x02\xa3nsp\xa1/\xa4data"  # {type: 2, nsp: "/", data: ...}
_MS = (1714979289123).to_bytes(8, "big")  # 2024-05-06T07:08:09.123Z
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        # notepack.io 2.2.0: fixext 8 type 0 is a Date...
        (b"\xd7\x00" + _MS, datetime.datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=datetime.UTC)),
        (b"\xd7\x00" + b"\xff" * 8, _EPOCH - datetime.timedelta(milliseconds=1)),
        # ...ext 8/16/32 type 0 an ArrayBuffer, even of 8 bytes...
        (b"\xc7\x08\x00" + _MS, _MS),
        (b"\xc8\x00\x01\x00" + b"z", b"z"),
        (b"\xc9\x00\x00\x00\x00\x00", b""),
        # ...and fixext 1 type 0 is undefined.
        (b"\xd4\x00\x00", None),
        # A standard timestamp (extension -1) is a datetime too.
        (b"\xd6\xff\x00\x00\x00\x01", _EPOCH + datetime.timedelta(seconds=1)),
    ],
    ids=["date", "date<1970", "8-byte ArrayBuffer", "ext16", "ext32", "undefined", "timestamp"],
)  # fmt: skip
def test_msgpack_notepack_extensions(items: bytes, expected: Any) -> None:
    # The same value after a timestamp, before an ArrayBuffer: formats stay in step.
    message = _HEAD + b"\x94\xa1e\xd6\xff\x00\x00\x00\x02" + items + b"\xc7\x01\x00q"
    packet = MsgpackDecoder().feed(message)
    two = _EPOCH + datetime.timedelta(seconds=2)
    assert packet == SioPacket(SioType.EVENT, "/", ["e", two, expected, b"q"])


def test_msgpack_writes_a_datetime_as_notepack_date() -> None:
    when = datetime.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=datetime.UTC)
    (encoded,) = MsgpackEncoder().encode(SioPacket(SioType.EVENT, "/", ["e", when]))
    assert isinstance(encoded, bytes)
    assert b"\x92\xa1e\xd7\x00" + _MS in encoded  # milliseconds, floored
    with pytest.raises(LocalProtocolError):
        MsgpackEncoder().encode(SioPacket(SioType.EVENT, "/", ["e", when.replace(tzinfo=None)]))


def test_msgpack_parser_objects() -> None:
    parser = MsgpackParser()
    assert parser.name == "msgpack"
    assert isinstance(parser.encoder(), MsgpackEncoder)
    assert isinstance(parser.decoder(Limits()), MsgpackDecoder)


@pytest.mark.parametrize(
    "packet",
    [
        SioPacket(SioType.EVENT, "/", ["e", 2**64]),
        SioPacket(SioType.EVENT, "/", ["e", object()]),
    ],
    ids=repr,
)
def test_msgpack_encoder_refuses(packet: SioPacket) -> None:
    with pytest.raises(LocalProtocolError):
        MsgpackEncoder().encode(packet)
