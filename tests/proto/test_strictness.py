"""Every malformed-input rule, each with the specific exception it must raise.

The rules are those of /work/shared/reference/user-demands.md section 4 that
the sans-I/O core owns (packet syntax, limits, binary reassembly), plus the
reference parsers' own checks (socket.io-parser 4.2.7, engine.io-parser 5.2.3,
socket.io-msgpack-parser 3.0.2). One parametrized case per rule and input.
"""

# The tables keep one case per line, however long, so each rule reads as one row.
# ruff: noqa: E501

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from triosio import (
    AttachmentMismatch,
    EmptyPacket,
    IntegerTooLong,
    InvalidAckId,
    InvalidAckPayload,
    InvalidAttachmentCount,
    InvalidConnectErrorPayload,
    InvalidConnectPayload,
    InvalidDisconnectPayload,
    InvalidEncoding,
    InvalidEventName,
    InvalidEventPayload,
    InvalidJSON,
    InvalidNamespace,
    InvalidPlaceholder,
    LocalProtocolError,
    NestingTooDeep,
    PayloadTooLarge,
    ProtocolError,
    RemoteProtocolError,
    ReservedEventName,
    TooManyPackets,
    UnknownPacketType,
)
from triosio._proto import _json, eio
from triosio._proto.eio import PayloadReader
from triosio._proto.msgpack_parser import MsgpackDecoder
from triosio._proto.sio import RESERVED_EVENTS, JSONDecoder, Limits, SioPacket, SioType


def _ph(num: Any) -> str:
    return '{"_placeholder":true,"num":' + num + "}"


