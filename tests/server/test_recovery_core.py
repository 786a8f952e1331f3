"""Connection state recovery's state, without sockets: the packet log, its
offsets, the kept sessions, their bounds and their expiry; then the router's
commands that change it, with stand-ins as in ``test_router_core.py``.

Time is an argument of every method of :class:`RecoveryState`, so these tests
pass it in; the router passes the Trio clock (the last tests run it under
``MockClock``).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
import trio.testing
from test_router_core import FakeNamespace, FakeSocket

from triosio import ConnectionStateRecovery, DisconnectReason
from triosio._engine.packet import OutPacket
from triosio._proto.eio import EioType
from triosio._proto.msgpack_parser import MsgpackParser
from triosio._proto.sio import JSONEncoder, SioPacket, SioType
from triosio._server import _commands as C
from triosio._server.lifecycle import SocketState
from triosio._server.recovery import (
    RECOVERABLE_REASONS,
    RecoveryState,
    recovery_request,
)
from triosio._server.router import Router

WINDOW = 120.0


def state(**options: Any) -> RecoveryState:
    return RecoveryState(ConnectionStateRecovery(**options), tag="TaG_")


def encoded(rec: RecoveryState, *args: Any, nsp: str = "/") -> list[OutPacket]:
    """An event encoded as the emitting task does: the placeholder last."""
    frames = JSONEncoder().encode(SioPacket(SioType.EVENT, nsp, ["ev", *args, rec.placeholder]))
    return [OutPacket(EioType.MESSAGE, frame) for frame in frames]


def args_of(packets: Any) -> list[Any]:
    """The event's arguments (after the name) of an encoded JSON text packet."""
    text: str = packets[0].data
    return json.loads(text[text.index("[") :])[1:]  # type: ignore[no-any-return]


def log(
    rec: RecoveryState,
    value: Any,
    *,
    rooms: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
    nsp: str = "/",
    at: float = 0.0,
) -> Any:
    return rec.log(nsp, encoded(rec, value, nsp=nsp), frozenset(rooms), frozenset(exclude), at)


def values(missed: Any) -> list[Any]:
    return [args_of(packets)[0] for packets in missed]


# ---------------------------------------------------------------- options and requests


def test_options_have_the_reference_defaults_and_refuse_nonsense() -> None:
    options = ConnectionStateRecovery()
    assert options.max_disconnection_duration == 120
    assert options.skip_middlewares is True
    for bad in (
        {"max_disconnection_duration": 0},
        {"max_disconnection_duration": -1},
        {"max_packets": 0},
        {"max_sessions": -5},
        {"max_bytes": 1.5},
        {"max_packets": True},
    ):
        with pytest.raises(ValueError, match="must be"):
            ConnectionStateRecovery(**bad)


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        ({}, None),
        ({"token": "t"}, None),
        ({"pid": "p"}, ("p", None)),
        ({"pid": "p", "offset": None}, ("p", None)),
        ({"pid": "p", "offset": "o"}, ("p", "o")),
        ({"pid": 12, "offset": "o"}, None),
        ({"pid": ["p"], "offset": "o"}, None),
        ({"pid": "", "offset": "o"}, None),
        ({"pid": "p" * 65, "offset": "o"}, None),
        ({"pid": "p", "offset": 3}, None),
        ({"pid": "p", "offset": {"x": 1}}, None),
    ],
)
def test_recovery_request_reads_only_well_formed_auth(auth: Any, expected: Any) -> None:
    assert recovery_request(auth) == expected


def test_recoverable_reasons_are_the_references() -> None:
    assert {str(r) for r in RECOVERABLE_REASONS} == {
        "transport error",
        "transport close",
        "forced close",
        "ping timeout",
        "server shutting down",
        "forced server close",
    }


# ---------------------------------------------------------------- offsets


