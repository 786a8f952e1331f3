"""Records the events of a client (manager and sockets) in one list, in order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import trio

import triosio

SOCKET_EVENTS = (
    "connecting",
    "connect",
    "connect_error",
    "connect_failed",
    "disconnect",
    "error",
    "reconnecting",
    "reconnect",
    "reconnect_failed",
)
MANAGER_EVENTS = (
    "open",
    "close",
    "error",
    "reconnect_attempt",
    "reconnect",
    "reconnect_error",
    "reconnect_failed",
    "upgrade",
)
#: The event names of the seed document (the legacy client events).
SEED_EVENTS = (
    "connecting",
    "connect",
    "disconnect",
    "connect_failed",
    "error",
    "message",
    "reconnecting",
    "reconnect",
    "reconnect_failed",
)


@dataclass(frozen=True)
class Entry:
    source: str
    name: str
    args: tuple[Any, ...]
    time: float


class Recorder:
    """Add handlers that record; ``wait_for`` a condition on the log."""

    def __init__(self) -> None:
        self.log: list[Entry] = []
        self._lot = trio.lowlevel.ParkingLot()

    def socket(self, sock: triosio.ClientSocket, source: str | None = None) -> None:
        for name in SOCKET_EVENTS:
            sock.on(name, partial(self._record, source or sock.namespace, name))

    def manager(self, manager: triosio.Manager, source: str = "manager") -> None:
        for name in MANAGER_EVENTS:
            manager.on(name, partial(self._record, source, name))

    def on(self, target: triosio.Manager | triosio.ClientSocket, name: str, source: str) -> None:
        """Record event ``name`` of ``target`` under ``source``."""
        target.on(name, partial(self._record, source, name))

    def _record(self, source: str, name: str, *args: Any) -> None:
        self.log.append(Entry(source, name, args, trio.current_time()))
        self._lot.unpark_all()

    def names(self, source: str, only: tuple[str, ...] | None = None) -> list[str]:
        """The event names recorded from ``source`` (restricted to ``only``)."""
        return [e.name for e in self.log if e.source == source and (only is None or e.name in only)]

    def entries(self, source: str, name: str) -> list[Entry]:
        return [e for e in self.log if e.source == source and e.name == name]

    def count(self, source: str, name: str) -> int:
        return len(self.entries(source, name))

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            await self._lot.park()
