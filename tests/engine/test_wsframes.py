"""The server's WebSocket frame reader, checked against wsproto on generated frames."""

from __future__ import annotations

import struct

import pytest
from eio_peers import frame
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto import ConnectionType
from wsproto.connection import Connection
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage

from triosio._engine.wsframes import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    PONG,
    TEXT,
    Control,
    FrameError,
    FrameReader,
    unmask,
)


def ours(data: bytes, limit: int = 1 << 20) -> list[object]:
    reader = FrameReader(limit)
    reader.feed(data)
    out: list[object] = []
    try:
        while (item := reader.next()) is not None:
            out.append(item)
    except FrameError as exc:
        out.append(("error", exc.code))
    return out


def wsprotos(data: bytes) -> list[object]:
    conn = Connection(ConnectionType.SERVER)
    conn.receive_data(data)
    out: list[object] = []
    text: list[str] = []
    binary: list[bytes] = []
    for event in conn.events():
        if isinstance(event, TextMessage):
            text.append(event.data)
            if event.message_finished:
                out.append("".join(text))
                text = []
        elif isinstance(event, BytesMessage):
            binary.append(bytes(event.data))
            if event.message_finished:
                out.append(b"".join(binary))
                binary = []
        elif isinstance(event, Ping):
            out.append(Control(PING, bytes(event.payload)))
        elif isinstance(event, Pong):
            out.append(Control(PONG, bytes(event.payload)))
        elif isinstance(event, CloseConnection):
            if event.code in (1002, 1007) and conn.state.name != "REMOTE_CLOSING":
                out.append(("error", event.code))  # wsproto's way of reporting a bad frame
            else:
                out.append(("close", event.code, event.reason or ""))
            break
    return out


def normal(items: list[object]) -> list[object]:
    return [
        ("close", i.code, i.reason) if isinstance(i, Control) and i.opcode == CLOSE else i
        for i in items
    ]


def test_unmask_round_trips() -> None:
    data = bytes(range(256)) * 3 + b"x"
    mask = b"\xde\xad\xbe\xef"
    assert unmask(unmask(data, mask), mask) == data
    assert unmask(b"", mask) == b""
    assert unmask(b"\x00\x00\x00\x00\x00", mask) == mask + mask[:1]


def test_messages_controls_and_fragments() -> None:
    data = (
        frame(TEXT, "héllo".encode())
        + frame(BINARY, b"\x00\xff" * 100)
        + frame(PING, b"p")
        + frame(TEXT, b"frag", fin=False)
        + frame(PONG, b"")
        + frame(CONTINUATION, b"ment", fin=False)
        + frame(CONTINUATION, b"ed", fin=True)
        + frame(BINARY, b"x" * 70000)
        + frame(CLOSE, struct.pack("!H", 1000) + b"bye")
    )
    items = ours(data)
    assert items == [
        "héllo",
        b"\x00\xff" * 100,
        Control(PING, b"p"),
        Control(PONG, b""),
        "fragmented",
        b"x" * 70000,
        Control(CLOSE, struct.pack("!H", 1000) + b"bye", 1000, "bye"),
    ]
    assert normal(items) == normal(wsprotos(data))


def test_split_at_every_byte_gives_the_same_items() -> None:
    data = frame(TEXT, b"abc" * 50) + frame(PING, b"!") + frame(BINARY, b"\x01" * 300)
    for cut in range(len(data)):
        reader = FrameReader()
        items: list[object] = []
        for piece in (data[:cut], data[cut:]):
            reader.feed(piece)
            while (item := reader.next()) is not None:
                items.append(item)
        assert items == ["abc" * 50, Control(PING, b"!"), b"\x01" * 300]


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (frame(TEXT, b"x", masked=False), 1002),
        (frame(TEXT, b"x", rsv=0x40), 1002),
        (frame(0x3, b"x"), 1002),
        (frame(0xB, b"x"), 1002),
        (frame(PING, b"x" * 126), 1002),
        (frame(PING, b"x", fin=False), 1002),
        (frame(CONTINUATION, b"x"), 1002),
        (frame(TEXT, b"a", fin=False) + frame(TEXT, b"b"), 1002),
        (frame(TEXT, b"\xff\xfe"), 1007),
        (frame(TEXT, "é".encode()[:1]), 1007),
        (frame(CLOSE, b"\x03"), 1002),
        (frame(CLOSE, struct.pack("!H", 1005)), 1002),
        (frame(CLOSE, struct.pack("!H", 999)), 1002),
        (frame(CLOSE, struct.pack("!H", 1000) + b"\xff"), 1007),
        (frame(TEXT, b"short", wide=126), 1002),
        (frame(TEXT, b"x" * 200, wide=127), 1002),
    ],
)
def test_violations_close_with_the_right_code(data: bytes, code: int) -> None:
    assert ours(data)[-1] == ("error", code)


def test_too_big_is_refused_from_the_header() -> None:
    reader = FrameReader(max_message_size=1000)
    reader.feed(frame(BINARY, b"x" * 1001)[:12])  # the header only, no payload yet
    with pytest.raises(FrameError) as info:
        reader.next()
    assert info.value.code == 1009
    reader = FrameReader(max_message_size=1000)
    reader.feed(frame(TEXT, b"x" * 600, fin=False) + frame(CONTINUATION, b"x" * 600)[:4])
    with pytest.raises(FrameError):
        reader.next()


opcodes = st.sampled_from([TEXT, BINARY, PING, PONG])
frames = st.builds(
    lambda op, payload, mask: frame(op, payload[:125] if op >= CLOSE else payload, mask=mask),
    opcodes,
    st.binary(max_size=300),
    st.binary(min_size=4, max_size=4),
)
text_frames = st.builds(
    lambda text, mask: frame(TEXT, text.encode(), mask=mask),
    st.text(max_size=200),
    st.binary(min_size=4, max_size=4),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(frames, text_frames), max_size=8))
def test_same_as_wsproto_on_generated_frames(parts: list[bytes]) -> None:
    data = b"".join(parts)
    assert normal(ours(data)) == normal(wsprotos(data))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_raise_only_frame_errors(data: bytes) -> None:
    reader = FrameReader(max_message_size=10_000)
    reader.feed(data)
    codes = []
    try:
        while reader.next() is not None:
            pass
    except FrameError as exc:
        codes.append(exc.code)
    assert set(codes) <= {1002, 1007, 1009}
