"""``async def`` handlers started in the WebSocket's reader task.

In arrival order (the default), an event's handling starts in the task that
read it; if it finishes without blocking, that was all (no task, no cancel
scope of its own). If it blocks, that task becomes its task and a new one
reads the WebSocket (``Client._adopt`` in ``_server/dispatch.py``). What a
handler may do before it first blocks (enter cancel scopes, wait for its
own client) and what must still hold once it has (heartbeats, cancellation
by its socket's disconnection and only by that, order, errors, hooks) is
tested here, on every transport where it applies.
"""

from __future__ import annotations

import contextvars
import logging
from typing import Any

import pytest
import trio
from conftest import LIMIT, TRANSPORTS, connect, serving, settle, until

import triosio
from triosio._server.hooks import Hooks
from triosio.testing import MemoryNetwork

Reason = triosio.DisconnectReason


class _SpawnCounter(trio.abc.Instrument):
    def __init__(self) -> None:
        self.spawned = 0

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        self.spawned += 1


async def test_async_handlers_that_finish_at_once_need_no_task(
    autojump_clock: Any, net: MemoryNetwork
) -> None:
    sio = triosio.Server()

    @sio.on("connection")
    def connection(socket: triosio.Socket) -> None:
        @socket.on("add")
        async def add(a: int, b: int) -> int:
            return a + b

        @socket.on("tell")
        async def tell(n: int) -> int:
            await socket.emit("told", n)  # completes at once: room in the buffer
            return n

    with trio.fail_after(LIMIT):
        async with serving(sio, net), connect(net) as client:
            told: list[int] = []
            client.on("told", told.append)
            assert await client.emit_with_ack("add", 1, 2) == 3  # warmed up
            counter = _SpawnCounter()
            trio.lowlevel.add_instrument(counter)
            try:
                for n in range(20):
                    assert await client.emit_with_ack("add", n, 1) == n + 1
                    assert await client.emit_with_ack("tell", n) == n
            finally:
                trio.lowlevel.remove_instrument(counter)
            await settle()
    assert counter.spawned == 0
    assert told == list(range(20))


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_cancel_scopes_entered_before_the_first_suspension(
    autojump_clock: Any, net: MemoryNetwork, transport: str
) -> None:
    # Trio binds a cancel scope to the task that entered it: the handler
    # must go on in the task it started in, with its scopes intact.
    sio = triosio.Server()

    @sio.on("connection")
    def connection(socket: triosio.Socket) -> None:
        @socket.on("deadline")
        async def deadline() -> str:
            with trio.move_on_after(1) as scope:
                await trio.sleep(10)
            return f"moved on: {scope.cancelled_caught}"

        @socket.on("in time")
        async def in_time() -> str:
            with trio.move_on_after(10) as scope:
                await trio.sleep(1)
            return f"moved on: {scope.cancelled_caught}"

        @socket.on("cancelled")
        async def cancelled() -> str:
            with trio.CancelScope() as scope:
                scope.cancel()
                await trio.sleep(5)
            with trio.CancelScope(shield=True):
                await trio.sleep(1)
            return f"cancelled: {scope.cancelled_caught}"

        @socket.on("nested")
        async def nested() -> int:
            with trio.fail_after(20):
                with trio.move_on_after(2):
                    await trio.lowlevel.checkpoint()
                    await trio.sleep(5)
                await trio.sleep(1)
            return 1

        socket.on("plain", lambda: "plain")

    with trio.fail_after(LIMIT):
        async with serving(sio, net), connect(net, transport=transport) as client:
            for _ in range(2):  # the first event of a connection has another path
                start = trio.current_time()
                assert await client.emit_with_ack("deadline") == "moved on: True"
                assert trio.current_time() - start == pytest.approx(1)
                assert await client.emit_with_ack("in time") == "moved on: False"
                assert await client.emit_with_ack("cancelled") == "cancelled: True"
                assert await client.emit_with_ack("nested") == 1
                assert await client.emit_with_ack("plain") == "plain"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_handler_waiting_for_its_own_clients_ack(
    autojump_clock: Any, net: MemoryNetwork, transport: str
) -> None:
    # The client's answer arrives on the connection the handler was read
    # from: someone must go on reading it while the handler waits.
    sio = triosio.Server()

    @sio.on("connection")
    def connection(socket: triosio.Socket) -> None:
        @socket.on("ask")
        async def ask(text: str) -> str:
            answer = await socket.emit_with_ack("question", text, timeout=50)
            return f"client said {answer}"

    with trio.fail_after(LIMIT):
        async with serving(sio, net), connect(net, transport=transport) as client:
            client.on("question", lambda text: text.upper())
            for text in ("hi", "ho", "hu"):
                assert await client.emit_with_ack("ask", text) == f"client said {text.upper()}"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_heartbeats_go_on_while_a_handler_waits(
    autojump_clock: Any, net: MemoryNetwork, transport: str
) -> None:
    sio = triosio.Server(ping_interval=10, ping_timeout=5)
    reasons: list[Any] = []

    @sio.on("connection")
    def connection(socket: triosio.Socket) -> None:
        socket.on("disconnect", reasons.append)

        @socket.on("slow")
        async def slow(n: int) -> int:
            await trio.sleep(100)  # ten pings meanwhile
            return n

    with trio.fail_after(LIMIT):
        async with serving(sio, net), connect(net, transport=transport) as client:
            for n in range(2):
                assert await client.emit_with_ack("slow", n, timeout=150) == n
            assert reasons == []
            assert client.connected
    assert reasons == [Reason.CLIENT_NAMESPACE_DISCONNECT]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_namespace_disconnect_cancels_that_sockets_handler_only(
    autojump_clock: Any, net: MemoryNetwork, transport: str
) -> None:
    sio = triosio.Server()
    log: list[str] = []

    def handlers(socket: triosio.Socket) -> None:
        name = socket.nsp.name

        @socket.on("slow")
        async def slow(n: int) -> None:
            try:
                await trio.sleep(50)
                log.append(f"{name} {n} done")
            except trio.Cancelled:
                log.append(f"{name} {n} cancelled")
                raise

        @socket.on("quick")
        async def quick(n: int) -> None:
            log.append(f"{name} quick {n}")

    sio.on("connection", handlers)
    sio.of("/chat").on("connection", handlers)

    with trio.fail_after(LIMIT):
        async with (
            serving(sio, net),
            connect(net, transport=transport) as client,
            connect(net, transport=transport) as bystander,
        ):
            chat = client.manager.socket("/chat")
            await chat.connect()
            await settle()
            # Once the connection's first event is past (another path).
            await client.emit("quick", 0)
            await until(lambda: "/ quick 0" in log)
            # "/" blocks; "/chat" leaves meanwhile: "/" goes on.
            await client.emit("slow", 1)
            await bystander.emit("slow", 2)
            await settle()
            await chat.disconnect()
            await until(lambda: len(log) == 3, timeout=100)
            assert sorted(log[1:]) == ["/ 1 done", "/ 2 done"]
            # "/chat" blocks; "/" waits behind it (order); the other
            # client's "/" blocks too. "/chat" leaves: only its handler
            # is cancelled, and the event behind it runs.
            await chat.connect()
            await settle()
            await chat.emit("slow", 3)
            await client.emit("quick", 4)
            await bystander.emit("slow", 5)
            await settle()
            assert log[3:] == []
            await chat.disconnect()
            await until(lambda: len(log) == 6, timeout=100)
    assert log[:3] == ["/ quick 0", "/ 1 done", "/ 2 done"] or log[:3] == [
        "/ quick 0",
        "/ 2 done",
        "/ 1 done",
    ]
    assert log[3:5] == ["/chat 3 cancelled", "/ quick 4"]
    assert log[5] == "/ 5 done"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_server_side_disconnect_cancels_a_blocked_handler(
    autojump_clock: Any, net: MemoryNetwork, transport: str
) -> None:
    sio = triosio.Server()
    log: list[str] = []
    sockets: list[triosio.Socket] = []

    sio.of("/chat")

    @sio.on("connection")
    def connection(socket: triosio.Socket) -> None:
        sockets.append(socket)

        @socket.on("warm")
        async def warm() -> None:
            log.append("warm")

        @socket.on("slow")
        async def slow() -> None:
            try:
                await trio.sleep(50)
                log.append("slow done")
            except trio.Cancelled:
                log.append("slow cancelled")
                raise

        @socket.on("self")
        async def disconnect_self() -> None:
            await socket.disconnect()  # the calling handler is spared
            await trio.sleep(1)
            log.append("self went on")

    with trio.fail_after(LIMIT):
        async with serving(sio, net):
            async with connect(net, transport=transport) as client:
                await client.emit("warm")
                await client.emit("slow")
                await settle()
                await sockets[0].disconnect()
                await until(lambda: len(log) == 2)
            async with connect(net, transport=transport) as client:
                # (The client stays on "/chat": the connection stays open.)
                await client.manager.socket("/chat").connect()
                await client.emit("warm")
                await client.emit("self")
                await until(lambda: len(log) == 4)
    assert log == ["warm", "slow cancelled", "warm", "self went on"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_closing_the_session_cancels_its_blocked_handlers(
    autojump_clock: Any, net: MemoryNetwork, transport: str
) -> None:
    sio = triosio.Server()
    log: list[str] = []

    @sio.on("connection")
    def connection(socket: triosio.Socket) -> None:
        @socket.on("slow")
        async def slow(n: int) -> None:
            try:
                await trio.sleep(50)
                log.append(f"{n} done")
            except trio.Cancelled:
                log.append(f"{n} cancelled")
                raise

    with trio.fail_after(LIMIT):
        async with serving(sio, net):
            async with connect(net, transport=transport) as client:
                await client.emit("slow", 0)
                await client.emit("slow", 1)  # queued behind the first
                await settle()
            await until(lambda: log)
            await settle()
            assert trio.current_time() < 40
    assert log == ["0 cancelled"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_clients_events_keep_their_order(
    autojump_clock: Any, net: MemoryNetwork, transport: str
) -> None:
    # Handlers that finish at once, handlers that block and plain ones, mixed:
    # each event's handling ends before the next one's starts.
    sio = triosio.Server()
    log: list[str] = []

    @sio.on("connection")
    def connection(socket: triosio.Socket) -> None:
        @socket.on("ev")
        async def ev(n: int) -> None:
            log.append(f"start {n}")
            if n % 3 == 1:
                await trio.sleep(3)
            elif n % 3 == 2:
                await trio.lowlevel.checkpoint()
            log.append(f"end {n}")

        socket.on("plain", lambda n: log.append(f"plain {n}"))

    with trio.fail_after(LIMIT):
        async with serving(sio, net), connect(net, transport=transport) as client:
            for n in range(12):
                await client.emit("ev", n)
                if n % 4 == 3:
                    await client.emit("plain", n)
            await until(lambda: len(log) == 27, timeout=100)
    expected: list[str] = []
    for n in range(12):
        expected += [f"start {n}", f"end {n}"]
        if n % 4 == 3:
            expected.append(f"plain {n}")
    assert log == expected


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_handler_errors_before_and_after_blocking_are_logged(
    autojump_clock: Any,
    net: MemoryNetwork,
    transport: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sio = triosio.Server()
    failed: list[str] = []

    class Failures(Hooks):
        def handler_failed(self, socket: triosio.Socket, event: str, error: BaseException) -> None:
            failed.append(f"{event}: {error!r}")

    sio._add_hooks(Failures())

    @sio.on("connection")
    def connection(socket: triosio.Socket) -> None:
        @socket.on("early")
        async def early() -> None:
            raise KeyError("early")

        @socket.on("late")
        async def late() -> None:
            await trio.sleep(1)
            raise ValueError("late")

        @socket.on("ok")
        async def ok() -> str:
            return "still here"

    with trio.fail_after(LIMIT):
        async with serving(sio, net), connect(net, transport=transport) as client:
            with caplog.at_level(logging.ERROR, "triosio.server"):
                for _ in range(2):
                    for event in ("early", "late"):
                        with pytest.raises(triosio.AckTimeout):
                            await client.emit_with_ack(event, timeout=5)
                        assert await client.emit_with_ack("ok") == "still here"
    assert failed == ["early: KeyError('early')", "late: ValueError('late')"] * 2
    records = [r for r in caplog.records if r.exc_info]
    assert [r.exc_info[1].__class__ for r in records if r.exc_info] == [
        KeyError,
        ValueError,
    ] * 2


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_hooks_see_every_event_from_one_task(
    autojump_clock: Any, net: MemoryNetwork, transport: str
) -> None:
    # event_started and event_ended come in pairs, from the same task, for
    # handlers that finish at once and for those that block.
    sio = triosio.Server()
    pairs: list[tuple[str, bool]] = []

    class Events(Hooks):
        def event_started(self, socket: triosio.Socket, event: str, ack_id: int | None) -> Any:
            return event, trio.lowlevel.current_task()

        def event_ended(self, started: Any) -> None:
            event, task = started
            pairs.append((event, task is trio.lowlevel.current_task()))

    sio._add_hooks(Events())

    @sio.on("connection")
    def connection(socket: triosio.Socket) -> None:
        @socket.on("now")
        async def now() -> int:
            return 1

        @socket.on("later")
        async def later() -> int:
            await trio.sleep(1)
            return 2

    with trio.fail_after(LIMIT):
        async with serving(sio, net), connect(net, transport=transport) as client:
            for _ in range(3):
                assert await client.emit_with_ack("now") == 1
                assert await client.emit_with_ack("later") == 2
            await settle()
    assert pairs == [("now", True), ("later", True)] * 3


async def test_context_variables_set_by_a_handler_stay_in_its_event(
    autojump_clock: Any, net: MemoryNetwork
) -> None:
    # Each event's handling has its own copy of the context (as a task of its
    # own would): what one handler sets is not seen by the next event's.
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    sio = triosio.Server()

    @sio.on("connection")
    def connection(socket: triosio.Socket) -> None:
        @socket.on("set")
        async def set_var(value: str, block: bool) -> str:
            before = var.get()
            var.set(value)
            if block:
                await trio.sleep(1)
            return f"{before} -> {var.get()}"

        socket.on("get", lambda: var.get())

    with trio.fail_after(LIMIT):
        async with serving(sio, net), connect(net) as client:
            for block in (False, True, False, True):
                assert await client.emit_with_ack("set", "x", block) == "unset -> x"
                assert await client.emit_with_ack("get") == "unset"


async def test_a_handler_that_only_yields_needs_no_task(
    autojump_clock: Any, net: MemoryNetwork
) -> None:
    # A checkpoint's yield (trio.sleep(0), the router's every 64 emits)
    # cannot block: the reader yields with the handler and stays the reader.
    sio = triosio.Server()

    @sio.on("connection")
    def connection(socket: triosio.Socket) -> None:
        @socket.on("yield")
        async def yielding(n: int) -> int:
            await trio.sleep(0)  # noqa: ASYNC115 (the idiom users write)
            await trio.lowlevel.checkpoint()
            return n

    with trio.fail_after(LIMIT):
        async with serving(sio, net), connect(net) as client:
            assert await client.emit_with_ack("yield", 0) == 0  # warmed up
            counter = _SpawnCounter()
            trio.lowlevel.add_instrument(counter)
            try:
                for n in range(1, 20):
                    assert await client.emit_with_ack("yield", n) == n
            finally:
                trio.lowlevel.remove_instrument(counter)
    assert counter.spawned == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_disconnect_while_the_handler_yields_in_the_reader(
    autojump_clock: Any, net: MemoryNetwork, transport: str
) -> None:
    # The socket is disconnected (by another task) while its handler yields
    # in the reader's task: the handler is cancelled at its next block, and
    # the connection is still read (here: its other namespace); a handler
    # that swallows Cancelled does not take the events behind it down.
    sio = triosio.Server()
    log: list[str] = []
    woken = trio.Event()
    chosen: list[triosio.Socket] = []

    async def disconnector() -> None:
        while True:
            await woken.wait()
            (socket,) = chosen
            socket.client.closer.request(socket, Reason.SERVER_NAMESPACE_DISCONNECT)
            chosen.clear()
            log.append("disconnected")
            return

    def wake(socket: triosio.Socket) -> None:
        chosen.append(socket)
        woken.set()

    @sio.on("connection")
    def connection(socket: triosio.Socket) -> None:
        @socket.on("warm")
        async def warm() -> None:
            log.append("warm")

        @socket.on("then block")
        async def then_block() -> None:
            wake(socket)
            try:
                for _ in range(3):
                    await trio.lowlevel.checkpoint()
                await trio.sleep(10)
                log.append("blocked: done")
            except trio.Cancelled:
                log.append("blocked: cancelled")
                raise

        @socket.on("then return")
        async def then_return() -> str:
            wake(socket)
            # Disconnected during the last yield: the handling is over,
            # never having blocked, and the reader's scope is cancelled.
            while chosen:
                await trio.lowlevel.cancel_shielded_checkpoint()
            log.append("returned")
            return "returned"

        @socket.on("swallow")
        async def swallow() -> None:
            try:
                await trio.sleep(50)
            except trio.Cancelled:
                log.append("swallowed")

    @sio.of("/chat").on("connection")
    def chat_connection(socket: triosio.Socket) -> None:
        @socket.on("ping")
        async def ping(n: int) -> int:
            await trio.sleep(1)
            log.append(f"chat {n}")
            return n

    with trio.fail_after(LIMIT):
        async with serving(sio, net), trio.open_nursery() as nursery:
            for event in ("then block", "then return"):
                nursery.start_soon(disconnector)
                woken = trio.Event()
                async with connect(net, transport=transport) as client:
                    chat = client.manager.socket("/chat")
                    await chat.connect()
                    await client.emit("warm")
                    await until(lambda: log[-1:] == ["warm"])
                    await client.emit(event)
                    await until(lambda: "disconnected" in log)
                    assert await chat.emit_with_ack("ping", 1) == 1
                    await settle()
            async with connect(net, transport=transport) as client:
                chat = client.manager.socket("/chat")
                await chat.connect()
                sockets = list(sio.sockets.sockets.values())
                await client.emit("warm")
                await until(lambda: log[-1:] == ["warm"])
                await client.emit("swallow")
                await chat.emit("ping", 2)  # queued behind "swallow"
                await settle()
                (socket,) = sockets
                await socket.disconnect()
                await until(lambda: "chat 2" in log)
    assert log == [
        "warm",
        "disconnected",
        "blocked: cancelled",
        "chat 1",
        "warm",
        "disconnected",
        "returned",
        "chat 1",
        "warm",
        "swallowed",
        "chat 2",
    ]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_handler_that_yields_in_a_long_loop_does_not_stop_the_reading(
    autojump_clock: Any, net: MemoryNetwork, transport: str
) -> None:
    # It never blocks, but it must not keep the reader: the client's answer
    # (read by the reader) is what ends the loop.
    sio = triosio.Server()

    @sio.on("connection")
    def connection(socket: triosio.Socket) -> None:
        @socket.on("warm")
        async def warm() -> None:
            pass

        @socket.on("spin")
        async def spin() -> str:
            answers: list[Any] = []

            async def ask() -> None:
                answers.append(await socket.emit_with_ack("question", timeout=50))

            socket.start_soon(ask)
            for n in range(10_000):
                if answers:
                    return f"answered after {n} yields"
                await trio.lowlevel.checkpoint()
            return "never answered"

    with trio.fail_after(LIMIT):
        async with serving(sio, net), connect(net, transport=transport) as client:
            client.on("question", lambda: "yes")
            await client.emit("warm")
            for _ in range(2):
                answer = await client.emit_with_ack("spin")
                assert answer.startswith("answered after")
