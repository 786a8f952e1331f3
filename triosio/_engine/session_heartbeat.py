"""The heartbeat part of an Engine.IO session: PINGs and the PONG deadline.

Spec: https://socket.io/docs/v4/engine-io-protocol/ ("Heartbeat"). The server
sends a PING every ``ping_interval`` (counted from the handshake, then from
each PONG) and closes the session ("ping timeout") when no PONG comes within
``ping_timeout``. This needs no task per session: the server's one timer task
(:class:`~triosio._engine.heartbeats.HeartbeatTimers`) calls
:meth:`SessionHeartbeat.on_timer` when a PING or a PONG falls due.

While an upgrade switches transports the heartbeat pauses: a PING that falls
due is held back and goes out after the switch, and a PONG deadline that passes
meanwhile is moved (see ``session_upgrade.py``).
"""

from __future__ import annotations

import trio

from .._errors import DisconnectReason
from . import packet as P
from .heartbeats import HeartbeatTimers, TimedOwner, TimerEntry
from .session_state import SessionState

#: How early a PING may go out to share the timer task's wake-up with others.
_PING_SLACK = 0.005


class SessionHeartbeat(SessionState):
    """The heartbeat methods of :class:`~triosio._engine.session.EngineSession`."""

    __slots__ = ()

    def on_timer(self, now: float) -> None:
        """A PING or the pending PONG fell due (called by the timer task)."""
        self._timer = None
        if self._reason is not None:
            return
        deadline = self._pong_deadline
        if self._upgrading:
            # Paused while a probe is switching: the switch's end picks it up.
            self._ping_held = deadline is None
        elif deadline is None:
            self._ping(now)
        elif now >= deadline:
            self.close_nowait(DisconnectReason.PING_TIMEOUT)
        else:  # an upgrade moved the deadline
            self._timer = self._timers_at(deadline)

    def call_at(self, when: float, owner: TimedOwner) -> TimerEntry:
        """Have the server's timer task call ``owner.on_timer(now)`` at ``when``.

        ``when`` is on the Trio clock. Costs no task: the layer above uses it
        for its own per-connection deadlines. ``HeartbeatTimers.cancel(entry)``
        forgets it; the owner must cancel it when the session closes.
        """
        return self._timers.at(when, owner)

    def _timers_at(self, when: float, *, ping: bool = False) -> TimerEntry:
        timers = self._timers
        if ping:  # may go a little early, with other sessions' pings
            return timers.at(when, self, min(_PING_SLACK, self._options.ping_interval / 100))
        return timers.at(when, self)

    def _ping(self, now: float) -> None:
        self.send_nowait([P.PING], force=True)
        deadline = self._pong_deadline = now + self._options.ping_timeout
        self._timer = self._timers_at(deadline)

    def _on_pong(self) -> None:
        if self._pong_deadline is None:
            return  # a stray pong starts nothing
        self._pong_deadline = None
        HeartbeatTimers.cancel(self._timer)
        self._timer = self._timers_at(trio.current_time() + self._options.ping_interval, ping=True)

    def _heartbeat_after_switch(self) -> None:
        # The upgrade's switch ended (either way): a PING held back goes out
        # now; a PONG deadline that passed meanwhile was moved by the probe.
        if self._reason is not None:
            return
        if self._ping_held:
            self._ping_held = False
            self._ping(trio.current_time())
        elif self._pong_deadline is not None and self._timer is None:
            self._timer = self._timers_at(self._pong_deadline)

    def overdue(self) -> bool:
        """Close the session if its pong is overdue; return whether it is closed.

        The timer task closes the session at the deadline, but a request or a
        packet that becomes ready at the same instant may be run first: the
        engine calls this before serving anything, so that nothing is served
        past the deadline, whatever the order the scheduler picks.
        """
        deadline = self._pong_deadline
        if (
            deadline is not None
            and self._reason is None
            and not self._upgrading
            and trio.current_time() >= deadline
        ):
            self.close_nowait(DisconnectReason.PING_TIMEOUT)
        return self._reason is not None
