"""redis-server killed and restarted during traffic.

Two triosio processes share a private Redis; socket.io-client clients on each;
both servers broadcast ticks every 20 ms. Redis is killed (SIGKILL), left dead
for a while, and started again on the same port. Then:

- local delivery never stopped: every client received every tick of its own
  server, in order, with no gap, and no client was disconnected;
- each server logged one warning when Redis went away (and one line when it
  came back), no error, no traceback, and is still running;
- both servers subscribed again: ticks cross again, and cluster requests
  (fetch_sockets, server-side emit with acks) work again.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pytest
import trio
from cluster_peers import (
    Admin,
    Observers,
    RedisProcess,
    ServerProcess,
    eventually,
    require_binary,
    require_node_modules,
)

import triosio
from triosio.redis import RedisAdapter

pytestmark = pytest.mark.redis


@pytest.fixture
def redis() -> Iterator[RedisProcess]:
    server = RedisProcess(require_binary("redis-server"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def servers(redis: RedisProcess) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    require_node_modules("socket.io-client")
    a = ServerProcess("triosio", "A", redis.url)
    try:
        b = ServerProcess("triosio", "B", redis.url)
    except BaseException:
        a.stop()
        raise
    try:
        yield a, b
    finally:
        b.stop()
        a.stop()


async def test_redis_killed_and_restarted_during_traffic(
    redis: RedisProcess, servers: tuple[ServerProcess, ServerProcess]
) -> None:
    a, b = servers
    tag = uuid.uuid4().hex[:8]
    async with Observers.open() as obs, Admin.open(a) as admin_a, Admin.open(b) as admin_b:
        for client, server in (("a1", a), ("a2", a), ("b1", b)):
            await obs.connect(client, server.url, {"name": client, "test": tag})
        seq = {"A": 0, "B": 0}

        async def ticks(admin: Admin, name: str) -> None:
            while True:
                await admin.op("emit", event="tick", args=[name, seq[name]])
                seq[name] += 1
                await trio.sleep(0.02)

        def ticks_from(client: str, name: str) -> list[int]:
            return [args[1] for args in obs.received(client, "tick") if args[0] == name]

        async with trio.open_nursery() as traffic:
            traffic.start_soon(ticks, admin_a, "A")
            traffic.start_soon(ticks, admin_b, "B")
            # The cluster works: ticks cross both ways.
            await obs.wait(
                lambda: len(ticks_from("b1", "A")) > 5 and len(ticks_from("a1", "B")) > 5
            )

            redis.kill()
            killed_at = dict(seq)
            await trio.sleep(1.5)
            # Meanwhile every client got its own server's ticks.
            assert len(ticks_from("a1", "A")) > killed_at["A"] + 20
            assert len(ticks_from("b1", "B")) > killed_at["B"] + 20

            redis.start()
            restarted_at = dict(seq)
            # Both servers subscribe again: ticks sent after the restart cross again.
            await obs.wait(
                lambda: (
                    any(n > restarted_at["A"] for n in ticks_from("b1", "A"))
                    and any(n > restarted_at["B"] for n in ticks_from("a1", "B"))
                    and any(n > restarted_at["B"] for n in ticks_from("a2", "B"))
                ),
                timeout=20,
            )
            traffic.cancel_scope.cancel()

        # Local clients never noticed: every tick of their own server, in order.
        for client, name in (("a1", "A"), ("a2", "A"), ("b1", "B")):
            own = ticks_from(client, name)
            assert own == list(range(len(own))), (client, own)
        assert obs.disconnects == {}

        # Cluster requests work again, both ways.
        async def fetched() -> bool:
            found = await admin_a.op("fetchSockets")
            return sum(s["data"].get("test") == tag for s in found) == 3

        await eventually(fetched)
        answers = await admin_b.op(
            "serverSideEmitWithAck", event="sse", args=[{"tag": tag}], timeout=5000
        )
        assert answers == [{"from": "A", "args": [{"tag": tag}]}]

    for server in (a, b):
        assert server.alive()
        log = server.log()
        assert log.count("is unreachable") == 1, log
        assert log.count("is back:") == 1, log
        for bad in ("Traceback", "ERROR", "malformed"):
            assert bad not in log, log


async def test_redis_down_at_start(caplog: pytest.LogCaptureFixture) -> None:
    """The server starts and serves its own clients; it joins the cluster once Redis is up."""
    caplog.set_level(logging.WARNING, logger="triosio")
    redis = RedisProcess(require_binary("redis-server"), start=False)
    options = {"reconnect_delay": 0.1, "reconnect_delay_max": 0.5}
    a = triosio.Server(adapter=RedisAdapter(redis.url, **options))
    b = triosio.Server(adapter=RedisAdapter(redis.url, **options))
    try:
        async with trio.open_nursery() as nursery:
            la = await nursery.start(triosio.serve, a, "127.0.0.1", 0)
            await nursery.start(triosio.serve, b, "127.0.0.1", 0)
            url_a = f"http://127.0.0.1:{la[0].socket.getsockname()[1]}"
            async with triosio.connect(url_a, transports=("websocket",)) as client:
                got: list[object] = []
                first = trio.Event()

                @client.on("news")
                def news(item: object) -> None:
                    got.append(item)
                    first.set()

                await a.emit("news", "local")  # no Redis: local delivery all the same
                with trio.fail_after(5):
                    await first.wait()
                assert len(await a.fetch_sockets()) == 1
                redis.start()

                async def crossed() -> bool:
                    await b.emit("news", "from b")
                    await trio.sleep(0.05)
                    return "from b" in got

                await eventually(crossed, timeout=15)
            nursery.cancel_scope.cancel()
    finally:
        redis.stop()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert sum("is unreachable" in w for w in warnings) == 2, warnings  # one per server
    assert sum("is back:" in w for w in warnings) == 2, warnings
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