# (rule, messages fed in order (the last must raise), limits, expected exception)
JSON_CASES: list[tuple[str, list[str | bytes], dict[str, int], type[RemoteProtocolError]]] = [
    ("unknown type 7", ["7"], {}, UnknownPacketType),
    ("unknown type 9 with data", ['9["a"]'], {}, UnknownPacketType),
    ("unknown type letter", ['a["a"]'], {}, UnknownPacketType),
    ("unknown type: leading space", [' 2["a"]'], {}, UnknownPacketType),
    ("unknown type: non-ASCII digit", ['\u0662["a"]'], {}, UnknownPacketType),
    ("empty packet", [""], {}, EmptyPacket),
    ("namespace without /", ['2admin,["a"]'], {}, InvalidNamespace),
    ("namespace without / on CONNECT", ["0admin,{}"], {}, InvalidNamespace),
    ("ack id followed by junk", ['21x["a"]'], {}, InvalidAckId),
    ("ack id with a decimal point", ['21.5["a"]'], {}, InvalidAckId),
    ("ACK without an ack id", ['3["a"]'], {}, InvalidAckId),
    ("ack id of 17 digits", ["2" + "1" * 17 + '["a"]'], {}, InvalidAckId),
    ("ack id of 17 digits, leading zeros", ["2" + "0" * 16 + '1["a"]'], {}, InvalidAckId),
    ("ack id of 10**6 digits (CVE-2020-36049)", ["2" + "2" * 10**6], {"max_payload": 2 * 10**6}, InvalidAckId),
    ("ack id 2**53 + 1", [f"2{2**53 + 1}" + '["a"]'], {}, InvalidAckId),
    ("ack id 10**16", [f"2{10**16}" + '["a"]'], {}, InvalidAckId),
    ("invalid JSON: unterminated array", ['2["a"'], {}, InvalidJSON),
    ("invalid JSON: trailing comma", ['2["a",]'], {}, InvalidJSON),
    ("invalid JSON: bare word", ["2[a]"], {}, InvalidJSON),
    ("invalid JSON: single quotes", ["2['a']"], {}, InvalidJSON),
    ("invalid JSON: trailing data", ['2["a"]]'], {}, InvalidJSON),
    ("invalid JSON: two values", ['2["a"] ["b"]'], {}, InvalidJSON),
    ("invalid JSON: raw control character", ['2["a\x01"]'], {}, InvalidJSON),
    ("invalid JSON: leading zero", ['2["a",01]'], {}, InvalidJSON),
    ("invalid JSON: bad escape", ['2["\\x41"]'], {}, InvalidJSON),
    ("invalid JSON: NaN", ['2["a",NaN]'], {}, InvalidJSON),
    ("invalid JSON: Infinity", ['2["a",Infinity]'], {}, InvalidJSON),
    ("invalid JSON: -Infinity", ['2["a",-Infinity]'], {}, InvalidJSON),
    ("invalid JSON: number overflowing to infinity", ['2["a",1e400]'], {}, InvalidJSON),
    ("invalid JSON: long number overflowing", ['2["a",' + "9" * 99 + "." + "9" * 400 + "e300]"], {}, InvalidJSON),
    ("invalid JSON after the header", ["2/admin,x"], {}, InvalidJSON),
    ("whitespace between header and payload", ['2 ["a"]'], {}, InvalidJSON),
    ("nesting deeper than max_depth=3", ['2["a",[[[1]]]]'], {"max_depth": 3}, NestingTooDeep),
    ("objects deeper than max_depth=3", ['2["a",{"b":{"c":{}}}]'], {"max_depth": 3}, NestingTooDeep),
    ("nesting deeper than the default 32", ["2[" + "[" * 32 + "]" * 32 + "]"], {}, NestingTooDeep),
    ("100k nested [", ["2" + "[" * 100_000], {}, NestingTooDeep),
    ("100k nested [ balanced", ["2" + "[" * 100_000 + "]" * 100_000], {"max_payload": 300_000}, NestingTooDeep),
    ("integer above max_int_digits=5", ['2["a",123456]'], {"max_int_digits": 5}, IntegerTooLong),
    ("negative integer above max_int_digits=5", ['2["a",-123456]'], {"max_int_digits": 5}, IntegerTooLong),
    ("integer of 101 digits", ['2["a",' + "1" * 101 + "]"], {}, IntegerTooLong),
    ("integer of 10**6 digits", ['2["a",' + "7" * 10**6 + "]"], {"max_payload": 2 * 10**6}, IntegerTooLong),
    ("integer in a key-value of 101 digits", ['0{"a":' + "1" * 101 + "}"], {}, IntegerTooLong),
    ("EVENT without payload", ["2"], {}, InvalidEventPayload),
    ("EVENT with ack id, no payload", ["21"], {}, InvalidEventPayload),
    ("EVENT with empty array", ["2[]"], {}, InvalidEventPayload),
    ("EVENT with an object", ['2{"a":1}'], {}, InvalidEventPayload),
    ("EVENT with a string (indexed as a list elsewhere)", ['2"abc"'], {}, InvalidEventPayload),
    ("EVENT with null", ["2null"], {}, InvalidEventPayload),
    ("EVENT with a number", ["2/admin,5"], {}, InvalidEventPayload),
    ("event name a number", ['2[1,"a"]'], {}, InvalidEventName),
    ("event name null", ["2[null]"], {}, InvalidEventName),
    ("event name an object (CVE-2023-32695)", ['2[{"toString":"foo"}]'], {}, InvalidEventName),
    ("event name an array", ['2[["a"]]'], {}, InvalidEventName),
    ("event name true", ["2[true]"], {}, InvalidEventName),
    *[(f"reserved event {name}", [f'2["{name}"]'], {}, ReservedEventName) for name in sorted(RESERVED_EVENTS)],
    ("reserved event with args (python-socketio gap)", ['2["connect",{"a":1}]'], {}, ReservedEventName),
    ("reserved event in a namespace with ack id", ['2/admin,3["disconnect","x"]'], {}, ReservedEventName),
    ("reserved event in a binary event", ['51-["disconnecting",' + _ph("0") + "]"], {}, ReservedEventName),
    ("CONNECT with an array", ["0[]"], {}, InvalidConnectPayload),
    ("CONNECT with a string", ['0"token"'], {}, InvalidConnectPayload),
    ("CONNECT with null", ["0null"], {}, InvalidConnectPayload),
    ("CONNECT with true", ["0/admin,true"], {}, InvalidConnectPayload),
    ("DISCONNECT with an object", ["1{}"], {}, InvalidDisconnectPayload),
    ("DISCONNECT with null", ["1null"], {}, InvalidDisconnectPayload),
    ("DISCONNECT with a payload in a namespace", ['1/admin,"x"'], {}, InvalidDisconnectPayload),
    ("CONNECT_ERROR without payload", ["4"], {}, InvalidConnectErrorPayload),
    ("CONNECT_ERROR with an array", ['4["a"]'], {}, InvalidConnectErrorPayload),
    ("CONNECT_ERROR with a number", ["4/admin,7"], {}, InvalidConnectErrorPayload),
    ("ACK with an object", ['31{"a":1}'], {}, InvalidAckPayload),
    ("ACK without payload", ["31"], {}, InvalidAckPayload),
    ("attachment count letters", ['5a-["a",' + _ph("0") + "]"], {}, InvalidAttachmentCount),
    ("attachment count empty", ['5-["a",' + _ph("0") + "]"], {}, InvalidAttachmentCount),
    ("attachment count without dash", ['51["a",' + _ph("0") + "]"], {}, InvalidAttachmentCount),
    ("attachment count with a space", ['5 1-["a",' + _ph("0") + "]"], {}, InvalidAttachmentCount),
    ("attachment count non-ASCII digit", ['5\u0661-["a",' + _ph("0") + "]"], {}, InvalidAttachmentCount),
    ("attachment count negative", ['5-1-["a",' + _ph("0") + "]"], {}, InvalidAttachmentCount),
    ("attachment count zero", ['50-["a"]'], {}, InvalidAttachmentCount),
    ("attachment count 11 (default max 10)", ['611-1["a"]'], {}, InvalidAttachmentCount),
    ("attachment count 3 (max_attachments=2)", ['53-["a"]'], {"max_attachments": 2}, InvalidAttachmentCount),
    ("attachment count 10**11", ["5" + "1" * 12 + '-["a"]'], {}, InvalidAttachmentCount),
    ("attachment count of 10**6 digits", ["5" + "9" * 10**6 + '-["a"]'], {"max_payload": 2 * 10**6}, InvalidAttachmentCount),
    ("placeholder num a string (CVE-2022-2421)", ['51-["hello",{"_placeholder":true,"num":"splice"}]'], {}, InvalidPlaceholder),
    ("placeholder num true", ['51-["a",' + _ph("true") + "]"], {}, InvalidPlaceholder),
    ("placeholder num false", ['51-["a",' + _ph("false") + "]"], {}, InvalidPlaceholder),
    ("placeholder num a float", ['51-["a",' + _ph("0.0") + "]"], {}, InvalidPlaceholder),
    ("placeholder num null", ['51-["a",' + _ph("null") + "]"], {}, InvalidPlaceholder),
    ("placeholder num missing", ['51-["a",{"_placeholder":true}]'], {}, InvalidPlaceholder),
    ("placeholder num -1", ['51-["a",' + _ph("-1") + "]"], {}, InvalidPlaceholder),
    ("placeholder num = count", ['51-["a",' + _ph("1") + "]"], {}, InvalidPlaceholder),
    ("placeholder num huge", ['51-["a",' + _ph("9" * 50) + "]"], {}, InvalidPlaceholder),
    ("placeholders fewer than attachments", ['52-["a",' + _ph("0") + "]"], {}, AttachmentMismatch),
    ("no placeholder at all", ['51-["a"]'], {}, AttachmentMismatch),
    ("placeholder used twice", ['52-["a",' + _ph("0") + "," + _ph("0") + "]"], {}, AttachmentMismatch),
    ("placeholders more than attachments", ['51-["a",' + _ph("0") + "," + _ph("0") + "]"], {}, AttachmentMismatch),
    ("text packet above max_payload=10", ['2["abcdefghi"]'], {"max_payload": 10}, PayloadTooLarge),
    ("attachment above max_attachment_bytes=4", ['51-["a",' + _ph("0") + "]", b"12345"], {"max_attachment_bytes": 4}, PayloadTooLarge),
    ("attachments together above max_attachment_bytes=4", ['52-["a",' + _ph("0") + "," + _ph("1") + "]", b"123", b"45"], {"max_attachment_bytes": 4}, PayloadTooLarge),
    ("binary frame with nothing pending", [b"\x01\x02"], {}, AttachmentMismatch),
    ("binary frame after a complete binary packet", ['51-["a",' + _ph("0") + "]", b"1", b"2"], {}, AttachmentMismatch),
    ("text while attachments are pending", ['52-["a",' + _ph("0") + "," + _ph("1") + "]", b"1", '2["b"]'], {}, AttachmentMismatch),
]  # fmt: skip


