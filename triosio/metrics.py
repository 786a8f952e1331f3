"""Prometheus metrics of a triosio server (the ``metrics`` extra: ``prometheus_client``).

::

    import triosio
    import triosio.metrics

    sio = triosio.Server()
    metrics = triosio.metrics.instrument(sio)
    # GET /metrics on the same port as Socket.IO:
    await triosio.serve(triosio.App(sio, metrics.app("/metrics")), "0.0.0.0", 5000)

The server's hooks (``_server/hooks.py``) add to plain integers, and a
``prometheus_client`` collector reads them when Prometheus scrapes: a labelled
``Counter.inc()`` costs about 850 ns (200 ns on a child kept aside), an
integer in a slot about 20 ns, and a broadcast would pay it per namespace,
an echo per message (the figures are in ``benchmarks/README.md``). Gauges of
the present (sockets per namespace, clients, the router's inbox) are read
from the server's snapshots at scrape time, so they cost nothing in between.

Every metric is listed in ``docs/operations.md``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, final

import trio
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from ._engine.exchange import Exchange
from ._errors import DisconnectReason
from ._server.hooks import AckOutcome, Hooks
from ._server.server import Server

if TYPE_CHECKING:
    from ._engine.packet import OutPacket
    from ._engine.session import EngineSession
    from ._server.socket import Socket

__all__ = ["Metrics", "MetricsApp", "instrument"]


def byte_size(data: str | bytes) -> int:
    """The size of a message in bytes (UTF-8 for text, as on the wire)."""
    if isinstance(data, bytes) or data.isascii():
        return len(data)
    return len(data.encode("utf-8", "surrogatepass"))


def _packets_bytes(packets: Sequence[OutPacket]) -> int:
    return sum(byte_size(p.data) for p in packets)


class _Counts:
    """The counters of one namespace (plain integers: see the module docstring)."""

    __slots__ = (
        "ack_timeouts",
        "broadcasts",
        "connects",
        "deliveries",
        "disconnects",
        "dropped",
        "errors",
        "events_in",
        "events_out",
    )

    def __init__(self) -> None:
        self.connects = 0
        self.disconnects: dict[str, int] = {}
        self.events_in = 0
        self.events_out = 0
        self.broadcasts = 0
        self.deliveries = 0
        self.dropped = 0
        self.errors = 0
        self.ack_timeouts = 0


@final
class Metrics(Hooks):
    """The server's counters, and a ``prometheus_client`` collector of them.

    Made by :func:`instrument`. Register it in another registry with
    ``registry.register(metrics)``; serve it with :meth:`app`, or read the
    text format with :meth:`render`.

    Args:
        sio: The server to count.
        prefix: The first word of every metric name.
    """

    def __init__(self, sio: Server, prefix: str = "socketio") -> None:
        self._sio = sio
        self._prefix = prefix
        self._counts: dict[str, _Counts] = {}
        self._connections = 0
        self._closes: dict[str, int] = {}
        self._bytes_in = 0
        self._bytes_out = 0
        self._waiting = 0
        #: The registry :meth:`app` and :meth:`render` read (this collector alone).
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def _of(self, nsp: str) -> _Counts:
        counts = self._counts.get(nsp)
        if counts is None:
            counts = self._counts[nsp] = _Counts()
        return counts

    # ------------------------------------------------------------ hooks

    def connection_opened(self, session: EngineSession) -> None:
        self._connections += 1

    def connection_closed(self, session: EngineSession, reason: DisconnectReason) -> None:
        self._closes[reason.value] = self._closes.get(reason.value, 0) + 1

    def socket_connected(self, socket: Socket) -> None:
        self._of(socket.nsp.name).connects += 1

    def socket_disconnected(self, socket: Socket, reason: DisconnectReason) -> None:
        by_reason = self._of(socket.nsp.name).disconnects
        by_reason[reason.value] = by_reason.get(reason.value, 0) + 1

    def message_received(self, data: str | bytes) -> None:
        self._bytes_in += byte_size(data)

    def event_received(self, socket: Socket, event: str, args: list[Any]) -> None:
        self._of(socket.nsp.name).events_in += 1

    def handler_failed(self, socket: Socket, event: str, error: BaseException) -> None:
        self._of(socket.nsp.name).errors += 1

    def event_sent(
        self, socket: Socket, event: str, args: tuple[Any, ...], packets: Sequence[OutPacket]
    ) -> None:
        self._of(socket.nsp.name).events_out += 1
        self._bytes_out += _packets_bytes(packets)

    def ack_sent(self, socket: Socket, packets: Sequence[OutPacket]) -> None:
        self._bytes_out += _packets_bytes(packets)

    def broadcast_sent(
        self, nsp: str, packets: Sequence[OutPacket], delivered: int, dropped: int
    ) -> None:
        counts = self._of(nsp)
        counts.broadcasts += 1
        counts.deliveries += delivered
        counts.events_out += delivered
        counts.dropped += dropped
        self._bytes_out += delivered * _packets_bytes(packets)

    def volatile_dropped(self, nsp: str) -> None:
        self._of(nsp).dropped += 1

    def waiting_for_space(self, delta: int) -> None:
        self._waiting += delta

    def ack_started(self, nsp: str, event: str, socket: Socket | None) -> Any:
        return nsp

    def ack_ended(self, started: Any, outcome: AckOutcome) -> None:
        if outcome is AckOutcome.TIMEOUT:
            self._of(started).ack_timeouts += 1

    # ------------------------------------------------------------ collecting

    def collect(self) -> Iterator[Metric]:
        """The metrics now (``prometheus_client``'s collector interface)."""
        p = self._prefix
        sio = self._sio
        # Namespaces without sockets still show, at 0.
        names = sorted(set(sio.namespaces) | set(self._counts))
        counts = {name: self._counts.get(name) or _Counts() for name in names}

        sockets = GaugeMetricFamily(
            f"{p}_sockets", "Sockets connected now, by namespace.", labels=["namespace"]
        )
        for name in names:
            sockets.add_metric([name], sio.router.socket_count(name))
        yield sockets
        sessions = list(sio.engine.sessions.values())
        clients = GaugeMetricFamily(
            f"{p}_clients", "Engine.IO connections now, by transport.", labels=["transport"]
        )
        for transport in ("polling", "websocket"):
            clients.add_metric([transport], sum(1 for s in sessions if s.transport == transport))
        yield clients

        yield CounterMetricFamily(
            f"{p}_connections", "Engine.IO connections opened.", value=self._connections
        )
        closes = CounterMetricFamily(
            f"{p}_disconnections", "Engine.IO connections closed, by reason.", labels=["reason"]
        )
        for reason, n in sorted(self._closes.items()):
            closes.add_metric([reason], n)
        yield closes

        def per_namespace(name: str, doc: str, attr: str) -> CounterMetricFamily:
            family = CounterMetricFamily(f"{p}_{name}", doc, labels=["namespace"])
            for nsp, c in counts.items():
                family.add_metric([nsp], getattr(c, attr))
            return family

        yield per_namespace("socket_connects", "Sockets connected, by namespace.", "connects")
        disconnects = CounterMetricFamily(
            f"{p}_socket_disconnects",
            "Sockets disconnected, by namespace and reason.",
            labels=["namespace", "reason"],
        )
        for nsp, c in counts.items():
            for reason, n in sorted(c.disconnects.items()):
                disconnects.add_metric([nsp, reason], n)
        yield disconnects
        yield per_namespace("events_received", "Events received from clients.", "events_in")
        yield per_namespace(
            "events_sent", "Events sent to clients (emits and broadcast deliveries).", "events_out"
        )
        yield per_namespace("broadcasts", "Broadcasts fanned out by the router.", "broadcasts")
        yield per_namespace(
            "broadcast_deliveries", "Broadcast packets handed to clients.", "deliveries"
        )
        yield per_namespace(
            "volatile_dropped",
            "Volatile packets dropped (the client could not take them).",
            "dropped",
        )
        yield per_namespace("handler_errors", "Event handlers that raised.", "errors")
        yield per_namespace(
            "ack_timeouts", "emit_with_ack calls that timed out waiting.", "ack_timeouts"
        )
        yield CounterMetricFamily(
            f"{p}_received_bytes", "Bytes of Socket.IO messages received.", value=self._bytes_in
        )
        yield CounterMetricFamily(
            f"{p}_sent_bytes",
            "Bytes of Socket.IO events and acknowledgements sent (each delivery counted).",
            value=self._bytes_out,
        )
        yield GaugeMetricFamily(
            f"{p}_writers_waiting",
            "Tasks waiting for space in a client's full outbound queue.",
            value=self._waiting,
        )
        yield GaugeMetricFamily(
            f"{p}_router_queued", "Commands waiting in the router's inbox.", value=sio.router.queued
        )

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The metrics as Prometheus exposes them: (body, content type).

        ``accept`` is the scraper's ``Accept`` header (OpenMetrics if it asks).
        """
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type

    def app(self, path: str = "/metrics") -> MetricsApp:
        """A :class:`MetricsApp` serving these metrics at ``path``."""
        return MetricsApp(self, path)


@final
class MetricsApp:
    """Serves the metrics at one URL path: mount it in :class:`triosio.App`.

    ``triosio.App(sio, metrics.app("/metrics"))`` answers ``GET /metrics``
    next to Socket.IO, on the same port; ``triosio.serve(metrics.app(), ...)``
    on a port of its own.
    """

    def __init__(self, metrics: Metrics, path: str = "/metrics") -> None:
        if not path.startswith("/"):
            raise ValueError("a path must start with '/'")
        self._metrics = metrics
        self._path = path

    @property
    def path(self) -> str:
        """The URL path of the metrics."""
        return self._path

    async def handle(self, exchange: Exchange) -> None:
        """Answer a scrape (``GET`` or ``HEAD`` of :attr:`path`)."""
        request = exchange.request
        if request.path.rstrip("/") != self._path.rstrip("/"):
            await exchange.respond(404, [("content-type", "text/plain")], b"not found")
            return
        if request.method not in ("GET", "HEAD"):
            await exchange.respond(405, [("allow", "GET, HEAD")], b"")
            return
        body, content_type = self._metrics.render(request.header("accept") or "")
        headers = [("content-type", content_type), ("cache-control", "no-store")]
        if request.method == "HEAD":
            headers.append(("content-length", str(len(body))))
            body = b""
        await exchange.respond(200, headers, body)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Nothing runs in the background."""
        task_status.started()

    async def shutdown(self) -> None:
        """Nothing to close."""
        await trio.lowlevel.checkpoint()


def instrument(sio: Server, *, prefix: str = "socketio") -> Metrics:
    """Count what ``sio`` does, for Prometheus; returns the :class:`Metrics`.

    Call it before serving (or at any time: counting starts then). Serve the
    metrics with ``metrics.app("/metrics")`` mounted in a :class:`triosio.App`.
    """
    metrics = Metrics(sio, prefix)
    sio._add_hooks(metrics)
    return metrics
