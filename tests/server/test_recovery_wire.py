"""Connection state recovery on the wire, with a client by hand (exact packets).

The CONNECT reply carries ``pid``; recoverable EVENTs carry the offset last
(broadcasts and direct emits alike; never volatile ones or those waiting for
an ack); a CONNECT with ``pid`` and ``offset`` of a kept session gets the same
socket id and the missed packets right after its CONNECT reply. Bad input
(malformed pid or offset) is a normal connection, never a crash.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
from conftest import LIMIT, RawPolling, serving, settle, until

import triosio
from triosio.testing import MemoryNetwork


def recovering_server(**options: Any) -> tuple[triosio.Server, list[triosio.Socket]]:
    sio = triosio.Server(connection_state_recovery=triosio.ConnectionStateRecovery(**options))
    sockets: list[triosio.Socket] = []

    @sio.on("connection")
    async def connected(socket: triosio.Socket) -> None:
        sockets.append(socket)
        if not socket.recovered:
            await socket.join("room")
            socket.data["n"] = len(sockets)

    return sio, sockets


def connect_reply(packet: str) -> dict[str, Any]:
    assert packet.startswith("40{"), packet
    data: dict[str, Any] = json.loads(packet[2:])
    return data


def event(packet: str) -> list[Any]:
    assert packet.startswith("42["), packet
    data: list[Any] = json.loads(packet[2:])
    return data


async def handshake(
    net: MemoryNetwork, auth: dict[str, Any] | None = None
) -> tuple[Any, str, list[str]]:
    """(client, the CONNECT reply, what came with it in the same poll)."""
    raw = RawPolling(net)
    await raw.open()
    await raw.post("40" + (json.dumps(auth) if auth is not None else ""))
    status, packets = await raw.get()
    assert status == 200
    return raw, packets[0], packets[1:]


async def test_pid_offsets_and_a_recovery_on_the_wire(
    autojump_clock: Any, net: MemoryNetwork
) -> None:
    sio, sockets = recovering_server()
    with trio.fail_after(LIMIT):
        async with serving(sio, net):
            raw, reply, _ = await handshake(net)
            first = connect_reply(reply)
            assert set(first) == {"sid", "pid"} and len(first["pid"]) == 20
            await settle()
            (socket,) = sockets
            await sio.emit("news", 1)
            await socket.emit("direct", {"a": 1})
            await sio.to("room").emit("room", "r")
            _, packets = await raw.get()
            news, direct, room = (event(p) for p in packets)
            # A volatile packet goes only to a transport ready to write: a GET
            # waiting for it.
            async with trio.open_nursery() as nursery:
                got: list[list[str]] = []

                async def poll() -> None:
                    got.append((await raw.get())[1])

                nursery.start_soon(poll)
                await settle()
                await socket.volatile.emit("volatile", "v")
            (volatile,) = (event(p) for p in got[0])
            offset = news[-1]
            assert news[:-1] == ["news", 1] and isinstance(offset, str)
            assert direct[:-1] == ["direct", {"a": 1}] and direct[-1] != offset
            assert volatile == ["volatile", "v"]  # no offset
            assert room[:-1] == ["room", "r"]

            # The client goes (an Engine.IO close: reason "transport close").
            await raw.post("1")
            await until(lambda: not socket.connected)
            assert socket.reason == triosio.DisconnectReason.TRANSPORT_CLOSE
            await sio.emit("missed", 1)
            await sio.to("room").emit("missed", 2)
            await sio.to("elsewhere").emit("not for it")
            await sio.except_("room").emit("not for it either")
            await sio.volatile.emit("volatile, so lost")

            auth = {"pid": first["pid"], "offset": direct[-1]}
            raw2, reply, replayed = await handshake(net, auth)
            again = connect_reply(reply)
            assert again == first  # same sid, same pid
            await settle()
            back = sockets[-1]
            assert back is not socket and back.recovered
            assert back.id == socket.id and back.data == {"n": 1}
            assert back.rooms == {back.id, "room"}
            await sio.emit("live", 3)
            _, packets = await raw2.get()
            received = [event(p) for p in replayed + packets]
            # From the offset on: the room broadcast, then what it missed, then live.
            assert [e[:-1] for e in received] == [
                ["room", "r"],
                ["missed", 1],
                ["missed", 2],
                ["live", 3],
            ]
            assert len({e[-1] for e in received}) == 4


async def test_emits_with_acks_carry_no_offset(autojump_clock: Any, net: MemoryNetwork) -> None:
    sio, sockets = recovering_server()
    with trio.fail_after(LIMIT):
        async with serving(sio, net):
            raw, _, _ = await handshake(net)
            await settle()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    lambda: sockets[0].timeout(5).emit_with_ack("ask", "q")  # type: ignore[arg-type]
                )
                nursery.start_soon(
                    lambda: sio.timeout(5).emit_with_ack("all", "q")  # type: ignore[arg-type]
                )
                await settle()
                _, packets = await raw.get()
                # Ack ids follow the order the two tasks ran in; no offset either way.
                assert sorted(p[:3] for p in packets) == ["420", "421"]
                assert sorted(p[3:] for p in packets) == ['["all","q"]', '["ask","q"]']
                await raw.post('430["yes"]', '431["yes"]')
    # A handler's acknowledgement carries none either (a second server: a
    # MemoryNetwork serves once).
    net = MemoryNetwork()
    sio, sockets = recovering_server()
    sio.on("echo", lambda socket, x: x)
    with trio.fail_after(LIMIT):
        async with serving(sio, net):
            raw, _, _ = await handshake(net)
            await raw.post('425["echo","x"]')
            _, packets = await raw.get()
            assert packets == ['435["x"]']


@pytest.mark.parametrize(
    "auth",
    [
        {"pid": 1, "offset": "x"},
        {"pid": None, "offset": None},
        {"pid": ["a"], "offset": ["b"]},
        {"pid": {"nested": "x"}},
        {"pid": "x" * 100_000, "offset": "y" * 100_000},
        {"pid": "unknown-pid-unknown1", "offset": "y"},
        {"pid": "unknown-pid-unknown1"},
        {"pid": "", "offset": ""},
        {"offset": "abcd0000000001"},
    ],
)
async def test_a_bad_pid_or_offset_is_a_normal_connection(
    autojump_clock: Any, net: MemoryNetwork, auth: dict[str, Any]
) -> None:
    sio, sockets = recovering_server()
    with trio.fail_after(LIMIT):
        async with serving(sio, net):
            _, reply, _ = await handshake(net, auth)
            await settle()
            (socket,) = sockets
            assert not socket.recovered
            assert connect_reply(reply) == {"sid": socket.id, "pid": socket.pid}


async def test_a_known_pid_with_a_bad_offset_is_a_normal_connection(
    autojump_clock: Any, net: MemoryNetwork
) -> None:
    for bad in (12, "not ours", "Wxyz0000000001", ["x"]):
        net = MemoryNetwork()
        sio, sockets = recovering_server()
        with trio.fail_after(LIMIT):
            async with serving(sio, net):
                raw, reply, _ = await handshake(net)
                pid = connect_reply(reply)["pid"]
                await raw.post("1")
                first = sockets
                await until(lambda: len(first) == 1 and not first[0].connected)  # noqa: B023
                _, reply, _ = await handshake(net, {"pid": pid, "offset": bad})
                await settle()
                assert not sockets[-1].recovered
                assert connect_reply(reply)["sid"] != sockets[0].id


async def test_off_by_default_no_pid_no_offset(autojump_clock: Any, net: MemoryNetwork) -> None:
    sio = triosio.Server()
    sockets: list[triosio.Socket] = []
    sio.on("connection", sockets.append)
    with trio.fail_after(LIMIT):
        async with serving(sio, net):
            raw, reply, _ = await handshake(net, {"pid": "x", "offset": "y"})
            assert set(connect_reply(reply)) == {"sid"}
            await settle()
            assert not sockets[0].recovered and sockets[0].pid is None
            await sio.emit("news", 1)
            _, packets = await raw.get()
            assert packets == ['42["news",1]']