@pytest.mark.parametrize(
    ("messages", "limits", "error"),
    [case[1:] for case in JSON_CASES],
    ids=[case[0] for case in JSON_CASES],
)
def test_json_decoder_refuses(
    messages: list[str | bytes], limits: dict[str, int], error: type[RemoteProtocolError]
) -> None:
    decoder = JSONDecoder(Limits(**limits))
    *before, last = messages
    for message in before:
        decoder.feed(message)  # accepted: only the last message is at fault
    with pytest.raises(error):
        decoder.feed(last)
    assert not decoder.pending  # an error leaves nothing behind


@pytest.mark.parametrize(
    ("message", "limits", "expected"),
    [
        (f"2{2**53}" + '["a"]', {}, SioPacket(SioType.EVENT, "/", ["a"], 2**53)),
        ("2" + "0" * 15 + '1["a"]', {}, SioPacket(SioType.EVENT, "/", ["a"], 1)),
        ('2["a",[[1]]]', {"max_depth": 3}, SioPacket(SioType.EVENT, "/", ["a", [[1]]])),
        ('2["[[[[{{{{"]', {"max_depth": 1}, SioPacket(SioType.EVENT, "/", ["[[[[{{{{"])),
        ('2["\\"[[[["]', {"max_depth": 1}, SioPacket(SioType.EVENT, "/", ['"[[[['])),
        ('2["a",12345]', {"max_int_digits": 5}, SioPacket(SioType.EVENT, "/", ["a", 12345])),
        ('2["a",-12345]', {"max_int_digits": 5}, SioPacket(SioType.EVENT, "/", ["a", -12345])),
        ('2["a",1.5e300]', {}, SioPacket(SioType.EVENT, "/", ["a", 1.5e300])),
        ('2["a",' + "1" * 200 + ".5]", {}, SioPacket(SioType.EVENT, "/", ["a", float("1" * 200 + ".5")])),
        ('2["abcdefgh"]', {"max_payload": 13}, SioPacket(SioType.EVENT, "/", ["abcdefgh"])),
        ('2["a"] ', {}, SioPacket(SioType.EVENT, "/", ["a"])),  # JSON.parse allows it
        ('2["error"]', {}, SioPacket(SioType.EVENT, "/", ["error"])),
        ('2["a",' + _ph("0") + "]", {}, SioPacket(SioType.EVENT, "/", ["a", {"_placeholder": True, "num": 0}])),
        ('2["a",{"_placeholder":1,"num":0}]', {}, SioPacket(SioType.EVENT, "/", ["a", {"_placeholder": 1, "num": 0}])),
        ("0/admin", {}, SioPacket(SioType.CONNECT, "/admin")),
        ("0/admin,", {}, SioPacket(SioType.CONNECT, "/admin")),
        ('4"Not authorized"', {}, SioPacket(SioType.CONNECT_ERROR, "/", "Not authorized")),
    ],
)  # fmt: skip
def test_json_decoder_accepts_the_edges(
    message: str, limits: dict[str, int], expected: SioPacket
) -> None:
    # The other side of each limit: exactly at it, or look-alikes that are fine.
    assert JSONDecoder(Limits(**limits)).feed(message) == expected


