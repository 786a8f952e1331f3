"""Compression: WebSocket permessage-deflate (RFC 7692) and gzip/deflate polling bodies.

The negotiation table, the inflation limits (a "zip bomb" costs no more than
a large message), the frame rules (RSV1 only on the first frame of a data
message, and only once negotiated), and end-to-end runs over loopback with
wsproto's own permessage-deflate as the client: compressed both ways, with and
without context takeover, the window sizes it asks for, and a server without
compression that declines every offer.
"""

from __future__ import annotations

import gzip
import json
import zlib

import pytest
import trio
from eio_peers import WSClient, frame, message, poll_url, running_server
from wsproto.extensions import PerMessageDeflate as WsprotoDeflate

from triosio import (
    App,
    DisconnectReason,
    HTTPCompression,
    PerMessageDeflate,
    Server,
    Socket,
    serve,
)
from triosio._engine.deflate import (
    InflateError,
    Inflater,
    Negotiated,
    choose_encoding,
    deflate_message,
    negotiate,
)
from triosio._engine.options import EngineOptions
from triosio._engine.packet import OutPacket
from triosio._engine.wsframes import FrameError, FrameReader
from triosio._proto.eio import EioType

TEXT, BINARY, CONTINUATION, PING = 0x1, 0x2, 0x0, 0x9
RSV1 = 0x40

# A JSON document of about 10 KiB, as an application sends (compressible as such are).
DOCUMENT = json.dumps(
    [{"id": i, "user": f"user{i % 17}", "text": f"message number {i}", "tags": ["a", "b"]}
     for i in range(150)]
)


# ------------------------------------------------------------ negotiation


@pytest.mark.parametrize(
    ("offer", "response", "server_bits", "client_bits", "client_takeover"),
    [
        ("permessage-deflate", "permessage-deflate; server_no_context_takeover", 15, 15, True),
        (
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; client_max_window_bits=15; server_no_context_takeover",
            15,
            15,
            True,
        ),
        (
            "permessage-deflate; client_max_window_bits=10",
            "permessage-deflate; client_max_window_bits=10; server_no_context_takeover",
            15,
            10,
            True,
        ),
        (
            'permessage-deflate; server_max_window_bits="12"',
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=12",
            12,
            15,
            True,
        ),
        (
            "permessage-deflate; client_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
            15,
            15,
            False,
        ),
        # The first acceptable offer wins; a malformed one is skipped, not an error.
        (
            "permessage-deflate; bogus, permessage-deflate; client_max_window_bits=9",
            "permessage-deflate; client_max_window_bits=9; server_no_context_takeover",
            15,
            9,
            True,
        ),
        (
            "x-webkit-deflate-frame, PerMessage-Deflate",
            "permessage-deflate; server_no_context_takeover",
            15,
            15,
            True,
        ),
    ],
)
def test_negotiation_accepts_what_rfc_7692_allows(
    offer: str, response: str, server_bits: int, client_bits: int, client_takeover: bool
) -> None:
    agreed = negotiate(offer, PerMessageDeflate())
    assert agreed is not None
    text, negotiated = agreed
    assert text == response
    assert negotiated.server_bits == server_bits
    assert negotiated.client_bits == client_bits
    assert negotiated.client_takeover is client_takeover
    assert negotiated.server_takeover is False


@pytest.mark.parametrize(
    "offer",
    [
        None,
        "",
        "x-webkit-deflate-frame",
        "permessage-deflate; unknown_param",
        "permessage-deflate; server_max_window_bits",  # needs a value
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=8",  # zlib cannot: declined
        "permessage-deflate; client_max_window_bits=abc",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
        "permessage-deflate;;",
    ],
)
def test_negotiation_declines_what_it_cannot_accept(offer: str | None) -> None:
    assert negotiate(offer, PerMessageDeflate()) is None


def test_negotiation_follows_the_server_options() -> None:
    options = PerMessageDeflate(
        server_no_context_takeover=False,
        client_no_context_takeover=True,
        server_max_window_bits=11,
        client_max_window_bits=9,
    )
    agreed = negotiate("permessage-deflate; client_max_window_bits", options)
    assert agreed is not None
    text, negotiated = agreed
    assert text == "permessage-deflate; client_max_window_bits=9; client_no_context_takeover"
    assert negotiated.server_takeover is True
    assert negotiated.server_bits == 11
    assert negotiated.client_takeover is False


