"""The websocket upgrade GET parsed without h11, and what it hands to h11.

``H11Connection._fast_head`` parses a connection's first request itself when
it is a plain websocket upgrade ``GET``; everything else goes to h11, which
must answer as it did before (see also test_fast_head.py).
"""

from __future__ import annotations

import trio
from eio_peers import frame, read_raw_response, running_server

from triosio._engine import h11server

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455's example: its accept value is known
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def upgrade_head(*extra: str, host: str = "host: x") -> bytes:
    lines = [
        "GET /engine.io/?EIO=4&transport=websocket HTTP/1.1",
        host,
        "upgrade: websocket",
        "connection: Upgrade",
        f"sec-websocket-key: {KEY}",
        "sec-websocket-version: 13",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def answer_head(stream: trio.abc.Stream) -> tuple[bytes, bytes]:
    """The response head, and the bytes received after it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(65536)
        assert chunk, data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def header_names(head: bytes) -> set[bytes]:
    return {line.split(b":", 1)[0].lower() for line in head.split(b"\r\n")[1:]}


async def test_fast_path_answers_like_h11_and_keeps_pipelined_frames() -> None:
    fast_calls: list[bool] = []
    real = h11server.H11Connection._fast_head

    def spy(self: h11server.H11Connection, data: bytes) -> object:
        result = real(self, data)
        fast_calls.append(result is not None)
        return result

    h11server.H11Connection._fast_head = spy  # type: ignore[assignment,method-assign]
    try:
        with trio.fail_after(10):
            async with running_server(memory=True) as srv:
                heads = []
                # The second head has a folded header line (obs-fold): h11
                # accepts it, the fast path leaves it to h11.
                for extra in ((), ("x-folded: a", " b")):
                    stream = await srv.connect()
                    # A Socket.IO-style message right behind the head, one write.
                    await stream.send_all(upgrade_head(*extra) + frame(0x1, b"4hello"))
                    head, _ = await answer_head(stream)
                    assert head.startswith(b"HTTP/1.1 101 ")
                    assert f"sec-websocket-accept: {ACCEPT}".encode() in head
                    heads.append(head)
                    await srv.app.wait_messages(len(heads))
                    assert srv.app.messages[-1][1] == "hello"
                    await stream.aclose()
    finally:
        h11server.H11Connection._fast_head = real  # type: ignore[method-assign]
    assert fast_calls == [True, False]
    assert header_names(heads[0]) == header_names(heads[1])


async def test_a_fast_parsed_bad_handshake_gets_h11s_400() -> None:
    with trio.fail_after(10):
        async with running_server(memory=True) as srv:
            stream = await srv.connect()
            await stream.send_all(upgrade_head().replace(KEY.encode(), b"short"))
            answer = await read_raw_response(stream)
            assert answer.startswith(b"HTTP/1.1 400 ")
            assert b"invalid Sec-WebSocket-Key" in answer


async def test_a_folded_header_is_served_by_h11() -> None:
    with trio.fail_after(10):
        async with running_server(memory=True) as srv:
            stream = await srv.connect()
            await stream.send_all(upgrade_head("x-folded: a", " b"))  # obs-fold
            head, _ = await answer_head(stream)
            # h11 unfolds it and accepts; its status line has no reason phrase.
            assert head.startswith(b"HTTP/1.1 101 \r\n")
            await stream.aclose()


async def test_malformed_heads_go_to_h11() -> None:
    cases = [
        # two Host headers, no Host, a space before the colon
        upgrade_head("host: y"),
        upgrade_head(host="x-no-host: 1"),
        upgrade_head("bad : value"),
    ]
    with trio.fail_after(10):
        async with running_server(memory=True) as srv:
            for head in cases:
                stream = await srv.connect()
                await stream.send_all(head)
                answer = await read_raw_response(stream)
                assert answer.startswith(b"HTTP/1.1 400 "), (head, answer)
            assert srv.engine.sessions == {}


async def test_fast_path_keeps_max_head_size() -> None:
    limits = h11server.HTTPLimits(max_head_size=512)
    with trio.fail_after(10):
        async with running_server(memory=True, limits=limits) as srv:
            stream = await srv.connect()
            await stream.send_all(upgrade_head("x-pad: " + "a" * 600))
            answer = await read_raw_response(stream)
            assert answer.startswith(b"HTTP/1.1 431 ")
            assert srv.engine.sessions == {}
