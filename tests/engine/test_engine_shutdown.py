"""Graceful shutdown, answers while stopping, and what a closed session leaves behind."""

from __future__ import annotations

import gc
import warnings

import trio
import trio.testing
from eio_peers import (
    HTTPClient,
    Recorder,
    WSClient,
    count_tasks,
    message,
    poll_url,
    raw_post_head,
    running_server,
    wait_until,
)

from triosio import App, DisconnectReason, EngineServer, serve
from triosio._testing_net import MemoryNetwork


async def test_cancelling_serve_says_goodbye_to_every_client() -> None:
    app = Recorder()
    engine = EngineServer(app, cors_allowed_origins="*")
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(serve, App(engine), "127.0.0.1", 0)
            port = listeners[0].socket.getsockname()[1]

            async def connect() -> trio.SocketStream:
                return await trio.open_tcp_stream("127.0.0.1", port)

            # A WebSocket session, an upgraded one, and a polling one with a pending GET.
            ws = await WSClient.open(await connect(), "/engine.io/?EIO=4&transport=websocket")
            await ws.receive()
            poller = HTTPClient(await connect())
            response = await poller.request("GET", "/engine.io/?EIO=4&transport=polling")
            polling_sid = response.text.split('"sid":"')[1].split('"')[0]
            response = await poller.request("GET", "/engine.io/?EIO=4&transport=polling")
            upgraded_sid = response.text.split('"sid":"')[1].split('"')[0]
            upgraded = await WSClient.open(await connect(), poll_url(upgraded_sid, "websocket"))
            await upgraded.send("2probe")
            assert await upgraded.receive() == "3probe"
            await upgraded.send("5")
            await wait_until(lambda: engine.sessions[upgraded_sid].transport == "websocket")
            await poller.send_request("GET", poll_url(polling_sid))
            await wait_until(lambda: engine.sessions[polling_sid].writable)
            assert len(engine.sessions) == 3

            nursery.cancel_scope.cancel()  # stops serve()
            with trio.CancelScope(shield=True):
                assert await ws.receive_until_closed() == ["1"]
                assert ws.closed is not None
                assert ws.closed.code == 1001  # going away (RFC 6455 section 7.4.1)
                assert await upgraded.receive_until_closed() == ["1"]
                response = await poller.read_response()
                assert (response.status, response.text) == (200, "1")
                await poller.aclose()
    assert (
        sorted(reason for _, reason, _ in app.closed) == [DisconnectReason.SERVER_SHUTTING_DOWN] * 3
    )
    assert engine.sessions == {}


async def test_shutdown_is_bounded_with_a_client_that_does_not_read(
    autojump_clock: trio.testing.MockClock,
) -> None:
    network = MemoryNetwork(window=4096)
    app = Recorder()
    engine = EngineServer(app)
    with trio.fail_after(100):
        async with trio.open_nursery() as nursery:
            await nursery.start(_serve_memory, App(engine), network)
            ws = await WSClient.open(
                await network.connect(), "/engine.io/?EIO=4&transport=websocket"
            )
            await ws.receive()
            network.connections[-1].pause_client()
            session = next(iter(engine.sessions.values()))
            while session.send_nowait([message("x" * 1000)]):
                await trio.lowlevel.checkpoint()
                if session.buffered_bytes > 100_000:
                    break
            start = trio.current_time()
            nursery.cancel_scope.cancel()
        stopped = trio.current_time()
    assert stopped - start <= engine.options.shutdown_timeout
    assert [reason for _, reason, _ in app.closed] == [DisconnectReason.SERVER_SHUTTING_DOWN]


async def _serve_memory(
    app: App, network: MemoryNetwork, *, task_status: trio.TaskStatus[object]
) -> None:
    await serve(app, listeners=[network.listener], task_status=task_status)


async def test_503_while_shutting_down() -> None:
    with trio.fail_after(10):
        async with running_server(cors_allowed_origins="*") as srv:
            sid, _ = await srv.handshake()
            await srv.engine.shutdown()
            assert await srv.app.wait_closed(sid) is DisconnectReason.SERVER_SHUTTING_DOWN
            response = await srv.get(
                "/engine.io/?EIO=4&transport=polling", [("origin", "https://a.example")]
            )
            assert response.status == 503
            assert response.header("connection") == "close"
            assert response.header("access-control-allow-origin") == "*"
            # A request for the closed session is, as always, an unknown sid.
            assert (await srv.get(poll_url(sid))).json()["code"] == 1


async def test_slow_async_allow_request_racing_shutdown() -> None:
    entered = trio.Event()
    release = trio.Event()

    async def allow(request: object) -> bool:
        entered.set()
        await release.wait()
        return True

    with trio.fail_after(10):
        async with running_server(allow_request=allow) as srv:
            async with trio.open_nursery() as nursery:
                answers = []

                async def handshake() -> None:
                    answers.append(await srv.get("/engine.io/?EIO=4&transport=polling"))

                nursery.start_soon(handshake)
                await entered.wait()
                await srv.engine.shutdown()
                release.set()
            assert answers[0].status == 503
            assert srv.engine.sessions == {}


