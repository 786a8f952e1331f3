"""The router's synchronous core, without sockets or sessions.

The mailbox, the room table, the lifecycle table and every command's
``apply``, driven directly with stand-ins that record what they are sent.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from triosio._common.sync import Mailbox
from triosio._errors import LifecycleError
from triosio._server import _commands as C
from triosio._server.acks import GONE, BroadcastAck, PendingAcks
from triosio._server.lifecycle import TRANSITIONS, SocketState, Step, advance
from triosio._server.rooms import RoomTable
from triosio._server.router import Router

# ---------------------------------------------------------------- stand-ins


class FakeSession:
    """Records what it is sent; ``full`` refuses non-forced sends."""

    def __init__(self) -> None:
        self.sent: list[tuple[Any, bool, bool]] = []
        self.closed = False
        self.full = False

    def send_nowait(self, packets: Any, *, volatile: bool = False, force: bool = False) -> bool:
        if self.closed or (self.full and not force):
            return False
        self.sent.append((packets, volatile, force))
        return True


class FakeNamespace:
    def __init__(self, name: str = "/") -> None:
        self.name = name
        self._adapter_listeners: dict[str, list[Any]] = {}


class FakeSocket:
    def __init__(self, sid: str, nsp: FakeNamespace | None = None) -> None:
        self.id = sid
        self.nsp = nsp or FakeNamespace()
        self.session = FakeSession()
        self.acks = PendingAcks(sid)
        self.state = SocketState.CONNECTING
        self._early_rooms: tuple[str, ...] = ()


def registered(router: Router, *sids: str, nsp: FakeNamespace | None = None) -> list[Any]:
    nsp = nsp or FakeNamespace()
    sockets: list[Any] = []
    for sid in sids:
        socket = FakeSocket(sid, nsp)
        C.AddSocket(socket, ["connect"]).apply(router)  # type: ignore[arg-type,list-item]
        socket.session.sent.clear()
        sockets.append(socket)
    return sockets


# ---------------------------------------------------------------- lifecycle


@pytest.mark.parametrize("state", list(SocketState))
@pytest.mark.parametrize("step", list(Step))
def test_lifecycle_table_is_the_only_way(state: SocketState, step: Step) -> None:
    socket: Any = FakeSocket("s")
    socket.state = state
    expected = TRANSITIONS.get((state, step))
    if expected is None:
        with pytest.raises(LifecycleError, match=step.value):
            advance(socket, step)
        assert socket.state is state
    else:
        advance(socket, step)
        assert socket.state is expected


def test_lifecycle_paths() -> None:
    # Every state is reachable from CONNECTING, and DISCONNECTED is final.
    reachable = {SocketState.CONNECTING}
    for _ in range(len(SocketState)):
        reachable |= {new for (old, _), new in TRANSITIONS.items() if old in reachable}
    assert reachable == set(SocketState)
    assert not [key for key in TRANSITIONS if key[0] is SocketState.DISCONNECTED]


# ---------------------------------------------------------------- mailbox


async def test_mailbox_batches_in_order_and_put_nowait_ignores_capacity() -> None:
    box: Mailbox[int] = Mailbox(capacity=2)
    await box.put(1)
    box.put_nowait(2)
    box.put_nowait(3)  # over capacity: still taken
    assert len(box) == 3
    assert list(await box.get_batch()) == [1, 2, 3]
    assert not box


async def test_mailbox_put_waits_for_capacity_and_cancelled_means_not_queued() -> None:
    box: Mailbox[int] = Mailbox(capacity=1)
    await box.put(1)
    with trio.CancelScope() as scope:
        scope.cancel()
        await box.put(2)  # cancelled while waiting for space
    assert list(box.take_all()) == [1]
    with trio.CancelScope() as scope:
        scope.cancel()
        await box.put(3)  # cancelled with space: still not queued
    assert len(box) == 0

    box.put_nowait(4)
    done: list[int] = []

    async def producer() -> None:
        await box.put(5)
        done.append(5)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(producer)
        await trio.testing.wait_all_tasks_blocked()
        assert done == []  # at capacity: waiting
        assert list(await box.get_batch()) == [4]
    assert done == [5]
    assert list(box.take_all()) == [5]


async def test_mailbox_close_fails_waiting_and_future_puts() -> None:
    box: Mailbox[int] = Mailbox(capacity=1)
    await box.put(1)
    errors: list[BaseException] = []

    async def producer() -> None:
        try:
            await box.put(2)
        except trio.ClosedResourceError as exc:
            errors.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(producer)
        await trio.testing.wait_all_tasks_blocked()
        box.close()
    assert len(errors) == 1
    assert box.closed
    with pytest.raises(trio.ClosedResourceError):
        await box.put(3)


# ---------------------------------------------------------------- room table


def test_room_table_membership_and_recipients() -> None:
    events: list[tuple[str, ...]] = []
    listeners: dict[str, list[Any]] = {
        name: [lambda *args, name=name: events.append((name, *args))]
        for name in ("create-room", "delete-room", "join-room", "leave-room")
    }
    table = RoomTable(lambda fn, args: None, listeners)
    table.add_all("a", ["a", "x", "y"])
    table.add_all("b", ["b", "x"])
    table.add_all("c", ["c"])
    assert table.rooms["x"] == {"a", "b"}
    assert table.rooms_of("a") == {"a", "x", "y"}
    assert set(table.recipients(frozenset(), frozenset())) == {"a", "b", "c"}
    assert set(table.recipients(frozenset({"x", "y"}), frozenset())) == {"a", "b"}
    assert set(table.recipients(frozenset({"x"}), frozenset({"y"}))) == {"b"}
    assert set(table.recipients(frozenset(), frozenset({"x"}))) == {"c"}
    assert list(table.recipients(frozenset({"x", "y"}), frozenset())).count("a") == 1
    table.delete("a", "x")
    table.delete("a", "nowhere")  # no-op
    table.delete_all("b")
    assert "x" not in table.rooms and "b" not in table.rooms
    assert table.sids == {"a": {"a", "y"}, "c": {"c"}}
    assert ("create-room", "x") in events and ("delete-room", "x") in events
    assert ("join-room", "x", "b") in events and ("leave-room", "x", "a") in events


# ---------------------------------------------------------------- commands


def test_add_socket_registers_and_writes_the_connect_reply() -> None:
    router = Router()
    socket: Any = FakeSocket("s")
    command = C.AddSocket(socket, ["connect"])
    command.apply(router)
    assert command.done.is_set()
    assert socket.state is SocketState.CONNECTED
    assert router.holds(socket)
    assert router.rooms_of("/", "s") == {"s"}
    assert socket.session.sent == [(["connect"], False, True)]


def test_add_socket_of_a_closed_session_is_not_registered() -> None:
    router = Router()
    socket: Any = FakeSocket("s")
    socket.session.closed = True
    command = C.AddSocket(socket, ["connect"])
    command.apply(router)
    assert command.done.is_set()
    assert socket.state is SocketState.CONNECTING  # the connecting task abandons it
    assert not router.holds(socket)
    assert router.sockets("/") == {}


def test_emit_follows_the_tables() -> None:
    router = Router()
    (socket,) = registered(router, "s")
    C.Emit(socket, ["p"], False).apply(router)
    assert socket.session.sent == [(["p"], False, True)]
    stranger: Any = FakeSocket("s")  # same id, never registered
    C.Emit(stranger, ["p"], False).apply(router)
    assert stranger.session.sent == []
    socket.state = SocketState.DISCONNECTING  # still in the tables: still sent
    C.Emit(socket, ["q"], True).apply(router)
    assert socket.session.sent[-1] == (["q"], True, True)
    C.RemoveSocket(socket).apply(router)
    C.Emit(socket, ["r"], False).apply(router)
    assert socket.session.sent[-1][0] == ["q"]


def test_broadcast_targets_rooms_once_each() -> None:
    router = Router()
    a, b, c = registered(router, "a", "b", "c")
    C.Rooms(a, ("x", "y"), join=True).apply(router)
    C.Rooms(b, ("x",), join=True).apply(router)
    C.Broadcast("/", ["p"], frozenset({"x", "y"}), frozenset({"b"}), False, None).apply(router)
    assert [s.session.sent for s in (a, b, c)] == [[(["p"], False, False)], [], []]
    C.Broadcast("/", ["q"], frozenset(), frozenset(), True, None).apply(router)
    assert all(s.session.sent[-1] == (["q"], True, False) for s in (a, b, c))
    C.Broadcast("/nowhere", ["z"], frozenset(), frozenset(), False, None).apply(router)


def test_broadcast_with_ack_expects_only_recipients_that_took_it() -> None:
    router = Router()
    a, b = registered(router, "a", "b")
    b.session.full = True  # refuses the packet
    ack = BroadcastAck(7)
    C.Broadcast("/", ["p"], frozenset(), frozenset(), False, ack).apply(router)
    assert set(ack.pending) == {"a"}
    assert 7 in a.acks and 7 not in b.acks
    assert not ack.done.is_set()
    a.acks.resolve(7, "yes")
    assert ack.done.is_set()
    assert ack.responses == ["yes"]


def test_broadcast_with_a_forgotten_ack_sends_but_expects_nothing() -> None:
    router = Router()
    (a,) = registered(router, "a")
    ack = BroadcastAck(1)
    assert ack.forget() == []
    C.Broadcast("/", ["p"], frozenset(), frozenset(), False, ack).apply(router)
    assert a.session.sent and len(a.acks) == 0
    assert ack.done.is_set()


def test_broadcast_ack_counts_a_socket_that_leaves_as_gone() -> None:
    router = Router()
    a, b = registered(router, "a", "b")
    ack = BroadcastAck(3)
    C.Broadcast("/", ["p"], frozenset(), frozenset(), False, ack).apply(router)
    b.acks.fail_all()
    a.acks.resolve(3, ("x", 1))
    assert ack.gone == ["b"] and ack.responses == [("x", 1)]
    assert ack.done.is_set()
    a.acks.resolve(3, "again")  # a second answer is ignored
    assert ack.responses == [("x", 1)]


def test_rooms_of_a_socket_not_in_the_tables_change_nothing() -> None:
    router = Router()
    stranger: Any = FakeSocket("s")
    command = C.Rooms(stranger, ("x",), join=True)
    command.apply(router)
    assert command.done.is_set()
    assert router.room_members("/") == {}


def test_remove_socket_clears_every_room() -> None:
    router = Router()
    a, _ = registered(router, "a", "b")
    C.Rooms(a, ("x",), join=True).apply(router)
    command = C.RemoveSocket(a)
    command.apply(router)
    assert command.done.is_set()
    assert router.socket_rooms("/") == {"b": {"b"}}
    assert router.room_members("/") == {"b": {"b"}}
    C.RemoveSocket(a).apply(router)  # twice: harmless


def test_call_returns_or_raises_and_abandon_releases() -> None:
    router = Router()
    ok = C.Call(lambda r: r is router)
    ok.apply(router)
    assert ok.done.is_set() and ok.result is True and ok.error is None
    bad: C.Call[None] = C.Call(lambda r: 1 / 0)  # type: ignore[arg-type,return-value]
    bad.apply(router)
    assert isinstance(bad.error, ZeroDivisionError)
    gone: C.Call[int] = C.Call(lambda r: 1)
    gone.abandon()
    assert gone.done.is_set() and isinstance(gone.error, trio.ClosedResourceError)


def test_pending_acks() -> None:
    acks = PendingAcks("s")
    got: list[Any] = []

    def first(sid: str, value: Any) -> None:
        got.append((sid, value))

    def broken(sid: str, value: Any) -> None:
        raise RuntimeError("logged, never raised")

    acks.expect(1, first)
    acks.expect(2, broken)
    acks.forget(1, broken)  # not its callback: kept
    assert 1 in acks
    acks.resolve(1, "v")
    acks.resolve(1, "again")  # nobody waits any more
    acks.resolve(9, "bogus")
    acks.expect(3, first)
    acks.fail_all()
    assert got == [("s", "v"), ("s", GONE)]
    assert len(acks) == 0


async def test_router_abandons_queued_commands_when_it_stops() -> None:
    router = Router()
    socket: Any = FakeSocket("s")
    async with trio.open_nursery() as nursery:
        await nursery.start(router.run)
        nursery.cancel_scope.cancel()
    # Stopped: a removal is done at once, an addition is not applied.
    assert router.remove_nowait(socket).is_set()
    await router.add(socket, ["connect"])
    assert socket.state is SocketState.CONNECTING and socket.session.sent == []
    with pytest.raises(trio.ClosedResourceError):
        await router.call(lambda r: None)
