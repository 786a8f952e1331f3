"""Reconnection, heartbeat and the order of events, under MockClock.

Every test runs on ``autojump_clock`` (MockClock(autojump_threshold=0)) with
in-memory streams only: a dead connector (raises OSError) or the scripted peer.
Delays are asserted exactly, with the jitter's random draws injected.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from typing import Any

import pytest
import trio
from client_fixtures import peer_fixture  # noqa: F401 (the fixture peer)
from recorder import SEED_EVENTS, Recorder
from scripted_peer import ScriptedPeer

import triosio
from triosio import ConnectError, Disconnected, DisconnectReason

URL = "http://example.com"


def draws(*values: float) -> Any:
    """A ``random`` option that returns ``values`` in turn."""
    it: Iterator[float] = iter(values)
    return lambda: next(it)


class DeadConnector:
    """A connector for a port where nothing listens; records when it was called."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, host: str, port: int, tls: ssl.SSLContext | None) -> trio.abc.Stream:
        await trio.lowlevel.checkpoint()
        self.calls.append(trio.current_time())
        raise OSError(111, "Connection refused")


async def test_backoff_schedule_is_the_reference_formula(autojump_clock: trio.abc.Clock) -> None:
    # Delay n (from 0) is min * 2**n, moved by jitter: floor(r * 0.5 * ms) down if
    # floor(r * 10) is even, up if odd; the cap applies last; whole milliseconds.
    #   n=0 r=0.00: 1000 - 0            = 1000
    #   n=1 r=0.25: 2000 - 250          = 1750
    #   n=2 r=0.50: 4000 + 1000         = 5000
    #   n=3 r=0.30: 8000 + 1200         = 9200
    #   n=4 r=0.99: 16000 + 7920        = 23920 -> capped at 10000
    connector = DeadConnector()
    recorder = Recorder()
    with trio.fail_after(100):
        async with triosio.Manager(
            URL,
            connector=connector,
            retry_connect=True,
            reconnection_attempts=5,
            reconnection_delay=1,
            reconnection_delay_max=10,
            randomization_factor=0.5,
            random=draws(0.0, 0.25, 0.5, 0.3, 0.99),
        ) as manager:
            recorder.manager(manager)
            sock = manager.socket("/")
            recorder.socket(sock, "socket")
            with pytest.raises(ConnectError, match="after 5 attempts"):
                await sock.connect()
    reconnecting = recorder.entries("socket", "reconnecting")
    assert [e.args for e in reconnecting] == [
        (1.0, 1),
        (1.75, 2),
        (5.0, 3),
        (9.2, 4),
        (10.0, 5),
    ]
    assert connector.calls == pytest.approx([0.0, 1.0, 2.75, 7.75, 16.95, 26.95])
    attempts = recorder.entries("manager", "reconnect_attempt")
    assert [e.args for e in attempts] == [(1,), (2,), (3,), (4,), (5,)]
    assert [e.time for e in attempts] == pytest.approx(connector.calls[1:])
    (failed,) = recorder.entries("manager", "reconnect_failed")
    assert failed.time == pytest.approx(26.95)


async def test_reconnect_failed_order_of_events(autojump_clock: trio.abc.Clock) -> None:
    recorder = Recorder()
    with trio.fail_after(100):
        async with triosio.Manager(
            URL,
            connector=DeadConnector(),
            retry_connect=True,
            reconnection_attempts=2,
            random=draws(0.0, 0.0),
        ) as manager:
            recorder.manager(manager)
            sock = manager.socket("/")
            recorder.socket(sock, "socket")
            with pytest.raises(ConnectError) as info:
                await sock.connect()
            await recorder.wait_for(lambda: recorder.count("socket", "connect_failed") == 1)
    assert [(e.source, e.name) for e in recorder.log] == [
        ("manager", "error"),
        ("socket", "connect_error"),
        ("socket", "reconnecting"),
        ("manager", "reconnect_attempt"),
        ("manager", "error"),
        ("socket", "connect_error"),
        ("manager", "reconnect_error"),
        ("socket", "reconnecting"),
        ("manager", "reconnect_attempt"),
        ("manager", "error"),
        ("socket", "connect_error"),
        ("manager", "reconnect_error"),
        ("manager", "reconnect_failed"),
        ("socket", "reconnect_failed"),
        ("socket", "connect_failed"),
    ]
    assert recorder.entries("socket", "connect_failed")[0].args == (info.value,)
    assert not sock.active


