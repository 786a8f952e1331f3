"""WebSocket sessions and the upgrade from polling, over real loopback sockets."""

from __future__ import annotations

import json
import os

import pytest
import trio
import wsproto.events as wse
from eio_peers import (
    RS,
    Recorder,
    WSClosed,
    message,
    poll_url,
    running_server,
    wait_until,
)

from triosio import DisconnectReason
from triosio._engine import native_ws


async def test_websocket_only_session_echoes_text_and_binary() -> None:
    with trio.fail_after(10):
        async with running_server(ping_interval=0.3, ping_timeout=0.2) as srv:
            ws = await srv.ws("/engine.io/?EIO=4&transport=websocket")
            opening = await ws.receive()
            assert isinstance(opening, str)
            data = json.loads(opening[1:])
            assert list(data) == ["sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"]
            assert data["upgrades"] == []
            assert (data["pingInterval"], data["pingTimeout"]) == (300, 200)
            assert srv.engine.sessions[data["sid"]].transport == "websocket"
            await ws.send("4hello")
            assert await ws.receive() == "4hello"
            await ws.send(b"\x01\x02\x03\x04")
            assert await ws.receive() == b"\x01\x02\x03\x04"
            await ws.send("4")  # an empty message is a message
            assert await ws.receive() == "4"
            await ws.close()
            assert await srv.app.wait_closed(data["sid"]) is DisconnectReason.TRANSPORT_CLOSE


async def test_a_message_at_a_time_costs_no_failing_read(monkeypatch: pytest.MonkeyPatch) -> None:
    # After a read that took all there was, the reader waits for the socket
    # before reading again: no read that fails with EAGAIN per message.
    failed = 0
    real_read = os.read

    def counting_read(fd: int, n: int) -> bytes:
        nonlocal failed
        try:
            return real_read(fd, n)
        except BlockingIOError:
            failed += 1
            raise

    with trio.fail_after(10):
        async with running_server() as srv:
            ws, _sid = await srv.ws_handshake()
            await ws.send("4warm-up")
            assert await ws.receive() == "4warm-up"
            monkeypatch.setattr(native_ws.os, "read", counting_read)
            for k in range(20):
                await ws.send(f"4m{k}")
                assert await ws.receive() == f"4m{k}"
            monkeypatch.undo()
            assert failed == 0
            await ws.close()


async def test_fragmented_messages_are_reassembled() -> None:
    with trio.fail_after(10):
        async with running_server() as srv:
            ws, _ = await srv.ws_handshake()
            conn = ws.conn
            raw = conn.send(wse.TextMessage(data="4frag", message_finished=False))
            raw += conn.send(wse.TextMessage(data="ment", message_finished=False))
            raw += conn.send(wse.TextMessage(data="ed é", message_finished=True))
            await ws.send_raw(raw)
            assert await ws.receive() == "4fragmented é"
            raw = conn.send(wse.BytesMessage(data=b"\x00" * 3, message_finished=False))
            raw += conn.send(wse.BytesMessage(data=b"\x01", message_finished=True))
            await ws.send_raw(raw)
            assert await ws.receive() == b"\x00\x00\x00\x01"
            await ws.close()


@pytest.mark.parametrize("frame", ["abc", "", "9"])
async def test_invalid_packet_closes_the_session(frame: str) -> None:
    with trio.fail_after(10):
        async with running_server() as srv:
            ws, sid = await srv.ws_handshake()
            await ws.send(frame)
            assert await ws.receive_until_closed() == ["1"]
            assert await srv.app.wait_closed(sid) is DisconnectReason.PARSE_ERROR


async def test_invalid_frame_closes_the_session() -> None:
    with trio.fail_after(10):
        async with running_server() as srv:
            ws, sid = await srv.ws_handshake()
            # A masked text frame with RSV2 set (CVE-2022-21676 sent one in the handshake).
            await ws.send_raw(bytes([0xA1, 0x81, 1, 2, 3, 4, ord("4") ^ 1]))
            await ws.receive_until_closed()
            assert await srv.app.wait_closed(sid) is DisconnectReason.PARSE_ERROR