@pytest.mark.parametrize(
    "kwargs",
    [
        {"threshold": -1},
        {"server_max_window_bits": 8},
        {"client_max_window_bits": 16},
        {"level": 10},
        {"mem_level": 0},
    ],
)
def test_invalid_options_are_refused(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="must be"):
        PerMessageDeflate(**kwargs)


def test_invalid_option_types_are_refused() -> None:
    with pytest.raises(TypeError, match="per_message_deflate"):
        EngineOptions(per_message_deflate="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="http_compression"):
        EngineOptions(http_compression=1024)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="threshold"):
        HTTPCompression(threshold=-5)


# ------------------------------------------------------------ messages


def _negotiated(**overrides: object) -> Negotiated:
    agreed = negotiate("permessage-deflate; client_max_window_bits", PerMessageDeflate())
    assert agreed is not None
    values = {
        "threshold": 1024,
        "level": -1,
        "mem_level": 8,
        "server_bits": 15,
        "client_bits": 15,
        "server_takeover": False,
        "client_takeover": True,
    }
    values.update(overrides)
    return Negotiated(**values)  # type: ignore[arg-type]


def test_a_bomb_is_refused_after_max_size_bytes() -> None:
    # 100 MB of zeros compress to about 100 KB; only max_size + 1 bytes are inflated.
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = compressor.compress(b"\0" * 100_000_000) + compressor.flush(zlib.Z_SYNC_FLUSH)
    with pytest.raises(InflateError) as info:
        Inflater(_negotiated()).inflate(bomb[:-4], 1_000_000)
    assert info.value.code == 1009


def test_garbage_is_refused_as_invalid_data() -> None:
    with pytest.raises(InflateError) as info:
        Inflater(_negotiated()).inflate(b"\xff\xff\xff\xff garbage", 1000)
    assert info.value.code == 1007


def test_the_client_context_is_kept_only_when_agreed() -> None:
    # A client with context takeover refers back to its earlier messages.
    client = zlib.compressobj(-1, zlib.DEFLATED, -15)
    first = client.compress(b"hello world " * 20) + client.flush(zlib.Z_SYNC_FLUSH)
    second = client.compress(b"hello world " * 20) + client.flush(zlib.Z_SYNC_FLUSH)
    keeping = Inflater(_negotiated())
    assert keeping.inflate(first[:-4], 10_000) == b"hello world " * 20
    assert keeping.inflate(second[:-4], 10_000) == b"hello world " * 20
    forgetting = Inflater(_negotiated(client_takeover=False))
    forgetting.inflate(first[:-4], 10_000)
    with pytest.raises(InflateError):
        # Without the first message's window the back-reference is invalid.
        forgetting.inflate(second[:-4], 10_000)


def test_a_broadcast_packet_is_compressed_once() -> None:
    packet = OutPacket(EioType.MESSAGE, DOCUMENT)
    first = packet.ws_deflated_frame(15, -1, 8)
    assert packet.ws_deflated_frame(15, -1, 8) is first
    assert first[0] == 0x80 | RSV1 | TEXT
    assert len(first) < len(packet.ws_frame) / 3
    payload = first[4:]  # a 16-bit length
    assert zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff") == (
        b"4" + DOCUMENT.encode()
    )


# ------------------------------------------------------------ frames


def _reader() -> FrameReader:
    reader = FrameReader()
    reader.inflater = Inflater(_negotiated())
    return reader


def test_a_compressed_fragmented_message_is_reassembled_then_inflated() -> None:
    compressed = deflate_message(("4" + DOCUMENT).encode(), 15, -1, 8)
    half = len(compressed) // 2
    reader = _reader()
    reader.feed(
        frame(TEXT, compressed[:half], fin=False, rsv=RSV1)
        + frame(PING, b"p")
        + frame(CONTINUATION, compressed[half:])
    )
    assert reader.next().payload == b"p"  # type: ignore[union-attr]
    assert reader.next() == "4" + DOCUMENT


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (frame(TEXT, b"4x", fin=False) + frame(CONTINUATION, b"y", rsv=RSV1), 1002),
        (frame(PING, b"x", rsv=RSV1), 1002),
        (frame(TEXT, b"4x", rsv=0x20), 1002),
        (frame(TEXT, deflate_message(b"4\xff\xfe", 15, -1, 8), rsv=RSV1), 1007),
        (frame(BINARY, b"\xff\xff\xff\xff", rsv=RSV1), 1007),
    ],
    ids=["rsv1 on a continuation", "rsv1 on a control frame", "rsv2", "bad utf-8", "garbage"],
)
def test_compressed_frames_break_no_rule(data: bytes, code: int) -> None:
    reader = _reader()
    reader.feed(data)
    with pytest.raises(FrameError) as info:
        reader.next()
    assert info.value.code == code


