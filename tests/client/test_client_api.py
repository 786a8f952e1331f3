"""The client API against the scripted in-memory peer, under MockClock.

Handlers and acknowledgements, ``on``/``once``/``off``/``on_any``/outgoing,
``async for`` and its overflow policy, ack timeouts and retries (at-least-once),
emit validation, the context manager's exceptions and cleanup, the connector,
TLS, query/headers, polling batches and the upgrade.
"""

from __future__ import annotations

import math
import ssl
from typing import Any

import pytest
import trio
from client_fixtures import peer_fixture  # noqa: F401 (the fixture peer)
from recorder import Recorder
from scripted_peer import ScriptedPeer

import triosio
import triosio.testing
from triosio import (
    AckTimeout,
    ConnectError,
    DisconnectReason,
    EventStreamOverflow,
    LocalProtocolError,
)
from triosio._proto import eio

URL = "http://example.com"


def connect(peer: ScriptedPeer, **options: Any) -> Any:
    options.setdefault("random", lambda: 0.0)
    return triosio.connect(options.pop("url", URL), connector=peer.connector, **options)


# ---------------------------------------------------------------- handlers and acks


async def test_handler_return_value_is_the_acknowledgement(
    autojump_clock: trio.abc.Clock, peer: ScriptedPeer
) -> None:
    async with connect(peer) as client:

        @client.on("pair")
        def pair(a: int, b: int) -> tuple[int, bytes]:
            return a + b, b"\x00sum"

        @client.on("none")
        async def none() -> None:
            await trio.sleep(1)

        @client.on("one")
        def one(x: Any) -> Any:
            return {"got": x}

        client.on("one", lambda x: "ignored: only the first handler's value is the ack")

        with trio.fail_after(10):
            assert await peer.emit_with_ack("pair", 1, 2) == [3, b"\x00sum"]
            assert await peer.emit_with_ack("none") == []
            assert await peer.emit_with_ack("one", [b"x"]) == [{"got": [b"x"]}]