async def test_client_close_packet_closes_the_session() -> None:
    with trio.fail_after(10):
        async with running_server() as srv:
            ws, sid = await srv.ws_handshake()
            await ws.send("1")
            assert await ws.receive_until_closed() == []
            assert await srv.app.wait_closed(sid) is DisconnectReason.TRANSPORT_CLOSE


async def test_broken_connection_closes_the_session() -> None:
    with trio.fail_after(10):
        async with running_server() as srv:
            ws, sid = await srv.ws_handshake()
            await ws.stream.aclose()  # no close frame
            assert await srv.app.wait_closed(sid) is DisconnectReason.TRANSPORT_CLOSE


@pytest.mark.parametrize("memory", [False, True], ids=["direct writes", "writer task"])
async def test_server_close_sends_close_packet_then_close_frame(memory: bool) -> None:
    # Loopback sockets take the direct-write path; in-memory streams (like TLS)
    # go through the writer task, which the close cancels: nothing may be lost.
    with trio.fail_after(10):
        async with running_server(memory=memory) as srv:
            ws, sid = await srv.ws_handshake()
            srv.engine.sessions[sid].send_nowait([message("last")])
            srv.engine.sessions[sid].close_nowait(DisconnectReason.FORCED_CLOSE)
            assert await ws.receive_until_closed() == ["4last", "1"]
            assert ws.closed is not None
            assert ws.closed.code == 1000
            assert await srv.app.wait_closed(sid) is DisconnectReason.FORCED_CLOSE


async def test_stray_pongs_are_ignored() -> None:
    with trio.fail_after(10):
        async with running_server() as srv:
            ws, sid = await srv.ws_handshake()
            for _ in range(10):
                await ws.send("3")
            await ws.send("4still open")
            assert await ws.receive() == "4still open"
            assert srv.app.reasons(sid) == []
            await ws.close()


async def test_a_client_ping_is_a_protocol_error() -> None:
    # Engine.IO v4: only the server pings (a client pings only to probe).
    with trio.fail_after(10):
        async with running_server() as srv:
            ws, sid = await srv.ws_handshake()
            await ws.send("2")
            await ws.receive_until_closed()
            assert await srv.app.wait_closed(sid) is DisconnectReason.TRANSPORT_ERROR


# ---------------------------------------------------------------- upgrade


async def test_upgrade_sequence() -> None:
    with trio.fail_after(10):
        async with running_server() as srv:
            sid, _ = await srv.handshake()
            poller = await srv.http()
            await poller.send_request("GET", poll_url(sid))
            await wait_until(lambda: srv.engine.sessions[sid].writable)
            ws = await srv.ws(poll_url(sid, "websocket"))
            await ws.send("2probe")
            assert await ws.receive() == "3probe"
            assert srv.engine.sessions[sid].upgrading
            response = await poller.read_response()
            assert response.text == "6"  # the pending GET is released with NOOP
            # A new GET during the switch is answered at once, with NOOP too.
            assert (await poller.request("GET", poll_url(sid))).text == "6"
            await ws.send("5")
            await ws.send("4hello")
            assert await ws.receive() == "4hello"
            assert srv.engine.sessions[sid].transport == "websocket"
            # Polling with an upgraded sid is refused; the WebSocket is unharmed.
            response = await poller.request("GET", poll_url(sid))
            assert response.status == 400
            assert response.json()["code"] == 3
            response = await srv.post(poll_url(sid), "4x")
            assert response.status == 400
            await ws.send("4again")
            assert await ws.receive() == "4again"
            await poller.aclose()
            await ws.close()
            assert await srv.app.wait_closed(sid) is DisconnectReason.TRANSPORT_CLOSE


