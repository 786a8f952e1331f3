"""One timer task for the heartbeats of all of a server's sessions.

A task per session sleeping until its next PING costs a cancel-scope expiry (an
exception raised and caught, a context manager, trio's deadline bookkeeping)
per ping and per pong wait: measured, about 130 µs of CPU per ping/pong at
2,000 clients. Here one task keeps a heap of due times and calls back the
sessions that fall due, synchronously; a PING is then one write, a PONG one
assignment and one heap push. Entries that may fire a little early (PINGs: a
client only minds a PING that is late) are fired with the one that wakes the
task, so that thousands of clients' pings cost a wake-up per few milliseconds,
not one each: 134 -> 79 µs per ping/pong for the task, 79 -> 56 for the slack
(2,000 clients pinged every second; see benchmarks/README.md).
"""

from __future__ import annotations

import heapq
import logging
import math
from itertools import count
from typing import Any, Protocol

import trio

log = logging.getLogger("triosio.engine")

__all__ = ["HeartbeatTimers", "TimedOwner", "TimerEntry"]


class TimedOwner(Protocol):
    """What :class:`HeartbeatTimers` calls back."""

    def on_timer(self, now: float) -> None:
        """The time asked for came (``now``: the Trio clock)."""
        ...


#: ``[when, order, owner, earliest]``; a list so that ``cancel`` can drop the
#: owner in place (the heap keeps the entry, now empty, until its time comes).
#: The order breaks ties, so owners are never compared.
TimerEntry = list[Any]


class HeartbeatTimers:
    """Call ``owner.on_timer(now)`` at the times asked for, from one task.

    ``run`` must be running for anything to fire (the engine server runs it in
    its sessions' nursery). An owner that closes cancels its entry: the heap
    then holds a small list until the time passes, not the session.
    """

    __slots__ = ("_heap", "_order", "_scope")

    def __init__(self) -> None:
        self._heap: list[TimerEntry] = []
        self._order = count()
        self._scope: trio.CancelScope | None = None

    def __len__(self) -> int:
        return len(self._heap)

    def at(self, when: float, owner: TimedOwner, slack: float = 0.0) -> TimerEntry:
        """Call ``owner.on_timer`` once, at ``when`` (Trio clock); return the entry.

        With ``slack``, it may be called up to that much earlier, when the task
        is awake for another entry anyway. Never later than ``when`` (beyond
        the scheduler's own latency).
        """
        entry: TimerEntry = [when, next(self._order), owner, when - slack]
        heapq.heappush(self._heap, entry)
        scope = self._scope
        if scope is not None and when < scope.deadline:
            scope.deadline = when  # wakes the timer task earlier
        return entry

    @staticmethod
    def cancel(entry: TimerEntry | None) -> None:
        """Forget ``entry`` (if not fired yet). Never raises."""
        if entry is not None:
            entry[2] = None

    async def run(self) -> None:
        """Fire the entries as they fall due, until cancelled."""
        heap = self._heap
        pop = heapq.heappop
        while True:
            deadline = heap[0][0] if heap else math.inf
            with trio.CancelScope(deadline=deadline) as scope:
                self._scope = scope
                await trio.sleep_forever()
            self._scope = None
            now = trio.current_time()
            # Due, or allowed to go early and next in line.
            while heap and heap[0][3] <= now:
                owner: TimedOwner | None = pop(heap)[2]
                if owner is not None:
                    try:
                        owner.on_timer(now)
                    except Exception:
                        # One session's bug must not stop everyone's heartbeat.
                        log.exception("heartbeat timer of %r failed", owner)
