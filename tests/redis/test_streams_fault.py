"""redis-server killed and restarted during traffic, with the Redis Streams adapter.

Two triosio processes with ``RedisStreamsAdapter`` share a private Redis (no
persistence: the restarted Redis has an empty stream); socket.io-client
clients on each; both servers broadcast numbered ticks every 20 ms. Redis is
killed (SIGKILL), left dead for a while, and started again on the same port.
Then:

- every tick sent after the restart reached every client of the other server,
  and no client got any tick twice, or out of order (each reader goes on from
  the last entry id it read);
- ticks sent while Redis was down waited in the writer's queue and crossed
  too, but for the few in flight when the connection broke (not sent again);
- local delivery never stopped, no client was disconnected, the servers
  logged one warning for the outage and one line when Redis was back, no
  error, and cluster requests (by pub/sub) work again.
"""

from __future__ import annotations

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
    a = ServerProcess("triosio", "A", redis.url, "--adapter", "streams")
    try:
        b = ServerProcess("triosio", "B", redis.url, "--adapter", "streams")
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
        for client, server in (("a1", a), ("a2", a), ("b1", b), ("b2", b)):
            await obs.connect(client, server.url, {"name": client, "test": tag})
        seq = {"A": 0, "B": 0}
        stop = {"A": False, "B": False}

        async def ticks(admin: Admin, name: str) -> None:
            while not stop[name]:
                await admin.op("emit", event="tick", args=[name, seq[name]])
                seq[name] += 1
                await trio.sleep(0.02)

        def ticks_from(client: str, name: str) -> list[int]:
            return [args[1] for args in obs.received(client, "tick") if args[0] == name]

        async with trio.open_nursery() as traffic:
            traffic.start_soon(ticks, admin_a, "A")
            traffic.start_soon(ticks, admin_b, "B")
            await obs.wait(
                lambda: len(ticks_from("b1", "A")) > 5 and len(ticks_from("a1", "B")) > 5
            )
            redis.kill()
            killed_at = dict(seq)
            await trio.sleep(1.5)
            assert len(ticks_from("a1", "A")) > killed_at["A"] + 20
            assert len(ticks_from("b1", "B")) > killed_at["B"] + 20
            redis.start()
            restarted_at = dict(seq)
            # Traffic goes on a while after the restart, then stops.
            await trio.sleep(2.0)
            stop["A"] = stop["B"] = True
        sent = dict(seq)

        # Every tick sent after the restart reaches the other server's clients.
        crossing = (("b1", "A"), ("b2", "A"), ("a1", "B"), ("a2", "B"))
        for client, name in crossing:
            wanted = set(range(restarted_at[name], sent[name]))
            await obs.wait(lambda c=client, n=name, w=wanted: w <= set(ticks_from(c, n)), 20)
        await trio.sleep(0.5)  # and then nothing more arrives twice
        for client, name in crossing:
            got = ticks_from(client, name)
            assert len(got) == len(set(got)), (client, name, got)  # none twice
            assert got == sorted(got), (client, name, got)  # in order
            # Sent while Redis was down: queued, written once it was back; the
            # few in flight when the connection broke may be lost.
            during = set(range(killed_at[name], restarted_at[name]))
            assert len(during - set(got)) <= 3, (client, sorted(during - set(got)))
        # Local clients never noticed.
        for client, name in (("a1", "A"), ("a2", "A"), ("b1", "B"), ("b2", "B")):
            assert ticks_from(client, name) == list(range(sent[name])), client
        assert obs.disconnects == {}

        # Requests by pub/sub work again, both ways.
        async def fetched() -> bool:
            found = await admin_a.op("fetchSockets")
            return sum(s["data"].get("test") == tag for s in found) == 4

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
    import logging

    import triosio
    from triosio.redis import RedisStreamsAdapter

    caplog.set_level(logging.WARNING, logger="triosio")
    redis = RedisProcess(require_binary("redis-server"), start=False)
    options = {"reconnect_delay": 0.1, "reconnect_delay_max": 0.5}
    a = triosio.Server(adapter=RedisStreamsAdapter(redis.url, **options))
    b = triosio.Server(adapter=RedisStreamsAdapter(redis.url, **options))
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
                # Each broadcast of b reached a's client once.
                n = sum(item == "from b" for item in got)
                await trio.sleep(0.3)
                assert sum(item == "from b" for item in got) <= n + 1
            nursery.cancel_scope.cancel()
    finally:
        redis.stop()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert sum("is unreachable" in w for w in warnings) == 2, warnings  # one per server
    assert sum("is back:" in w for w in warnings) == 2, warnings
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