async def test_packets_queued_before_the_switch_go_over_the_websocket() -> None:
    with trio.fail_after(10):
        async with running_server() as srv:
            sid, _ = await srv.handshake()
            session = srv.engine.sessions[sid]
            ws = await srv.ws(poll_url(sid, "websocket"))
            await ws.send("2probe")
            assert await ws.receive() == "3probe"
            session.send_nowait([message("queued during the probe")])
            await ws.send("5")
            assert await ws.receive() == "4queued during the probe"
            await ws.close()


async def test_second_websocket_after_upgrade_is_closed_and_the_first_unharmed() -> None:
    with trio.fail_after(10):
        async with running_server() as srv:
            sid, _ = await srv.handshake()
            ws = await srv.ws(poll_url(sid, "websocket"))
            await ws.send("2probe")
            await ws.send("5")
            assert await ws.receive() == "3probe"
            await wait_until(lambda: srv.engine.sessions[sid].transport == "websocket")
            second = await srv.ws(poll_url(sid, "websocket"))
            assert await second.receive_until_closed() == []
            assert second.closed is not None
            assert second.closed.code == 1008
            await second.stream.aclose()
            await ws.send("4hello")
            assert await ws.receive() == "4hello"
            assert srv.app.reasons(sid) == []
            await ws.close()


async def test_second_websocket_of_a_websocket_session_is_closed() -> None:
    with trio.fail_after(10):
        async with running_server() as srv:
            ws, sid = await srv.ws_handshake()
            second = await srv.ws(poll_url(sid, "websocket"))
            await second.receive_until_closed()
            await second.stream.aclose()
            await ws.send("4ok")
            assert await ws.receive() == "4ok"
            await ws.close()


async def test_second_probe_while_probing_is_closed() -> None:
    with trio.fail_after(10):
        async with running_server() as srv:
            sid, _ = await srv.handshake()
            first = await srv.ws(poll_url(sid, "websocket"))
            await first.send("2probe")
            assert await first.receive() == "3probe"
            second = await srv.ws(poll_url(sid, "websocket"))
            await second.receive_until_closed()
            await second.stream.aclose()
            await first.send("5")
            await first.send("4x")
            assert await first.receive() == "4x"
            await first.close()


async def test_repeated_probes_are_answered() -> None:
    with trio.fail_after(10):
        async with running_server() as srv:
            sid, _ = await srv.handshake()
            ws = await srv.ws(poll_url(sid, "websocket"))
            await ws.send("2probe")
            await ws.send("2probe")
            assert await ws.receive() == "3probe"
            assert await ws.receive() == "3probe"
            await ws.send("5")
            await ws.send("4x")
            assert await ws.receive() == "4x"
            await ws.close()


@pytest.mark.parametrize(
    "sequence",
    [
        ["4hello"],  # no probe at all
        ["2"],  # a ping that is not the probe
        ["2probe", "4hello"],  # a message before the upgrade packet
        ["2probe", b"\x01"],
        ["5"],  # upgrade without a probe
        ["2probe", "x"],
    ],
)
async def test_failed_probe_leaves_the_session_on_polling(sequence: list[str | bytes]) -> None:
    with trio.fail_after(10):
        async with running_server() as srv:
            sid, _ = await srv.handshake()
            ws = await srv.ws(poll_url(sid, "websocket"))
            for item in sequence:
                await ws.send(item)
            frames = await ws.receive_until_closed()
            assert frames in ([], ["3probe"])
            assert ws.closed is not None
            await ws.stream.aclose()
            session = srv.engine.sessions[sid]
            assert session.transport == "polling"
            await wait_until(lambda: not session.upgrading and session.can_upgrade())
            # Nothing sent over the failed probe reached the application.
            response = await srv.post(poll_url(sid), "4via polling")
            assert response.text == "ok"
            assert (await srv.get(poll_url(sid))).text == "4via polling"
            assert [m for _, m in srv.app.messages] == ["via polling"]
            # And a later upgrade succeeds.
            ws = await srv.ws(poll_url(sid, "websocket"))
            await ws.send("2probe")
            assert await ws.receive() == "3probe"
            await ws.send("5")
            await ws.send("4x")
            assert await ws.receive() == "4x"
            await ws.close()


