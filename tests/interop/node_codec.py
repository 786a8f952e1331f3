"""Talks to tests/js/codec.js: the npm parsers as a line-oriented peer.

One node process per test module (see the ``codec`` fixtures of the modules
that use it). Values cross as JSON; bytes as ``{"$bytes": base64}`` and
datetimes as ``{"$date": epoch ms}``, both ways.
"""

from __future__ import annotations

import base64
import datetime
import importlib.util
import json
import select
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

from triosio._proto.eio import EioPacket, EioType
from triosio._proto.sio import SioPacket, SioType

TESTS = Path(__file__).resolve().parent.parent
JS_DIR = TESTS / "js"
SCRIPT = JS_DIR / "codec.js"
TIMEOUT = 30.0
PACKAGES = ("socket.io-parser", "engine.io-parser", "socket.io-msgpack-parser", "socket.io-client")


def _root_conftest() -> ModuleType:
    # Loaded by path: the module name "conftest" is shared by every conftest.py.
    spec = importlib.util.spec_from_file_location("_triosio_tests_conftest", TESTS / "conftest.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def require_peers() -> None:
    """Skip (locally) or fail (CI=true) unless node and the npm parsers are there."""
    _root_conftest().require_node_modules(*PACKAGES)


def to_wire(value: Any) -> Any:
    """A Python value as the JSON the node side understands."""
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, datetime.datetime):
        return {"$date": round(value.timestamp() * 1000)}
    if isinstance(value, list | tuple):
        return [to_wire(v) for v in value]
    if isinstance(value, dict):
        return {k: to_wire(v) for k, v in value.items()}
    return value


def from_wire(value: Any) -> Any:
    """The Python value of what the node side wrote."""
    if isinstance(value, list):
        return [from_wire(v) for v in value]
    if isinstance(value, dict):
        if value.keys() == {"$bytes"}:
            return base64.b64decode(value["$bytes"])
        if value.keys() == {"$date"}:
            return datetime.datetime.fromtimestamp(value["$date"] / 1000, datetime.UTC)
        return {k: from_wire(v) for k, v in value.items()}
    return value


def js_equal(a: Any, b: Any) -> bool:
    """Equality as JavaScript sees the values: every number is a double.

    Numbers cross the JSON lines as JavaScript prints them: 2**60 arrives as
    ``1152921504606847000``, the same double, a different Python int.
    """
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(js_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(js_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and bool(a == b)


def same_packet(a: SioPacket, b: SioPacket) -> bool:
    """Packets equal field by field, the data compared by :func:`js_equal`."""
    return (a.type, a.nsp, a.id) == (b.type, b.nsp, b.id) and js_equal(a.data, b.data)


def sio_to_wire(packet: SioPacket) -> dict[str, Any]:
    """A Socket.IO packet as socket.io-parser's packet object (absent = left out)."""
    out: dict[str, Any] = {"type": int(packet.type), "nsp": packet.nsp}
    if packet.data is not None:
        out["data"] = to_wire(packet.data)
    if packet.id is not None:
        out["id"] = packet.id
    return out


def sio_from_wire(obj: dict[str, Any]) -> SioPacket:
    """A packet object decoded by the npm parser, as a SioPacket."""
    return SioPacket(SioType(obj["type"]), obj["nsp"], from_wire(obj.get("data")), obj.get("id"))


def eio_to_wire(packet: EioPacket) -> dict[str, Any]:
    """An Engine.IO packet as engine.io-parser's packet object."""
    out: dict[str, Any] = {"type": packet.type.name.lower()}
    if packet.data != "":
        out["data"] = to_wire(packet.data)
    return out


def eio_from_wire(obj: dict[str, Any]) -> EioPacket:
    """A packet object decoded by engine.io-parser, as an EioPacket."""
    return EioPacket(EioType[obj["type"].upper()], from_wire(obj.get("data", "")))


class NodeCodec:
    """A running ``node codec.js``: send a request, get its response."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            ["node", str(SCRIPT)],
            cwd=JS_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            bufsize=1,
        )

    def call(self, op: str, **fields: Any) -> dict[str, Any]:
        """One request and its response; raise if node failed or took too long."""
        assert self._proc.stdin is not None
        assert self._proc.stdout is not None
        # ensure_ascii: lone surrogates must cross as \\udXXX escapes.
        self._proc.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        self._proc.stdin.flush()
        ready, _, _ = select.select([self._proc.stdout], [], [], TIMEOUT)
        if not ready:
            raise TimeoutError(f"node codec.js gave no answer to {op} in {TIMEOUT} s")
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"node codec.js exited (code {self._proc.poll()})")
        response: dict[str, Any] = json.loads(line)
        return response

    def close(self) -> None:
        """End the node process (it exits when its stdin closes)."""
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()
