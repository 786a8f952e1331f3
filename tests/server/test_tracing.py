"""triosio.tracing: spans per handled event and per acknowledgement, read
from the OpenTelemetry SDK's in-memory exporter."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from conftest import LIMIT, connect, serving, settle
from support import require_import

import triosio
from triosio.testing import MemoryNetwork


@pytest.fixture
def otel() -> Any:
    """(instrument, exporter, tracer): a tracer provider that keeps its spans in memory."""
    tracing = require_import("triosio.tracing")
    sdk = require_import("opentelemetry.sdk.trace")
    export = require_import("opentelemetry.sdk.trace.export")
    memory = require_import("opentelemetry.sdk.trace.export.in_memory_span_exporter")
    exporter = memory.InMemorySpanExporter()
    provider = sdk.TracerProvider()
    provider.add_span_processor(export.SimpleSpanProcessor(exporter))

    def instrument(sio: triosio.Server) -> None:
        tracing.instrument(sio, tracer_provider=provider)

    return instrument, exporter, provider.get_tracer("the application")


def by_name(exporter: Any) -> dict[str, Any]:
    spans = exporter.get_finished_spans()
    names = [s.name for s in spans]
    assert len(names) == len(set(names)), names
    return {s.name: s for s in spans}


async def test_a_span_per_handled_event_and_handler_spans_nest(
    autojump_clock: Any, net: MemoryNetwork, otel: Any
) -> None:
    instrument, exporter, tracer = otel
    sio = triosio.Server()
    instrument(sio)
    ids: list[str] = []
    sio.on("connection", lambda s: ids.append(s.id))

    @sio.on("plain")
    def plain(socket: triosio.Socket, n: int) -> int:
        with tracer.start_as_current_span("inside plain"):
            return n + 1

    @sio.on("async")
    async def async_handler(socket: triosio.Socket, n: int) -> int:
        with tracer.start_as_current_span("inside async"):
            await trio.sleep(1)

        async def later() -> None:
            with tracer.start_as_current_span("in a task the handler started"):
                await trio.lowlevel.checkpoint()

        socket.start_soon(later)
        return n + 2

    @sio.on("fails")
    def fails(socket: triosio.Socket) -> None:
        raise ValueError("no good")

    with trio.fail_after(LIMIT):
        async with serving(sio, net), connect(net) as client:
            assert await client.emit_with_ack("plain", 1, timeout=5) == 2
            assert await client.emit_with_ack("async", 1, timeout=5) == 3
            await client.emit("fails")
            await settle()

    spans = by_name(exporter)
    (sid,) = ids
    for name, ack in (("plain", True), ("async", True), ("fails", False)):
        span = spans[f"event {name}"]
        assert span.kind.name == "SERVER"
        assert span.attributes["socketio.namespace"] == "/"
        assert span.attributes["socketio.event"] == name
        assert span.attributes["socketio.socket_id"] == sid
        assert ("socketio.ack_id" in span.attributes) is ack
        assert span.parent is None  # the client sent no trace context
    for inner, outer in (
        ("inside plain", "event plain"),
        ("inside async", "event async"),
        ("in a task the handler started", "event async"),
    ):
        assert spans[inner].parent.span_id == spans[outer].context.span_id
        assert spans[inner].context.trace_id == spans[outer].context.trace_id
    assert spans["event plain"].status.status_code.name == "UNSET"
    failed = spans["event fails"]
    assert failed.status.status_code.name == "ERROR"
    (event,) = failed.events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == "ValueError"
    # One trace per event (no context carried).
    assert spans["event plain"].context.trace_id != spans["event async"].context.trace_id


async def test_trace_context_carried_in_socket_data(
    autojump_clock: Any, net: MemoryNetwork, otel: Any
) -> None:
    instrument, exporter, _ = otel
    sio = triosio.Server()
    instrument(sio)
    data: list[dict[str, Any]] = []
    sio.on("connection", lambda s: data.append(s.data))
    sio.on("hello", lambda s: "hi")
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    parent_id = "00f067aa0ba902b7"
    traceparent = f"00-{trace_id}-{parent_id}-01"
    with trio.fail_after(LIMIT):
        async with (
            serving(sio, net),
            connect(net, auth={"traceparent": traceparent, "tracestate": "k=v"}) as client,
        ):
            assert await client.emit_with_ack("hello", timeout=5) == "hi"
            await settle()
    assert data[0]["trace_context"] == {"traceparent": traceparent, "tracestate": "k=v"}
    span = by_name(exporter)["event hello"]
    assert format(span.context.trace_id, "032x") == trace_id
    assert format(span.parent.span_id, "016x") == parent_id
    assert span.parent.is_remote


async def test_a_span_per_acknowledgement(
    autojump_clock: Any, net: MemoryNetwork, otel: Any
) -> None:
    instrument, exporter, _ = otel
    sio = triosio.Server()
    instrument(sio)
    answers: list[Any] = []

    @sio.on("ask")
    async def ask(socket: triosio.Socket) -> None:
        # Emitted from a handler: its ack span is a child of the event's span.
        answers.append(await socket.emit_with_ack("question", timeout=5))
        with pytest.raises(triosio.AckTimeout):
            await socket.emit_with_ack("ignored", timeout=2)

    with trio.fail_after(LIMIT):
        async with serving(sio, net), connect(net) as a, connect(net) as b:
            a.on("question", lambda: 42)
            b.on("question", lambda: 43)
            await a.emit("ask")
            await settle()
            assert answers == [42]
            assert sorted(await sio.emit_with_ack("question", timeout=5)) == [42, 43]
            await trio.sleep(3)  # "ignored" times out

    spans = exporter.get_finished_spans()
    acks = {
        (s.name, s.kind.name, s.attributes["socketio.ack.outcome"]): s
        for s in spans
        if s.name.startswith("ack ")
    }
    assert set(acks) == {
        ("ack question", "CLIENT", "acked"),
        ("ack ignored", "CLIENT", "timeout"),
        ("ack question", "PRODUCER", "acked"),
    }
    event = next(s for s in spans if s.name == "event ask")
    for key in (("ack question", "CLIENT", "acked"), ("ack ignored", "CLIENT", "timeout")):
        assert acks[key].parent.span_id == event.context.span_id
        assert "socketio.socket_id" in acks[key].attributes
    assert acks[("ack ignored", "CLIENT", "timeout")].status.status_code.name == "ERROR"
    assert acks[("ack question", "PRODUCER", "acked")].parent is None
    assert "socketio.socket_id" not in acks[("ack question", "PRODUCER", "acked")].attributes


async def test_with_metrics_too(autojump_clock: Any, net: MemoryNetwork, otel: Any) -> None:
    # Two instruments at once (a HookSet): each hears everything.
    instrument, exporter, _ = otel
    metrics = require_import("triosio.metrics")
    sio = triosio.Server()
    assert sio.hooks is None  # off by default
    counted = metrics.instrument(sio)
    instrument(sio)
    sio.on("hello", lambda s: "hi")

    @sio.on("fails")
    async def fails(socket: triosio.Socket) -> None:
        await trio.lowlevel.checkpoint()
        raise ValueError("no good")

    with trio.fail_after(LIMIT):
        async with serving(sio, net), connect(net) as client:
            assert await client.emit_with_ack("hello", timeout=5) == "hi"
            await client.emit("fails")
            await settle()
    body = counted.render()[0].decode()
    assert 'socketio_events_received_total{namespace="/"} 2.0' in body
    assert 'socketio_handler_errors_total{namespace="/"} 1.0' in body
    spans = by_name(exporter)
    assert {"event hello", "event fails"} <= set(spans)
    assert spans["event fails"].status.status_code.name == "ERROR"
