"""Limits on both transports: payload sizes, packet counts, request heads, slow clients."""

from __future__ import annotations

import pytest
import trio
import trio.testing
import wsproto.events as wse
from eio_peers import (
    RS,
    message,
    poll_url,
    raw_post_head,
    read_raw_response,
    running_server,
)

from triosio import DisconnectReason, EngineServer, HTTPLimits
from triosio._engine.options import EngineOptions

LIMIT = 1000


def test_defaults() -> None:
    options = EngineOptions()
    assert options.max_http_buffer_size == 1_000_000
    assert options.max_packets_per_payload == 1000
    assert (options.ping_interval, options.ping_timeout) == (25.0, 20.0)
    limits = HTTPLimits()
    assert (limits.max_head_size, limits.max_headers) == (16384, 100)


# ---------------------------------------------------------------- polling bodies


async def test_post_of_exactly_the_limit_is_accepted() -> None:
    with trio.fail_after(10):
        async with running_server(max_http_buffer_size=LIMIT) as srv:
            sid, _ = await srv.handshake()
            body = "4" + "x" * (LIMIT - 1)
            assert (await srv.post(poll_url(sid), body)).text == "ok"


async def test_post_announcing_too_much_is_refused_unread() -> None:
    with trio.fail_after(10):
        async with running_server(max_http_buffer_size=LIMIT) as srv:
            sid, _ = await srv.handshake()
            stream = await srv.connect()
            await stream.send_all(raw_post_head(sid, LIMIT + 1))  # no body sent at all
            answer = await read_raw_response(stream)
            assert answer.startswith(b"HTTP/1.1 413 ")
            assert await srv.app.wait_closed(sid) is DisconnectReason.PAYLOAD_TOO_LARGE
            await stream.aclose()


