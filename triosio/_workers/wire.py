"""The workers' wire formats, sans-I/O.

- Session ids that name their worker: ``w<index>-<random>``, so the acceptor
  routes a request by its ``sid`` with no table to keep.
- The ``sid`` of a request head, read as little as possible.
- The frames of the local bus (pub/sub between the workers, through the
  supervisor's hub): a 4-byte big-endian length, a type byte, then fields, each
  a 4-byte length and its bytes.
- Redis's glob patterns (``PSUBSCRIBE``), which the cluster protocol uses.
"""

from __future__ import annotations

import re
import secrets
import struct
from collections.abc import Callable, Iterator
from enum import IntEnum
from urllib.parse import unquote_plus

_SID = re.compile(r"w(\d{1,4})-")


def sid_generator(worker: int) -> Callable[[], str]:
    """Session ids for worker ``worker``: 120 random bits, prefixed with the worker."""
    prefix = f"w{worker}-"
    return lambda: prefix + secrets.token_urlsafe(15)


def worker_of(sid: str) -> int | None:
    """The worker a session id was made by, or None if it is not a worker's."""
    match = _SID.match(sid)
    return int(match.group(1)) if match else None


def head_end(data: bytes) -> int:
    """Where a request head ends in ``data`` (after its blank line), or -1."""
    end = data.find(b"\r\n\r\n")
    return -1 if end < 0 else end + 4


#: The query parameter that asks for a worker in a handshake (tests, diagnostics).
WORKER_PARAM = "triosio-worker"


def head_param(data: bytes, name: str) -> str | None:
    """Query parameter ``name`` of the request line that starts ``data``."""
    line = data.split(b"\r\n", 1)[0]
    parts = line.split(b" ")
    if len(parts) != 3:
        return None
    _, _, query = parts[1].partition(b"?")
    key = name.encode() + b"="
    for part in query.split(b"&"):
        if part.startswith(key):
            try:
                return unquote_plus(part[len(key) :].decode("ascii"))
            except UnicodeDecodeError:
                return None
    return None


def head_sid(data: bytes) -> str | None:
    """The ``sid`` query parameter of the request line that starts ``data``."""
    return head_param(data, "sid")


def asked_worker(data: bytes) -> int | None:
    """The worker a handshake asks for (``?triosio-worker=N``), or None."""
    value = head_param(data, WORKER_PARAM)
    return int(value) if value is not None and value.isdigit() and len(value) < 5 else None


class Frame(IntEnum):
    """The types of the local bus's frames."""

    #: worker → hub: subscribe to a glob pattern (one field).
    PSUBSCRIBE = 1
    #: worker → hub: subscribe to a channel (one field).
    SUBSCRIBE = 2
    #: worker → hub: publish (channel, payload).
    PUBLISH = 3
    #: worker → hub: how many subscribe to a channel (request id, channel).
    NUMSUB = 4
    #: hub → worker: a message (subscription, channel, payload).
    MESSAGE = 5
    #: hub → worker: the answer to NUMSUB (request id, count as decimal).
    NUMSUB_REPLY = 6


_LEN = struct.Struct(">I")
#: The largest frame either side accepts (a cluster message is far smaller).
MAX_FRAME = 64 * 1024 * 1024


class FrameError(Exception):
    """A frame the other side should never have sent."""


def encode(kind: Frame, *fields: bytes) -> bytes:
    """One frame."""
    body = b"".join(_LEN.pack(len(f)) + f for f in fields)
    return _LEN.pack(len(body) + 1) + bytes((kind,)) + body


class FrameDecoder:
    """Splits a byte stream into frames: ``feed(data)``, then iterate :meth:`frames`."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        """Add bytes received."""
        self._buffer += data

    def frames(self) -> Iterator[tuple[Frame, list[bytes]]]:
        """Every complete frame received so far."""
        buffer = self._buffer
        pos = 0
        try:
            while len(buffer) - pos >= 4:
                (size,) = _LEN.unpack_from(buffer, pos)
                if size < 1 or size > MAX_FRAME:
                    raise FrameError(f"frame of {size} bytes")
                if len(buffer) - pos - 4 < size:
                    break
                start = pos + 4
                end = start + size
                try:
                    kind = Frame(buffer[start])
                except ValueError:
                    raise FrameError(f"unknown frame type {buffer[start]}") from None
                fields = []
                at = start + 1
                while at < end:
                    if end - at < 4:
                        raise FrameError("truncated field")
                    (length,) = _LEN.unpack_from(buffer, at)
                    at += 4
                    if at + length > end:
                        raise FrameError("truncated field")
                    fields.append(bytes(buffer[at : at + length]))
                    at += length
                pos = end
                yield kind, fields
        finally:
            del buffer[:pos]


def glob_matcher(pattern: bytes) -> Callable[[bytes], bool]:
    """Whether a channel matches a Redis glob pattern (``*``, ``?``, ``[...]``, ``\\``)."""
    out = []
    i = 0
    text = pattern.decode("latin-1")
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            out.append(re.escape(text[i + 1]))
            i += 2
            continue
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[":
            close = text.find("]", i + 1)
            if close < 0:
                out.append(re.escape(c))
            else:
                inner = text[i + 1 : close]
                negate = inner.startswith("^")
                if negate:
                    inner = inner[1:]
                escaped = "".join("\\" + ch if ch in "\\]^[" else ch for ch in inner)
                out.append(f"[{'^' if negate else ''}{escaped}]")
                i = close
        else:
            out.append(re.escape(c))
        i += 1
    regex = re.compile("".join(out), re.DOTALL)
    return lambda channel: regex.fullmatch(channel.decode("latin-1")) is not None
