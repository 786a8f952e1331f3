"""The upgrade part of an Engine.IO session: from polling to a WebSocket.

Spec: https://socket.io/docs/v4/engine-io-protocol/ ("Upgrade"). The client
opens a WebSocket with the session's id and probes it (``2probe`` ->
``3probe``); the session then releases the pending GET (the client pauses
polling) and, on the client's UPGRADE packet, switches to the WebSocket. A
failed probe leaves the session on polling. The probe runs as a task in the
session's nursery (:meth:`SessionUpgrade.start_upgrade`).
"""

from __future__ import annotations

import logging

import trio

from .._errors import RemoteProtocolError
from .._proto.eio import EioType, decode_ws
from . import packet as P
from .exchange import WebSocket, WebSocketClosed
from .session_state import SessionState

log = logging.getLogger("triosio.engine")


class SessionUpgrade(SessionState):
    """The upgrade methods of :class:`~triosio._engine.session.EngineSession`."""

    __slots__ = ()

    def can_upgrade(self) -> bool:
        """Whether a WebSocket may start probing this session now."""
        return (
            self._reason is None
            and self._ws is None
            and not self._probing
            and self._nursery is not None
        )

    def start_upgrade(self, ws: WebSocket) -> None:
        """Probe ``ws`` and, if the client completes the upgrade, switch to it."""
        self._probing = True
        self.nursery.start_soon(self._probe, ws)

    async def _probe(self, ws: WebSocket) -> None:
        # The probe: "2probe" → "3probe" (again for each repeated probe), then
        # "5". Anything else, a timeout or a closed socket fails the upgrade: the
        # probe WebSocket is closed and the session stays on polling, as with
        # the reference server. Packets are never taken from a WebSocket before
        # the switch, so nothing can overtake what is still in flight on polling.
        limit = self._options.max_http_buffer_size
        ok = False
        switched = False
        try:
            self._writer_for(ws)
            try:
                with trio.move_on_after(self._options.upgrade_timeout):
                    while True:
                        packet = decode_ws(await ws.receive(limit))
                        if packet.type is EioType.PING and packet.data == "probe":
                            ws.write_nowait([P.PROBE_PONG])
                            if not self._upgrading:
                                self._upgrading = True
                                self._poll_wake.set()  # release a pending GET with NOOP
                            continue
                        ok = self._upgrading and packet.type is EioType.UPGRADE
                        if not ok:
                            log.info(
                                "session %s: upgrade failed: %s packet during the probe",
                                self.sid,
                                packet.type.name,
                            )
                        break
            except (WebSocketClosed, RemoteProtocolError) as exc:
                log.debug("session %s: upgrade failed: %s", self.sid, exc)
            finally:
                if self._upgrading and self._pong_deadline is not None:
                    # A pong that fell due during the switch gets a fresh timeout.
                    now = trio.current_time()
                    if now >= self._pong_deadline:
                        self._pong_deadline = now + self._options.ping_timeout
                self._upgrading = False
                self._probing = False
                if not (ok and self._reason is None):
                    self._heartbeat_after_switch()
            if ok and self._reason is None:
                self._switch_to(ws)
                switched = True
                self._heartbeat_after_switch()  # a held PING goes over the new transport
                await self._read_websocket(ws)
        finally:
            if not switched:
                # Also when cancelled (the session closed during the probe).
                await ws.close(1000 if ok else 1002)
