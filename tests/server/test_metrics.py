"""triosio.metrics: the counts of a scripted scenario, read back through
prometheus_client's own text-format parser."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from conftest import LIMIT, connect, serving, settle
from support import require_import

import triosio
from triosio.testing import MemoryNetwork

Reason = triosio.DisconnectReason
BLOB = "x" * 4000


@pytest.fixture
def metrics_module() -> Any:
    return require_import("triosio.metrics")


@pytest.fixture
def parser() -> Any:
    return require_import("prometheus_client.parser")


def scrape(metrics: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the text format, by (name, sorted labels)."""
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    out = {}
    parser = require_import("prometheus_client.parser")
    for family in parser.text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


async def test_counts_match_a_scripted_scenario(
    autojump_clock: Any, net: MemoryNetwork, metrics_module: Any
) -> None:
    sio = triosio.Server()
    metrics = metrics_module.instrument(sio)
    sockets: dict[str, triosio.Socket] = {}

    @sio.on("connection")
    def connection(socket: triosio.Socket, auth: dict[str, str]) -> None:
        sockets[auth["name"]] = socket

    sio.of("/chat").on("connection", lambda s: None)

    @sio.on("echo")
    def echo(socket: triosio.Socket, n: int) -> int:
        return n

    @sio.on("boom")
    def boom(socket: triosio.Socket) -> None:
        raise RuntimeError("plain handler fails")

    @sio.on("aboom")
    async def aboom(socket: triosio.Socket) -> None:
        await trio.lowlevel.checkpoint()
        raise RuntimeError("async handler fails")

    with trio.fail_after(LIMIT):
        async with (
            serving(sio, net),
            connect(net, auth={"name": "a"}) as a,
            connect(net, auth={"name": "b"}) as b,
            connect(net, transport="polling", auth={"name": "p"}) as p,
            connect(net, "/chat") as chat,
        ):
            await settle()
            for n in range(5):
                assert await a.emit_with_ack("echo", n, timeout=5) == n
            await b.emit("boom")
            await b.emit("aboom")
            await settle()

            before = scrape(metrics)
            await sio.emit("news", "x")  # 3 deliveries on "/"
            await sio.emit("news", "x")
            await settle()
            after = scrape(metrics)
            # '2["news","x"]' is 13 bytes; two broadcasts to three sockets.
            sent = value(after, "socketio_sent_bytes_total") - value(
                before, "socketio_sent_bytes_total"
            )
            assert sent == 2 * 3 * 13

            # Two volatile broadcasts in one router batch: the polling client
            # takes the first (its GET is waiting) and drops the second.
            await sio.volatile.emit("tick", 1)
            await sio.volatile.emit("tick", 2)
            await settle()

            await sockets["a"].emit("direct", 1)
            with pytest.raises(triosio.AckTimeout):
                await sockets["b"].emit_with_ack("unanswered", timeout=2)
            await chat.disconnect()
            await sockets["p"].disconnect()
            await settle()

            samples = scrape(metrics)
            del a, b, p

    assert value(samples, "socketio_sockets", namespace="/") == 2
    assert value(samples, "socketio_sockets", namespace="/chat") == 0
    assert value(samples, "socketio_clients", transport="websocket") == 2
    assert value(samples, "socketio_connections_total") == 4
    assert value(samples, "socketio_disconnections_total", reason="transport close") == 2
    assert value(samples, "socketio_socket_connects_total", namespace="/") == 3
    assert value(samples, "socketio_socket_connects_total", namespace="/chat") == 1
    disconnects = {
        (labels, v)
        for (name, labels), v in samples.items()
        if name == "socketio_socket_disconnects_total"
    }
    assert disconnects == {
        ((("namespace", "/chat"), ("reason", "client namespace disconnect")), 1),
        ((("namespace", "/"), ("reason", "server namespace disconnect")), 1),
    }
    assert value(samples, "socketio_events_received_total", namespace="/") == 7
    assert value(samples, "socketio_handler_errors_total", namespace="/") == 2
    assert value(samples, "socketio_broadcasts_total", namespace="/") == 4
    # 2 x 3 plain, then 3 + 2 volatile (one dropped).
    assert value(samples, "socketio_broadcast_deliveries_total", namespace="/") == 11
    assert value(samples, "socketio_volatile_dropped_total", namespace="/") == 1
    # The deliveries, one direct emit and one emit_with_ack.
    assert value(samples, "socketio_events_sent_total", namespace="/") == 13
    assert value(samples, "socketio_ack_timeouts_total", namespace="/") == 1
    assert value(samples, "socketio_ack_timeouts_total", namespace="/chat") == 0
    assert value(samples, "socketio_router_queued") == 0
    assert value(samples, "socketio_writers_waiting") == 0
    assert value(samples, "socketio_received_bytes_total") > 0


async def test_writers_waiting_for_space(autojump_clock: Any, metrics_module: Any) -> None:
    net = MemoryNetwork(window=16_384)
    sio = triosio.Server(max_buffered_bytes=64_000)
    metrics = metrics_module.instrument(sio)
    sockets: list[triosio.Socket] = []
    sio.on("connection", sockets.append)
    with trio.fail_after(LIMIT):
        async with serving(sio, net), connect(net) as client:
            client.on("n", lambda n, _blob: None)
            await settle()
            (socket,) = sockets
            net.connections[-1].pause_client()

            async def produce() -> None:
                for n in range(100):
                    await socket.emit("n", n, BLOB)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(produce)
                nursery.start_soon(produce)
                await settle()
                assert value(scrape(metrics), "socketio_writers_waiting") == 2
                net.connections[-1].resume_client()
            await settle()
            assert value(scrape(metrics), "socketio_writers_waiting") == 0


async def test_served_on_a_path_of_the_built_in_server(
    autojump_clock: Any, metrics_module: Any, parser: Any
) -> None:
    sio = triosio.Server()
    metrics = metrics_module.instrument(sio)
    app = triosio.App(sio, metrics.app("/metrics"))
    async with triosio.testing.serve_memory(app) as server, server.connect() as client:
        await client.emit("hello")
        await server.wait_idle()
        stream = await server.network.connect()
        await stream.send_all(b"GET /metrics HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
        raw = b""
        while chunk := await stream.receive_some(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"content-type: text/plain; version=" in head.lower()
    families = {f.name for f in parser.text_string_to_metric_families(body.decode())}
    assert {"socketio_sockets", "socketio_events_received", "socketio_router_queued"} <= families