def test_placeholders_are_checked_before_any_attachment_is_buffered() -> None:
    decoder = JSONDecoder()
    with pytest.raises(InvalidPlaceholder):
        decoder.feed('51-["hello",{"_placeholder":true,"num":"splice"}]')
    assert not decoder.pending


def test_reset_keeps_nothing() -> None:
    decoder = JSONDecoder(Limits(max_attachment_bytes=4))
    assert decoder.feed('52-["a",' + _ph("0") + "," + _ph("1") + "]") is None
    assert decoder.feed(b"123") is None
    assert decoder.pending
    decoder.reset()
    assert not decoder.pending
    # The pending packet and its attachment are gone: a binary frame is stray now...
    with pytest.raises(AttachmentMismatch):
        decoder.feed(b"4")
    # ...the byte count started again (4 bytes fit), and a new packet decodes alone.
    assert decoder.feed('51-["b",' + _ph("0") + "]") is None
    assert decoder.feed(b"5678") == SioPacket(SioType.EVENT, "/", ["b", b"5678"])
    assert decoder.feed('2["c"]') == SioPacket(SioType.EVENT, "/", ["c"])


def test_an_error_resets_the_decoder() -> None:
    decoder = JSONDecoder()
    assert decoder.feed('51-["a",' + _ph("0") + "]") is None
    with pytest.raises(AttachmentMismatch):
        decoder.feed('2["b"]')
    assert not decoder.pending
    assert decoder.feed('2["b"]') == SioPacket(SioType.EVENT, "/", ["b"])


def test_every_error_is_a_remote_protocol_error() -> None:
    for _, _, _, error in JSON_CASES:
        assert issubclass(error, RemoteProtocolError)
        assert issubclass(error, ProtocolError)
        assert not issubclass(error, LocalProtocolError)


# ------------------------------------------------------------------ msgpack


def _pack(**fields: Any) -> bytes:
    result: bytes = msgpack.packb(fields, use_bin_type=True)
    return result


def _deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