async def test_failing_handler_is_logged_and_does_not_ack(
    autojump_clock: trio.abc.Clock, peer: ScriptedPeer, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []
    async with connect(peer) as client:

        @client.on("boom")
        def boom() -> str:
            calls.append("first")
            raise RuntimeError("handler bug")

        @client.on("boom")
        def second() -> str:
            calls.append("second")
            return "not an ack"

        with trio.move_on_after(30) as scope:
            await peer.emit_with_ack("boom")
        assert scope.cancelled_caught  # never acknowledged
        assert calls == ["first", "second"]
        assert client.connected
        assert await client.emit_with_ack("still", "fine") == "fine"
    assert "'boom'" in caplog.text
    assert "handler bug" in caplog.text


async def test_on_once_off_listeners(autojump_clock: trio.abc.Clock, peer: ScriptedPeer) -> None:
    got: list[tuple[str, Any]] = []
    async with connect(peer) as client:

        def plain(x: Any) -> None:
            got.append(("plain", x))

        assert client.on("news", plain) is plain
        client.once("news", lambda x: got.append(("once", x)))

        @client.on("news")
        async def decorated(x: Any) -> None:
            got.append(("decorated", x))

        assert len(client.listeners("news")) == 3
        with client.events("news") as stream:
            peer.emit("news", 1)
            await stream.__anext__()
            client.off("news", plain)
            peer.emit("news", 2)
            await stream.__anext__()
            client.off("news")
            assert client.listeners("news") == []
            peer.emit("news", 3)
            await stream.__anext__()
        await trio.sleep(1)
    assert got == [("plain", 1), ("once", 1), ("decorated", 1), ("decorated", 2)]


async def test_catch_all_and_outgoing_listeners(
    autojump_clock: trio.abc.Clock, peer: ScriptedPeer
) -> None:
    got: list[tuple[Any, ...]] = []
    async with connect(peer) as client:
        client.on_any(lambda *args: got.append(("any", *args)))
        client.prepend_any(lambda *args: got.append(("first", *args)))
        client.on("news", lambda *args: got.append(("news", *args)))
        client.on_any_outgoing(lambda *args: got.append(("out", *args)))
        assert len(client.listeners_any()) == 2
        with client.events() as stream:
            peer.emit("news", 1, b"b")
            await stream.__anext__()
            await client.emit("up", {"k": 2})
            await client.disconnect()  # a reserved event: no catch-all call
            await trio.sleep(1)
            client.off_any()
            client.off_any_outgoing()
            assert client.listeners_any() == client.listeners_any_outgoing() == []
    assert got == [
        ("first", "news", 1, b"b"),
        ("any", "news", 1, b"b"),
        ("news", 1, b"b"),
        ("out", "up", {"k": 2}),
    ]


async def test_handlers_run_one_at_a_time_in_order(
    autojump_clock: trio.abc.Clock, peer: ScriptedPeer
) -> None:
    seen: list[tuple[str, int, float]] = []
    async with connect(peer) as client:

        @client.on("slow")
        async def slow(n: int) -> None:
            seen.append(("start", n, trio.current_time()))
            await trio.sleep(1)
            seen.append(("end", n, trio.current_time()))

        for n in range(3):
            peer.emit("slow", n)
        await trio.sleep(10)
    assert seen == [
        ("start", 0, 0.0),
        ("end", 0, 1.0),
        ("start", 1, 1.0),
        ("end", 1, 2.0),
        ("start", 2, 2.0),
        ("end", 2, 3.0),
    ]


# ---------------------------------------------------------------- async for


async def test_async_for_events_and_ack(autojump_clock: trio.abc.Clock, peer: ScriptedPeer) -> None:
    async with connect(peer) as client:
        with client.events("a", "q") as stream:
            peer.emit("a", 1)
            peer.emit("b", 2)  # not taken by this stream
            peer.emit("a", b"\x01", {"n": [3]})
            first = await stream.__anext__()
            second = await stream.__anext__()
            assert (first.name, first.args, first.namespace) == ("a", (1,), "/")
            assert second.args == (b"\x01", {"n": [3]})
            assert not first.ack_requested

            async with trio.open_nursery() as nursery:
                answers: list[Any] = []

                async def ask() -> None:
                    answers.append(await peer.emit_with_ack("q", "why?"))

                nursery.start_soon(ask)
                question = await stream.__anext__()
                assert question.ack_requested
                await question.ack("because", b"\x02")
                await question.ack("a second ack is ignored")
            assert answers == [["because", b"\x02"]]


async def test_async_for_overflow_error(autojump_clock: trio.abc.Clock, peer: ScriptedPeer) -> None:
    async with connect(peer) as client:
        stream = client.events(max_buffer=3)
        for i in range(5):
            peer.emit("e", i)
        await trio.sleep(1)
        got = []

        async def consume() -> None:
            async for event in stream:
                got.append(event.args[0])

        with pytest.raises(EventStreamOverflow) as info:
            await consume()
        assert got == [0, 1, 2]  # everything before the overflow, then the error
        assert info.value.max_buffer == 3
        peer.emit("e", 99)
        await trio.sleep(1)
        with pytest.raises(trio.EndOfChannel):  # the stream is closed now
            stream.receive_nowait()


async def test_async_for_drop_oldest(autojump_clock: trio.abc.Clock, peer: ScriptedPeer) -> None:
    async with connect(peer) as client:
        with client.events(max_buffer=2, overflow="drop_oldest") as stream:
            for i in range(5):
                peer.emit("e", i)
            await trio.sleep(1)
            assert stream.dropped == 3
            assert [stream.receive_nowait().args[0] for _ in range(2)] == [3, 4]
            with pytest.raises(trio.WouldBlock):
                stream.receive_nowait()


async def test_async_for_ends_when_the_socket_stops(
    autojump_clock: trio.abc.Clock, peer: ScriptedPeer
) -> None:
    async with connect(peer) as client:
        got = []
        async with trio.open_nursery() as nursery:

            async def consume() -> None:
                async for event in client.events():
                    got.append(event.name)

            nursery.start_soon(consume)
            await trio.sleep(1)
            peer.emit("one")
            await trio.sleep(1)
            peer.disconnect_namespace("/")  # io server disconnect: the socket stops
        assert got == ["one"]
        assert not client.active


async def test_async_for_survives_reconnection(
    autojump_clock: trio.abc.Clock, peer: ScriptedPeer
) -> None:
    recorder = Recorder()
    async with connect(peer) as client:
        recorder.socket(client, "socket")
        with client.events() as stream:
            peer.emit("before")
            await trio.sleep(1)
            await peer.drop_all()
            await recorder.wait_for(lambda: recorder.count("socket", "connect") == 1)
            peer.emit("after")
            assert [(await stream.__anext__()).name for _ in range(2)] == ["before", "after"]


# ---------------------------------------------------------------- emitting


async def test_emit_validation(autojump_clock: trio.abc.Clock, peer: ScriptedPeer) -> None:
    async with connect(peer) as client:
        for name in ("connect", "connect_error", "disconnect", "disconnecting"):
            with pytest.raises(LocalProtocolError):
                await client.emit(name)
        with pytest.raises(LocalProtocolError):
            await client.emit(42)  # type: ignore[arg-type]
        with pytest.raises(LocalProtocolError):
            await client.emit("nan", math.nan)
        with pytest.raises(LocalProtocolError):
            await client.emit_with_ack("object", object())
        await client.emit("fine", None, True, 1.5, "é", [b"\xff"])
        await peer.wait_for(lambda: len(peer.received) == 1)
        assert peer.received[0].args == [None, True, 1.5, "é", [b"\xff"]]


async def test_ack_timeouts(autojump_clock: trio.abc.Clock, peer: ScriptedPeer) -> None:
    peer.ignore_acks["ignored"] = math.inf
    async with connect(peer, ack_timeout=3) as client:
        start = trio.current_time()
        with pytest.raises(AckTimeout):
            await client.emit_with_ack("ignored")
        assert trio.current_time() - start == 3
        start = trio.current_time()
        with pytest.raises(AckTimeout):
            await client.timeout(0.25).emit_with_ack("ignored")
        assert trio.current_time() - start == 0.25
        with pytest.raises(AckTimeout):
            await client.emit_with_ack("ignored", timeout=1)
        assert await client.timeout(1).emit_with_ack("echo", 5) == 5
        await client.volatile.timeout(1).emit("volatile", 1)
        await client.volatile.send("volatile message")
        await peer.wait_for(lambda: len(peer.received) == 6)
        assert [r.name for r in peer.received][-2:] == ["volatile", "message"]
        # A late acknowledgement is ignored; nothing leaks.
        assert len(client._outbox.acks) == 0


async def test_retries_give_at_least_once_delivery(
    autojump_clock: trio.abc.Clock, peer: ScriptedPeer
) -> None:
    peer.ignore_acks["count"] = 2
    async with connect(peer, ack_timeout=1, retries=2) as client:
        start = trio.current_time()
        assert await client.emit_with_ack("count", "x") == "x"
        assert trio.current_time() - start == 2  # two timeouts, then the third try
        assert [r.args for r in peer.events("count")] == [["x"]] * 3
        # Each try is a new packet with a new ack id.
        assert len({r.ack_id for r in peer.events("count")}) == 3

        peer.ignore_acks["lost"] = 3
        with pytest.raises(AckTimeout, match="after 3 attempts"):
            await client.emit_with_ack("lost")
        assert len(peer.events("lost")) == 3

        # Plain emits go through the same queue, one at a time, in order.
        peer.ignore_acks["a"] = 1
        await client.emit("a", 1)
        await client.emit("b", 2)
        await peer.wait_for(lambda: len(peer.events("b")) == 1)
        tail = [r.name for r in peer.received if r.name in ("a", "b")]
        assert tail == ["a", "a", "b"]
        assert all(r.ack_id is not None for r in peer.events("b"))


async def test_retries_survive_a_reconnection(
    autojump_clock: trio.abc.Clock, peer: ScriptedPeer
) -> None:
    # No ack_timeout: only a lost connection counts as a failed try.
    peer.ignore_acks["job"] = 1
    async with connect(peer, retries=1) as client:
        async with trio.open_nursery() as nursery:
            result: list[Any] = []

            async def job() -> None:
                result.append(await client.emit_with_ack("job", 7))

            nursery.start_soon(job)
            await peer.wait_for(lambda: len(peer.events("job")) == 1)
            await peer.drop_all()
        assert result == [7]
        assert len(peer.events("job")) == 2


async def test_buffer_full_and_volatile_while_disconnected(
    autojump_clock: trio.abc.Clock, peer: ScriptedPeer
) -> None:
    async with triosio.Manager(URL, connector=peer.connector) as manager:
        sock = manager.socket("/", max_buffer=2)
        # Not connected yet: buffered (volatile: dropped), sent once connected.
        await sock.emit("one")
        await sock.volatile.emit("dropped")
        await sock.emit("two")
        with pytest.raises(triosio.BufferFull):
            await sock.emit("three")
        await sock.connect()
        await peer.wait_for(lambda: len(peer.received) == 2)
    assert [r.name for r in peer.received] == ["one", "two"]


# ---------------------------------------------------------------- lifecycle


async def test_exceptions_in_the_block_pass_through_unwrapped(
    autojump_clock: trio.abc.Clock, peer: ScriptedPeer
) -> None:
    with pytest.raises(ValueError, match="mine"):
        async with connect(peer):
            raise ValueError("mine")
    with trio.move_on_after(5) as scope:
        async with connect(peer):
            await trio.sleep_forever()
    assert scope.cancelled_caught


async def test_leaving_disconnects_cleanly(
    autojump_clock: trio.abc.Clock, peer: ScriptedPeer
) -> None:
    recorder = Recorder()
    async with connect(peer, transports=("websocket",)) as client:
        recorder.socket(client, "socket")
        recorder.manager(client.manager)
        (session,) = peer.sessions.values()
        assert "/" in session.namespaces
        left_at = trio.current_time()
    # The server saw DISCONNECT for the namespace, then CLOSE for the connection;
    # the handlers of the last events ran.
    assert session.namespaces == {}
    assert session.closed
    assert peer.sessions == {}
    assert [(e.source, e.name, e.args) for e in recorder.log] == [
        ("socket", "disconnect", (DisconnectReason.IO_CLIENT_DISCONNECT,)),
        ("manager", "close", (DisconnectReason.IO_CLIENT_DISCONNECT,)),
    ]
    assert trio.current_time() == left_at
    with pytest.raises(RuntimeError):
        await client.connect()


async def test_leaving_fails_what_still_waits(
    autojump_clock: trio.abc.Clock, peer: ScriptedPeer
) -> None:
    results: list[BaseException] = []

    async def wait_ack(sock: triosio.ClientSocket) -> None:
        try:
            await sock.emit_with_ack("never")
        except triosio.Disconnected as exc:
            results.append(exc)

    peer.ignore_acks["never"] = math.inf
    # The waiting tasks run outside the client's nursery.
    async with (
        trio.open_nursery() as outside,
        triosio.Manager(URL, connector=peer.connector) as manager,
    ):
        sent = manager.socket("/")
        await sent.connect()
        buffered = manager.socket("/other")  # never connected: the emit waits in its buffer
        outside.start_soon(wait_ack, sent)
        outside.start_soon(wait_ack, buffered)
        await trio.sleep(1)
    assert len(results) == 2
    assert {exc.reason for exc in results} == {DisconnectReason.IO_CLIENT_DISCONNECT}


async def test_leaving_cancels_running_handlers(
    autojump_clock: trio.abc.Clock, peer: ScriptedPeer
) -> None:
    state: list[str] = []
    async with connect(peer) as client:

        @client.on("work")
        async def work() -> None:
            state.append("started")
            try:
                await trio.sleep_forever()
            finally:
                state.append("cancelled")

        peer.emit("work")
        await trio.sleep(1)
        left_at = trio.current_time()
    assert state == ["started", "cancelled"]
    # Handlers run one at a time: the stuck one held the queue until the
    # close timeout, then everything was cancelled.
    assert trio.current_time() - left_at == pytest.approx(2.0)


async def test_server_refuses_the_namespace(
    autojump_clock: trio.abc.Clock, peer: ScriptedPeer
) -> None:
    peer.authorize = lambda nsp, auth: None if auth == {"ok": True} else ("nope", {"why": [1]})
    with pytest.raises(ConnectError) as info:
        async with connect(peer, auth={"ok": False}):
            pytest.fail("refused")
    assert (info.value.message, info.value.data) == ("nope", {"why": [1]})
    async with connect(peer, auth={"ok": True}) as client:
        assert client.connected
        assert client.auth == {"ok": True}
        other = client.manager.socket("/other")
        peer.authorize = lambda nsp, auth: None
        await other.connect()
        assert other.id is not None
        assert client.manager.socket("/other") is other


async def test_parse_error_closes_the_connection_and_reconnects(
    autojump_clock: trio.abc.Clock, peer: ScriptedPeer
) -> None:
    recorder = Recorder()
    async with triosio.Manager(URL, connector=peer.connector, random=lambda: 0.0) as manager:
        recorder.manager(manager)
        sock = manager.socket("/")
        recorder.socket(sock, "socket")
        await sock.connect()
        peer.send_raw("2[not json")
        await recorder.wait_for(lambda: recorder.count("socket", "connect") == 2)
    assert recorder.entries("socket", "disconnect")[0].args == (DisconnectReason.PARSE_ERROR,)
    (error,) = recorder.entries("manager", "error")
    assert isinstance(error.args[0], triosio.InvalidJSON)


async def test_cancelled_connect_stops_trying(autojump_clock: trio.abc.Clock) -> None:
    calls: list[float] = []

    async def dead(host: str, port: int, tls: ssl.SSLContext | None) -> trio.abc.Stream:
        await trio.lowlevel.checkpoint()
        calls.append(trio.current_time())
        raise OSError(111, "Connection refused")

    async with triosio.Manager(
        URL, connector=dead, retry_connect=True, random=lambda: 0.0
    ) as manager:
        sock = manager.socket("/")
        with trio.move_on_after(2.5):
            await sock.connect()
        assert not sock.active
        await trio.sleep(60)
    assert calls == [0.0, 1.0]  # the next attempt (at 3 s) never happens


async def test_connect_again_after_giving_up_on_an_unanswered_connect(
    autojump_clock: trio.abc.Clock,
) -> None:
    # disconnect() while the server still works on the namespace's CONNECT, then
    # connect() again on the same connection: a new CONNECT goes out, and the
    # server's socket for the abandoned one is dropped when its answer comes.
    sio = triosio.Server()
    gate = trio.Event()
    log: list[tuple[str, str]] = []

    @sio.of("/b").use
    async def hold(socket: triosio.Socket) -> None:
        await gate.wait()

    @sio.of("/b").on("connection")
    def connected(socket: triosio.Socket, auth: Any) -> None:
        log.append(("connect", socket.id))
        socket.on("disconnect", lambda reason: log.append(("disconnect", socket.id)))
        socket.on("hello", lambda: "hi")

    async with triosio.testing.serve_memory(sio) as server, server.connect() as root:
        b = root.manager.socket("/b")
        async with trio.open_nursery() as nursery:

            async def first_attempt() -> None:
                with pytest.raises(ConnectError):
                    await b.connect()

            nursery.start_soon(first_attempt)
            await server.wait_idle()  # the CONNECT waits in the middleware
            await b.disconnect()
        gate.set()
        await server.wait_idle()
        with trio.fail_after(5):
            await b.connect()
        await server.wait_idle()
        assert [kind for kind, _ in log] == ["connect", "disconnect", "connect"]
        assert b.id == log[-1][1] != log[0][1]
        assert await b.emit_with_ack("hello", timeout=5) == "hi"


async def test_manager_must_be_running(peer: ScriptedPeer) -> None:
    manager = triosio.Manager(URL, connector=peer.connector)
    sock = manager.socket("/chat")
    assert manager.socket("/chat") is sock
    with pytest.raises(RuntimeError, match="not running"):
        await sock.connect()
    with pytest.raises(triosio.InvalidNamespace):
        manager.socket("chat")


# ---------------------------------------------------------------- connection options


@pytest.mark.parametrize(
    ("url", "host", "port"),
    [
        ("https://example.com", "example.com", 443),
        ("wss://example.com:8443/chat", "example.com", 8443),
        ("https://[::1]:9000", "::1", 9000),
    ],
)
async def test_tls_is_verified_by_default(
    autojump_clock: trio.abc.Clock, peer: ScriptedPeer, url: str, host: str, port: int
) -> None:
    async with connect(peer, url=url, transports=("websocket",)):
        pass
    ((got_host, got_port, tls),) = peer.connections
    assert (got_host, got_port) == (host, port)
    assert isinstance(tls, ssl.SSLContext)
    assert tls.verify_mode is ssl.CERT_REQUIRED
    assert tls.check_hostname


async def test_tls_context_option(autojump_clock: trio.abc.Clock, peer: ScriptedPeer) -> None:
    context = ssl.create_default_context()
    async with connect(peer, url="https://example.com", ssl=context, transports=("websocket",)):
        pass
    assert peer.connections[0][2] is context
    async with connect(peer, transports=("websocket",)):
        pass
    assert peer.connections[1] == ("example.com", 80, None)
    with pytest.raises(ValueError, match="https"):
        triosio.Manager(URL, ssl=context)


@pytest.mark.parametrize("transports", [("polling",), ("websocket",)])
async def test_path_query_and_headers(
    autojump_clock: trio.abc.Clock, peer: ScriptedPeer, transports: tuple[str, ...]
) -> None:
    async with connect(
        peer,
        url="http://example.com:3000/?from=url",
        path="/custom/",
        query={"token": "abc"},
        headers={"X-Test": "yes"},
        transports=transports,
    ):
        pass
    method, target = peer.requests[0]
    assert method == "GET"
    prefix = "/custom/?from=url&token=abc&EIO=4&transport=" + transports[0]
    assert target.startswith(prefix)
    headers = peer.request_headers[0]
    assert headers["x-test"] == "yes"
    assert headers["host"] == "example.com:3000"


async def test_polling_batches_below_max_payload(
    autojump_clock: trio.abc.Clock, nursery: trio.Nursery
) -> None:
    peer = ScriptedPeer(nursery, max_payload=100)
    async with triosio.Manager(URL, connector=peer.connector, transports=("polling",)) as manager:
        sock = manager.socket("/")
        for i in range(12):
            await sock.emit("e", i, b"\x00\x01")  # buffered until connected
        await sock.connect()
        await peer.wait_for(lambda: len(peer.received) == 12)
    assert [r.args[0] for r in peer.received] == list(range(12))
    assert [r.args[1] for r in peer.received] == [b"\x00\x01"] * 12
    flushed = [p for p in peer.posts if "e" in p]
    assert len(flushed) > 1
    assert all(len(p.encode()) <= 100 for p in flushed)
    assert any(p.count(eio.RECORD_SEPARATOR) >= 2 for p in flushed)
    assert any("\x1ebAAE" in p or p.startswith("bAAE") for p in flushed)  # b + base64


async def test_polling_reopens_a_keep_alive_connection_the_server_closed(
    autojump_clock: trio.abc.Clock, peer: ScriptedPeer
) -> None:
    peer.close_idle = True
    async with connect(peer, transports=("polling",)) as client:
        for i in range(3):
            await trio.sleep(10)
            assert await client.emit_with_ack("echo", i) == i
        assert client.connected
    # The handshake/long-poll connection, then one connection per POST.
    assert len(peer.connections) >= 5


async def test_upgrade_keeps_every_message_in_order(
    autojump_clock: trio.abc.Clock, peer: ScriptedPeer
) -> None:
    recorder = Recorder()
    async with triosio.Manager(URL, connector=peer.connector) as manager:
        recorder.manager(manager)
        sock = manager.socket("/")
        await sock.connect()
        assert manager.transport == "polling"
        with sock.events() as stream:
            for i in range(50):
                await sock.emit("up", i)
                peer.emit("down", i)
            await recorder.wait_for(lambda: recorder.count("manager", "upgrade") == 1)
            await peer.wait_for(lambda: len(peer.received) == 50)
            downs = [(await stream.__anext__()).args[0] for _ in range(50)]
        assert manager.transport == "websocket"
    assert [r.args[0] for r in peer.received] == list(range(50))
    assert downs == list(range(50))
    assert recorder.entries("manager", "upgrade")[0].args == ("websocket",)
    assert ("GET", "/socket.io/?EIO=4&transport=websocket&sid=eio0") in peer.requests


async def test_emit_waits_when_the_connection_backs_up(
    autojump_clock: trio.abc.Clock, nursery: trio.Nursery
) -> None:
    from triosio._client.connection import HIGH_WATER

    peer = ScriptedPeer(nursery, lockstep=True)
    async with connect(peer, transports=("websocket",)) as client:
        peer.stalled = True
        await client.emit("first")  # the peer's reader is now stuck
        sent = 0
        with trio.move_on_after(10) as scope:
            for i in range(2 * HIGH_WATER):
                await client.emit("e", i)
                sent += 1
        assert scope.cancelled_caught  # emit waited: the queue is bounded
        assert HIGH_WATER <= sent < HIGH_WATER + 10
        engine = client.manager._connection.engine
        assert engine is not None
        assert engine.pending <= HIGH_WATER
        # Volatile events are dropped rather than waiting.
        await client.volatile.emit("dropped")
        peer.unstalled.set()
        peer.stalled = False
        await client.emit("last")
        await peer.wait_for(lambda: len(peer.events("last")) == 1)
    assert [r.args[0] for r in peer.events("e")] == list(range(sent))
    assert peer.events("dropped") == []


async def test_connect_timeout(autojump_clock: trio.abc.Clock) -> None:
    async def hanging(host: str, port: int, tls: ssl.SSLContext | None) -> trio.abc.Stream:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    with pytest.raises(ConnectError, match="timed out after 7"):
        async with triosio.connect(URL, connector=hanging, connect_timeout=7):
            pytest.fail("the connection never opens")
    assert trio.current_time() == 7
