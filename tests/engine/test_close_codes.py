"""RFC 6455 close codes on the wire: each class of protocol error a client can
make gets the close frame section 7.4.1 asks for, read by a WebSocket
library's client (wsproto) over a real loopback connection.

1002 protocol error (bad RSV bits, reserved opcodes, an unmasked client frame,
a control frame too long or fragmented, a stray continuation, a non-minimal
length, a bad close frame), 1007 data not consistent with the message type
(invalid UTF-8 in a text frame or a close reason), 1009 message too big; and on
the Engine.IO level, 1002 for a packet the server cannot parse, 1001 when the
server goes away. The session closes, the server goes on serving others.
"""

from __future__ import annotations

import struct

import pytest
import trio
import wsproto.events as wse
from eio_peers import frame, running_server

from triosio import DisconnectReason

TEXT, BINARY, CONTINUATION, CLOSE, PING = 0x1, 0x2, 0x0, 0x8, 0x9

BAD_FRAMES = {
    "unmasked": (frame(TEXT, b"4x", masked=False), 1002),
    "rsv1 without an extension": (frame(TEXT, b"4x", rsv=0x40), 1002),
    "rsv3": (frame(TEXT, b"4x", rsv=0x10), 1002),
    "reserved data opcode": (frame(0x3, b"x"), 1002),
    "reserved control opcode": (frame(0xB, b"x"), 1002),
    "control frame over 125 bytes": (frame(PING, b"x" * 126), 1002),
    "fragmented control frame": (frame(PING, b"x", fin=False), 1002),
    "continuation without a start": (frame(CONTINUATION, b"x"), 1002),
    "new message inside a fragmented one": (
        frame(TEXT, b"4a", fin=False) + frame(TEXT, b"b"),
        1002,
    ),
    "non-minimal 16-bit length": (frame(TEXT, b"4short", wide=126), 1002),
    "close frame of one byte": (frame(CLOSE, b"\x03"), 1002),
    "close code 1005 sent on the wire": (frame(CLOSE, struct.pack("!H", 1005)), 1002),
    "close code below 1000": (frame(CLOSE, struct.pack("!H", 999)), 1002),
    "invalid UTF-8 in a text frame": (frame(TEXT, b"4\xff\xfe"), 1007),
    "truncated UTF-8 in a text frame": (frame(TEXT, b"4" + "é".encode()[:1]), 1007),
    "invalid UTF-8 in a close reason": (frame(CLOSE, struct.pack("!H", 1000) + b"\xff"), 1007),
}


async def closing_code(data: bytes, **options: object) -> tuple[int | None, DisconnectReason]:
    async with running_server(**options) as srv:
        ws, sid = await srv.ws_handshake()
        await ws.send_raw(data)
        await ws.receive_until_closed()
        assert ws.closed is not None
        reason = await srv.app.wait_closed(sid)
        # The server still serves others.
        other, _ = await srv.ws_handshake()
        await other.send("4still here")
        assert await other.receive() == "4still here"
        await other.close()
        return ws.closed.code, reason


@pytest.mark.parametrize("name", list(BAD_FRAMES))
async def test_a_framing_error_gets_its_rfc_close_code(name: str) -> None:
    data, code = BAD_FRAMES[name]
    with trio.fail_after(10):
        got, reason = await closing_code(data)
    assert got == code, name
    assert reason is DisconnectReason.PARSE_ERROR


async def test_a_message_too_big_gets_1009() -> None:
    with trio.fail_after(10):
        got, reason = await closing_code(frame(TEXT, b"4" + b"x" * 2000), max_http_buffer_size=1000)
    assert got == 1009
    assert reason is DisconnectReason.PAYLOAD_TOO_LARGE


async def test_an_engineio_packet_the_server_cannot_parse_gets_1002() -> None:
    with trio.fail_after(10):
        async with running_server() as srv:
            ws, sid = await srv.ws_handshake()
            await ws.send("9 not a packet type")
            assert await ws.receive_until_closed() == ["1"]
            assert ws.closed is not None and ws.closed.code == 1002
            assert await srv.app.wait_closed(sid) is DisconnectReason.PARSE_ERROR


async def test_a_normal_close_is_answered_with_1000() -> None:
    with trio.fail_after(10):
        async with running_server() as srv:
            ws, sid = await srv.ws_handshake()
            # The client starts the closing handshake; the server echoes the code.
            await ws.send_raw(ws.conn.send(wse.CloseConnection(code=1000)))
            events = []
            while not events:
                data = await ws.stream.receive_some(65536)
                assert data, "the server closed without a close frame"
                ws.conn.receive_data(data)
                events = [e for e in ws.conn.events() if isinstance(e, wse.CloseConnection)]
            await ws.stream.aclose()
            assert events[0].code == 1000
            assert await srv.app.wait_closed(sid) is DisconnectReason.TRANSPORT_CLOSE