# ------------------------------------------------------------ end to end (wsproto)


async def _open(srv: object, extensions: list[object]) -> tuple[object, str]:
    ws = await srv.ws("/engine.io/?EIO=4&transport=websocket", extensions=extensions)  # type: ignore[attr-defined]
    opening = await ws.receive()
    return ws, json.loads(opening[1:])["sid"]


@pytest.mark.parametrize(
    "client",
    [
        {},
        {"client_no_context_takeover": True, "server_no_context_takeover": True},
        {"client_max_window_bits": 10, "server_max_window_bits": 11},
    ],
    ids=["defaults", "no context takeover", "small windows"],
)
@pytest.mark.parametrize("server_takeover", [False, True], ids=["shared", "per-connection"])
async def test_messages_go_compressed_both_ways(
    client: dict[str, object], server_takeover: bool
) -> None:
    options = PerMessageDeflate(server_no_context_takeover=not server_takeover)
    with trio.fail_after(10):
        async with running_server(per_message_deflate=options) as srv:
            ws, sid = await _open(srv, [WsprotoDeflate(**client)])  # type: ignore[arg-type]
            assert [e.name for e in ws.extensions] == ["permessage-deflate"]  # type: ignore[attr-defined]
            before = ws.wire_bytes  # type: ignore[attr-defined]
            # The echo app sends each message back: compressed above the threshold.
            for _ in range(3):
                await ws.send("4" + DOCUMENT)  # type: ignore[attr-defined]
                assert await ws.receive() == "4" + DOCUMENT  # type: ignore[attr-defined]
            received = ws.wire_bytes - before  # type: ignore[attr-defined]
            assert received < len(DOCUMENT)  # three 10 KiB messages in less than one
            # Under the threshold: sent as it is (and still read right).
            await ws.send("4short")  # type: ignore[attr-defined]
            assert await ws.receive() == "4short"  # type: ignore[attr-defined]
            await ws.close()  # type: ignore[attr-defined]
            assert await srv.app.wait_closed(sid) is DisconnectReason.TRANSPORT_CLOSE


async def test_without_the_option_every_offer_is_declined() -> None:
    with trio.fail_after(10):
        async with running_server() as srv:
            ws, _sid = await _open(srv, [WsprotoDeflate()])
            assert ws.extensions == []  # type: ignore[attr-defined]
            before = ws.wire_bytes  # type: ignore[attr-defined]
            await ws.send("4" + DOCUMENT)  # type: ignore[attr-defined]
            assert await ws.receive() == "4" + DOCUMENT  # type: ignore[attr-defined]
            assert ws.wire_bytes - before > len(DOCUMENT)  # type: ignore[attr-defined]
            # And a compressed frame, not negotiated, is a protocol error.
            await ws.send_raw(frame(TEXT, deflate_message(b"4x", 15, -1, 8), rsv=RSV1))  # type: ignore[attr-defined]
            await ws.receive_until_closed()  # type: ignore[attr-defined]
            assert ws.closed.code == 1002  # type: ignore[attr-defined]


async def test_a_bomb_closes_with_1009_and_others_go_on() -> None:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = compressor.compress(b"4" + b"\0" * 50_000_000) + compressor.flush(zlib.Z_SYNC_FLUSH)
    with trio.fail_after(20):
        async with running_server(per_message_deflate=True, max_http_buffer_size=100_000) as srv:
            ws, sid = await _open(srv, [WsprotoDeflate()])
            await ws.send_raw(frame(TEXT, bomb[:-4], rsv=RSV1))  # type: ignore[attr-defined]
            await ws.receive_until_closed()  # type: ignore[attr-defined]
            assert ws.closed.code == 1009  # type: ignore[attr-defined]
            assert await srv.app.wait_closed(sid) is DisconnectReason.PAYLOAD_TOO_LARGE
            other, _ = await _open(srv, [WsprotoDeflate()])
            await other.send("4" + DOCUMENT)  # type: ignore[attr-defined]
            assert await other.receive() == "4" + DOCUMENT  # type: ignore[attr-defined]
            await other.close()  # type: ignore[attr-defined]


# ------------------------------------------------------------ polling


