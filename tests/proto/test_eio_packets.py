"""Engine.IO v4 packets, WebSocket frames, polling payloads and the handshake.

Golden vectors: tests/proto/vectors/engineio.json (examples of
https://socket.io/docs/v4/engine-io-protocol/, each citing its section).
"""

from __future__ import annotations

import json

import pytest
from proto_golden import Case, cases, eio_packet, handshake, ids, load, value

from triosio import (
    EmptyPacket,
    InvalidEncoding,
    InvalidHandshake,
    LocalProtocolError,
    PayloadTooLarge,
    ProtocolError,
    TooManyPackets,
    UnknownPacketType,
)
from triosio._proto import eio
from triosio._proto.eio import EioPacket, EioType, PayloadReader

FRAMES = cases("engineio", "frames")
PAYLOADS = cases("engineio", "payloads") + cases("socketio", "payloads")
HANDSHAKES = cases("engineio", "handshakes")


def _payload_packets(case: Case) -> list[EioPacket]:
    # The Socket.IO document's payload lists Socket.IO packets: each is an
    # Engine.IO MESSAGE whose data is the body's record minus its "4".
    if "nsp" in case.data["packets"][0]:
        records = case.data["body"].split("\x1e")
        return [EioPacket(EioType.MESSAGE, r[1:]) for r in records]
    return [eio_packet(p) for p in case.data["packets"]]


def test_packet_types_match_the_table() -> None:
    table = load("engineio")["types"]["table"]
    assert {t.name: t.value for t in EioType} == table


# ------------------------------------------------------------------ frames


@pytest.mark.parametrize("case", FRAMES, ids=ids)
def test_encode_frame(case: Case) -> None:
    assert eio.encode_ws(eio_packet(case.data["packet"])) == value(case.data["frame"])


@pytest.mark.parametrize("case", FRAMES, ids=ids)
def test_decode_frame(case: Case) -> None:
    assert eio.decode_ws(value(case.data["frame"])) == eio_packet(case.data["packet"])


@pytest.mark.parametrize("case", FRAMES, ids=ids)
def test_text_encoding_of_text_frames(case: Case) -> None:
    packet = eio_packet(case.data["packet"])
    if isinstance(packet.data, bytes):
        with pytest.raises(LocalProtocolError):
            eio.encode_text(packet)
    else:
        assert eio.encode_text(packet) == case.data["frame"]


@pytest.mark.parametrize("case", FRAMES, ids=ids)
def test_frame_prefixes_decode_or_raise_protocol_errors(case: Case) -> None:
    frame = value(case.data["frame"])
    for cut in range(len(frame)):
        try:
            packet = eio.decode_ws(frame[:cut])
        except ProtocolError:
            # Only the empty text frame is invalid.
            assert cut == 0
            assert isinstance(frame, str)
            continue
        # A shorter frame is a packet with shorter data, never something else.
        if isinstance(frame, bytes):
            assert packet == EioPacket(EioType.MESSAGE, frame[:cut])
        else:
            assert packet == EioPacket(EioType(int(frame[0])), frame[1:cut])


@pytest.mark.parametrize("case", FRAMES, ids=ids)
@pytest.mark.parametrize("garbage", ["x", "\x1e", "]]", "\u2028", "\ud800"])
def test_frame_trailing_data_is_kept_not_dropped(case: Case, garbage: str) -> None:
    # A frame is one whole message: whatever follows the type is data. Trailing
    # bytes cannot make it invalid, so they must show up in the data.
    frame = value(case.data["frame"])
    tail: str | bytes = (
        garbage if isinstance(frame, str) else garbage.encode("utf-8", "surrogatepass")
    )
    packet = eio.decode_ws(frame + tail)  # type: ignore[operator]
    expected = eio_packet(case.data["packet"])
    assert packet == EioPacket(expected.type, expected.data + tail)  # type: ignore[operator]


def test_binary_frame_is_always_a_message() -> None:
    # "Binary payloads are sent as is": the first byte is data, not a type.
    assert eio.decode_ws(b"2probe") == EioPacket(EioType.MESSAGE, b"2probe")
    assert eio.decode_ws(b"") == EioPacket(EioType.MESSAGE, b"")
    assert eio.decode_ws(bytearray(b"\x01")) == EioPacket(EioType.MESSAGE, b"\x01")
    assert eio.decode_ws(memoryview(b"\x02")) == EioPacket(EioType.MESSAGE, b"\x02")


def test_only_messages_carry_binary() -> None:
    with pytest.raises(LocalProtocolError):
        EioPacket(EioType.PING, b"probe")


def test_frame_size_limit() -> None:
    assert eio.decode_ws("4" + "x" * 9, max_payload=10) == EioPacket(EioType.MESSAGE, "x" * 9)
    with pytest.raises(PayloadTooLarge):
        eio.decode_ws("4" + "x" * 10, max_payload=10)
    with pytest.raises(PayloadTooLarge):
        eio.decode_ws(b"x" * 11, max_payload=10)


