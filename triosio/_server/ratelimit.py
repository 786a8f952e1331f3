"""Rate limits on incoming events: a token bucket per client, per event name.

``Server(rate_limit=RateLimit(...))`` bounds every event a client sends (all
its namespaces together); ``socket.on(event, handler, rate_limit=...)`` bounds
one event of one socket. A bucket holds up to ``burst`` tokens and refills at
``rate`` per second of the Trio clock; an event takes a token or is refused.
Refused with the ``"drop"`` policy, the event never reaches a handler and, when
the client asked for an acknowledgement, gets an error acknowledgement
(:data:`RATE_LIMITED`); with ``"disconnect"``, the socket is disconnected by
the server (the client gets a DISCONNECT and does not reconnect). The check
runs in the connection's reader, before anything is queued: a flood costs the
server a decode and a comparison per event, no task and no handler.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, final

#: The ``error`` of the acknowledgement a dropped event gets.
RATE_LIMITED = "rate limit exceeded"


@final
@dataclass(frozen=True, slots=True)
class RateLimit:
    """A token bucket: ``rate`` events per second, bursts of up to ``burst``.

    Args:
        rate: Tokens added per second (the sustained event rate allowed).
        burst: Most tokens held (events allowed at once); by default
            ``max(1, rate)`` rounded down.
        policy: ``"drop"`` (refuse the event; an error acknowledgement if one
            was asked for) or ``"disconnect"`` (disconnect the socket).
    """

    rate: float
    burst: int | None = None
    policy: Literal["drop", "disconnect"] = "drop"

    def __post_init__(self) -> None:
        if isinstance(self.rate, bool) or not self.rate > 0:
            raise ValueError(f"rate must be positive (events per second), not {self.rate!r}")
        if self.burst is not None and (
            not isinstance(self.burst, int) or isinstance(self.burst, bool) or self.burst < 1
        ):
            raise ValueError(f"burst must be a positive int, not {self.burst!r}")
        if self.policy not in ("drop", "disconnect"):
            raise ValueError(f"policy must be 'drop' or 'disconnect', not {self.policy!r}")

    @property
    def capacity(self) -> int:
        """The bucket's size: ``burst``, or ``max(1, int(rate))``."""
        return self.burst if self.burst is not None else max(1, int(self.rate))


class TokenBucket:
    """One bucket of a :class:`RateLimit`, on a clock the caller passes in."""

    __slots__ = ("limit", "stamp", "tokens")

    def __init__(self, limit: RateLimit, now: float) -> None:
        self.limit = limit
        self.tokens = float(limit.capacity)
        self.stamp = now

    def take(self, now: float) -> bool:
        """Take a token at time ``now``; False when there is none."""
        limit = self.limit
        tokens = self.tokens + (now - self.stamp) * limit.rate
        capacity = limit.capacity
        if tokens > capacity:
            tokens = capacity
        self.stamp = now
        if tokens >= 1:
            self.tokens = tokens - 1
            return True
        self.tokens = tokens
        return False

    def retry_after(self) -> float:
        """Seconds until the next token (after a refusal)."""
        return max(0.0, (1 - self.tokens) / self.limit.rate)


def refusal(event: str, bucket: TokenBucket) -> dict[str, Any]:
    """The error acknowledgement of a dropped event."""
    return {"error": RATE_LIMITED, "event": event, "retry_after": round(bucket.retry_after(), 3)}