async def test_first_connect_fails_at_once_by_default(autojump_clock: trio.abc.Clock) -> None:
    connector = DeadConnector()
    recorder = Recorder()
    with trio.fail_after(100):
        async with triosio.Manager(URL, connector=connector) as manager:
            recorder.manager(manager)
            sock = manager.socket("/")
            recorder.socket(sock, "socket")
            with pytest.raises(ConnectError, match="Connection refused") as info:
                await sock.connect()
            await recorder.wait_for(lambda: recorder.count("socket", "connect_failed") == 1)
            await trio.sleep(60)
    assert connector.calls == [0.0]
    assert [(e.source, e.name) for e in recorder.log] == [
        ("manager", "error"),
        ("socket", "connect_error"),
        ("socket", "connect_failed"),
    ]
    assert isinstance(info.value.__cause__, Exception)


@pytest.mark.parametrize(
    ("transports", "reason"),
    [
        (("websocket",), DisconnectReason.TRANSPORT_CLOSE),
        (("polling",), DisconnectReason.TRANSPORT_ERROR),
    ],
)
async def test_order_of_events_on_loss_and_reconnection(
    autojump_clock: trio.abc.Clock,
    peer: ScriptedPeer,
    transports: tuple[str, ...],
    reason: DisconnectReason,
) -> None:
    recorder = Recorder()
    with trio.fail_after(100):
        async with triosio.Manager(
            URL, connector=peer.connector, transports=transports, random=lambda: 0.0
        ) as manager:
            recorder.manager(manager)
            sock = manager.socket("/")
            recorder.socket(sock, "socket")
            await sock.connect()
            await trio.sleep(10)
            lost_at = trio.current_time()
            peer.refuse = True
            await peer.drop_all()
            await recorder.wait_for(lambda: recorder.count("manager", "reconnect_error") == 2)
            peer.refuse = False
            await recorder.wait_for(lambda: recorder.count("socket", "connect") == 2)
            assert sock.connected
    loss = [("socket", "disconnect"), ("manager", "close")]
    if reason is DisconnectReason.TRANSPORT_ERROR:
        loss = [("manager", "error"), ("socket", "disconnect"), ("socket", "error"), *loss[1:]]
    failed_attempt = [
        ("socket", "reconnecting"),
        ("manager", "reconnect_attempt"),
        ("manager", "error"),
        ("socket", "connect_error"),
        ("manager", "reconnect_error"),
    ]
    assert [(e.source, e.name) for e in recorder.log] == [
        ("manager", "open"),
        ("socket", "connecting"),
        ("socket", "connect"),
        *loss,
        *failed_attempt,
        *failed_attempt,
        ("socket", "reconnecting"),
        ("manager", "reconnect_attempt"),
        ("manager", "open"),
        ("socket", "connecting"),
        ("manager", "reconnect"),
        ("socket", "reconnect"),
        ("socket", "connect"),
        # Leaving the manager:
        ("socket", "disconnect"),
        ("manager", "close"),
    ]
    disconnects = [e.args for e in recorder.entries("socket", "disconnect")]
    assert disconnects == [(reason,), (DisconnectReason.IO_CLIENT_DISCONNECT,)]
    # The seed document's names, in its order: first connect: connecting -> connect;
    # on loss: disconnect -> reconnecting (several times) -> connecting -> reconnect -> connect.
    seed = recorder.names("socket", SEED_EVENTS)[:-1]  # not the last disconnect
    if reason is DisconnectReason.TRANSPORT_ERROR:
        seed.remove("error")
    assert seed == [
        "connecting",
        "connect",
        "disconnect",
        "reconnecting",
        "reconnecting",
        "reconnecting",
        "connecting",
        "reconnect",
        "connect",
    ]
    # reconnecting(delay, attempt) with random = 0: 1, 2, 4 seconds.
    assert [e.args for e in recorder.entries("socket", "reconnecting")] == [
        (1.0, 1),
        (2.0, 2),
        (4.0, 3),
    ]
    attempts = [e.time - lost_at for e in recorder.entries("manager", "reconnect_attempt")]
    assert attempts == pytest.approx([1.0, 3.0, 7.0])
    assert recorder.entries("manager", "reconnect")[0].args == (3,)
    assert recorder.entries("socket", "reconnect")[0].args == (3,)


