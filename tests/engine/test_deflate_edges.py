"""permessage-deflate edge cases, seen on the wire (a second, independent look).

Frames are tapped as they arrive, before wsproto (the peer) parses them: RSV1
marks a compressed frame. Covers what tests/engine/test_deflate.py leaves to
the unit level: each context-takeover and window combination end to end, the
threshold on the wire, the upgrade path, fragmented compressed messages, RSV1
where it is never allowed, a client that ends its deflate stream (BFINAL), a
client window of 8 bits, and a bomb just at and just past the limit.
"""

from __future__ import annotations

import json
import random
import struct
import zlib
from typing import Any

import pytest
import trio
from eio_peers import WSClient, poll_url, running_server, wait_until
from wsproto.extensions import PerMessageDeflate as WsprotoDeflate

from triosio import DisconnectReason, PerMessageDeflate
from triosio._engine.deflate import Inflater, negotiate

BIG = "4" + json.dumps({"text": "hello world " * 200})  # ~2.4 KB, compresses well
SMALL = "4" + "x" * 100
# Compresses about 2x alone, to almost nothing right after itself (context takeover).
NOISY = "4" + random.Random(1).randbytes(1500).hex()
WS_URL = "/engine.io/?EIO=4&transport=websocket"


class Tap(trio.abc.Stream):
    """A stream that keeps a copy of every byte received."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner
        self.received = bytearray()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        data = await self.inner.receive_some(max_bytes)
        self.received += data
        return data

    async def aclose(self) -> None:
        await self.inner.aclose()

    def frames(self) -> list[tuple[int, int]]:
        """(first byte, payload length) of each server frame after the 101 answer."""
        data = bytes(self.received)
        pos = data.index(b"\r\n\r\n") + 4
        out = []
        while pos + 2 <= len(data):
            b0, length = data[pos], data[pos + 1] & 0x7F
            pos += 2
            if length == 126:
                (length,) = struct.unpack_from("!H", data, pos)
                pos += 2
            elif length == 127:
                (length,) = struct.unpack_from("!Q", data, pos)
                pos += 8
            out.append((b0, length))
            pos += length
        return out


async def open_ws(srv: Any, extension: WsprotoDeflate | None) -> tuple[WSClient, Tap, str]:
    tap = Tap(await srv.connect())
    ws = await WSClient.open(tap, WS_URL, extensions=[extension] if extension else [])
    opening = await ws.receive()
    assert isinstance(opening, str) and opening.startswith("0")
    return ws, tap, json.loads(opening[1:])["sid"]


def _masked(b0: int, payload: bytes) -> bytes:
    mask = b"\x01\x02\x03\x04"
    n = len(payload)
    head = bytes((b0, 0x80 | n)) if n < 126 else struct.pack("!BBH", b0, 0xFE, n)
    return head + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(payload))


def _deflated(data: bytes, bits: int = 15) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -bits)
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return out[:-4]


@pytest.mark.parametrize(
    ("server", "client"),
    [
        (PerMessageDeflate(), WsprotoDeflate()),
        (PerMessageDeflate(server_no_context_takeover=False), WsprotoDeflate()),
        (
            PerMessageDeflate(server_no_context_takeover=False),
            WsprotoDeflate(client_no_context_takeover=True),
        ),
        (PerMessageDeflate(client_no_context_takeover=True), WsprotoDeflate()),
        (
            PerMessageDeflate(server_no_context_takeover=False),
            WsprotoDeflate(server_max_window_bits=9, client_max_window_bits=9),
        ),
        (
            PerMessageDeflate(server_max_window_bits=11, client_max_window_bits=10),
            WsprotoDeflate(server_max_window_bits=12, client_max_window_bits=12),
        ),
    ],
    ids=["default", "server-takeover", "client-nct", "ask-client-nct", "bits-9", "bits-11-10"],
)
async def test_every_combination_echoes_compressed_both_ways(
    server: PerMessageDeflate, client: WsprotoDeflate
) -> None:
    with trio.fail_after(10):
        async with running_server(per_message_deflate=server) as srv:
            ws, tap, _sid = await open_ws(srv, client)
            assert [e.name for e in ws.extensions] == ["permessage-deflate"]
            variants = [BIG, NOISY, BIG.replace("hello", "howdy"), SMALL, NOISY]
            for text in variants:
                await ws.send(text)  # wsproto compresses every message it sends
                assert await ws.receive() == text
            await ws.send(b"\x00\x01" * 2000)
            assert await ws.receive() == b"\x00\x01" * 2000
            frames = tap.frames()[1:]  # after OPEN
            assert [b0 & 0x40 != 0 for b0, _ in frames] == [True] * 3 + [False] + [True] * 2
            assert frames[0][1] < len(BIG) // 4  # really compressed
            assert frames[3] == (0x81, len(SMALL))  # under the threshold: as it is
            assert frames[5][0] == 0xC2  # binary, compressed
            await ws.close()


async def test_context_takeover_on_the_wire() -> None:
    sizes = {}
    for takeover in (False, True):
        options = PerMessageDeflate(server_no_context_takeover=not takeover)
        with trio.fail_after(10):
            async with running_server(per_message_deflate=options) as srv:
                ws, tap, _ = await open_ws(srv, WsprotoDeflate())
                for _ in range(2):
                    await ws.send(NOISY)
                    assert await ws.receive() == NOISY
                sizes[takeover] = [n for _, n in tap.frames()[1:]]
                await ws.close()
    assert sizes[False][0] == sizes[False][1] == sizes[True][0]
    assert sizes[True][1] < sizes[True][0] // 4  # the second refers to the first


async def test_the_threshold_on_the_wire() -> None:
    with trio.fail_after(10):
        async with running_server(per_message_deflate=PerMessageDeflate(threshold=0)) as srv:
            ws, tap, _ = await open_ws(srv, WsprotoDeflate())
            await ws.send("4hi")
            assert await ws.receive() == "4hi"
            assert tap.frames()[-1][0] == 0xC1
            await ws.close()


async def test_the_upgrade_negotiates_too() -> None:
    with trio.fail_after(10):
        async with running_server(per_message_deflate=True) as srv:
            sid, _ = await srv.handshake()
            tap = Tap(await srv.connect())
            ws = await WSClient.open(tap, poll_url(sid, "websocket"), extensions=[WsprotoDeflate()])
            assert [e.name for e in ws.extensions] == ["permessage-deflate"]
            await ws.send("2probe")
            assert await ws.receive() == "3probe"
            await ws.send("5")
            await wait_until(lambda: srv.engine.sessions[sid].transport == "websocket")
            await ws.send(BIG)
            assert await ws.receive() == BIG
            assert tap.frames()[-1][0] == 0xC1
            await ws.close()


async def test_a_fragmented_compressed_message() -> None:
    with trio.fail_after(10):
        async with running_server(per_message_deflate=True) as srv:
            ws, _tap, _sid = await open_ws(srv, WsprotoDeflate())
            data = _deflated(BIG.encode())
            await ws.send_raw(_masked(0x41, data[:10]) + _masked(0x00, data[10:20]))
            await ws.send_raw(_masked(0x80, data[20:]))
            assert await ws.receive() == BIG
            await ws.close()


@pytest.mark.parametrize(
    "frames",
    [
        [_masked(0x41, _deflated(b"4ab")), _masked(0xC0, b"")],  # RSV1 on a continuation
        [_masked(0xC9, b"")],  # RSV1 on a PING
        [_masked(0xE1, _deflated(b"4ab"))],  # RSV2 stays reserved
        [_masked(0xC1, b"\xff\xff\xff\xff")],  # not deflate
    ],
    ids=["continuation", "control", "rsv2", "garbage"],
)
async def test_frames_that_break_the_rules_close_with_1002(frames: list[bytes]) -> None:
    with trio.fail_after(10):
        async with running_server(per_message_deflate=True) as srv:
            ws, _tap, sid = await open_ws(srv, WsprotoDeflate())
            for data in frames:
                await ws.send_raw(data)
            assert await ws.receive_until_closed() == ["1"]  # Engine.IO CLOSE first
            assert ws.closed is not None and ws.closed.code in (1002, 1007)
            assert await srv.app.wait_closed(sid) is DisconnectReason.PARSE_ERROR


async def test_a_compressed_frame_without_negotiation_closes_with_1002() -> None:
    with trio.fail_after(10):
        async with running_server(per_message_deflate=True) as srv:
            ws, _tap, sid = await open_ws(srv, None)  # no offer
            await ws.send_raw(_masked(0xC1, _deflated(BIG.encode())))
            assert await ws.receive_until_closed() == ["1"]
            assert ws.closed is not None and ws.closed.code == 1002
            assert await srv.app.wait_closed(sid) is DisconnectReason.PARSE_ERROR


async def test_a_client_that_ends_its_deflate_stream_goes_on() -> None:
    # BFINAL set (a Z_FINISH), which RFC 7692 section 7.2.3.3 allows: the next
    # message starts a new stream.
    with trio.fail_after(10):
        async with running_server(per_message_deflate=True) as srv:
            ws, _tap, _sid = await open_ws(srv, WsprotoDeflate())
            for text in (BIG, NOISY, BIG):
                compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
                data = compressor.compress(text.encode()) + compressor.flush()
                await ws.send_raw(_masked(0xC1, data))
                assert await ws.receive() == text
            await ws.close()


def test_a_client_window_of_8_bits() -> None:
    agreed = negotiate("permessage-deflate; client_max_window_bits=8", PerMessageDeflate())
    assert agreed is not None
    header, negotiated = agreed
    assert "client_max_window_bits=8" in header
    # zlib compresses with 9 bits when told 8: what such a client sends may
    # refer up to 512 bytes back.
    text = random.Random(3).randbytes(200).hex().encode() * 3  # repeats 400 bytes back
    inflater = Inflater(negotiated)
    assert inflater.inflate(_deflated(text, 9), 1_000_000) == text


@pytest.mark.parametrize(("size", "ok"), [(100_000, True), (100_001, False)])
async def test_inflated_size_at_and_past_the_limit(size: int, ok: bool) -> None:
    with trio.fail_after(10):
        async with running_server(per_message_deflate=True, max_http_buffer_size=100_000) as srv:
            ws, _tap, sid = await open_ws(srv, WsprotoDeflate())
            text = "4" + "a" * (size - 1)
            await ws.send_raw(_masked(0xC1, _deflated(text.encode())))
            if ok:
                assert await ws.receive() == text
                await ws.close()
            else:
                assert await ws.receive_until_closed() == ["1"]
                assert ws.closed is not None and ws.closed.code == 1009
                assert await srv.app.wait_closed(sid) is DisconnectReason.PAYLOAD_TOO_LARGE
                assert not srv.app.messages