MSGPACK_CASES: list[tuple[str, bytes | str, dict[str, int], type[RemoteProtocolError]]] = [
    ("empty packet", b"", {}, EmptyPacket),
    ("unknown type 7", _pack(type=7, nsp="/", data=["a"]), {}, UnknownPacketType),
    ("BINARY_EVENT is not a msgpack type", _pack(type=5, nsp="/", data=["a"]), {}, UnknownPacketType),
    ("BINARY_ACK is not a msgpack type", _pack(type=6, nsp="/", data=[], id=1), {}, UnknownPacketType),
    ("type -1", _pack(type=-1, nsp="/"), {}, UnknownPacketType),
    ("type a string", _pack(type="2", nsp="/", data=["a"]), {}, UnknownPacketType),
    ("type true", _pack(type=True, nsp="/"), {}, UnknownPacketType),
    ("type a float", _pack(type=2.0, nsp="/", data=["a"]), {}, UnknownPacketType),
    ("type missing", _pack(nsp="/", data=["a"]), {}, UnknownPacketType),
    ("namespace without /", _pack(type=2, nsp="admin", data=["a"]), {}, InvalidNamespace),
    ("namespace missing", _pack(type=2, data=["a"]), {}, InvalidNamespace),
    ("namespace not a string", _pack(type=2, nsp=1, data=["a"]), {}, InvalidNamespace),
    ("namespace as bytes", _pack(type=2, nsp=b"/", data=["a"]), {}, InvalidNamespace),
    ("ack id a string", _pack(type=2, nsp="/", data=["a"], id="1"), {}, InvalidAckId),
    ("ack id a float", _pack(type=2, nsp="/", data=["a"], id=1.5), {}, InvalidAckId),
    ("ack id true", _pack(type=2, nsp="/", data=["a"], id=True), {}, InvalidAckId),
    ("ack id negative", _pack(type=2, nsp="/", data=["a"], id=-1), {}, InvalidAckId),
    ("ack id 2**53 + 1", _pack(type=2, nsp="/", data=["a"], id=2**53 + 1), {}, InvalidAckId),
    ("ACK without an ack id", _pack(type=3, nsp="/", data=[]), {}, InvalidAckId),
    ("not msgpack: reserved byte", b"\xc1", {}, InvalidEncoding),
    ("not msgpack: truncated map", b"\x82\xa4type", {}, InvalidEncoding),
    ("not msgpack: trailing data", _pack(type=2, nsp="/", data=["a"]) + b"\x00", {}, InvalidEncoding),
    ("not a map", msgpack.packb([2, "/", ["a"]]), {}, InvalidEncoding),
    ("invalid UTF-8 in a string", b"\x83\xa4type\x02\xa3nsp\xa1/\xa4data\x91\xa2\xff\xfe", {}, InvalidEncoding),
    ("unknown extension type", b"\x83\xa4type\x02\xa3nsp\xa1/\xa4data\x92\xa1a\xd4\x07\x00", {}, InvalidEncoding),
    ("unhashable map key", b"\x84\xa4type\x02\xa3nsp\xa1/\xa4data\x91\xa1a\x81\x90\x01", {}, InvalidEncoding),
    ("nesting deeper than max_depth=3", _pack(type=2, nsp="/", data=["a", _deep(3)]), {"max_depth": 3}, NestingTooDeep),
    ("nesting 100k levels", b"\x83\xa4type\x02\xa3nsp\xa1/\xa4data" + b"\x91" * 100_000 + b"\x01", {}, NestingTooDeep),
    ("EVENT without data", _pack(type=2, nsp="/"), {}, InvalidEventPayload),
    ("EVENT with empty array", _pack(type=2, nsp="/", data=[]), {}, InvalidEventPayload),
    ("EVENT with a map", _pack(type=2, nsp="/", data={"a": 1}), {}, InvalidEventPayload),
    ("event name a number", _pack(type=2, nsp="/", data=[1]), {}, InvalidEventName),
    ("event name bytes", _pack(type=2, nsp="/", data=[b"a"]), {}, InvalidEventName),
    *[(f"reserved event {name}", _pack(type=2, nsp="/", data=[name]), {}, ReservedEventName) for name in sorted(RESERVED_EVENTS)],
    ("CONNECT with an array", _pack(type=0, nsp="/", data=[]), {}, InvalidConnectPayload),
    ("CONNECT with a string", _pack(type=0, nsp="/", data="t"), {}, InvalidConnectPayload),
    ("DISCONNECT with a payload", _pack(type=1, nsp="/", data={}), {}, InvalidDisconnectPayload),
    ("CONNECT_ERROR with an array", _pack(type=4, nsp="/", data=[]), {}, InvalidConnectErrorPayload),
    ("ACK with a map", _pack(type=3, nsp="/", data={}, id=1), {}, InvalidAckPayload),
    ("packet above the size limit", _pack(type=2, nsp="/", data=["a" * 20]), {"max_payload": 10, "max_attachment_bytes": 0}, PayloadTooLarge),
    ("a text message", '2["a"]', {}, AttachmentMismatch),
]  # fmt: skip


