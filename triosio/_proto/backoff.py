"""The client's reconnection backoff, computed as ``socket.io-client`` computes it.

Reference: the ``Backoff`` of socket.io-client 4.x (``reconnectionDelay`` = min,
``reconnectionDelayMax`` = max, ``randomizationFactor`` = jitter, factor 2). The
n-th delay (n from 0) is ``min * 2**n``; jitter moves it by up to ``jitter`` times
itself, down or up (one random draw picks both the size and the direction); the
cap ``max`` applies last, and the result is truncated to whole milliseconds.

Pure code: the random source is injected, so schedules are testable exactly.
"""

from __future__ import annotations

import math
import random as _random
from collections.abc import Callable


class Backoff:
    """Delays between reconnection attempts.

    Args:
        min_delay: First delay, in seconds (``reconnection_delay``).
        max_delay: Cap, in seconds (``reconnection_delay_max``).
        jitter: Randomization factor in ``[0, 1]`` (``randomization_factor``).
        factor: Growth factor per attempt.
        random: Returns a float in ``[0, 1)``; ``random.random`` by default.
    """

    __slots__ = ("_random", "attempts", "factor", "jitter", "max_ms", "min_ms")

    def __init__(
        self,
        min_delay: float = 1.0,
        max_delay: float = 5.0,
        jitter: float = 0.5,
        factor: float = 2.0,
        random: Callable[[], float] | None = None,
    ) -> None:
        if min_delay < 0 or max_delay < 0:
            raise ValueError("delays must not be negative")
        if not 0 <= jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")
        self.min_ms = min_delay * 1000
        self.max_ms = max_delay * 1000
        self.jitter = jitter
        self.factor = factor
        self.attempts = 0
        self._random = random or _random.random

    def duration(self) -> float:
        """The next delay in seconds; counts one more attempt."""
        try:
            ms = self.min_ms * self.factor**self.attempts
        except OverflowError:
            # socket.io-client retries forever by default; after ~1000 attempts
            # 2**n leaves the float range (JavaScript gets Infinity, Python raises).
            ms = math.inf if self.min_ms else 0.0
        self.attempts += 1
        if self.jitter and not math.isinf(ms):
            rand = self._random()
            deviation = math.floor(rand * self.jitter * ms)
            ms = ms - deviation if math.floor(rand * 10) % 2 == 0 else ms + deviation
        if math.isinf(ms) or ms > self.max_ms:
            ms = self.max_ms
        return int(ms) / 1000

    def reset(self) -> None:
        """Start again from the first delay (after a successful reconnection)."""
        self.attempts = 0