async def test_every_namespace_reconnects_with_fresh_auth(
    autojump_clock: trio.abc.Clock, peer: ScriptedPeer
) -> None:
    calls = {"/": 0, "/chat": 0}

    def auth_for(nsp: str) -> Any:
        async def auth() -> dict[str, Any]:
            calls[nsp] += 1
            await trio.sleep(0.5)  # an async auth source (a token refresh, say)
            return {"nsp": nsp, "n": calls[nsp]}

        return auth

    recorder = Recorder()
    with trio.fail_after(100):
        async with triosio.Manager(URL, connector=peer.connector, random=lambda: 0.0) as manager:
            recorder.manager(manager)
            sockets = [manager.socket(nsp, auth=auth_for(nsp)) for nsp in ("/", "/chat")]
            for sock in sockets:
                recorder.socket(sock)
                await sock.connect()
            ids = [s.id for s in sockets]
            await peer.drop_all()
            await recorder.wait_for(lambda: recorder.count("manager", "reconnect") == 1)
            await recorder.wait_for(lambda: all(recorder.count(n, "connect") == 2 for n in calls))
            assert all(s.connected for s in sockets)
            assert [s.id for s in sockets] != ids
            for nsp in calls:
                seed = recorder.names(nsp, SEED_EVENTS)
                assert seed[:3] == ["connecting", "connect", "disconnect"]
                assert seed[-3:] == ["connecting", "reconnect", "connect"]
    assert peer.connects == [
        ("/", {"nsp": "/", "n": 1}),
        ("/chat", {"nsp": "/chat", "n": 1}),
        ("/", {"nsp": "/", "n": 2}),
        ("/chat", {"nsp": "/chat", "n": 2}),
    ]


async def test_disconnect_stops_reconnection(
    autojump_clock: trio.abc.Clock, peer: ScriptedPeer
) -> None:
    recorder = Recorder()
    with trio.fail_after(1000):
        async with triosio.Manager(URL, connector=peer.connector, random=lambda: 0.0) as manager:
            recorder.manager(manager)
            sock = manager.socket("/")
            recorder.socket(sock, "socket")
            await sock.connect()
            peer.refuse = True
            await peer.drop_all()
            await recorder.wait_for(lambda: recorder.count("manager", "reconnect_error") == 2)
            await sock.disconnect()
            calls = len(peer.connections)
            await trio.sleep(600)
            assert len(peer.connections) == calls
            assert recorder.count("manager", "reconnect_attempt") == 2
            assert not sock.active
            assert not manager.is_open
    # The socket was not connected when the application disconnected it: no
    # second "disconnect" and no "connect_failed".
    assert recorder.names("socket")[-1] == "reconnecting"
    assert recorder.count("socket", "disconnect") == 1


async def test_no_reconnection(autojump_clock: trio.abc.Clock, peer: ScriptedPeer) -> None:
    recorder = Recorder()
    with trio.fail_after(100):
        async with triosio.Manager(
            URL, connector=peer.connector, reconnection=False, transports=("websocket",)
        ) as manager:
            recorder.manager(manager)
            sock = manager.socket("/")
            recorder.socket(sock, "socket")
            await sock.connect()
            await peer.drop_all()
            await recorder.wait_for(lambda: recorder.count("manager", "close") == 1)
            await trio.sleep(60)
    handshakes = [target for _, target in peer.requests if "sid=" not in target]
    assert len(handshakes) == 1
    assert recorder.names("socket") == ["connecting", "connect", "disconnect"]
    assert not sock.active