# ---------------------------------------------------------------- leaks


async def test_closed_sessions_leave_no_task_behind(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(1000):
        async with running_server(memory=True, upgrade_timeout=5) as srv:
            await trio.testing.wait_all_tasks_blocked()
            baseline = count_tasks()

            # polling, closed by the client
            sid, _ = await srv.handshake()
            await srv.post(poll_url(sid), "1")
            await srv.app.wait_closed(sid)
            # websocket, closed by the client, then by the server, then broken
            for how in ("client", "server", "cut"):
                ws, sid = await srv.ws_handshake()
                if how == "client":
                    await ws.close()
                elif how == "server":
                    srv.engine.sessions[sid].close_nowait(DisconnectReason.FORCED_CLOSE)
                    await ws.receive_until_closed()
                else:
                    srv.network.connections[-1].cut()  # type: ignore[union-attr]
                    await ws.stream.aclose()
                await srv.app.wait_closed(sid)
            # upgraded, then ping timeout
            sid, _ = await srv.handshake()
            ws = await srv.ws(poll_url(sid, "websocket"))
            await ws.send("2probe")
            await ws.receive()
            await ws.send("5")
            await srv.app.wait_closed(sid)
            await ws.stream.aclose()
            # a failed probe, an overlapping GET, an aborted POST
            sid, _ = await srv.handshake()
            probe = await srv.ws(poll_url(sid, "websocket"))
            await probe.receive_until_closed()  # upgrade timeout
            first = await srv.http()
            await first.send_request("GET", poll_url(sid))
            await trio.testing.wait_all_tasks_blocked()
            await srv.get(poll_url(sid))
            await first.read_response()
            await first.aclose()
            await srv.app.wait_closed(sid)
            sid, _ = await srv.handshake()
            stream = await srv.connect()
            await stream.send_all(raw_post_head(sid, 50) + b"4x")
            await trio.testing.wait_all_tasks_blocked()
            await stream.aclose()
            await srv.app.wait_closed(sid)

            await trio.sleep(5)  # every lingering close is over
            await trio.testing.wait_all_tasks_blocked()
            assert srv.engine.sessions == {}
            assert count_tasks() == baseline
            assert len(srv.app.closed) == 7


async def test_no_resource_warning_after_abrupt_ends() -> None:
    # Real sockets: every one the server opened must be closed explicitly.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with trio.fail_after(10):
            async with running_server() as srv:
                ws, sid = await srv.ws_handshake()
                await ws.stream.aclose()
                await srv.app.wait_closed(sid)
                sid, _ = await srv.handshake()
                probe = await srv.ws(poll_url(sid, "websocket"))
                await probe.send("2probe")
                await probe.receive()
                srv.engine.sessions[sid].close_nowait(DisconnectReason.FORCED_CLOSE)
                await probe.receive_until_closed()
                sid, _ = await srv.handshake()
                second = await srv.ws(poll_url(sid, "websocket"))
                await second.send("4no probe")
                await second.receive_until_closed()
                async with trio.open_nursery() as nursery:
                    ws, sid = await srv.ws_handshake()
                    # Left open: the server's shutdown closes it (the client
                    # answers the close frame, so no lingering).
                    nursery.start_soon(ws.receive_until_closed)
                    srv.cancel_scope.cancel()
        for _ in range(3):
            gc.collect()
    leaked = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaked == []


async def test_a_poller_between_two_gets_still_hears_the_close(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # At shutdown no GET of this client is pending (it is between two polls):
    # its session waits for the next GET to carry CLOSE (the npm client then
    # reports "transport close", not "transport error"), within shutdown_timeout.
    async with running_server(memory=True, shutdown_timeout=2.0) as srv:
        sid, _ = await srv.handshake()
        done = trio.Event()

        async def shut_down() -> None:
            await srv.engine.shutdown()
            done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(shut_down)
            await trio.sleep(0.5)
            assert not done.is_set()  # waiting for the client's next GET
            response = await srv.get(poll_url(sid))
            assert (response.status, response.text) == (200, "1")
            with trio.fail_after(0.1):
                await done.wait()
        assert srv.app.closed[-1][1] is DisconnectReason.SERVER_SHUTTING_DOWN


async def test_a_poller_that_never_comes_back_holds_shutdown_no_longer_than_its_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_server(memory=True, shutdown_timeout=2.0) as srv:
        await srv.handshake()
        started = trio.current_time()
        await srv.engine.shutdown()
        assert 2.0 <= trio.current_time() - started < 2.5
