"""Property tests: round trips, and "any input only ever raises ProtocolError".

Plus the bounds: no input of bounded size makes a decoder recurse without
bound, loop for long, or buffer more than its limits allow.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from triosio import (
    AttachmentMismatch,
    IntegerTooLong,
    InvalidAttachmentCount,
    InvalidHandshake,
    NestingTooDeep,
    PayloadTooLarge,
    ProtocolError,
    TooManyPackets,
)
from triosio._proto import eio
from triosio._proto.eio import EioPacket, EioType, PayloadReader
from triosio._proto.msgpack_parser import MsgpackDecoder, MsgpackEncoder
from triosio._proto.sio import (
    RESERVED_EVENTS,
    JSONDecoder,
    JSONEncoder,
    Limits,
    SioPacket,
    SioType,
)

# Room for the nesting hypothesis can build; the depth limit has its own tests.
DEEP = Limits(max_depth=200)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ROUND_TRIP = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ------------------------------------------------------------------ strategies

# Text without surrogates: a Python str holding a high then a low surrogate is
# one character to JavaScript, so it cannot round-trip as two. Lone surrogates
# do round-trip (escaped as \udXXX), so a few are mixed in on their own.
texts = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["\ud800", "x\udfff", "\udc00y\ud800", "\u2028", "\x00\x1f\x7f"]),
)
json_numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
)
# msgpack strings are UTF-8, which has no lone surrogates, and its integers are
# 64-bit: the encoder refuses the rest (LocalProtocolError).
utf8_texts = st.text(max_size=20)
msgpack_numbers = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
)


def _containers(keys: st.SearchStrategy[str]) -> Any:
    def extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.one_of(
            st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)
        )

    return extend


def values(text: st.SearchStrategy[str], *, binary: bool) -> st.SearchStrategy[Any]:
    """JSON-like values, with bytes anywhere (in lists, in dicts, nested) if ``binary``."""
    numbers = msgpack_numbers if text is utf8_texts else json_numbers
    scalars = st.one_of(st.none(), st.booleans(), numbers, text)
    if binary:
        scalars = st.one_of(scalars, st.binary(max_size=16))
    return st.recursive(scalars, _containers(text), max_leaves=12)


json_values = values(texts, binary=False)
namespaces = st.one_of(
    st.just("/"), st.text(max_size=10).filter(lambda s: "," not in s).map(lambda s: "/" + s)
)
ack_ids = st.integers(min_value=0, max_value=2**53)


def packets(text: st.SearchStrategy[str] = texts) -> st.SearchStrategy[SioPacket]:
    """Valid packets of every type; EVENT/ACK arguments hold bytes at any depth."""
    objects = st.dictionaries(text, values(text, binary=False), max_size=4)
    arg_lists = st.lists(values(text, binary=True), max_size=4)
    return st.one_of(
        st.builds(
            lambda nsp, auth: SioPacket(SioType.CONNECT, nsp, auth),
            namespaces,
            st.none() | objects,
        ),
        st.builds(lambda nsp: SioPacket(SioType.DISCONNECT, nsp), namespaces),
        st.builds(
            lambda nsp, name, rest, pid: SioPacket(SioType.EVENT, nsp, [name, *rest], pid),
            namespaces,
            text.filter(lambda s: s not in RESERVED_EVENTS),
            arg_lists,
            st.none() | ack_ids,
        ),
        st.builds(
            lambda nsp, rest, pid: SioPacket(SioType.ACK, nsp, rest, pid),
            namespaces,
            arg_lists,
            ack_ids,
        ),
        st.builds(
            lambda nsp, err: SioPacket(SioType.CONNECT_ERROR, nsp, err),
            namespaces,
            text | objects,
        ),
    )


eio_text_packets = st.builds(EioPacket, st.sampled_from(list(EioType)), st.text(max_size=30))
eio_packets = st.one_of(
    eio_text_packets, st.builds(lambda b: EioPacket(EioType.MESSAGE, b), st.binary(max_size=30))
)
# Characters of the text formats, so fuzzing reaches past the first checks.
protocol_text = st.text(
    alphabet=st.sampled_from(list('0123456789-/,[]{}":_placeholdernumtrfalsx \x1e\\\u20ac')),
    max_size=60,
)


def js_equal(a: Any, b: Any) -> bool:
    """Equality as JavaScript sees the values: every number is a double.

    JSON.stringify writes the float 4e16 as ``40000000000000000``, which reads back
    as a Python int; JavaScript cannot tell the two apart, and neither may we.
    """
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, int | float) and isinstance(b, int | float) and float(a) == float(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(js_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(js_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and bool(a == b)


def same_packet(a: SioPacket, b: SioPacket) -> bool:
    """Packets equal field by field, the data compared by :func:`js_equal`."""
    return (a.type, a.nsp, a.id) == (b.type, b.nsp, b.id) and js_equal(a.data, b.data)


def _decode_all(decoder: JSONDecoder | MsgpackDecoder, parts: list[str | bytes]) -> SioPacket:
    *head, last = parts
    for part in head:
        assert decoder.feed(part) is None
    result = decoder.feed(last)
    assert result is not None
    assert not decoder.pending
    return result


# ------------------------------------------------------------------ round trips


@ROUND_TRIP
@given(packets())
def test_json_parser_round_trip(packet: SioPacket) -> None:
    parts = JSONEncoder().encode(packet)
    assert same_packet(_decode_all(JSONDecoder(DEEP), parts), packet)


@ROUND_TRIP
@given(packets())
def test_json_parser_attachments_match_placeholders(packet: SioPacket) -> None:
    text, *attachments = JSONEncoder().encode(packet)
    assert isinstance(text, str)
    binary = text[0] in "56"
    assert binary == bool(attachments)
    if binary:
        assert text.startswith(f"{text[0]}{len(attachments)}-")
        assert text.count('"_placeholder":true') >= len(attachments)


@ROUND_TRIP
@given(packets(utf8_texts))
def test_msgpack_parser_round_trip(packet: SioPacket) -> None:
    (encoded,) = MsgpackEncoder().encode(packet)
    assert isinstance(encoded, bytes)
    assert MsgpackDecoder(DEEP).feed(encoded) == packet


@ROUND_TRIP
@given(eio_packets)
def test_websocket_round_trip(packet: EioPacket) -> None:
    assert eio.decode_ws(eio.encode_ws(packet)) == packet


no_separator = eio_packets.filter(lambda p: isinstance(p.data, bytes) or "\x1e" not in p.data)


@ROUND_TRIP
@given(st.lists(no_separator, min_size=1, max_size=8), st.data())
def test_payload_round_trip(packets_: list[EioPacket], data: st.DataObject) -> None:
    body = eio.encode_payload(packets_)
    assert eio.decode_payload(body) == packets_
    raw = body.encode("utf-8")
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=6)))
    reader = PayloadReader(max_packets=8)
    out: list[EioPacket] = []
    for start, end in zip([0, *cuts], [*cuts, len(raw)], strict=True):
        out += reader.feed(raw[start:end])
    assert out + reader.close() == packets_


# ------------------------------------------------------------------ fuzzing


@FUZZ
@given(st.lists(st.one_of(protocol_text, st.text(max_size=30), st.binary(max_size=8)), max_size=5))
def test_json_decoder_raises_only_protocol_errors(messages: list[str | bytes]) -> None:
    decoder = JSONDecoder(Limits(max_depth=4, max_int_digits=5, max_attachments=3))
    for message in messages:
        try:
            result = decoder.feed(message)
        except ProtocolError:
            assert not decoder.pending
            continue
        assert result is None or isinstance(result, SioPacket)


@FUZZ
@given(packets(), st.integers(0, 200), st.text(max_size=3))
def test_json_decoder_mutated_packets(packet: SioPacket, where: int, insert: str) -> None:
    # A valid packet with a few characters spliced in, to reach the deep paths.
    text, *attachments = JSONEncoder().encode(packet)
    assert isinstance(text, str)
    where %= len(text) + 1
    decoder = JSONDecoder(DEEP)
    try:
        for message in [text[:where] + insert + text[where:], *attachments]:
            decoder.feed(message)
    except ProtocolError:
        assert not decoder.pending


msgpack_fields = st.fixed_dictionaries(
    {},
    optional={
        "type": st.one_of(st.integers(-2, 8), values(utf8_texts, binary=False)),
        "nsp": st.one_of(namespaces, values(utf8_texts, binary=True)),
        "data": values(utf8_texts, binary=True),
        "id": st.one_of(msgpack_numbers, values(utf8_texts, binary=False)),
    },
)


@FUZZ
@given(st.one_of(st.binary(max_size=40), msgpack_fields.map(msgpack.packb)))
def test_msgpack_decoder_raises_only_protocol_errors(message: bytes) -> None:
    try:
        result = MsgpackDecoder(Limits(max_depth=4)).feed(message)
    except ProtocolError:
        return
    assert isinstance(result, SioPacket)


@FUZZ
@given(st.one_of(st.text(max_size=40), protocol_text, st.binary(max_size=40)))
def test_decode_ws_raises_only_protocol_errors(frame: str | bytes) -> None:
    try:
        packet = eio.decode_ws(frame, max_payload=30)
    except ProtocolError:
        return
    assert isinstance(packet, EioPacket)


@FUZZ
@given(st.one_of(st.text(max_size=60), protocol_text))
def test_decode_payload_raises_only_protocol_errors(body: str) -> None:
    try:
        result = eio.decode_payload(body, max_packets=4, max_payload=50)
    except ProtocolError:
        return
    assert all(isinstance(p, EioPacket) for p in result)


@FUZZ
@given(st.lists(st.binary(max_size=12), max_size=6))
def test_payload_reader_raises_only_protocol_errors(chunks: list[bytes]) -> None:
    reader = PayloadReader(max_packets=4, max_payload=50)
    try:
        for chunk in chunks:
            reader.feed(chunk)
        reader.close()
    except ProtocolError:
        pass


@FUZZ
@given(
    st.one_of(
        st.text(max_size=60),
        protocol_text,
        st.dictionaries(
            st.sampled_from(["sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"]),
            json_values,
        ).map(lambda d: eio.dumps(d)),
    )
)
def test_decode_open_raises_only_invalid_handshake(data: str) -> None:
    try:
        handshake = eio.decode_open(data)
    except InvalidHandshake:
        return
    assert isinstance(handshake, eio.Handshake)


# ------------------------------------------------------------------ bounds


@contextmanager
def _fast(seconds: float = 2.0) -> Iterator[None]:
    """Fail if the block uses more than ``seconds`` of this process's CPU.

    Linear code takes milliseconds on these inputs, a quadratic parser minutes;
    CPU time, not wall-clock, so that other processes on a busy machine do
    not count.
    """
    start = time.process_time()
    yield
    elapsed = time.process_time() - start
    assert elapsed < seconds, f"took {elapsed:.2f} s of CPU"


BIG = Limits(max_payload=3_000_000)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("2" + "[" * 100_000, NestingTooDeep),
        ("2" + "{" * 100_000, ProtocolError),
        ('2["a",' + "{" * 100_000 + "]", ProtocolError),
        ("2" + "[" * 1_000_000 + "]" * 1_000_000, NestingTooDeep),
        ('2["a",' + "9" * 1_000_000 + "]", IntegerTooLong),
        ('2["a",0.' + "9" * 1_000_000 + "]", None),  # long but finite: parsed
        ("5" + "9" * 1_000_000 + '-["a"]', InvalidAttachmentCount),
        ("2" + "1" * 1_000_000, ProtocolError),
        ("2" + "[" * 40 + '"' + '\\"' * 1_000_000, ProtocolError),
        ("2" + "[" * 40 + '"a' * 1_000_000, ProtocolError),
        ('2["' + "\\u0041" * 400_000 + '"]', None),
    ],
    ids=[
        "100k [",
        "100k {",
        "100k { in args",
        "1M balanced []",
        "10**6-digit integer",
        "10**6-digit fraction",
        "10**6-digit attachment count",
        "10**6-digit ack id",
        "unterminated escaped quotes",
        "many unterminated strings",
        "many escapes",
    ],
)
def test_pathological_text_is_handled_fast(text: str, error: type[Exception] | None) -> None:
    decoder = JSONDecoder(BIG)
    with _fast():
        if error is None:
            assert decoder.feed(text) is not None
        else:
            with pytest.raises(error):
                decoder.feed(text)


def test_attachments_are_buffered_only_up_to_the_limit() -> None:
    decoder = JSONDecoder(Limits(max_attachments=10, max_attachment_bytes=3_000_000))
    placeholders = ",".join(f'{{"_placeholder":true,"num":{i}}}' for i in range(10))
    assert decoder.feed(f'510-["a",{placeholders}]') is None
    chunk = b"x" * 1_000_000
    for _ in range(3):
        assert decoder.feed(chunk) is None
    with pytest.raises(PayloadTooLarge):
        decoder.feed(chunk)
    assert not decoder.pending  # and the 3 MB are dropped


def test_huge_declared_attachment_count_buffers_nothing() -> None:
    decoder = JSONDecoder()
    with pytest.raises(InvalidAttachmentCount):
        decoder.feed('5999999999-["a"]')
    assert not decoder.pending
    with pytest.raises(AttachmentMismatch):
        decoder.feed(b"x")


@pytest.mark.parametrize(
    "message",
    [
        b"\xdd\xff\xff\xff\xff\x01",  # array of 2**32-1 items, 1 byte given
        b"\xdf\xff\xff\xff\xff\x01",  # map of 2**32-1 pairs
        b"\xc6\xff\xff\xff\xff\x01",  # bin of 4 GB
        b"\xdb\xff\xff\xff\xff\x01",  # str of 4 GB
        b"\x83\xa4type\x02\xa3nsp\xa1/\xa4data" + b"\x91" * 1_000_000 + b"\x01",
    ],
    ids=["array32", "map32", "bin32", "str32", "1M nested arrays"],
)
def test_msgpack_declared_sizes_allocate_nothing(message: bytes) -> None:
    with _fast(), pytest.raises(ProtocolError):
        MsgpackDecoder(BIG).feed(message)


def test_payload_reader_is_linear_in_tiny_chunks() -> None:
    body = b"4" + b"x" * 999_999
    reader = PayloadReader(max_payload=1_000_000)
    with _fast(3.0):
        for i in range(0, len(body), 1):
            reader.feed(body[i : i + 1])
        assert reader.close() == [EioPacket(EioType.MESSAGE, "x" * 999_999)]


def test_payload_reader_refuses_without_buffering() -> None:
    reader = PayloadReader(max_packets=16, max_payload=1_000)
    reader.feed(b"4" + b"x" * 999)
    with pytest.raises(PayloadTooLarge):
        reader.feed(b"x")
    with _fast(), pytest.raises(TooManyPackets):
        PayloadReader(max_packets=16, max_payload=10**7).feed(b"2\x1e" * 5_000_000)