@pytest.mark.parametrize(
    ("message", "limits", "error"),
    [case[1:] for case in MSGPACK_CASES],
    ids=[case[0] for case in MSGPACK_CASES],
)
def test_msgpack_decoder_refuses(
    message: bytes | str, limits: dict[str, int], error: type[RemoteProtocolError]
) -> None:
    with pytest.raises(error):
        MsgpackDecoder(Limits(**limits)).feed(message)


def test_msgpack_nil_is_absent() -> None:
    # python-socketio's msgpack packets carry "data": nil and "id": nil.
    packet = MsgpackDecoder().feed(_pack(type=1, nsp="/", data=None, id=None))
    assert packet == SioPacket(SioType.DISCONNECT)


# ------------------------------------------------------------------ Engine.IO

EIO_CASES: list[tuple[str, Any, type[RemoteProtocolError]]] = [
    ("empty text frame", lambda: eio.decode_ws(""), EmptyPacket),
    ("unknown type 7", lambda: eio.decode_ws("7"), UnknownPacketType),
    ("unknown type letter", lambda: eio.decode_ws("x"), UnknownPacketType),
    ("'b' is for payloads, not frames", lambda: eio.decode_ws("bAQID"), UnknownPacketType),
    ("frame above max_payload", lambda: eio.decode_ws("4abc", max_payload=3), PayloadTooLarge),
    ("empty record in a payload", lambda: eio.decode_payload("4a\x1e\x1e4b"), EmptyPacket),
    ("unknown type in a payload", lambda: eio.decode_payload("4a\x1e9"), UnknownPacketType),
    ("invalid base64 letters", lambda: eio.decode_payload("b!!!!"), InvalidEncoding),
    ("invalid base64 padding", lambda: eio.decode_payload("bAQIDBA="), InvalidEncoding),
    ("invalid base64 non-ASCII", lambda: eio.decode_payload("bAQ\u20acD"), InvalidEncoding),
    ("invalid base64 whitespace", lambda: eio.decode_payload("bAQID BA=="), InvalidEncoding),
    ("too many packets per payload", lambda: eio.decode_payload("\x1e".join("2" * 17), max_packets=16), TooManyPackets),
    ("payload above max_payload", lambda: eio.decode_payload("4abc", max_payload=3), PayloadTooLarge),
    ("reader: invalid UTF-8", lambda: PayloadReader().feed(b"4\xc3\x28"), InvalidEncoding),
    ("reader: too many packets", lambda: PayloadReader(max_packets=2).feed(b"2\x1e2\x1e2"), TooManyPackets),
    ("reader: above max_payload", lambda: PayloadReader(max_payload=3).feed(b"4abc"), PayloadTooLarge),
    ("reader: invalid base64", lambda: PayloadReader().feed(b"b!!!!\x1e"), InvalidEncoding),
]  # fmt: skip


@pytest.mark.parametrize(
    ("call", "error"), [case[1:] for case in EIO_CASES], ids=[case[0] for case in EIO_CASES]
)
def test_engineio_refuses(call: Any, error: type[RemoteProtocolError]) -> None:
    with pytest.raises(error):
        call()


def test_reader_truncated_utf8_at_close() -> None:
    reader = PayloadReader()
    assert reader.feed(b"4\xe2\x82") == []  # may still complete
    with pytest.raises(InvalidEncoding):
        reader.close()


# ------------------------------------------------------------------ encoding


@pytest.mark.parametrize(
    "value",
    [float("nan"), float("inf"), float("-inf"), [1, float("nan")], {"a": float("inf")}],
    ids=repr,
)
def test_json_encoder_refuses_nan_and_infinity(value: Any) -> None:
    with pytest.raises(LocalProtocolError):
        _json.dumps(value)
    with pytest.raises(LocalProtocolError):
        _json.dumps_binary([value, b"x"])
    with pytest.raises(LocalProtocolError):
        _json.js_number(float("nan"))
