"""Where the servers of a cluster meet: channel names and ids (§1, §2 of ``redis-wire.md``).

Sans-I/O. The names are those of ``@socket.io/redis-adapter`` 8.3.0 (and of its
emitter): ``<key>#<nsp>#`` (+ ``<room>#``) for broadcasts,
``<key>-request#<nsp>#`` for requests, ``<key>-response#<nsp>#`` (+ ``<uid>#``)
for responses; nothing escaped. Every bus carries messages by these names.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass

#: The characters of uid2's ids (§2).
UID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
#: The uid the emitter writes in its broadcasts and server-side emits (§2).
EMITTER_UID = "emitter"


def new_uid() -> str:
    """A fresh six-character id, as ``uid2(6)`` draws them (§2)."""
    return "".join(secrets.choice(UID_ALPHABET) for _ in range(6))


def _glob_escape(text: str) -> str:
    # PSUBSCRIBE takes a glob: a namespace named "/a*" must match only itself.
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


@dataclass(frozen=True, slots=True)
class Channels:
    """The channels of one namespace adapter (§1).

    Attributes:
        nsp: The namespace name.
        uid: This server's uid for that namespace.
        broadcast: ``<key>#<nsp>#``, the prefix of every broadcast channel.
        pattern: The PSUBSCRIBE pattern of broadcast channels.
        request: ``<key>-request#<nsp>#``.
        response: ``<key>-response#<nsp>#``.
        specific_response: ``<key>-response#<nsp>#<uid>#``.
    """

    nsp: str
    uid: str
    broadcast: bytes
    pattern: bytes
    request: bytes
    response: bytes
    specific_response: bytes

    @classmethod
    def make(cls, key: str, nsp: str, uid: str) -> Channels:
        """The channels of namespace ``nsp`` with key prefix ``key``."""
        broadcast = f"{key}#{nsp}#"
        response = f"{key}-response#{nsp}#"
        return cls(
            nsp=nsp,
            uid=uid,
            broadcast=broadcast.encode(),
            pattern=(_glob_escape(broadcast) + "*").encode(),
            request=f"{key}-request#{nsp}#".encode(),
            response=response.encode(),
            specific_response=f"{response}{uid}#".encode(),
        )

    def for_rooms(self, rooms: Iterable[str]) -> bytes:
        """The channel of a broadcast: a room's own channel when there is exactly one."""
        rooms = list(rooms)
        if len(rooms) == 1:
            return self.broadcast + rooms[0].encode() + b"#"
        return self.broadcast

    def response_for(self, uid: object, specific: bool) -> bytes:
        """Where to answer a request from ``uid`` (§1, ``publishOnSpecificResponseChannel``)."""
        if specific and isinstance(uid, str):
            return self.response + uid.encode() + b"#"
        return self.response

    def room_of(self, channel: bytes) -> str | None:
        """The room part of a broadcast channel: ``""`` for none, None if not ours."""
        if not channel.startswith(self.broadcast) or not channel.endswith(b"#"):
            return None
        if len(channel) == len(self.broadcast):
            return ""
        try:
            return channel[len(self.broadcast) : -1].decode()
        except UnicodeDecodeError:
            return None