def test_packets_are_frozen() -> None:
    packet = EioPacket(EioType.MESSAGE, "a")
    with pytest.raises(AttributeError):
        packet.data = "b"  # type: ignore[misc]
    assert packet == EioPacket(EioType.MESSAGE, "a")
    assert hash(packet) == hash(EioPacket(EioType.MESSAGE, "a"))


# ------------------------------------------------------------------ payloads


@pytest.mark.parametrize("case", PAYLOADS, ids=ids)
def test_encode_payload(case: Case) -> None:
    assert eio.encode_payload(_payload_packets(case)) == case.data["body"]


@pytest.mark.parametrize("case", PAYLOADS, ids=ids)
def test_decode_payload(case: Case) -> None:
    assert eio.decode_payload(case.data["body"]) == _payload_packets(case)


def _read(pieces: list[bytes], **limits: int) -> list[EioPacket]:
    reader = PayloadReader(**limits)
    packets: list[EioPacket] = []
    for piece in pieces:
        packets += reader.feed(piece)
    return packets + reader.close()


@pytest.mark.parametrize("case", PAYLOADS, ids=ids)
def test_payload_reader_split_at_every_byte(case: Case) -> None:
    body = case.data["body"].encode("utf-8")
    expected = _payload_packets(case)
    assert _read([body]) == expected
    for cut in range(len(body) + 1):
        assert _read([body[:cut], body[cut:]]) == expected, cut


@pytest.mark.parametrize("case", PAYLOADS, ids=ids)
def test_payload_reader_byte_by_byte(case: Case) -> None:
    body = case.data["body"].encode("utf-8")
    assert _read([body[i : i + 1] for i in range(len(body))]) == _payload_packets(case)


@pytest.mark.parametrize("case", PAYLOADS, ids=ids)
def test_payload_reader_gives_packets_as_records_end(case: Case) -> None:
    # Each packet is given as soon as its separator arrives, not at close().
    body = case.data["body"].encode("utf-8")
    expected = _payload_packets(case)
    reader = PayloadReader()
    seen: list[EioPacket] = []
    for i in range(len(body)):
        seen += reader.feed(body[i : i + 1])
        assert len(seen) == body[: i + 1].count(b"\x1e")
    assert seen + reader.close() == expected


@pytest.mark.parametrize("case", PAYLOADS, ids=ids)
@pytest.mark.parametrize(
    ("tail", "error"),
    [
        ("\x1e", EmptyPacket),
        ("\x1ex", UnknownPacketType),
        ("\x1e7", UnknownPacketType),
        ("\x1eb!!!!", InvalidEncoding),
        ("\x1ebAQ", InvalidEncoding),  # bad padding
    ],
)
def test_payload_trailing_garbage_is_refused(case: Case, tail: str, error: type[Exception]) -> None:
    body = case.data["body"] + tail
    with pytest.raises(error):
        eio.decode_payload(body)
    encoded = body.encode("utf-8")
    for cut in range(len(encoded) + 1):
        with pytest.raises(error):
            _read([encoded[:cut], encoded[cut:]])


@pytest.mark.parametrize("case", PAYLOADS, ids=ids)
def test_payload_trailing_record_is_a_packet(case: Case) -> None:
    # Trailing text that forms a valid record is one more packet, never dropped.
    body = case.data["body"] + "\x1e4tail"
    expected = [*_payload_packets(case), EioPacket(EioType.MESSAGE, "tail")]
    assert eio.decode_payload(body) == expected
    assert _read([body.encode()]) == expected


def test_payload_of_every_packet_type() -> None:
    packets = [
        EioPacket(EioType.OPEN, '{"sid":"x"}'),
        EioPacket(EioType.CLOSE),
        EioPacket(EioType.PING, "probe"),
        EioPacket(EioType.PONG),
        EioPacket(EioType.MESSAGE, "\u20ac\U0001f600"),
        EioPacket(EioType.MESSAGE, b""),
        EioPacket(EioType.MESSAGE, bytes(range(256))),
        EioPacket(EioType.UPGRADE),
        EioPacket(EioType.NOOP),
    ]
    body = eio.encode_payload(packets)
    assert eio.decode_payload(body) == packets
    assert _read([body.encode()], max_packets=len(packets)) == packets


def test_record_separator_cannot_be_sent_in_a_payload() -> None:
    # It would split the packet in two at the receiver ("4a\x1e4b" is 2 packets).
    with pytest.raises(LocalProtocolError):
        eio.encode_payload([EioPacket(EioType.MESSAGE, "a\x1e4b")])
    with pytest.raises(LocalProtocolError):
        eio.encode_payload_part(EioPacket(EioType.MESSAGE, '0/ns\x1e4x,{"sid":"s"}'))
    # Over WebSocket a frame is one packet whatever it holds.
    assert eio.encode_ws(EioPacket(EioType.MESSAGE, "a\x1e4b")) == "4a\x1e4b"


def test_empty_binary_message_in_payload() -> None:
    assert eio.encode_payload_part(EioPacket(EioType.MESSAGE, b"")) == "b"
    assert eio.decode_payload("b") == [EioPacket(EioType.MESSAGE, b"")]