def test_accept_encoding_is_read_as_rfc_9110_says() -> None:
    assert choose_encoding("gzip, deflate, br") == "gzip"
    assert choose_encoding("deflate, gzip;q=0.5") == "deflate"
    assert choose_encoding("gzip;q=0, deflate") == "deflate"
    assert choose_encoding("br, identity") is None
    assert choose_encoding("*") == "gzip"
    assert choose_encoding("*;q=0") is None
    assert choose_encoding("gzip;q=abc") is None
    assert choose_encoding(None) is None


@pytest.mark.parametrize(
    ("accept", "encoding"),
    [("gzip, deflate", "gzip"), ("deflate", "deflate"), ("br", None), (None, None)],
)
async def test_a_long_poll_is_compressed_when_the_client_accepts_it(
    accept: str | None, encoding: str | None
) -> None:
    with trio.fail_after(10):
        async with running_server() as srv:
            sid, _ = await srv.handshake()
            session = srv.engine.sessions[sid]
            session.send_nowait([message(DOCUMENT)])
            headers = [("accept-encoding", accept)] if accept else []
            response = await srv.get(poll_url(sid), headers)
            assert response.status == 200
            assert response.header("content-encoding") == encoding
            body = response.body
            if encoding == "gzip":
                body = gzip.decompress(body)
                assert response.header("vary") == "Accept-Encoding"
            elif encoding == "deflate":
                body = zlib.decompress(body)
            assert body.decode() == "4" + DOCUMENT
            assert int(response.header("content-length") or 0) == len(response.body)
            if encoding is not None:
                assert len(response.body) < len(DOCUMENT) / 3


async def test_small_or_uncompressible_polls_and_the_option_off() -> None:
    with trio.fail_after(10):
        async with running_server() as srv:
            sid, _ = await srv.handshake()
            srv.engine.sessions[sid].send_nowait([message("short")])
            response = await srv.get(poll_url(sid), [("accept-encoding", "gzip")])
            assert response.header("content-encoding") is None  # under the threshold
            assert response.text == "4short"
            packet = message(DOCUMENT)
            packet.compress = False  # an emit with compress(False)
            srv.engine.sessions[sid].send_nowait([packet])
            response = await srv.get(poll_url(sid), [("accept-encoding", "gzip")])
            assert response.header("content-encoding") is None
        async with running_server(http_compression=False) as srv:
            sid, _ = await srv.handshake()
            srv.engine.sessions[sid].send_nowait([message(DOCUMENT)])
            response = await srv.get(poll_url(sid), [("accept-encoding", "gzip")])
            assert response.header("content-encoding") is None
            assert response.text == "4" + DOCUMENT
        async with running_server(http_compression=HTTPCompression(threshold=10)) as srv:
            sid, _ = await srv.handshake()
            srv.engine.sessions[sid].send_nowait([message("a little more than ten")])
            response = await srv.get(poll_url(sid), [("accept-encoding", "gzip")])
            assert response.header("content-encoding") == "gzip"
            assert gzip.decompress(response.body) == b"4a little more than ten"


# ------------------------------------------------------------ compress(False)


async def test_compress_false_sends_a_packet_as_it_is() -> None:
    sio = Server(per_message_deflate=True)

    @sio.on("next")
    async def next_one(socket: Socket, n: int) -> None:
        # One at a time: the client measures each one's bytes.
        if n == 0:
            await socket.compress(False).emit("doc", DOCUMENT)
        elif n == 1:
            await socket.emit("doc", DOCUMENT)
        elif n == 2:
            await sio.compress(False).emit("doc", DOCUMENT)
        else:
            await sio.emit("doc", DOCUMENT)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(serve, App(sio), "127.0.0.1", 0)
            port = listeners[0].socket.getsockname()[1]
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            ws = await WSClient.open(
                stream, "/socket.io/?EIO=4&transport=websocket", extensions=[WsprotoDeflate()]
            )
            await ws.receive()  # OPEN
            await ws.send("40")
            assert (await ws.receive()).startswith("40")  # type: ignore[union-attr]
            sizes = []
            for n in range(4):
                before = ws.wire_bytes
                await ws.send(f'42["next",{n}]')
                message = await ws.receive()
                assert json.loads(message[2:]) == ["doc", DOCUMENT]  # type: ignore[index]
                sizes.append(ws.wire_bytes - before)
            await ws.close()
            nursery.cancel_scope.cancel()
    uncompressed, compressed, uncompressed_broadcast, compressed_broadcast = sizes
    assert uncompressed > len(DOCUMENT) and uncompressed_broadcast > len(DOCUMENT), sizes
    assert compressed < len(DOCUMENT) / 3 and compressed_broadcast < len(DOCUMENT) / 3, sizes
