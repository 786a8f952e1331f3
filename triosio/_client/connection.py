"""A manager's Engine.IO connection: open it, run it, open it again when lost.

Semantics as ``socket.io-client`` 4.8's ``Manager``: the connection opens when a
socket connects and closes when no socket is active; when it is lost, it is
opened again after a delay from :class:`~triosio._proto.backoff.Backoff`
(``reconnection_delay`` doubled per attempt, jitter ``randomization_factor``,
capped at ``reconnection_delay_max``), up to ``reconnection_attempts`` times;
every active namespace then sends its CONNECT again, with its auth.

One task runs the loop, so there is never more than one (re)connection in
progress. What the server sends is decoded here and handed to the socket of
its namespace.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

from .._engine.eio_client import EngineClient, EngineClientOptions, EngineError
from .._errors import ConnectError, DisconnectReason, RemoteProtocolError
from .._proto.backoff import Backoff
from .._proto.sio import Decoder, Limits, Parser

if TYPE_CHECKING:
    from .manager import Manager
    from .socket import ClientSocket

log = logging.getLogger("triosio.client")

#: How long leaving the manager waits for the connection to close cleanly and
#: for the handlers of the last events (``disconnect``) to run.
CLOSE_TIMEOUT = 2.0
#: ``emit`` waits while this many messages wait to be written (backpressure).
HIGH_WATER = 1024


class Connection:
    """The Engine.IO connection of a :class:`~triosio.Manager`, and its loop.

    Attributes:
        engine: The open connection, or ``None`` between connections.
    """

    def __init__(
        self,
        manager: Manager,
        options: EngineClientOptions,
        parser: Parser,
        limits: Limits,
        backoff: Backoff,
    ) -> None:
        self._manager = manager
        self._options = options
        self._parser = parser
        self._limits = limits
        self._backoff = backoff
        self.engine: EngineClient | None = None
        self._decoder: Decoder = parser.decoder(limits)
        self._loop_scope: trio.CancelScope | None = None
        self._loop_done = trio.Event()
        self._loop_done.set()

    # ------------------------------------------------------------ for the manager

    def open_for(self, sock: ClientSocket) -> None:
        """``sock`` became active: send its CONNECT, opening the connection if needed."""
        engine = self.engine
        if engine is not None and not engine.ended:
            if not engine.closing:
                self._manager._start_task(partial(self._connect_sockets, engine, [sock], 0))
            # else: the loop opens a new connection once this one has closed.
        elif self._loop_done.is_set():
            self._loop_done = trio.Event()
            self._manager._start_task(self._loop)

    def close(self) -> None:
        """Close the connection cleanly (within ``CLOSE_TIMEOUT``), or stop reconnecting."""
        engine = self.engine
        if engine is not None and not engine.ended:
            engine.close()
            self._manager._start_task(partial(self._close_deadline, engine))
        elif self._loop_scope is not None:
            self._loop_scope.cancel()

    async def _close_deadline(self, engine: EngineClient) -> None:
        await trio.sleep(CLOSE_TIMEOUT)
        engine.abort(DisconnectReason.FORCED_CLOSE)

    async def wait_ended(self) -> None:
        """Wait until the loop has ended (no connection, no reconnection)."""
        await self._loop_done.wait()

    def send(self, messages: Iterable[str | bytes]) -> None:
        """Queue messages on the connection, if there is one (never waits)."""
        if self.engine is not None:
            self.engine.send(messages)

    def writable(self) -> bool:
        """Whether a message sent now would go out soon (for volatile emits)."""
        engine = self.engine
        return (
            engine is not None
            and not engine.ended
            and not engine.ping_expired
            and engine.pending < HIGH_WATER
        )

    async def wait_writable(self) -> None:
        """Wait while ``HIGH_WATER`` messages wait to be written (a checkpoint)."""
        engine = self.engine
        if engine is not None:
            await engine.wait_writable(HIGH_WATER)
        await trio.lowlevel.checkpoint()

    # ------------------------------------------------------------ the loop

    async def _loop(self) -> None:
        manager = self._manager
        backoff = self._backoff
        backoff.reset()
        retrying = False
        try:
            with trio.CancelScope() as self._loop_scope:
                while manager._wants_connection():
                    attempt = 0
                    if retrying:
                        if backoff.attempts >= manager.reconnection_attempts:
                            self._give_up(reconnect_failed=True)
                            return
                        delay = backoff.duration()
                        attempt = backoff.attempts
                        manager._fire_on_sockets("reconnecting", delay, attempt)
                        await trio.sleep(delay)
                        if not manager._wants_connection():
                            return
                        manager._fire("reconnect_attempt", attempt)
                    outcome = await self._run_once(attempt)
                    if isinstance(outcome, ConnectError):
                        if retrying:
                            manager._fire("reconnect_error", outcome)
                        if not manager.reconnection or not (retrying or manager.retry_connect):
                            self._give_up(error=outcome)
                            return
                    elif outcome is DisconnectReason.IO_CLIENT_DISCONNECT:
                        # We closed it (no socket was active); a socket became
                        # active again meanwhile: open a new one right away.
                        retrying = False
                        continue
                    elif not manager.reconnection:
                        for sock in list(manager._sockets.values()):
                            sock._not_reconnecting(outcome)
                        return
                    retrying = True
        finally:
            self._loop_scope = None
            self._loop_done.set()

    def _give_up(
        self, *, reconnect_failed: bool = False, error: ConnectError | None = None
    ) -> None:
        manager = self._manager
        if reconnect_failed:
            manager._fire("reconnect_failed")
            manager._fire_on_sockets("reconnect_failed")
            error = ConnectError(f"gave up reconnecting after {self._backoff.attempts} attempts")
        assert error is not None
        for sock in list(manager._sockets.values()):
            sock._fail(error)

    async def _run_once(self, attempt: int) -> ConnectError | DisconnectReason:
        """One connection: open it, run it until it ends; return why it ended."""
        manager = self._manager
        async with trio.open_nursery() as nursery:
            engine = EngineClient(
                self._options,
                nursery,
                self._on_message,
                partial(manager._fire, "ping"),
                partial(manager._fire, "upgrade"),
            )
            try:
                with trio.fail_after(manager.connect_timeout):
                    await engine.open()
            except (EngineError, trio.TooSlowError) as exc:
                if isinstance(exc, trio.TooSlowError):
                    message = f"timed out after {manager.connect_timeout} s"
                else:
                    message = str(exc)
                error = ConnectError(message)
                error.__cause__ = exc
                self._on_open_failed(error)
                nursery.cancel_scope.cancel()
                return error
            self.engine = engine
            self._decoder = self._parser.decoder(self._limits)
            manager._fire("open")
            nursery.start_soon(self._connect_sockets, engine, None, attempt)
            reason = await engine.run()
            nursery.cancel_scope.cancel()
        self.engine = None
        self._decoder.reset()
        failure = engine.error
        if reason not in (DisconnectReason.PARSE_ERROR, DisconnectReason.TRANSPORT_ERROR):
            failure = None
        if failure is not None:
            manager._fire("error", failure)
        if reason is DisconnectReason.FORCED_CLOSE:
            reason = DisconnectReason.IO_CLIENT_DISCONNECT
        for sock in list(manager._sockets.values()):
            sock._connection_lost(reason)
            if failure is not None and sock.active:
                sock._fire("error", failure)
        manager._fire("close", reason)
        return reason

    def _on_open_failed(self, error: ConnectError) -> None:
        manager = self._manager
        manager._fire("error", error)
        for sock in manager._sockets.values():
            if sock.active and not sock.connected:
                sock._fire("connect_error", error)

    async def _connect_sockets(
        self, engine: EngineClient, only: list[ClientSocket] | None, attempt: int
    ) -> None:
        """Send CONNECT for each active socket (after awaiting every auth callable)."""
        manager = self._manager
        candidates = only if only is not None else list(manager._sockets.values())
        socks = [s for s in candidates if s._claim_connect(engine)]
        ready: list[tuple[ClientSocket, Any]] = []
        for sock in socks:
            try:
                ready.append((sock, await sock._resolve_auth()))
            except Exception as exc:
                log.exception("the auth function of namespace %s failed", sock.namespace)
                error = ConnectError(f"the auth function failed: {exc!r}")
                error.__cause__ = exc
                sock._fire("connect_error", error)
                sock._fail(error)
                manager._check_idle()
        if engine.ended or self.engine is not engine:
            return
        # From here on, no checkpoint: every CONNECT is queued, then "reconnect"
        # fires, before any answer can be handled.
        for sock, auth in ready:
            sock._send_connect(engine, auth)
        if attempt:
            self._backoff.reset()
            manager._fire("reconnect", attempt)
            manager._fire_on_sockets("reconnect", attempt)

    def _on_message(self, data: str | bytes) -> None:
        engine = self.engine
        try:
            packet = self._decoder.feed(data)
        except RemoteProtocolError as exc:
            log.warning("closing the connection: the server sent a bad packet: %s", exc)
            if engine is not None:
                engine.abort(DisconnectReason.PARSE_ERROR, exc)
            return
        if packet is None:
            return
        sock = self._manager._sockets.get(packet.nsp)
        if sock is None:
            return
        try:
            sock._on_packet(packet)
        except Exception as exc:  # a bug of ours: never let it reach the engine's tasks
            log.exception("error handling %r", packet)
            if engine is not None:
                engine.abort(DisconnectReason.TRANSPORT_ERROR, exc)