def test_offsets_are_the_placeholders_length_and_only_ours_parse() -> None:
    rec = state()
    assert len(rec.offset(1)) == len(rec.placeholder)
    assert rec.parse_offset(rec.offset(1)) == 1
    assert rec.parse_offset(rec.offset(0xABCDEF)) == 0xABCDEF
    assert rec.parse_offset(rec.placeholder) is None
    for foreign in ("", "TaG_", "TaG_00000000001", "XXXX0000000001", "TaG_000000000G", "MnB3x"):
        assert rec.parse_offset(foreign) is None
    assert rec.parse_offset("TaG_+000000001") is None  # int() would take these
    assert rec.parse_offset("TaG_0_00000001") is None
    assert rec.parse_offset("TaG_" + "0" * 10_000) is None
    other = RecoveryState(ConnectionStateRecovery())
    assert other.tag != rec.tag or other.placeholder == rec.placeholder


def test_log_writes_the_offset_over_the_placeholder_once_per_packet() -> None:
    rec = state()
    first = log(rec, "a")
    second = log(rec, {"b": [1, 2]})
    assert args_of(first) == ["a", rec.offset(1)]
    assert args_of(second) == [{"b": [1, 2]}, rec.offset(2)]
    assert rec.position == 2 and rec.kept_packets == 2
    assert rec.kept_bytes == first[0].size + second[0].size


def test_log_keeps_binary_attachments_and_patches_msgpack() -> None:
    rec = state()
    frames = JSONEncoder().encode(
        SioPacket(SioType.EVENT, "/", ["ev", b"\x00\x01", rec.placeholder])
    )
    packets = [OutPacket(EioType.MESSAGE, f) for f in frames]
    stamped = rec.log("/", packets, frozenset(), frozenset(), 0.0)
    assert stamped[1] is packets[1]  # the attachment, untouched
    assert isinstance(stamped[0].data, str) and stamped[0].data.endswith(f',"{rec.offset(1)}"]')

    encoder = MsgpackParser().encoder()
    raw = encoder.encode(SioPacket(SioType.EVENT, "/", ["ev", "x", rec.placeholder]))
    stamped = rec.log("/", [OutPacket(EioType.MESSAGE, raw[0])], frozenset(), frozenset(), 0.0)
    decoded = MsgpackParser().decoder(_limits()).feed(stamped[0].data)
    assert decoded is not None and decoded.data == ["ev", "x", rec.offset(2)]


def _limits() -> Any:
    from triosio._proto.sio import Limits

    return Limits()


def test_the_parser_check_refuses_a_parser_that_hides_strings() -> None:
    rec = state()
    rec.check_parser(lambda data: [OutPacket(EioType.MESSAGE, json.dumps(data))])
    with pytest.raises(ValueError, match="parser"):
        rec.check_parser(lambda data: [OutPacket(EioType.MESSAGE, "opaque")])


# ---------------------------------------------------------------- keep and take


