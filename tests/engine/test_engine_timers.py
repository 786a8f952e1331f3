"""Heartbeat, upgrade timeout and HTTP timeouts on the Trio clock.

Every test runs under ``MockClock(autojump_threshold=0)`` (pytest-trio's
``autojump_clock`` fixture) on the in-memory network, so minutes of protocol time
take milliseconds and every instant asserted is exact.
"""

from __future__ import annotations

from typing import Any

import trio
import trio.testing
from eio_peers import RS, HTTPClient, count_tasks, poll_url, raw_post_head, running_server

from triosio import DisconnectReason, HTTPLimits

INTERVAL = 25.0
TIMEOUT = 20.0


async def test_polling_ping_pong_cycles(autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(1000):
        async with running_server(memory=True) as srv:
            sid, _ = await srv.handshake()
            opened = srv.app.open_times[sid]
            client = await srv.http()
            for k in range(1, 6):
                response = await client.request("GET", poll_url(sid))
                assert response.text == "2"
                assert trio.current_time() == opened + k * INTERVAL
                response = await client.request("POST", poll_url(sid), body=b"3")
                assert response.text == "ok"
            assert srv.app.closed == []
            await client.aclose()


async def test_polling_ping_timeout_at_the_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(1000):
        async with running_server(memory=True) as srv:
            sid, _ = await srv.handshake()
            opened = srv.app.open_times[sid]
            client = await srv.http()
            assert (await client.request("GET", poll_url(sid))).text == "2"
            response = await client.request("GET", poll_url(sid))  # parks; no pong is sent
            assert response.text == "1"
            deadline = opened + INTERVAL + TIMEOUT
            assert trio.current_time() == deadline
            assert await srv.app.wait_closed(sid) is DisconnectReason.PING_TIMEOUT
            assert srv.app.closed[0][2] == deadline  # reported at once, to the instant
            assert (await client.request("GET", poll_url(sid))).status == 400
            await client.aclose()


async def test_websocket_ping_timeout_at_the_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(1000):
        async with running_server(memory=True) as srv:
            ws, sid = await srv.ws_handshake()
            opened = srv.app.open_times[sid]
            assert await ws.receive() == "2"
            assert trio.current_time() == opened + INTERVAL
            # The client stays silent: the server gives up exactly at the deadline.
            assert await srv.app.wait_closed(sid) is DisconnectReason.PING_TIMEOUT
            assert srv.app.closed[0][2] == opened + INTERVAL + TIMEOUT
            assert await ws.receive_until_closed() == ["1"]


async def test_websocket_heartbeat_over_an_hour(autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(10_000):
        async with running_server(memory=True) as srv:
            ws, sid = await srv.ws_handshake()
            opened = srv.app.open_times[sid]
            for k in range(1, 145):  # an hour of 25 s intervals
                assert await ws.receive() == "2"
                assert trio.current_time() == opened + k * INTERVAL
                await ws.send("3")
            assert srv.app.closed == []
            await ws.close()


async def test_pong_after_a_busy_interval_still_counts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The pong may come at any instant before the deadline.
    with trio.fail_after(1000):
        async with running_server(memory=True) as srv:
            ws, _sid = await srv.ws_handshake()
            assert await ws.receive() == "2"
            await trio.sleep(TIMEOUT - 0.001)
            await ws.send("3")
            assert await ws.receive() == "2"
            assert srv.app.closed == []
            await ws.close()


async def test_stray_pongs_start_nothing(autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(1000):
        async with running_server(memory=True) as srv:
            ws, sid = await srv.ws_handshake()
            opened = srv.app.open_times[sid]
            await trio.testing.wait_all_tasks_blocked()
            tasks = count_tasks()
            for _ in range(100):
                await ws.send("3")
            await trio.testing.wait_all_tasks_blocked()
            assert count_tasks() == tasks
            # ... and the heartbeat's schedule is unchanged.
            assert await ws.receive() == "2"
            assert trio.current_time() == opened + INTERVAL
            await ws.send("3")
            assert await ws.receive() == "2"
            assert trio.current_time() == opened + 2 * INTERVAL
            await ws.close()


async def test_pings_of_many_sessions_share_the_timer_wake_ups(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # One timer task serves every session; a PING may go up to 5 ms early to
    # ride along with another's, never late. 40 sessions opened 1 ms apart get
    # their pings in a handful of instants, each in its own 5 ms window.
    with trio.fail_after(1000):
        async with running_server(memory=True) as srv:
            pings: dict[str, list[float]] = {}
            clients = []
            for _ in range(40):
                ws, sid = await srv.ws_handshake()
                clients.append((ws, sid))
                await trio.sleep(0.001)

            async def answer(ws: Any, sid: str) -> None:
                for _ in range(2):
                    assert await ws.receive() == "2"
                    pings.setdefault(sid, []).append(trio.current_time())
                    await ws.send("3")

            async with trio.open_nursery() as nursery:
                for ws, sid in clients:
                    nursery.start_soon(answer, ws, sid)
            for _ws, sid in clients:
                first, second = pings[sid]
                due = srv.app.open_times[sid] + INTERVAL
                assert due - 0.005 <= first <= due
                assert first + INTERVAL - 0.005 <= second <= first + INTERVAL
            instants = {t for times in pings.values() for t in times}
            assert len(instants) <= 2 * (40 // 5 + 1)
            assert srv.app.closed == []
            for ws, _sid in clients:
                await ws.close()


async def test_closed_sessions_are_not_held_by_the_timers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # A closed session's timer entry is emptied at once: the heap keeps a small
    # list until the time passes, not the session (churn must not pile up).
    with trio.fail_after(1000):
        async with running_server(memory=True) as srv:
            sids = []
            for _ in range(30):
                ws, sid = await srv.ws_handshake()
                sids.append(sid)
                await ws.close()
            for sid in sids:
                await srv.app.wait_closed(sid)
            heap = srv.engine._heartbeats._heap
            assert len(heap) >= 30  # their entries fall due only later...
            assert all(entry[2] is None for entry in heap)  # ... and hold nothing
            await trio.sleep(INTERVAL + 1)
            assert len(srv.engine._heartbeats) == 0


async def test_heartbeat_is_paused_during_the_probe(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(1000):
        async with running_server(memory=True, upgrade_timeout=60) as srv:
            sid, _ = await srv.handshake()
            opened = srv.app.open_times[sid]
            client = await srv.http()
            await trio.sleep(INTERVAL - 1)
            ws = await srv.ws(poll_url(sid, "websocket"))
            await ws.send("2probe")
            assert await ws.receive() == "3probe"
            # The pending GET is released; the ping that falls due now waits.
            assert (await client.request("GET", poll_url(sid))).text == "6"
            await trio.sleep(INTERVAL + TIMEOUT + 5)  # long past ping time and timeout
            assert srv.app.closed == []
            assert srv.engine.sessions[sid].upgrading
            await ws.send("5")
            # The delayed ping goes out at once, over the new transport.
            assert await ws.receive() == "2"
            switched = opened + INTERVAL - 1 + INTERVAL + TIMEOUT + 5
            assert trio.current_time() == switched
            await ws.send("3")
            assert await ws.receive() == "2"
            assert trio.current_time() == switched + INTERVAL
            await ws.close()
            await client.aclose()


async def test_pong_deadline_waits_for_a_probe_in_progress(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(1000):
        async with running_server(memory=True, upgrade_timeout=60) as srv:
            sid, _ = await srv.handshake()
            client = await srv.http()
            assert (await client.request("GET", poll_url(sid))).text == "2"
            # Instead of answering over polling, the client upgrades (slowly) and
            # answers over the WebSocket, as engine.io-client does with its buffer.
            ws = await srv.ws(poll_url(sid, "websocket"))
            await ws.send("2probe")
            assert await ws.receive() == "3probe"
            await trio.sleep(TIMEOUT * 2)
            await ws.send("5")
            await ws.send("3")
            await ws.send("4alive")
            assert await ws.receive() == "4alive"
            assert srv.app.closed == []
            await ws.close()
            await client.aclose()


async def test_upgrade_timeout_closes_the_probe_only(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(1000):
        async with running_server(memory=True, upgrade_timeout=10) as srv:
            sid, _ = await srv.handshake()
            ws = await srv.ws(poll_url(sid, "websocket"))
            start = trio.current_time()
            await ws.send("2probe")
            assert await ws.receive() == "3probe"
            assert await ws.receive_until_closed() == []
            assert trio.current_time() == start + 10
            session = srv.engine.sessions[sid]
            assert session.transport == "polling"
            assert not session.upgrading
            # Polling goes on, heartbeat included.
            client = await srv.http()
            assert (await client.request("GET", poll_url(sid))).text == "2"
            await client.request("POST", poll_url(sid), body=b"3")
            assert srv.app.closed == []
            await client.aclose()


async def test_a_probe_that_never_starts_times_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(1000):
        async with running_server(memory=True, upgrade_timeout=10) as srv:
            sid, _ = await srv.handshake()
            ws = await srv.ws(poll_url(sid, "websocket"))
            start = trio.current_time()
            assert await ws.receive_until_closed() == []
            assert trio.current_time() == start + 10
            assert srv.engine.sessions[sid].can_upgrade()


# ---------------------------------------------------------------- HTTP timeouts


LIMITS = HTTPLimits(head_timeout=10, idle_timeout=60, body_timeout=30)


async def test_slowloris_head_times_out(autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(1000):
        async with running_server(memory=True, limits=LIMITS) as srv:
            stream = await srv.connect()
            start = trio.current_time()
            head = b"GET /engine.io/?EIO=4&transport=polling HTTP/1.1\r\nhost: x\r\n"
            answer = b""
            for byte in head:
                await stream.send_all(bytes([byte]))
                with trio.move_on_after(1):
                    answer = await stream.receive_some(65536)
                if answer:
                    break
            assert answer.startswith(b"HTTP/1.1 408 ")
            assert trio.current_time() == start + 10
            assert await stream.receive_some(65536) == b""  # and the connection is closed
            assert srv.engine.sessions == {}


async def test_idle_keep_alive_connection_is_closed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(1000):
        async with running_server(memory=True, limits=LIMITS) as srv:
            client = HTTPClient(await srv.connect())
            await client.request("GET", "/engine.io/?EIO=4&transport=polling")
            done = trio.current_time()
            assert await client.stream.receive_some(65536) == b""  # closed silently
            assert trio.current_time() == done + 60
            await client.aclose()


async def test_connection_that_never_speaks_is_closed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(1000):
        async with running_server(memory=True, limits=LIMITS) as srv:
            stream = await srv.connect()
            start = trio.current_time()
            assert await stream.receive_some(65536) == b""
            assert trio.current_time() == start + 60
            await stream.aclose()


async def test_stalled_post_body_times_out_and_closes_the_session(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(1000):
        async with running_server(memory=True, limits=LIMITS) as srv:
            sid, _ = await srv.handshake()
            stream = await srv.connect()
            start = trio.current_time()
            await stream.send_all(raw_post_head(sid, 100) + b"4abc")
            assert await srv.app.wait_closed(sid) is DisconnectReason.TRANSPORT_ERROR
            assert trio.current_time() == start + 30
            await stream.aclose()


async def test_a_body_trickled_just_inside_body_timeout_is_cut_at_request_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limits = HTTPLimits(head_timeout=10, idle_timeout=60, body_timeout=30, request_timeout=120)
    with trio.fail_after(1000):
        # Heartbeats far apart: only the body's deadline may end the session.
        async with running_server(
            memory=True, limits=limits, ping_interval=1000, ping_timeout=1000
        ) as srv:
            sid, _ = await srv.handshake()
            stream = await srv.connect()
            start = trio.current_time()
            await stream.send_all(raw_post_head(sid, 100) + b"4")

            async def trickle() -> None:
                # A byte every 29 s: never a 30 s pause, never a whole body.
                for _ in range(99):
                    await trio.sleep(29)
                    await stream.send_all(b"x")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(trickle)
                assert await srv.app.wait_closed(sid) is DisconnectReason.TRANSPORT_ERROR
                nursery.cancel_scope.cancel()
            assert trio.current_time() == start + 120
            await stream.aclose()


async def test_long_poll_is_not_an_idle_connection(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # A GET parked for longer than idle_timeout is fine: only heads time out.
    with trio.fail_after(1000):
        async with running_server(
            memory=True,
            limits=HTTPLimits(idle_timeout=5, head_timeout=1),
            ping_interval=100,
            ping_timeout=50,
        ) as srv:
            sid, _ = await srv.handshake()
            client = HTTPClient(await srv.connect())
            assert (await client.request("GET", poll_url(sid))).text == "2"
            assert trio.current_time() == srv.app.open_times[sid] + 100
            await client.request("POST", poll_url(sid), body=b"3")
            await client.request("POST", poll_url(sid), body=f"4a{RS}4b".encode())
            assert (await client.request("GET", poll_url(sid))).text == f"4a{RS}4b"
            await client.aclose()


async def test_websocket_close_lingers_a_bounded_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # A peer that never answers our close frame costs one second, not more.
    with trio.fail_after(1000):
        async with running_server(memory=True) as srv:
            ws, sid = await srv.ws_handshake()
            session = srv.engine.sessions[sid]
            start = trio.current_time()
            session.close_nowait(DisconnectReason.FORCED_CLOSE)
            await session.wait_closed()
            assert trio.current_time() == start + 1.0
            assert srv.app.closed[0][2] == start  # the application heard at once
            await ws.stream.aclose()


async def test_nothing_is_served_past_the_pong_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # At the deadline instant the heartbeat task and whoever else wakes then run
    # in an order the scheduler picks; whichever looks first, the session is over.
    with trio.fail_after(10_000):
        async with running_server(memory=True) as srv:
            for _ in range(20):
                sid, _ = await srv.handshake()
                client = await srv.http()
                assert (await client.request("GET", poll_url(sid))).text == "2"
                await trio.sleep_until(srv.app.open_times[sid] + INTERVAL + TIMEOUT)
                session = srv.engine.sessions.get(sid)
                assert session is None or session.overdue()
                assert (await client.request("POST", poll_url(sid), body=b"3")).status == 400
                assert await srv.app.wait_closed(sid) is DisconnectReason.PING_TIMEOUT
                await client.aclose()


async def test_partial_head_pipelined_behind_a_request_times_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(1000):
        async with running_server(memory=True, limits=LIMITS) as srv:
            stream = await srv.connect()
            start = trio.current_time()
            await stream.send_all(
                b"GET /nowhere HTTP/1.1\r\nhost: x\r\n\r\n"
                b"GET /engine.io/?EIO=4&transport=polling HTTP/1.1\r\nhost: x\r\n"
            )
            answer = b""
            while b"408" not in answer:
                data = await stream.receive_some(65536)
                assert data
                answer += data
            assert answer.startswith(b"HTTP/1.1 404 ")
            assert trio.current_time() == start + 10  # head_timeout, not idle_timeout
            await stream.aclose()
