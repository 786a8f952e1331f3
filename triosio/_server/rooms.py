"""Room membership of one namespace, owned by the router.

Mirrors the reference's in-memory adapter (``socket.io-adapter``): ``rooms``
maps a room to its socket ids, ``sids`` maps a socket id to its rooms, and every
socket is in the room named by its own id. Only the router task calls these
methods (synchronously), so the tables need no locks and are always consistent.

The adapter events ``create-room``, ``delete-room``, ``join-room`` and
``leave-room`` are reported to listeners registered with :meth:`RoomTable.on`.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

log = logging.getLogger("triosio.server")

ADAPTER_EVENTS = frozenset({"create-room", "delete-room", "join-room", "leave-room"})

AdapterListener = Callable[..., Any]


class RoomTable:
    """The rooms of one namespace (the in-memory adapter).

    Read it freely from any task (``rooms``, ``sids``); only the router changes it.

    Attributes:
        rooms: room name → set of socket ids.
        sids: socket id → set of room names.
    """

    __slots__ = ("_listeners", "_spawn", "rooms", "sids")

    def __init__(
        self,
        spawn: Callable[[Callable[..., Any], tuple[Any, ...]], None],
        listeners: dict[str, list[AdapterListener]] | None = None,
    ) -> None:
        self.rooms: dict[str, set[str]] = {}
        self.sids: dict[str, set[str]] = {}
        # Shared with the Namespace, so listeners added later are seen.
        self._listeners: dict[str, list[AdapterListener]] = (
            listeners if listeners is not None else {}
        )
        self._spawn = spawn

    # ------------------------------------------------------------ events

    def _emit(self, event: str, *args: str) -> None:
        for listener in self._listeners.get(event, ()):
            try:
                if inspect.iscoroutinefunction(listener):
                    self._spawn(listener, args)
                else:
                    listener(*args)
            except Exception:
                log.exception("error in adapter %r listener", event)

    # ------------------------------------------------------------ membership

    def add_all(self, sid: str, rooms: Iterable[str]) -> None:
        """Put ``sid`` in each of ``rooms``."""
        mine = self.sids.get(sid)
        if mine is None:
            mine = self.sids[sid] = set()
        for room in rooms:
            if room in mine:
                continue
            mine.add(room)
            members = self.rooms.get(room)
            if members is None:
                members = self.rooms[room] = set()
                if self._listeners:
                    self._emit("create-room", room)
            members.add(sid)
            if self._listeners:
                self._emit("join-room", room, sid)

    def delete(self, sid: str, room: str) -> None:
        """Take ``sid`` out of ``room``."""
        mine = self.sids.get(sid)
        if mine is None or room not in mine:
            return
        mine.discard(room)
        self._leave(sid, room)

    def _leave(self, sid: str, room: str) -> None:
        members = self.rooms.get(room)
        if members is None:
            return
        members.discard(sid)
        if self._listeners:
            self._emit("leave-room", room, sid)
        if not members:
            del self.rooms[room]
            if self._listeners:
                self._emit("delete-room", room)

    def delete_all(self, sid: str) -> None:
        """Take ``sid`` out of every room (it disconnected)."""
        mine = self.sids.pop(sid, None)
        if not mine:
            return
        for room in mine:
            self._leave(sid, room)

    def rooms_of(self, sid: str) -> frozenset[str]:
        """The rooms ``sid`` is in (a snapshot)."""
        return frozenset(self.sids.get(sid, ()))

    def recipients(self, rooms: frozenset[str], exclude: frozenset[str]) -> Iterator[str]:
        """Socket ids in any of ``rooms`` (every socket if empty), minus ``exclude`` rooms.

        A socket in several of the rooms is yielded once.
        """
        excluded: set[str] = set()
        for room in exclude:
            members = self.rooms.get(room)
            if members:
                excluded.update(members)
        if not rooms:
            if excluded:
                return (sid for sid in self.sids if sid not in excluded)
            return iter(self.sids)
        if len(rooms) == 1:
            (room,) = rooms
            members = self.rooms.get(room) or set()
            if excluded:
                return (sid for sid in members if sid not in excluded)
            return iter(members)
        union: set[str] = set()
        for room in rooms:
            members = self.rooms.get(room)
            if members:
                union.update(members)
        if excluded:
            union.difference_update(excluded)
        return iter(union)
