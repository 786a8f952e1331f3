"""Connection state recovery with a shared store (the Redis Streams adapter),
without sockets or Redis: stream positions, offsets written in, and what a
socket recovered from the store gets (``RecoveryState.resume``).

The store read the stream up to ``upto`` (M); the router sent the namespace's
packets up to its last ``log_at`` (R), or, if none, up to where its reader
started (``floor``). The socket must get what the store read up to R, then
the router's log in (M, R], and nothing after R (that comes live): each
packet once, in stream order. End to end, with Redis and the npm client:
``tests/redis/test_streams_recovery.py``.
"""

from __future__ import annotations

from typing import Any

from test_recovery_core import args_of, encoded, state

from triosio._engine.packet import OutPacket
from triosio._proto.eio import EioType
from triosio._proto.msgpack_parser import MsgpackParser
from triosio._proto.sio import SioPacket, SioType
from triosio._server.recovery import (
    KeptSession,
    RecoveryState,
    Restored,
    stamp,
    stream_position,
)


def pos(ms: int, seq: int = 0) -> int:
    position = stream_position(f"{ms}-{seq}")
    assert position is not None
    return position


def shared_state(**options: Any) -> RecoveryState:
    rec = state(**options)
    rec.store = _Store()
    return rec


class _Store:
    # Never called here: its presence puts the state in shared-store mode.
    pass


def restored(
    remote: list[int], upto: int, floor: int | None, rooms: frozenset[str] = frozenset({"s1"})
) -> Restored:
    kept = KeptSession("s1", "p1", "/", rooms, {}, pos(1), 0.0)
    packets = [(pos(ms), [OutPacket(EioType.MESSAGE, f"r{ms}")]) for ms in remote]
    return Restored(kept, pos(1), pos(upto), [], remote=packets, floor=floor)


def log_at(rec: RecoveryState, ms: int, *, nsp: str = "/", rooms: tuple[str, ...] = ()) -> None:
    packets = [OutPacket(EioType.MESSAGE, f"l{ms}")]
    rec.log_at(pos(ms), nsp, packets, frozenset(rooms), frozenset(), 0.0)


def texts(missed: Any) -> list[str]:
    return [packets[0].data for packets in missed]


def test_stream_positions_order_entry_ids() -> None:
    ids = ["0-1", "1-0", "1-1", "1-10", "2-0", "1733412345678-0", "1733412345678-3"]
    positions = [stream_position(i) for i in ids]
    assert all(p is not None for p in positions)
    assert positions == sorted(positions)  # type: ignore[type-var]
    for bad in ("", "1", "1-", "-1", "a-b", "1-2-3", " 1-2", "1-2 ", f"{2**64}-0", "\u0661-\u0662"):
        assert stream_position(bad) is None, bad


def test_an_offset_is_written_over_the_placeholder_of_a_text_packet() -> None:
    rec = state()
    packets = encoded(rec, 1, {"a": "b"})
    stamped = stamp(packets, rec.placeholder, "1733412345678-12")
    assert stamped is not None and args_of(stamped) == [1, {"a": "b"}, "1733412345678-12"]
    # MessagePack strings carry their length: encoded again instead.
    frames = MsgpackParser().encoder().encode(
        SioPacket(SioType.EVENT, "/", ["ev", rec.placeholder])
    )
    binary = [OutPacket(EioType.MESSAGE, frame) for frame in frames]
    assert stamp(binary, rec.placeholder, "1-0") is None


def test_nothing_sent_here_yet_the_store_gives_everything_up_to_the_readers_start() -> None:
    rec = shared_state()
    # The reader started after 5: 3 and 5 never come live here; 7 does.
    missed = rec.resume(restored([3, 5, 7], upto=7, floor=pos(5)))
    assert texts(missed) == ["r3", "r5"]
    # Not started yet: all of what the store read.
    assert texts(rec.resume(restored([3, 5, 7], upto=7, floor=None))) == ["r3", "r5", "r7"]
    # The store stopped short of where live delivery starts: a gap, refused.
    assert rec.resume(restored([3], upto=3, floor=pos(5))) is None


def test_packets_not_sent_here_yet_come_live_not_from_the_store() -> None:
    rec = shared_state()
    log_at(rec, 2)
    log_at(rec, 4)
    # The router sent up to 4; the store read up to 6: 6 comes live.
    assert texts(rec.resume(restored([4, 6], upto=6, floor=pos(1)))) == ["r4"]


def test_packets_sent_here_after_the_store_read_come_from_the_log() -> None:
    rec = shared_state()
    log_at(rec, 2)
    log_at(rec, 4)
    log_at(rec, 5, nsp="/other")  # another namespace's: never
    log_at(rec, 6, rooms=("s1",))
    log_at(rec, 7, rooms=("elsewhere",))  # not for its rooms
    log_at(rec, 8)
    missed = rec.resume(restored([3, 4], upto=4, floor=pos(1)))
    assert texts(missed) == ["r3", "r4", "l6", "l8"]


def test_namespaces_on_other_streams_do_not_stop_the_search() -> None:
    # Positions grow per namespace only (each namespace has one stream).
    rec = shared_state()
    log_at(rec, 10)
    log_at(rec, 3, nsp="/other")
    log_at(rec, 12)
    assert texts(rec.resume(restored([], upto=9, floor=pos(1)))) == ["l10", "l12"]


def test_a_gap_in_the_log_refuses_the_recovery() -> None:
    rec = shared_state(max_packets=2)
    for ms in (5, 6, 7):
        log_at(rec, ms)  # 5 is dropped
    assert rec.resume(restored([], upto=4, floor=pos(1))) is None
    assert texts(rec.resume(restored([], upto=5, floor=pos(1)))) == ["l6", "l7"]