async def test_chunked_post_above_the_limit_is_refused() -> None:
    with trio.fail_after(10):
        async with running_server(max_http_buffer_size=LIMIT) as srv:
            sid, _ = await srv.handshake()
            client = await srv.http()
            await client.stream.send_all(
                f"POST {poll_url(sid)} HTTP/1.1\r\nhost: x\r\n"
                "transfer-encoding: chunked\r\n\r\n".encode()
            )
            chunk = b"4" + b"y" * 599
            for _ in range(2):
                await client.stream.send_all(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            response = await client.read_response()
            assert response.status == 413
            assert await srv.app.wait_closed(sid) is DisconnectReason.PAYLOAD_TOO_LARGE
            assert srv.app.messages == []
            await client.aclose()


async def test_packets_per_payload_cap() -> None:
    with trio.fail_after(10):
        async with running_server(max_packets_per_payload=5) as srv:
            sid, _ = await srv.handshake()
            five = RS.join(["4a"] * 5)
            assert (await srv.post(poll_url(sid), five)).text == "ok"
            response = await srv.post(poll_url(sid), five + RS + "4a")
            assert response.status == 400
            assert await srv.app.wait_closed(sid) is DisconnectReason.PARSE_ERROR
            assert len(srv.app.messages) == 5  # none of the refused payload got through


async def test_a_payload_of_separators_is_refused_unsplit() -> None:
    with trio.fail_after(10):
        async with running_server() as srv:
            sid, _ = await srv.handshake()
            response = await srv.post(poll_url(sid), RS * 100_000)
            assert response.status == 400
            assert await srv.app.wait_closed(sid) is DisconnectReason.PARSE_ERROR


# ---------------------------------------------------------------- WebSocket messages


@pytest.mark.parametrize(
    "frame",
    [
        "4" + "x" * LIMIT,  # one byte over
        "4" + "é" * (LIMIT // 2),  # under the limit in characters, over it in bytes
        b"\x00" * (LIMIT + 1),
    ],
)
async def test_websocket_message_above_the_limit(frame: str | bytes) -> None:
    with trio.fail_after(10):
        async with running_server(max_http_buffer_size=LIMIT) as srv:
            ws, sid = await srv.ws_handshake()
            await ws.send(frame)
            assert await ws.receive_until_closed() == ["1"]
            assert ws.closed is not None
            assert ws.closed.code == 1009
            assert await srv.app.wait_closed(sid) is DisconnectReason.PAYLOAD_TOO_LARGE
            assert srv.app.messages == []


async def test_websocket_message_of_exactly_the_limit() -> None:
    with trio.fail_after(10):
        async with running_server(max_http_buffer_size=LIMIT) as srv:
            ws, _ = await srv.ws_handshake()
            frame = "4" + "é" * ((LIMIT - 1) // 2)  # 999 bytes
            await ws.send(frame)
            assert await ws.receive() == frame
            await ws.send(b"\x01" * LIMIT)
            assert await ws.receive() == b"\x01" * LIMIT
            await ws.close()


async def test_fragmented_websocket_message_above_the_limit() -> None:
    with trio.fail_after(10):
        async with running_server(max_http_buffer_size=LIMIT) as srv:
            ws, sid = await srv.ws_handshake()
            for _ in range(LIMIT // 10 + 1):
                await ws.send_raw(ws.conn.send(wse.BytesMessage(b"z" * 10, message_finished=False)))
            assert await ws.receive_until_closed() == ["1"]
            assert await srv.app.wait_closed(sid) is DisconnectReason.PAYLOAD_TOO_LARGE


async def test_probe_websocket_is_limited_too() -> None:
    with trio.fail_after(10):
        async with running_server(max_http_buffer_size=LIMIT) as srv:
            sid, _ = await srv.handshake()
            ws = await srv.ws(poll_url(sid, "websocket"))
            await ws.send("2probe" + "x" * LIMIT)
            await ws.receive_until_closed()
            assert srv.engine.sessions[sid].transport == "polling"


# ---------------------------------------------------------------- request heads


async def test_request_head_too_large() -> None:
    with trio.fail_after(10):
        async with running_server(limits=HTTPLimits(max_head_size=2048)) as srv:
            stream = await srv.connect()
            await stream.send_all(
                b"GET /engine.io/?EIO=4&transport=polling HTTP/1.1\r\nhost: x\r\n"
                + b"x-big: "
                + b"a" * 4096
                + b"\r\n\r\n"
            )
            answer = await read_raw_response(stream)
            assert answer.startswith(b"HTTP/1.1 431 ")
            assert srv.engine.sessions == {}
            await stream.aclose()


async def test_too_many_header_lines() -> None:
    with trio.fail_after(10):
        async with running_server(limits=HTTPLimits(max_headers=10)) as srv:
            stream = await srv.connect()
            headers = b"".join(b"x-h%d: v\r\n" % i for i in range(11))
            await stream.send_all(
                b"GET /engine.io/?EIO=4&transport=polling HTTP/1.1\r\nhost: x\r\n"
                + headers
                + b"\r\n"
            )
            answer = await read_raw_response(stream)
            assert answer.startswith(b"HTTP/1.1 431 ")
            assert srv.engine.sessions == {}
            await stream.aclose()


async def test_garbage_request_line_is_a_400() -> None:
    with trio.fail_after(10):
        async with running_server() as srv:
            stream = await srv.connect()
            await stream.send_all(b"\x16\x03\x01 not http at all\r\n\r\n")
            answer = await read_raw_response(stream)
            assert answer.startswith(b"HTTP/1.1 400 ")
            await stream.aclose()


async def test_slowloris_over_loopback() -> None:
    # The only real-time test of the head timeout (the exact instant is checked
    # on the mock clock in test_engine_timers); nothing here measures time.
    with trio.fail_after(10):
        async with running_server(limits=HTTPLimits(head_timeout=0.2)) as srv:
            stream = await srv.connect()
            await stream.send_all(b"GET /engine.io/?EIO=4&transport=polling HTTP/1.1\r\n")
            answer = b""
            with trio.move_on_after(5):
                while not answer:
                    await stream.send_all(b"x")  # one more byte now and then
                    with trio.move_on_after(0.05):
                        answer = await stream.receive_some(65536)
            assert answer.startswith(b"HTTP/1.1 408 ")
            await stream.aclose()


async def test_pipelining_behind_a_long_poll_is_bounded(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(100):
        async with running_server(memory=True, limits=HTTPLimits(max_head_size=4096)) as srv:
            sid, _ = await srv.handshake()
            client = await srv.http()
            await client.send_request("GET", poll_url(sid))
            await trio.testing.wait_all_tasks_blocked()
            # Megabytes after the pending GET: the server stops reading them.
            sent = 0
            with trio.move_on_after(10):
                while sent < 10_000_000:
                    await client.stream.send_all(b"x" * 65536)
                    sent += 65536
            assert sent < 1_000_000
            srv.engine.sessions[sid].send_nowait([message("hi")])
            response = await client.read_response()
            assert response.text == "4hi"
            await client.aclose()


# ---------------------------------------------------------------- slow clients


async def test_slow_websocket_client_is_disconnected() -> None:
    with trio.fail_after(10):
        async with running_server(memory=True, window=4096, max_buffered_bytes=16384) as srv:
            ws, sid = await srv.ws_handshake()
            session = srv.engine.sessions[sid]
            srv.network.connections[-1].pause_client()  # type: ignore[union-attr]
            chunk = message("x" * 1000)
            accepted = 0
            while session.send_nowait([chunk]):
                accepted += 1
                await trio.lowlevel.checkpoint()  # lets the writer task fill the pipe
                assert accepted < 1000
            assert session.close_reason is DisconnectReason.SLOW_CLIENT
            assert await srv.app.wait_closed(sid) is DisconnectReason.SLOW_CLIENT
            await ws.stream.aclose()


async def test_volatile_packets_are_dropped_not_queued() -> None:
    with trio.fail_after(10):
        async with running_server(memory=True, window=4096, max_buffered_bytes=16384) as srv:
            ws, sid = await srv.ws_handshake()
            session = srv.engine.sessions[sid]
            assert session.send_nowait([message("v1")], volatile=True)
            assert await ws.receive() == "4v1"
            srv.network.connections[-1].pause_client()  # type: ignore[union-attr]
            while session.send_nowait([message("y" * 1000)]) and session.writable:
                await trio.lowlevel.checkpoint()
            assert not session.writable
            assert not session.send_nowait([message("v2")], volatile=True)
            assert session.close_reason is None  # a dropped volatile packet costs nothing
            await ws.stream.aclose()


async def test_polling_queue_overflow_disconnects() -> None:
    with trio.fail_after(10):
        async with running_server(max_buffered_packets=10) as srv:
            sid, _ = await srv.handshake()
            session = srv.engine.sessions[sid]
            for i in range(10):
                assert session.send_nowait([message(f"m{i}")])
            assert not session.send_nowait([message("one too many")])
            assert await srv.app.wait_closed(sid) is DisconnectReason.SLOW_CLIENT


async def test_send_waits_for_room_instead_of_disconnecting() -> None:
    with trio.fail_after(10):
        async with running_server(max_buffered_packets=3) as srv:
            sid, _ = await srv.handshake()
            session = srv.engine.sessions[sid]
            async with trio.open_nursery() as nursery:

                async def sender() -> None:
                    for i in range(9):
                        await session.send(f"m{i}")

                nursery.start_soon(sender)
                got: list[str] = []
                while len(got) < 9:
                    response = await srv.get(poll_url(sid))
                    got.extend(r[1:] for r in response.text.split(RS) if r != "2")
            assert got == [f"m{i}" for i in range(9)]
            assert srv.app.closed == []


def test_engine_options_are_checked() -> None:
    app = object()
    with pytest.raises(ValueError, match="path"):
        EngineServer(app, path="engine.io")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ping_interval"):
        EngineServer(app, ping_interval=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="transports"):
        EngineServer(app, transports=("carrier-pigeon",))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        EngineServer(app, no_such_option=1)  # type: ignore[arg-type]
    assert EngineServer(app, path="/x").path == "/x/"  # type: ignore[arg-type]


async def test_bytes_stuck_in_a_blocked_write_count_as_buffered(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # On streams written by the writer task (TLS, in-memory), a frame whose
    # send_all is blocked by a peer that does not read is still buffered.
    with trio.fail_after(100):
        async with running_server(memory=True, window=4096) as srv:
            ws, sid = await srv.ws_handshake()
            session = srv.engine.sessions[sid]
            srv.network.connections[-1].pause_client()  # type: ignore[union-attr]
            assert session.send_nowait([message("z" * 20_000)])
            await trio.testing.wait_all_tasks_blocked()
            assert session.buffered_bytes > 0
            assert not session.writable
            assert not session.send_nowait([message("v")], volatile=True)
            srv.network.connections[-1].resume_client()  # type: ignore[union-attr]
            assert await ws.receive() == "4" + "z" * 20_000
            await trio.testing.wait_all_tasks_blocked()
            assert session.buffered_bytes == 0
            await ws.close()
