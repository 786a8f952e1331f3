"""The server-side Socket: handshake, emits and acks, listeners, rooms, handlers."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio
from conftest import LIMIT, TRANSPORTS, RawPolling, connect, serving, settle, until

import triosio
from triosio._proto.sio import SioType
from triosio.testing import MemoryNetwork

Reason = triosio.DisconnectReason


async def never(*args: Any) -> None:
    """A client handler that never acknowledges."""
    await trio.sleep_forever()


async def test_handshake_and_data(autojump_clock: Any, net: MemoryNetwork) -> None:
    sio = triosio.Server()
    sockets: list[triosio.Socket] = []

    @sio.on("connection")
    def connection(socket: triosio.Socket) -> None:
        socket.data["user"] = socket.handshake.auth["user"]
        sockets.append(socket)

    with trio.fail_after(LIMIT):
        async with serving(sio, net), connect(
            net, auth={"user": "ann"}, query={"room": "42"}, headers={"X-Trace": "abc"}
        ):
            await settle()
    (socket,) = sockets
    hs = socket.handshake
    assert hs.auth == {"user": "ann"}
    assert hs.query["room"] == "42"
    assert hs.query["EIO"] == "4"
    assert hs.headers["x-trace"] == "abc"
    assert hs.headers["host"] == "test"
    assert hs.url.startswith("/socket.io/?")
    assert hs.secure is False
    assert isinstance(hs.address, str)
    assert hs.issued > 1_600_000_000_000  # milliseconds since the epoch
    assert "GMT" in hs.time
    assert socket.data == {"user": "ann"}
    assert not socket.connected  # the client left


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_emit_and_ack_both_ways(
    autojump_clock: Any, net: MemoryNetwork, transport: str
) -> None:
    sio = triosio.Server()
    results: list[Any] = []

    @sio.on("connection")
    async def connection(socket: triosio.Socket) -> None:
        await socket.emit("hello", {"deep": [b"\x00\x01", {"x": b"\xff"}]}, 2)

        @socket.on("several")
        def several(*args: Any) -> tuple[Any, ...]:
            return args  # a tuple: one ack argument per item

        @socket.on("nothing")
        def nothing() -> None:
            return None  # acknowledged with no argument

        @socket.on("question")
        async def question(text: str) -> Any:
            results.append(await socket.emit_with_ack("ask", text, timeout=5))
            results.append(await socket.timeout(5).emit_with_ack("ask", b"bin"))
            return "done"

    with trio.fail_after(LIMIT):
        async with serving(sio, net), connect(net, transport=transport) as client:
            hello: list[Any] = []
            client.on("hello", lambda *args: hello.append(args))
            client.on("ask", lambda x: ("answer", x))
            assert await client.emit_with_ack("several", 1, b"\x02", None) == (1, b"\x02", None)
            assert await client.emit_with_ack("nothing") is None
            assert await client.emit_with_ack("question", "why") == "done"
            await settle()
            assert hello == [({"deep": [b"\x00\x01", {"x": b"\xff"}]}, 2)]
    assert results == [("answer", "why"), ("answer", b"bin")]


async def test_emit_with_ack_timeout_and_disconnect(
    autojump_clock: Any, net: MemoryNetwork
) -> None:
    sio = triosio.Server()
    sockets: list[triosio.Socket] = []
    sio.on("connection", sockets.append)
    outcome: list[Any] = []

    with trio.fail_after(LIMIT):
        async with serving(sio, net), connect(net) as client:
            client.on("silent", never)  # never acks
            await settle()
            (socket,) = sockets
            start = trio.current_time()
            with pytest.raises(triosio.AckTimeout):
                await socket.emit_with_ack("silent", timeout=3)
            assert trio.current_time() - start == pytest.approx(3)
            assert len(socket.acks) == 0  # the ack entry is gone

            async def wait_forever() -> None:
                try:
                    await socket.emit_with_ack("silent")
                except triosio.Disconnected as exc:
                    outcome.append(exc.reason)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(wait_forever)
                await settle()
                assert len(socket.acks) == 1
                await client.disconnect()
    assert outcome == [Reason.CLIENT_NAMESPACE_DISCONNECT]
    assert len(socket.acks) == 0
    with pytest.raises(triosio.Disconnected):
        await socket.emit("late")


async def test_reserved_event_names_cannot_be_emitted(
    autojump_clock: Any, net: MemoryNetwork
) -> None:
    sio = triosio.Server()
    sockets: list[triosio.Socket] = []
    sio.on("connection", sockets.append)
    with trio.fail_after(LIMIT):
        async with serving(sio, net), connect(net):
            await settle()
            for name in ("connect", "disconnect", "disconnecting", "connect_error"):
                with pytest.raises(triosio.LocalProtocolError):
                    await sockets[0].emit(name)
                with pytest.raises(triosio.LocalProtocolError):
                    await sio.emit(name)


async def test_on_once_off_and_catch_alls(autojump_clock: Any, net: MemoryNetwork) -> None:
    sio = triosio.Server()
    calls: list[Any] = []

    @sio.on("connection")
    def connection(socket: triosio.Socket) -> None:
        def always(x: int) -> None:
            calls.append(("always", x))

        def removed(x: int) -> None:
            calls.append(("removed", x))

        socket.on("e", always)
        socket.once("e", lambda x: calls.append(("once", x)))
        socket.on("e", removed)
        socket.off("e", removed)
        # The same function as a once-handler of one event and a handler of another.
        shared = socket.once("f", lambda x: calls.append(("shared", x)))
        socket.on("g", shared)
        socket.on_any(lambda event, *args: calls.append(("any", event, *args)))
        socket.prepend_any(lambda event, *args: calls.append(("first", event)))
        socket.on_any_outgoing(lambda event, *args: calls.append(("out", event, *args)))
        socket.start_soon(socket.emit, "welcome", 1)

    with trio.fail_after(LIMIT):
        async with serving(sio, net), connect(net) as client:
            client.on("welcome", lambda x: None)
            for event, value in [("e", 1), ("e", 2), ("f", 3), ("f", 4), ("g", 5), ("g", 6)]:
                await client.emit(event, value)
            await settle()
    assert calls == [
        ("out", "welcome", 1),
        ("first", "e"), ("any", "e", 1), ("always", 1), ("once", 1),
        ("first", "e"), ("any", "e", 2), ("always", 2),
        ("first", "f"), ("any", "f", 3), ("shared", 3),
        ("first", "f"), ("any", "f", 4),
        ("first", "g"), ("any", "g", 5), ("shared", 5),
        ("first", "g"), ("any", "g", 6), ("shared", 6),
    ]


async def test_off_any_and_namespace_level_handlers(
    autojump_clock: Any, net: MemoryNetwork
) -> None:
    sio = triosio.Server()
    calls: list[Any] = []

    def spy(event: str, *args: Any) -> None:
        calls.append(("spy", event))

    @sio.on("connection")
    def connection(socket: triosio.Socket) -> None:
        socket.on_any(spy)
        socket.on("stop", lambda: socket.off_any(spy))
        assert socket.listeners_any() == [spy]
        assert socket.listeners_any_outgoing() == []

    @sio.on("sum")  # python-socketio style: handler(socket, *args), first result acks
    def total(socket: triosio.Socket, *numbers: int) -> int:
        calls.append(("sum", socket.connected))
        return sum(numbers)

    with trio.fail_after(LIMIT):
        async with serving(sio, net), connect(net) as client:
            assert await client.emit_with_ack("sum", 1, 2, 3) == 6
            await client.emit("stop")
            assert await client.emit_with_ack("sum", 4) == 4
    assert calls == [("spy", "sum"), ("sum", True), ("spy", "stop"), ("sum", True)]


async def test_join_and_leave(autojump_clock: Any, net: MemoryNetwork) -> None:
    sio = triosio.Server()
    sockets: list[triosio.Socket] = []
    sio.on("connection", sockets.append)
    with trio.fail_after(LIMIT):
        async with serving(sio, net), connect(net):
            await settle()
            (socket,) = sockets
            assert socket.rooms == {socket.id}
            await socket.join("a")
            await socket.join("b", "c")
            await socket.join(["d", "e"])
            assert socket.rooms == {socket.id, "a", "b", "c", "d", "e"}
            await socket.leave("a")
            await socket.leave(["b", "c"], "zzz")  # leaving a room one is not in is fine
            assert socket.rooms == {socket.id, "d", "e"}
            assert sio.sockets.adapter.rooms["d"] == {socket.id}
            assert sio.sockets.adapter.sids[socket.id] == {socket.id, "d", "e"}
    assert socket.rooms == frozenset()
    assert sio.sockets.adapter.rooms == {}


async def test_disconnecting_handlers_see_rooms_disconnect_handlers_do_not(
    autojump_clock: Any, net: MemoryNetwork
) -> None:
    sio = triosio.Server()
    seen: list[Any] = []

    @sio.on("connection")
    async def connection(socket: triosio.Socket) -> None:
        await socket.join("lobby")
        socket.on("disconnecting", lambda r: seen.append(("socket disconnecting", r, socket.rooms)))
        socket.on("disconnect", lambda r: seen.append(("socket disconnect", r, socket.rooms)))

    @sio.on("disconnecting")
    async def disconnecting(socket: triosio.Socket, reason: Any) -> None:
        # A typical use: tell the rooms this socket is leaving.
        await socket.to("lobby").emit("left", socket.id)
        seen.append(("nsp disconnecting", reason, "lobby" in socket.rooms))

    @sio.on("disconnect")
    def disconnect(socket: triosio.Socket, reason: Any) -> None:
        seen.append(("nsp disconnect", reason, socket.connected, socket.rooms))

    with trio.fail_after(LIMIT):
        async with serving(sio, net), connect(net) as stays, connect(net) as leaves:
            left: list[str] = []
            stays.on("left", left.append)
            await settle()
            await leaves.disconnect()
            await settle()
            assert len(left) == 1
    reason = Reason.CLIENT_NAMESPACE_DISCONNECT
    first = seen[:4]
    room_id = next(iter(first[0][2] - {"lobby"}))
    assert first == [
        ("socket disconnecting", reason, {room_id, "lobby"}),
        ("nsp disconnecting", reason, True),
        ("socket disconnect", reason, set()),
        ("nsp disconnect", reason, False, frozenset()),
    ]


async def test_handler_exception_is_logged_and_harms_nothing(
    autojump_clock: Any, net: MemoryNetwork, caplog: pytest.LogCaptureFixture
) -> None:
    sio = triosio.Server()

    @sio.on("connection")
    def connection(socket: triosio.Socket) -> None:
        @socket.on("boom")
        def boom() -> None:
            raise ValueError("kaboom")

        socket.on("echo", lambda x: x)

    with trio.fail_after(LIMIT):
        async with serving(sio, net), connect(net) as one, connect(net) as two:
            with (
                caplog.at_level(logging.ERROR, "triosio.server"),
                pytest.raises(triosio.AckTimeout),  # no ack for a failed handler
            ):
                await one.emit_with_ack("boom", timeout=2)
            assert await one.emit_with_ack("echo", 1) == 1
            assert await two.emit_with_ack("echo", 2) == 2
    (record,) = [r for r in caplog.records if r.exc_info]
    assert "'boom'" in record.getMessage()
    assert record.exc_info is not None and isinstance(record.exc_info[1], ValueError)
    assert "socket " in record.getMessage()


async def test_disconnect_cancels_in_flight_handlers_and_tasks(
    autojump_clock: Any, net: MemoryNetwork
) -> None:
    sio = triosio.Server()
    events: list[str] = []

    @sio.on("connection")
    def connection(socket: triosio.Socket) -> None:
        async def background() -> None:
            try:
                await trio.sleep_forever()
            finally:
                events.append("task cancelled")

        socket.start_soon(background)

        @socket.on("slow")
        async def slow() -> None:
            try:
                await trio.sleep(1000)
                events.append("slow finished")
            finally:
                events.append("handler ended")

    with trio.fail_after(LIMIT):
        async with serving(sio, net):
            async with connect(net) as client:
                await client.emit("slow")
                await settle()
            await settle()
            assert trio.current_time() < 100
    assert sorted(events) == ["handler ended", "task cancelled"]


@pytest.mark.parametrize("concurrent", [False, True])
async def test_handler_order(autojump_clock: Any, net: MemoryNetwork, concurrent: bool) -> None:
    sio = triosio.Server(async_handlers=concurrent)
    done: list[int] = []

    @sio.on("connection")
    def connection(socket: triosio.Socket) -> None:
        @socket.on("work")
        async def work(n: int) -> int:
            await trio.sleep(10 - n)  # later events are quicker
            done.append(n)
            return n

    with trio.fail_after(LIMIT):
        async with serving(sio, net), connect(net) as client:
            for n in range(5):
                await client.emit("work", n)
            await until(lambda: len(done) == 5, timeout=100)
    if concurrent:
        assert done == [4, 3, 2, 1, 0]
    else:
        assert done == [0, 1, 2, 3, 4]  # one client's events run in arrival order


async def test_concurrent_handlers_are_bounded(autojump_clock: Any, net: MemoryNetwork) -> None:
    sio = triosio.Server(async_handlers=True, max_pending_events=4)
    running: list[int] = []
    peak: list[int] = [0]

    @sio.on("work")
    async def work(socket: triosio.Socket, n: int) -> None:
        running.append(n)
        peak[0] = max(peak[0], len(running))
        await trio.sleep(1)
        running.remove(n)

    with trio.fail_after(LIMIT):
        async with serving(sio, net), connect(net) as client:
            for n in range(20):
                await client.emit("work", n)
            await until(lambda: not running and trio.current_time() > 5)
    assert peak[0] == 4


async def test_use_middleware_per_packet(
    autojump_clock: Any, net: MemoryNetwork, caplog: pytest.LogCaptureFixture
) -> None:
    sio = triosio.Server()
    errors: list[Any] = []

    @sio.on("connection")
    def connection(socket: triosio.Socket) -> None:
        @socket.use
        async def check(event: str, args: list[Any]) -> None:
            if event == "forbidden":
                raise PermissionError("not you")
            if event == "double":
                args[:] = [a * 2 for a in args]

        socket.on("double", lambda x: x)
        socket.on("forbidden", lambda: "should not run")
        if socket.handshake.auth.get("listen"):
            socket.on("error", errors.append)

    with trio.fail_after(LIMIT):
        async with serving(sio, net):
            async with connect(net, auth={"listen": True}) as client:
                assert await client.emit_with_ack("double", 21) == 42
                with pytest.raises(triosio.AckTimeout):
                    await client.emit_with_ack("forbidden", timeout=1)
            with caplog.at_level(logging.WARNING, "triosio.server"):
                async with connect(net) as client:
                    with pytest.raises(triosio.AckTimeout):
                        await client.emit_with_ack("forbidden", timeout=1)
    assert [type(e) for e in errors] == [PermissionError]
    assert any("not you" in r.getMessage() for r in caplog.records)


async def test_server_side_reasons(autojump_clock: Any, net: MemoryNetwork) -> None:
    sio = triosio.Server(ping_interval=10, ping_timeout=5)
    reasons: dict[str, Any] = {}

    @sio.on("connection")
    def connection(socket: triosio.Socket, auth: dict[str, str]) -> None:
        socket.on("disconnect", lambda r: reasons.setdefault(auth["name"], r))

    with trio.fail_after(LIMIT):
        async with serving(sio, net):
            # A client that stops answering pings: "ping timeout".
            async with connect(net, auth={"name": "frozen"}):
                net.connections[-1].pause_client()
                await until(lambda: "frozen" in reasons)
            # The network goes away: the transport broke.
            async with connect(net, auth={"name": "cut"}):
                await settle()
                net.connections[-1].cut()
                await until(lambda: "cut" in reasons)
            # A peer that sends garbage: "parse error".
            raw = RawPolling(net)
            await raw.open()
            await raw.post('40{"name":"garbage"}')
            await raw.get()
            await raw.post("42abc")  # an EVENT whose payload is not an array
            await until(lambda: "garbage" in reasons)
    assert reasons == {
        "frozen": Reason.PING_TIMEOUT,
        "cut": Reason.TRANSPORT_CLOSE,  # the WebSocket ended without a close frame
        "garbage": Reason.PARSE_ERROR,
    }


class _SpawnCounter(trio.abc.Instrument):
    def __init__(self) -> None:
        self.spawned = 0

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        self.spawned += 1


@pytest.mark.parametrize("concurrent", [False, True])
async def test_plain_handlers_run_without_a_task(
    autojump_clock: Any, net: MemoryNetwork, concurrent: bool
) -> None:
    # A plain-function handler runs in the connection's reader as its event
    # arrives: no task, so no task switch and no cancel scope per event.
    sio = triosio.Server(async_handlers=concurrent)

    @sio.on("connection")
    def connection(socket: triosio.Socket) -> None:
        socket.on("add", lambda a, b: a + b)

    @sio.on("twice")
    def twice(socket: triosio.Socket, x: int) -> int:
        return 2 * x

    with trio.fail_after(LIMIT):
        async with serving(sio, net), connect(net) as client:
            assert await client.emit_with_ack("add", 1, 2) == 3  # warmed up
            counter = _SpawnCounter()
            trio.lowlevel.add_instrument(counter)
            try:
                for n in range(20):
                    assert await client.emit_with_ack("add", n, 1) == n + 1
                    assert await client.emit_with_ack("twice", n) == 2 * n
            finally:
                trio.lowlevel.remove_instrument(counter)
    assert counter.spawned == 0


async def test_plain_handlers_wait_their_turn(autojump_clock: Any, net: MemoryNetwork) -> None:
    # Order per client holds when plain and async handlers mix: a plain
    # handler's event waits behind an earlier event whose handler still runs.
    sio = triosio.Server()
    log: list[str] = []

    @sio.on("connection")
    def connection(socket: triosio.Socket) -> None:
        @socket.on("slow")
        async def slow() -> None:
            log.append("slow started")
            await trio.sleep(5)
            log.append("slow ended")

        socket.on("fast", lambda n: log.append(f"fast {n}"))

    with trio.fail_after(LIMIT):
        async with serving(sio, net), connect(net) as client:
            await client.emit("slow")
            await client.emit("fast", 1)
            await client.emit("fast", 2)
            await until(lambda: len(log) == 4, timeout=100)
            await client.emit("fast", 3)  # the queue is empty again: run at once
            await until(lambda: len(log) == 5)
    assert log == ["slow started", "slow ended", "fast 1", "fast 2", "fast 3"]


@pytest.mark.parametrize("concurrent", [False, True])
async def test_plain_function_returning_an_awaitable(
    autojump_clock: Any, net: MemoryNetwork, concurrent: bool
) -> None:
    # A plain function may return a coroutine (here one that waits for the
    # client's own ack): it is awaited in a task of its own, so the reader goes
    # on reading (no deadlock), the ack carries its result, and later events of
    # the client still come after it (unless async_handlers).
    sio = triosio.Server(async_handlers=concurrent)
    log: list[Any] = []

    @sio.on("connection")
    def connection(socket: triosio.Socket) -> None:
        async def ask(text: str) -> str:
            answer = await socket.emit_with_ack("question", text, timeout=50)
            log.append(("answered", answer))
            return f"client said {answer}"

        socket.on("ask", lambda text: ask(text))
        socket.on("after", lambda: log.append("after"))
        socket.on("count", lambda: len(log))

    with trio.fail_after(LIMIT):
        async with serving(sio, net), connect(net) as client:

            async def answer(text: str) -> str:
                await trio.sleep(3)
                return text.upper()

            client.on("question", answer)
            async with trio.open_nursery() as nursery:

                async def asking() -> None:
                    log.append(("ack", await client.emit_with_ack("ask", "hi")))

                nursery.start_soon(asking)
                await settle()
                await client.emit("after")
            await until(lambda: len(log) == 3)
            assert await client.emit_with_ack("count") == 3
    if concurrent:
        assert log[0] == "after"
    else:
        assert log[:2] == [("answered", "HI"), "after"]
    assert ("ack", "client said HI") in log


async def test_plain_handler_errors_and_disconnected_sockets(
    autojump_clock: Any, net: MemoryNetwork, caplog: pytest.LogCaptureFixture
) -> None:
    # An exception in a plain handler is logged, sends no ack and stops the
    # event's later handlers, as in an async one.
    sio = triosio.Server()
    ran: list[str] = []

    @sio.on("connection")
    def connection(socket: triosio.Socket) -> None:
        def boom() -> None:
            raise KeyError("nope")

        socket.on("boom", boom)

    @sio.on("boom")
    def after_boom(socket: triosio.Socket) -> None:
        ran.append("namespace handler")  # not reached: the first one raised

    with trio.fail_after(LIMIT):
        async with serving(sio, net), connect(net) as client:
            with (
                caplog.at_level(logging.ERROR, "triosio.server"),
                pytest.raises(triosio.AckTimeout),
            ):
                await client.emit_with_ack("boom", timeout=2)
            await client.emit("boom")
            await settle()
    assert ran == []
    failures = [r for r in caplog.records if r.exc_info]
    assert len(failures) == 2
    assert all("'boom'" in r.getMessage() for r in failures)


async def test_a_burst_of_plain_events_lets_other_tasks_run(
    autojump_clock: Any, net: MemoryNetwork
) -> None:
    # Plain handlers run in the reader, so a burst of buffered events would run
    # back to back; the reader yields every 64 messages, so other tasks (here,
    # one that counts its turns) still get the CPU during the burst.
    sio = triosio.Server()
    turns = [0]
    seen: list[int] = []

    @sio.on("connection")
    def connection(socket: triosio.Socket) -> None:
        socket.on("n", lambda n: seen.append(turns[0]))

    async def count_turns() -> None:
        while len(seen) < 640 and turns[0] < 100_000:
            await trio.lowlevel.checkpoint()
            turns[0] += 1

    with trio.fail_after(LIMIT):
        async with serving(sio, net), connect(net) as client:
            await settle()
            connection = net.connections[-1]
            connection.pause_server()
            for n in range(640):
                await client.emit("n", n)
            await settle()
            assert seen == []
            async with trio.open_nursery() as nursery:
                nursery.start_soon(count_turns)
                connection.resume_server()
    assert len(seen) == 640
    assert len(set(seen)) >= 5  # about 640 / 64 turns; without the yields, one


async def test_a_plain_handler_returning_what_json_cannot_carry(
    autojump_clock: Any, net: MemoryNetwork, caplog: pytest.LogCaptureFixture
) -> None:
    # The acknowledgement cannot be encoded: logged like a handler error, no
    # ack, and the client's connection is unharmed.
    sio = triosio.Server()

    @sio.on("connection")
    def connection(socket: triosio.Socket) -> None:
        socket.on("bad", lambda: {1, 2})  # a set: not JSON
        socket.on("good", lambda: "fine")

    with trio.fail_after(LIMIT):
        async with serving(sio, net), connect(net) as client:
            with (
                caplog.at_level(logging.ERROR, "triosio.server"),
                pytest.raises(triosio.AckTimeout),
            ):
                await client.emit_with_ack("bad", timeout=2)
            assert await client.emit_with_ack("good") == "fine"
            assert client.connected
    (record,) = [r for r in caplog.records if r.exc_info]
    assert "'bad'" in record.getMessage()


@pytest.mark.parametrize("name", ["/", "/chat"])
@pytest.mark.parametrize(
    "args",
    [
        [],
        [None],
        [1, "two", {"b": 1, "a": [1.0, 1e21, 1e-7]}],
        ["é😀\u2028", True, -0.0],
        [b"\x00\x01", {"x": bytearray(b"y")}],
    ],
)
def test_encode_ack_is_encode(name: str, args: list[Any]) -> None:
    # The ACK fast path writes exactly what the general encoder writes.
    sio = triosio.Server()
    nsp = sio.of(name)
    for ack_id in (0, 7, 2**53):
        fast = [(p.type, p.data) for p in nsp.encode_ack(args, ack_id)]
        general = [(p.type, p.data) for p in nsp.encode(SioType.ACK, args, ack_id)]
        assert fast == general


async def test_a_returned_coroutine_of_a_socket_gone_meanwhile_is_cancelled(
    autojump_clock: Any, net: MemoryNetwork
) -> None:
    # The event and the namespace's DISCONNECT arrive together: the coroutine a
    # plain handler returned gets its task after the socket began closing, and
    # is cancelled at its first checkpoint instead of running on.
    sio = triosio.Server()
    log: list[str] = []

    async def slow() -> str:
        log.append("started")
        await trio.sleep(5)
        log.append("finished")
        return "done"

    @sio.of("/chat").on("connection")
    def connection(socket: triosio.Socket) -> None:
        socket.on("slow", lambda: slow())

    with trio.fail_after(LIMIT):
        async with serving(sio, net), connect(net) as main:
            chat = main.manager.socket("/chat")
            await chat.connect()
            await settle()
            wire = net.connections[-1]
            wire.pause_server()
            await chat.emit("slow")
            await chat.disconnect()
            await settle()
            wire.resume_server()
            await trio.sleep(10)
            assert main.connected  # "/" is unharmed
    assert log == ["started"]