def test_payload_limits() -> None:
    assert len(eio.decode_payload("\x1e".join(["2"] * 16), max_packets=16)) == 16
    with pytest.raises(TooManyPackets):
        eio.decode_payload("\x1e".join(["2"] * 17), max_packets=16)
    with pytest.raises(PayloadTooLarge):
        eio.decode_payload("4" + "x" * 10, max_payload=10)
    assert len(_read([b"\x1e".join([b"2"] * 16)], max_packets=16)) == 16
    with pytest.raises(TooManyPackets):
        _read([b"\x1e".join([b"2"] * 17)], max_packets=16)
    with pytest.raises(PayloadTooLarge):
        _read([b"4" + b"x" * 9, b"x"], max_payload=10)


def test_payload_reader_refuses_separators_before_splitting() -> None:
    # A body of a million separators is refused from the count alone.
    reader = PayloadReader(max_packets=16, max_payload=2_000_000)
    with pytest.raises(TooManyPackets):
        reader.feed(b"\x1e" * 1_000_000)


def test_payload_reader_counts_packets_across_chunks() -> None:
    reader = PayloadReader(max_packets=3)
    assert reader.feed(b"2\x1e") == [EioPacket(EioType.PING)]
    assert reader.feed(b"3\x1e") == [EioPacket(EioType.PONG)]
    with pytest.raises(TooManyPackets):
        reader.feed(b"6\x1e")


def test_payload_reader_refuses_invalid_utf8() -> None:
    with pytest.raises(InvalidEncoding):
        _read([b"4\xff"])
    with pytest.raises(InvalidEncoding):
        _read([b"4\xe2\x82"])  # truncated at the end of the body
    with pytest.raises(InvalidEncoding):
        _read([b"4\xed\xa0\x80"])  # an encoded surrogate is not UTF-8


def test_empty_body_is_an_empty_packet() -> None:
    with pytest.raises(EmptyPacket):
        _read([])
    with pytest.raises(EmptyPacket):
        eio.decode_payload("")


# ------------------------------------------------------------------ handshake


@pytest.mark.parametrize("case", HANDSHAKES, ids=ids)
def test_encode_open(case: Case) -> None:
    assert eio.encode_open(handshake(case.data["handshake"])) == case.data["encoded"]


@pytest.mark.parametrize("case", HANDSHAKES, ids=ids)
def test_decode_open(case: Case) -> None:
    packet = eio.decode_ws(case.data["encoded"])
    assert packet.type is EioType.OPEN
    assert isinstance(packet.data, str)
    assert eio.decode_open(packet.data) == handshake(case.data["handshake"])
    # The document prints the handshake indented; whitespace is still JSON.
    assert eio.decode_open(json.dumps(case.data["handshake"], indent=2)) == handshake(
        case.data["handshake"]
    )


@pytest.mark.parametrize("case", HANDSHAKES, ids=ids)
def test_open_prefixes_and_trailing_garbage(case: Case) -> None:
    data = case.data["encoded"][1:]
    for cut in range(len(data)):  # every proper prefix is cut-off JSON
        with pytest.raises(InvalidHandshake):
            eio.decode_open(data[:cut])
    for garbage in ["x", "}", ",", "{}", "\x00"]:
        with pytest.raises(InvalidHandshake):
            eio.decode_open(data + garbage)


def test_decode_open_defaults() -> None:
    # upgrades and maxPayload are optional in what we accept (older servers).
    hs = eio.decode_open('{"sid":"a","pingInterval":1,"pingTimeout":2}')
    assert hs == eio.Handshake("a", (), 1, 2, 1_000_000)


@pytest.mark.parametrize(
    "data",
    [
        "",
        "null",
        "[]",
        '"sid"',
        "{",
        '{"sid":"","pingInterval":1,"pingTimeout":1}',
        '{"sid":1,"pingInterval":1,"pingTimeout":1}',
        '{"pingInterval":1,"pingTimeout":1}',
        '{"sid":"a","pingTimeout":1}',
        '{"sid":"a","pingInterval":"1","pingTimeout":1}',
        '{"sid":"a","pingInterval":true,"pingTimeout":1}',
        '{"sid":"a","pingInterval":1.5,"pingTimeout":1}',
        '{"sid":"a","pingInterval":-1,"pingTimeout":1}',
        '{"sid":"a","pingInterval":1,"pingTimeout":1,"maxPayload":null}',
        '{"sid":"a","pingInterval":1,"pingTimeout":1,"upgrades":"websocket"}',
        '{"sid":"a","pingInterval":1,"pingTimeout":1,"upgrades":[1]}',
        '{"sid":"a","pingInterval":NaN,"pingTimeout":1}',
        '{"sid":"a","pingInterval":1' + "0" * 30 + ',"pingTimeout":1}',
        '{"sid":"a","x":' + "[" * 100 + "]" * 100 + "}",
    ],
)
def test_decode_open_refuses(data: str) -> None:
    with pytest.raises(InvalidHandshake):
        eio.decode_open(data)
