"""What the cluster protocol needs of a transport: a :class:`Bus`.

A bus moves bytes between named channels, publish/subscribe style, as Redis
pub/sub does (:class:`triosio._redis.bus.RedisBus`). The protocol
(:class:`~triosio._cluster.node.ClusterNode`) decides what to send on which
channel, and what a message means; a bus knows neither.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import trio

#: What a bus calls with each message: ``receive(subscription, channel, payload)``,
#: where ``subscription`` is the pattern or the channel it was subscribed as.
Receiver = Callable[[bytes, bytes, bytes], Awaitable[None]]


class Bus(Protocol):
    """How the servers of a cluster exchange messages.

    A message published on a channel reaches every server subscribed to that
    channel, or to a glob pattern that matches it, the publisher included.
    What one server publishes arrives in the order it was published; the
    protocol relies on it (a join, then a broadcast to the joined room). A
    bus may drop messages while the others are out of reach, never reorder
    them.
    """

    async def run(
        self, receive: Receiver, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Connect, subscribe, and pass every message to ``receive`` until cancelled.

        Reports started once subscribed, or once the first attempt failed
        (then it keeps trying in the background: the server serves its own
        clients meanwhile). ``receive`` never raises.
        """

    def subscribe(self, patterns: Sequence[bytes], channels: Sequence[bytes]) -> None:
        """Receive what is published on ``channels`` or on channels matching ``patterns``.

        From now on, and again after every reconnection. Never waits.
        """

    async def publish(self, channel: bytes, payload: bytes) -> None:
        """Send ``payload`` on ``channel`` after everything published before.

        Waits only while the queue of messages to send is full.
        """

    def publish_nowait(self, channel: bytes, payload: bytes) -> None:
        """:meth:`publish` from code that cannot wait (the queue's capacity is ignored)."""

    async def subscriber_count(self, channel: bytes) -> int:
        """How many servers are subscribed to ``channel`` itself (patterns do not count).

        1 while the other servers cannot be reached.
        """
        ...
