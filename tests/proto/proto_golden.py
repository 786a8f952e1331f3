"""Loads the golden vectors in ``tests/proto/vectors`` into triosio's packet types.

The vectors are transcriptions of the examples of the Engine.IO v4 and Socket.IO v5
protocol documents (each entry cites its section); this module only turns their
JSON notation into Python values: ``{"$hex": "0102"}`` is ``b"\\x01\\x02"`` and
``{"$unspecified": 0}`` stands for bytes the document does not give (see
:data:`UNSPECIFIED`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from triosio._proto.eio import EioPacket, EioType, Handshake
from triosio._proto.sio import SioPacket, SioType

VECTORS = Path(__file__).resolve().parent / "vectors"

#: The bytes used where the document shows an attachment only as ``<binary>``.
UNSPECIFIED = b"\x00\xffattachment\x1e"


def load(name: str) -> dict[str, Any]:
    """The parsed JSON of ``vectors/<name>.json``."""
    with (VECTORS / f"{name}.json").open(encoding="utf-8") as f:
        result: dict[str, Any] = json.load(f)
    return result


def value(obj: Any) -> Any:
    """Turn the JSON notation of a value into the Python value."""
    if isinstance(obj, list):
        return [value(v) for v in obj]
    if isinstance(obj, dict):
        if obj.keys() == {"$hex"}:
            return bytes.fromhex(obj["$hex"])
        if obj.keys() == {"$unspecified"}:
            return UNSPECIFIED
        return {k: value(v) for k, v in obj.items()}
    return obj


def sio_packet(obj: dict[str, Any]) -> SioPacket:
    """A Socket.IO packet from its JSON notation (type named as in the document)."""
    return SioPacket(SioType[obj["type"]], obj["nsp"], value(obj.get("data")), obj.get("id"))


def decoded_form(packet: SioPacket) -> SioPacket:
    """What a decoder gives back: BINARY_EVENT/BINARY_ACK come out as EVENT/ACK."""
    plain = {SioType.BINARY_EVENT: SioType.EVENT, SioType.BINARY_ACK: SioType.ACK}
    return SioPacket(plain.get(packet.type, packet.type), packet.nsp, packet.data, packet.id)


def eio_packet(obj: dict[str, Any]) -> EioPacket:
    """An Engine.IO packet from its JSON notation."""
    return EioPacket(EioType[obj["type"]], value(obj.get("data", "")))


def handshake(obj: dict[str, Any]) -> Handshake:
    """A handshake from the JSON object of an OPEN packet."""
    return Handshake(
        obj["sid"],
        tuple(obj["upgrades"]),
        obj["pingInterval"],
        obj["pingTimeout"],
        obj["maxPayload"],
    )


@dataclass(frozen=True)
class Case:
    """One golden vector, named by its source for test ids."""

    source: str
    data: dict[str, Any]

    def __repr__(self) -> str:
        return self.source.split("§", 1)[-1].strip()


def cases(name: str, key: str, sub: str | None = None) -> list[Case]:
    """The vectors under ``key`` (and ``sub``) of ``vectors/<name>.json``."""
    section: Any = load(name)[key]
    if sub is not None:
        section = section[sub]
    return [Case(entry["source"], entry) for entry in section]


def ids(case: Case) -> str:
    """A readable pytest id for a vector."""
    return repr(case)
