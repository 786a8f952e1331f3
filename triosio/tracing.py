"""OpenTelemetry tracing of a triosio server (the ``otel`` extra: ``opentelemetry-api``).

::

    import triosio
    import triosio.tracing

    sio = triosio.Server()
    triosio.tracing.instrument(sio)  # the global tracer provider, or tracer_provider=...

What is traced:

- **each handled event**: a span ``event <name>`` (kind SERVER) around the
  event's handlers, with the namespace, the event name, the socket id and the
  ack id. It is the current span while the handlers run, so a handler's own
  spans (``tracer.start_as_current_span(...)``) and the tasks it starts nest
  under it. A handler that raises marks it as an error, with the exception.
- **each wait for acknowledgements**: a span ``ack <name>`` (kind CLIENT for
  ``socket.emit_with_ack``, PRODUCER for a broadcast ``emit_with_ack``) from
  the emit to the answer, child of whatever span is current where it was
  emitted; its ``socketio.ack.outcome`` says how it ended (``acked``,
  ``timeout``, ``disconnected``, ``cancelled``), the last three as errors.

**The trace context of a socket** lives in ``socket.data["trace_context"]``:
a W3C carrier (``{"traceparent": ..., "tracestate": ...}``, plain strings, so
it travels with the socket's data to other servers of a cluster). When a
client connects with a ``traceparent`` in its ``auth`` payload, or in a header
of its Engine.IO handshake, triosio puts it there; the application may set or
replace it too (a middleware that starts a trace per login, say). Each event
span of the socket is then a child of that context, so a browser's trace goes
on into the server's handling; :func:`socket_context` gives it to code that
runs outside a handler (a task started in a ``connection`` handler). Without
one, each event starts a trace of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, final

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from ._server.hooks import AckOutcome, Hooks
from ._server.server import Server
from ._version import __version__

if TYPE_CHECKING:
    from ._server.socket import Socket

__all__ = ["TRACE_CONTEXT_KEY", "Tracing", "instrument", "socket_context"]

log = logging.getLogger("triosio.tracing")

#: The key of ``socket.data`` that carries the socket's trace context.
TRACE_CONTEXT_KEY = "trace_context"


def socket_context(socket: Socket) -> otel_context.Context | None:
    """The trace context carried in ``socket.data`` (None if it carries none)."""
    carrier = socket.data.get(TRACE_CONTEXT_KEY)
    if not isinstance(carrier, Mapping) or not isinstance(carrier.get("traceparent"), str):
        return None
    ctx = propagate.extract(carrier)
    if not trace.get_current_span(ctx).get_span_context().is_valid:
        return None
    return ctx


def _client_carrier(socket: Socket) -> dict[str, str] | None:
    # What the client sent: in its CONNECT auth first, else in the headers of
    # its handshake request (a Node client or a polling browser can set them).
    for source in (socket.handshake.auth, socket.handshake.headers):
        parent = source.get("traceparent")
        if isinstance(parent, str):
            carrier = {"traceparent": parent}
            state = source.get("tracestate")
            if isinstance(state, str):
                carrier["tracestate"] = state
            return carrier
    return None


@final
class Tracing(Hooks):
    """The server's spans; made by :func:`instrument`.

    Args:
        tracer: The OpenTelemetry tracer the spans come from.
    """

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer

    def socket_connected(self, socket: Socket) -> None:
        if TRACE_CONTEXT_KEY not in socket.data:
            carrier = _client_carrier(socket)
            if carrier is not None:
                socket.data[TRACE_CONTEXT_KEY] = carrier

    def event_started(self, socket: Socket, event: str, ack_id: int | None) -> Any:
        attributes: dict[str, str | int] = {
            "messaging.system": "socket.io",
            "socketio.namespace": socket.nsp.name,
            "socketio.event": event,
            "socketio.socket_id": socket.id,
        }
        if ack_id is not None:
            attributes["socketio.ack_id"] = ack_id
        try:
            span = self._tracer.start_span(
                f"event {event}",
                context=socket_context(socket),
                kind=SpanKind.SERVER,
                attributes=attributes,
            )
            # The current span while the handlers run, in this task: their own
            # spans, and the tasks they start, nest under it.
            token = otel_context.attach(trace.set_span_in_context(span))
        except Exception:
            log.exception("tracing: could not start the span of event %r", event)
            return None
        return span, token

    def event_ended(self, started: Any) -> None:
        if started is None:
            return
        span, token = started
        try:
            otel_context.detach(token)
        finally:
            span.end()

    def handler_failed(self, socket: Socket, event: str, error: BaseException) -> None:
        span = trace.get_current_span()
        if span.is_recording():
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__} in a handler"))

    def ack_started(self, nsp: str, event: str, socket: Socket | None) -> Any:
        attributes: dict[str, str] = {
            "messaging.system": "socket.io",
            "socketio.namespace": nsp,
            "socketio.event": event,
        }
        if socket is not None:
            attributes["socketio.socket_id"] = socket.id
        try:
            return self._tracer.start_span(
                f"ack {event}",
                kind=SpanKind.CLIENT if socket is not None else SpanKind.PRODUCER,
                attributes=attributes,
            )
        except Exception:
            log.exception("tracing: could not start the span of an ack of %r", event)
            return None

    def ack_ended(self, started: Any, outcome: AckOutcome) -> None:
        if started is None:
            return
        span: trace.Span = started
        span.set_attribute("socketio.ack.outcome", outcome.value)
        if outcome is not AckOutcome.ACKED:
            span.set_status(Status(StatusCode.ERROR, outcome.value))
        span.end()


def instrument(sio: Server, *, tracer_provider: trace.TracerProvider | None = None) -> Tracing:
    """Trace ``sio``'s events and acknowledgements with OpenTelemetry.

    Args:
        sio: The server.
        tracer_provider: Where the spans go; the global one (as set by the
            OpenTelemetry SDK or its auto-instrumentation) by default.
    """
    provider = tracer_provider or trace.get_tracer_provider()
    tracing = Tracing(provider.get_tracer("triosio", __version__))
    sio._add_hooks(tracing)
    return tracing