async def test_session_closing_during_the_probe_closes_the_probe() -> None:
    with trio.fail_after(10):
        async with running_server() as srv:
            sid, _ = await srv.handshake()
            ws = await srv.ws(poll_url(sid, "websocket"))
            await ws.send("2probe")
            assert await ws.receive() == "3probe"
            srv.engine.sessions[sid].close_nowait(DisconnectReason.FORCED_CLOSE)
            with pytest.raises(WSClosed):
                await ws.receive()
            await ws.stream.aclose()
            assert await srv.app.wait_closed(sid) is DisconnectReason.FORCED_CLOSE


async def test_upgrade_with_packets_in_flight_both_ways() -> None:
    """Traffic flows both ways through the switch; nothing is lost, doubled or reordered.

    The client behaves like engine.io-client: after "3probe" it lets its
    pending GET and POST finish, sends no more of them, then sends "5" and
    carries on over the WebSocket.
    """
    app = Recorder(echo=False)
    with trio.fail_after(20):
        async with running_server(app=app, max_buffered_packets=1_000_000) as srv:
            sid, _ = await srv.handshake()
            session = srv.engine.sessions[sid]
            received: list[str] = []
            ws_frames: list[str | bytes] = []
            pausing = trio.Event()
            produced = trio.Event()
            stop_producing = trio.Event()
            sent = {"server": 0, "client": 0}
            poller = await srv.http()
            poster = await srv.http()

            async def produce() -> None:
                i = 0
                while not stop_producing.is_set():
                    assert session.send_nowait([message(f"s{i}")])
                    i += 1
                    await trio.sleep(0.0002)
                sent["server"] = i
                produced.set()

            async def poll() -> None:
                while not pausing.is_set():
                    response = await poller.request("GET", poll_url(sid))
                    assert response.status == 200
                    for record in response.text.split(RS):
                        if record != "6":
                            assert record.startswith("4s")
                            received.append(record[1:])

            async def post() -> None:
                while not pausing.is_set():
                    n = sent["client"]
                    body = RS.join(f"4c{n + k}" for k in range(3))
                    sent["client"] = n + 3
                    response = await poster.request("POST", poll_url(sid), body=body.encode())
                    assert response.text == "ok"

            async with trio.open_nursery() as nursery:
                nursery.start_soon(produce)
                async with trio.open_nursery() as polling:
                    polling.start_soon(poll)
                    polling.start_soon(post)
                    await wait_until(lambda: len(received) > 20 and len(app.messages) > 20)
                    ws = await srv.ws(poll_url(sid, "websocket"))
                    await ws.send("2probe")
                    assert await ws.receive() == "3probe"
                    pausing.set()  # let the pending GET and POST finish, then no more
                await ws.send("5")
                for _ in range(30):
                    await ws.send(f"4c{sent['client']}")
                    sent["client"] += 1
                await wait_until(lambda: len(app.messages) == sent["client"])
                stop_producing.set()
                await produced.wait()
                last = f"s{sent['server'] - 1}"
                while not received or received[-1] != last:
                    frame = await ws.receive()
                    ws_frames.append(frame)
                    assert isinstance(frame, str)
                    assert frame.startswith("4s")  # no NOOP, no second 3probe: no stray frame
                    received.append(frame[1:])
            assert received == [f"s{i}" for i in range(sent["server"])]
            assert [m for _, m in app.messages] == [f"c{i}" for i in range(sent["client"])]
            assert ws_frames  # some of it did cross the WebSocket
            await poller.aclose()
            await poster.aclose()
            await ws.close()
            assert await app.wait_closed(sid) is DisconnectReason.TRANSPORT_CLOSE