def keep(
    rec: RecoveryState,
    pid: str = "pid",
    *,
    sid: str = "sid",
    rooms: tuple[str, ...] = ("sid",),
    mark: int = 0,
    at: float = 0.0,
    nsp: str = "/",
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    data = {} if data is None else data
    rec.keep(sid, pid, nsp, frozenset(rooms), data, mark, at)
    return data


def test_take_gives_the_session_and_what_it_missed_in_order() -> None:
    rec = state()
    log(rec, "seen")
    offset = rec.offset(1)
    log(rec, 1)
    log(rec, 2, rooms=("r",))
    log(rec, "other room", rooms=("elsewhere",))
    log(rec, "excluded", exclude=("r",))
    log(rec, "other namespace", nsp="/admin")
    log(rec, 3, rooms=("sid",))  # a direct emit is logged to the socket's own room
    log(rec, 4, rooms=("elsewhere", "r"))
    data = keep(rec, rooms=("sid", "r"), data={"user": "ann"})
    restored = rec.take("/", "pid", offset, 10.0)
    assert restored is not None
    assert (restored.sid, restored.pid, restored.nsp) == ("sid", "pid", "/")
    assert restored.rooms == {"sid", "r"} and restored.data is data
    assert values(restored.missed) == [1, 2, 3, 4]
    assert restored.start == 1 and restored.upto == rec.position
    # Taken once.
    assert rec.take("/", "pid", offset, 10.0) is None
    assert rec.kept_sessions == 0


def test_take_refuses_unknown_foreign_and_malformed() -> None:
    rec = state()
    log(rec, "x")
    keep(rec, "a")
    keep(rec, "b", nsp="/admin")
    assert rec.take("/", "nobody", rec.offset(1), 1.0) is None
    assert rec.take("/", "b", rec.offset(1), 1.0) is None  # another namespace's
    assert rec.kept_sessions == 2  # ... not taken by the wrong namespace
    assert rec.take("/", "a", "not an offset", 1.0) is None
    keep(rec, "a")
    assert rec.take("/", "a", rec.offset(99), 1.0) is None  # from the future
    keep(rec, "a")
    assert rec.take("/", "a", "Wxyz0000000001", 1.0) is None  # another server's


def test_no_offset_or_an_older_one_replays_from_the_sockets_mark() -> None:
    rec = state()
    log(rec, "before it connected")
    mark = rec.position
    log(rec, "after")
    keep(rec, "a", mark=mark)
    restored = rec.take("/", "a", None, 1.0)
    assert restored is not None and values(restored.missed) == ["after"]
    keep(rec, "a", mark=mark)
    restored = rec.take("/", "a", rec.offset(0), 1.0)  # older than the mark
    assert restored is not None and values(restored.missed) == ["after"]
    assert restored.start == mark


def test_past_the_window_a_session_is_not_restored() -> None:
    rec = state()
    keep(rec, "a", at=5.0)
    assert rec.take("/", "a", None, 5.0 + WINDOW) is None
    keep(rec, "a", at=5.0)
    assert rec.take("/", "a", None, 5.0 + WINDOW - 0.001) is not None


# ---------------------------------------------------------------- bounds


def test_past_max_packets_the_oldest_go_and_a_recovery_needing_them_fails() -> None:
    rec = state(max_packets=3)
    for i in range(1, 6):
        log(rec, i)
    assert rec.kept_packets == 3
    keep(rec, "a")
    assert rec.take("/", "a", rec.offset(1), 1.0) is None  # 2 was dropped
    keep(rec, "a")
    restored = rec.take("/", "a", rec.offset(2), 1.0)  # 3, 4, 5 are all there
    assert restored is not None and values(restored.missed) == [3, 4, 5]


def test_past_max_bytes_the_oldest_go() -> None:
    rec = state(max_bytes=1000)
    for i in range(10):
        log(rec, "x" * 200 + str(i))
    assert rec.kept_bytes <= 1000
    assert rec.kept_packets == 4


def test_a_packet_larger_than_max_bytes_is_sent_but_not_kept() -> None:
    rec = state(max_bytes=100)
    stamped = log(rec, "x" * 500)
    assert args_of(stamped)[1] == rec.offset(1)
    assert rec.kept_packets == 0 and rec.kept_bytes == 0


def test_past_max_sessions_the_oldest_go() -> None:
    rec = state(max_sessions=2)
    keep(rec, "a")
    keep(rec, "b")
    keep(rec, "c")
    assert rec.kept_sessions == 2
    assert rec.take("/", "a", None, 1.0) is None
    assert rec.take("/", "c", None, 1.0) is not None


def test_a_client_whose_last_packet_expired_recovers_if_nothing_newer_went() -> None:
    rec = state()
    log(rec, "old", at=0.0)
    offset = rec.offset(1)
    keep(rec, "a", at=100.0)
    rec.expire(WINDOW + 1.0)  # the packet expired, the session did not
    assert rec.kept_packets == 0 and rec.kept_sessions == 1
    restored = rec.take("/", "a", offset, WINDOW + 2.0)
    assert restored is not None and restored.missed == []


def test_resume_adds_what_came_since_the_take_or_fails_if_it_went() -> None:
    rec = state(max_packets=2)
    log(rec, 1)
    keep(rec, "a")
    restored = rec.take("/", "a", None, 1.0)
    assert restored is not None
    log(rec, 2)
    missed = rec.resume(restored)
    assert missed is not None and values(missed) == [1, 2]
    log(rec, 3)
    log(rec, 4)  # 2 left the log
    assert rec.resume(restored) is None


# ---------------------------------------------------------------- expiry


def test_expire_drops_what_is_due_and_next_expiry_says_when() -> None:
    rec = state()
    woken: list[int] = []
    rec.on_kept = lambda: woken.append(1)
    assert rec.next_expiry() is None
    log(rec, 1, at=10.0)
    keep(rec, "a", at=5.0)
    log(rec, 2, at=20.0)
    assert woken == [1]  # only when something is kept while nothing was
    assert rec.next_expiry() == 5.0 + WINDOW
    rec.expire(5.0 + WINDOW)
    assert rec.kept_sessions == 0 and rec.kept_packets == 2
    assert rec.next_expiry() == 10.0 + WINDOW
    rec.expire(20.0 + WINDOW)
    assert rec.kept_packets == 0 and rec.kept_bytes == 0
    assert rec.next_expiry() is None
    log(rec, 3, at=200.0)
    assert woken == [1, 1]


# ---------------------------------------------------------------- the router's commands


class RecSocket(FakeSocket):
    def __init__(self, sid: str, nsp: FakeNamespace | None = None) -> None:
        super().__init__(sid, nsp)
        self.pid: str | None = "pid-" + sid
        self.data: dict[str, Any] = {}
        self.reason: DisconnectReason | None = None
        self.recovered = False
        self._mark = 0


def recovering_router(**options: Any) -> Router:
    return Router(recovery=RecoveryState(ConnectionStateRecovery(**options), tag="TaG_"))


def add(router: Router, sid: str) -> Any:
    socket = RecSocket(sid)
    C.AddSocket(socket, ["connect"]).apply(router)  # type: ignore[arg-type,list-item]
    socket.session.sent.clear()
    return socket


async def test_logged_broadcast_and_emit_are_numbered_kept_and_sent() -> None:
    router = recovering_router()
    rec = router.recovery
    assert rec is not None
    a, b = add(router, "a"), add(router, "b")
    C.LoggedBroadcast("/", encoded(rec, "hi"), frozenset(), frozenset(), False, None).apply(router)
    sent = a.session.sent[-1][0]
    assert b.session.sent[-1][0] is sent  # one stamped packet, shared
    assert args_of(sent) == ["hi", rec.offset(1)]
    C.LoggedEmit(a, encoded(rec, "just a"), False).apply(router)
    assert args_of(a.session.sent[-1][0]) == ["just a", rec.offset(2)]
    assert len(b.session.sent) == 1
    # Logged even when the socket is gone: its client may come back for it.
    C.RemoveSocket(a).apply(router)
    C.LoggedEmit(a, encoded(rec, "while away"), False).apply(router)
    assert rec.kept_packets == 3 and len(a.session.sent) == 2


async def test_removal_keeps_the_session_for_recoverable_reasons_only() -> None:
    router = recovering_router()
    rec = router.recovery
    assert rec is not None
    a, b, c = add(router, "a"), add(router, "b"), add(router, "c")
    C.Rooms(a, ("r",), join=True).apply(router)
    a.data["x"] = 1
    a.reason = DisconnectReason.TRANSPORT_CLOSE
    b.reason = DisconnectReason.CLIENT_NAMESPACE_DISCONNECT
    c.reason = DisconnectReason.SERVER_NAMESPACE_DISCONNECT
    for socket in (a, b, c):
        C.RemoveSocket(socket).apply(router)
    assert rec.kept_sessions == 1
    restored = rec.take("/", "pid-a", None, 1.0)
    assert restored is not None
    assert restored.sid == "a" and restored.rooms == {"a", "r"} and restored.data == {"x": 1}


async def test_add_socket_restores_rooms_then_replays_after_the_connect_reply() -> None:
    router = recovering_router()
    rec = router.recovery
    assert rec is not None
    a = add(router, "a")
    C.Rooms(a, ("r",), join=True).apply(router)
    C.LoggedBroadcast("/", encoded(rec, 0), frozenset(), frozenset(), False, None).apply(router)
    a.reason = DisconnectReason.PING_TIMEOUT
    C.RemoveSocket(a).apply(router)
    C.LoggedBroadcast("/", encoded(rec, 1), frozenset({"r"}), frozenset(), False, None).apply(
        router
    )
    restored = rec.take("/", "pid-a", rec.offset(1), 1.0)
    assert restored is not None
    C.LoggedBroadcast("/", encoded(rec, 2), frozenset(), frozenset(), False, None).apply(router)
    back = RecSocket("a")
    command = C.AddSocket(back, ["connect"], restored)  # type: ignore[arg-type,list-item]
    command.apply(router)
    assert command.done.is_set() and not command.declined
    assert back.state is SocketState.CONNECTED
    assert router.holds(back) and router.rooms_of("/", "a") == {"a", "r"}
    sent = [p for p, _, _ in back.session.sent]
    assert sent[0] == ["connect"]
    assert [args_of(p)[0] for p in sent[1:]] == [1, 2]
    assert back._mark == restored.start == 1


async def test_add_socket_declines_a_recovery_whose_packets_left_meanwhile() -> None:
    router = recovering_router(max_packets=1)
    rec = router.recovery
    assert rec is not None
    a = add(router, "a")
    a.reason = DisconnectReason.TRANSPORT_ERROR
    C.RemoveSocket(a).apply(router)
    restored = rec.take("/", "pid-a", None, 1.0)
    assert restored is not None
    for i in range(2):
        C.LoggedBroadcast("/", encoded(rec, i), frozenset(), frozenset(), False, None).apply(router)
    back = RecSocket("a")
    command = C.AddSocket(back, ["connect"], restored)  # type: ignore[arg-type,list-item]
    command.apply(router)
    assert command.declined and command.done.is_set()
    assert back.state is SocketState.CONNECTING and not router.holds(back)
    assert back.session.sent == []


async def test_the_router_expires_on_the_trio_clock(autojump_clock: trio.testing.MockClock) -> None:
    router = recovering_router(max_disconnection_duration=30)
    rec = router.recovery
    assert rec is not None
    async with trio.open_nursery() as nursery:
        await nursery.start(router.run)
        a = add(router, "a")
        a.reason = DisconnectReason.TRANSPORT_CLOSE
        await router.remove_nowait(a).wait()
        await router.broadcast("/", encoded(rec, "x"), frozenset(), frozenset(), False, logged=True)
        await trio.testing.wait_all_tasks_blocked()
        start = trio.current_time()
        assert rec.kept_sessions == 1 and rec.kept_packets == 1
        await trio.sleep(29.9)
        assert rec.kept_sessions == 1
        await trio.sleep(0.2)
        assert rec.kept_sessions == 0 and rec.kept_packets == 0
        # Kept again after a quiet spell: the timer wakes for it.
        b = add(router, "b")
        b.reason = DisconnectReason.TRANSPORT_CLOSE
        await router.remove_nowait(b).wait()
        assert rec.kept_sessions == 1
        await trio.sleep(31)
        assert rec.kept_sessions == 0
        assert trio.current_time() - start == pytest.approx(61.1)
        nursery.cancel_scope.cancel()
