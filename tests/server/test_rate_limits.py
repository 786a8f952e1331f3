"""Rate limits on incoming events: token buckets on the Trio clock.

Per client (``Server(rate_limit=...)``) and per event of a socket
(``socket.on(event, handler, rate_limit=...)``); past a limit an event never
reaches its handler and gets an error acknowledgement when it asked for one
(policy "drop"), or the socket is disconnected by the server (policy
"disconnect"). Other clients are not affected.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

import triosio
import triosio.testing

LIMITED = "rate limit exceeded"


def counting_server(**options: Any) -> tuple[triosio.Server, list[str]]:
    sio = triosio.Server(**options)
    handled: list[str] = []

    @sio.on("connection")
    def connected(socket: triosio.Socket) -> None:
        @socket.on("ping")
        def ping(n: int) -> int:
            handled.append(f"ping {n}")
            return n

        @socket.on("chat", rate_limit=triosio.RateLimit(rate=1, burst=2))
        async def chat(text: str) -> str:
            handled.append(f"chat {text}")
            return "ok"

        @socket.on("spam", rate_limit=triosio.RateLimit(rate=1, policy="disconnect"))
        def spam() -> None:
            handled.append("spam")

    return sio, handled


def test_options_are_checked() -> None:
    for bad in ({"rate": 0}, {"rate": -1}, {"rate": True}, {"rate": 1, "burst": 0}):
        with pytest.raises(ValueError, match=r"rate|burst"):
            triosio.RateLimit(**bad)
    with pytest.raises(ValueError, match="policy"):
        triosio.RateLimit(rate=1, policy="ignore")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="RateLimit"):
        triosio.Server(rate_limit=5)  # type: ignore[arg-type]
    assert triosio.RateLimit(rate=2.5).capacity == 2
    assert triosio.RateLimit(rate=0.2).capacity == 1


async def test_a_per_event_limit_drops_with_an_error_ack(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sio, handled = counting_server()
    async with triosio.testing.serve_memory(sio) as server:
        client = await server.client()
        answers = [await client.emit_with_ack("chat", str(i), timeout=5) for i in range(4)]
        # A burst of two, then refused until a token comes back (1 per second).
        assert answers[:2] == ["ok", "ok"]
        for answer in answers[2:]:
            assert answer["error"] == LIMITED and answer["event"] == "chat"
            assert 0 < answer["retry_after"] <= 1
        assert handled == ["chat 0", "chat 1"]
        # Other events are not limited.
        assert [await client.emit_with_ack("ping", i, timeout=5) for i in range(5)] == [*range(5)]
        await trio.sleep(1)  # a token back
        assert await client.emit_with_ack("chat", "later", timeout=5) == "ok"
        # Without an ack asked for, a refused event just goes.
        await client.emit("chat", "quiet")
        await server.wait_idle()
        assert "chat quiet" not in handled
        # The connection stays up.
        assert client.connected


async def test_the_disconnect_policy_disconnects_only_that_socket(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sio, handled = counting_server()
    async with triosio.testing.serve_memory(sio) as server:
        spammer = await server.client(reconnection_delay=1)
        bystander = await server.client()
        gone = trio.Event()
        reasons: list[Any] = []
        spammer.on("disconnect", lambda reason: (reasons.append(reason), gone.set()))
        await spammer.emit("spam")
        await spammer.emit("spam")
        with trio.fail_after(5):
            await gone.wait()
        assert handled == ["spam"]
        assert reasons == [triosio.DisconnectReason.IO_SERVER_DISCONNECT]
        await trio.sleep(10)
        assert not spammer.connected  # a server disconnect: no reconnection
        assert await bystander.emit_with_ack("ping", 1, timeout=5) == 1


async def test_a_per_client_limit_covers_every_event_and_namespace(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sio, _ = counting_server(rate_limit=triosio.RateLimit(rate=10, burst=3))
    sio.of("/other").on("connection", lambda socket: socket.on("ping", lambda n: n))
    async with triosio.testing.serve_memory(sio) as server:
        client = await server.client()
        other = client.manager.socket("/other")
        await other.connect()
        answers = [
            await client.emit_with_ack("ping", 1, timeout=5),
            await other.emit_with_ack("ping", 2, timeout=5),
            await client.emit_with_ack("ping", 3, timeout=5),
            await other.emit_with_ack("ping", 4, timeout=5),
        ]
        assert answers[:3] == [1, 2, 3]
        assert answers[3]["error"] == LIMITED
        # Another client has its own bucket.
        second = await server.client()
        assert await second.emit_with_ack("ping", 5, timeout=5) == 5
        # 10 per second: after 0.1 s the first client may send one more.
        await trio.sleep(0.1)
        assert await client.emit_with_ack("ping", 6, timeout=5) == 6


async def test_a_flood_reaches_no_handler(autojump_clock: trio.testing.MockClock) -> None:
    sio, handled = counting_server(rate_limit=triosio.RateLimit(rate=5, burst=5))
    async with triosio.testing.serve_memory(sio) as server:
        client = await server.client()
        for i in range(1000):
            await client.emit("ping", i)
        await server.wait_idle()
        assert handled == [f"ping {i}" for i in range(5)]
        assert client.connected