async def test_ping_timeout(autojump_clock: trio.abc.Clock, nursery: trio.Nursery) -> None:
    # The server pings every second and allows 0.5 s for the pong: the client waits
    # 1.5 s after the last ping before it gives the connection up.
    peer = ScriptedPeer(nursery, ping_interval=1000, ping_timeout=500)
    recorder = Recorder()
    with trio.fail_after(100):
        async with triosio.Manager(
            URL, connector=peer.connector, transports=("websocket",), reconnection=False
        ) as manager:
            recorder.manager(manager)
            recorder.on(manager, "ping", "manager")
            sock = manager.socket("/")
            recorder.socket(sock, "socket")
            await sock.connect()
            await trio.sleep(10.25)
            # Pings at 1, 2, ... 10 s, each answered.
            assert recorder.count("manager", "ping") == 10
            assert peer.pongs == 10
            assert sock.connected
            peer.pinging = False
            await recorder.wait_for(lambda: recorder.count("socket", "disconnect") == 1)
    (disconnect,) = recorder.entries("socket", "disconnect")
    assert disconnect.args == (DisconnectReason.PING_TIMEOUT,)
    assert disconnect.time == pytest.approx(11.5)


async def test_buffered_emits_are_sent_in_order_after_reconnecting(
    autojump_clock: trio.abc.Clock, peer: ScriptedPeer
) -> None:
    recorder = Recorder()
    with trio.fail_after(100):
        async with triosio.Manager(URL, connector=peer.connector, random=lambda: 0.0) as manager:
            sock = manager.socket("/", max_buffer=4)
            recorder.socket(sock, "socket")
            await sock.connect()
            peer.refuse = True
            await peer.drop_all()
            await recorder.wait_for(lambda: recorder.count("socket", "disconnect") == 1)
            assert not sock.connected
            await sock.emit("a", 1)
            await sock.volatile.emit("volatile", 0)  # dropped, not buffered
            await sock.emit("b", b"\x00bin")
            await sock.send("hello")  # the "message" event
            async with trio.open_nursery() as nursery:

                async def acked() -> None:
                    assert await sock.emit_with_ack("c", 3) == 3

                nursery.start_soon(acked)
                await trio.sleep(1.5)
                with pytest.raises(triosio.BufferFull):
                    await sock.emit("d")
                peer.refuse = False
            assert sock.connected
            await trio.sleep(1)
    assert [(r.name, r.args) for r in peer.received] == [
        ("a", [1]),
        ("b", [b"\x00bin"]),
        ("message", ["hello"]),
        ("c", [3]),
    ]


async def test_pending_ack_fails_when_the_connection_is_lost(
    autojump_clock: trio.abc.Clock, peer: ScriptedPeer
) -> None:
    peer.ignore_acks["slow"] = 1
    with trio.fail_after(100):
        async with triosio.connect(URL, connector=peer.connector, random=lambda: 0.0) as client:
            async with trio.open_nursery() as nursery:

                async def lose() -> None:
                    await peer.wait_for(lambda: len(peer.received) == 1)
                    await peer.drop_all()

                nursery.start_soon(lose)
                with pytest.raises(Disconnected) as info:
                    await client.emit_with_ack("slow")
            assert info.value.reason in (
                DisconnectReason.TRANSPORT_CLOSE,
                DisconnectReason.TRANSPORT_ERROR,
            )


async def test_ack_timeout_while_buffered_drops_the_packet(
    autojump_clock: trio.abc.Clock, peer: ScriptedPeer
) -> None:
    recorder = Recorder()
    with trio.fail_after(100):
        async with triosio.connect(
            URL, connector=peer.connector, random=lambda: 0.0, ack_timeout=0.5
        ) as client:
            recorder.socket(client, "socket")
            peer.refuse = True
            await peer.drop_all()
            await recorder.wait_for(lambda: recorder.count("socket", "disconnect") == 1)
            started = trio.current_time()
            with pytest.raises(triosio.AckTimeout):
                await client.emit_with_ack("late")
            assert trio.current_time() - started == pytest.approx(0.5)
            peer.refuse = False
            # (The first "connect" happened before the recorder was added.)
            await recorder.wait_for(lambda: recorder.count("socket", "connect") == 1)
            assert await client.emit_with_ack("after", 1) == 1
    assert [r.name for r in peer.received] == ["after"]
