"""Values as the JavaScript adapters carry them between servers (§3 of ``redis-wire.md``).

Sans-I/O. MessagePack in notepack.io's dialect (the JavaScript adapters'
codec) and JSON as ``JSON.stringify`` writes it, with the conversions a Node
server applies when it passes a value on: dates become ``Date.toJSON()``
strings, NaN and the infinities null, a Buffer inside JSON
``{"type": "Buffer", "data": [...]}``, room names ``String(room)``.
Decoders take untrusted bytes and raise :class:`WireError`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import msgpack

from .._errors import LocalProtocolError, RemoteProtocolError
from .._proto._json import BINARY_TYPES, JSONReader, dumps, js_number
from .._proto.msgpack_parser import ext_formats

#: Deepest nesting of a value we convert; deeper messages are dropped.
MAX_DEPTH = 100
#: Longest integer (in digits) accepted in JSON from another server.
MAX_INT_DIGITS = 400


class WireError(Exception):
    """A message from another server that does not follow the wire format (dropped)."""


# ---------------------------------------------------------------- JavaScript values


def js_string(value: object) -> str:
    """``String(value)`` as JavaScript writes it, for room names that are not strings."""
    if isinstance(value, str):
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value:
            return "NaN"
        if value in (math.inf, -math.inf):
            return "Infinity" if value > 0 else "-Infinity"
        return js_number(value)
    if isinstance(value, BINARY_TYPES):
        return bytes(value).decode("utf-8", "replace")
    raise WireError(f"a room name cannot be a {type(value).__name__}")


def _days_to_civil(days: int) -> tuple[int, int, int]:
    # Proleptic Gregorian date of a day count from 1970-01-01 (any sign), by
    # 400-year eras; Python's datetime stops at years 1..9999, JavaScript's Date does not.
    days += 719468
    era = days // 146097
    doe = days - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    year = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return (year + (month <= 2), month, day)


#: JavaScript's Date range: ±8.64e15 ms around the epoch.
_DATE_LIMIT_MS = 8_640_000_000_000_000


def date_to_json(ms: int) -> str | None:
    """``new Date(ms).toJSON()``: ``YYYY-MM-DDTHH:MM:SS.sssZ``, or None when invalid."""
    if not -_DATE_LIMIT_MS <= ms <= _DATE_LIMIT_MS:
        return None
    days, rest = divmod(ms, 86_400_000)
    year, month, day = _days_to_civil(days)
    seconds, millis = divmod(rest, 1000)
    hh, mm, ss = seconds // 3600, seconds // 60 % 60, seconds % 60
    # Years outside 0..9999 take the expanded form, as toISOString writes them.
    ytext = f"{year:04d}" if 0 <= year <= 9999 else f"{'+' if year > 0 else '-'}{abs(year):06d}"
    return f"{ytext}-{month:02d}-{day:02d}T{hh:02d}:{mm:02d}:{ss:02d}.{millis:03d}Z"


def _timestamp_ms(ts: msgpack.Timestamp) -> int:
    # notepack builds the Date from seconds and nanoseconds; Date keeps whole ms,
    # truncated toward zero.
    total_ns: int = ts.seconds * 1_000_000_000 + ts.nanoseconds
    ms = abs(total_ns) // 1_000_000
    return ms if total_ns >= 0 else -ms


class _Undefined:
    """JavaScript's ``undefined`` from a legacy notepack value (fixext 1, type 0)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "undefined"


UNDEFINED: Any = _Undefined()


def plain(value: Any, _depth: int = 0) -> Any:
    """A decoded value as a Node server would pass it on (§3.2).

    Timestamps become ``Date.toJSON()`` strings, NaN and the infinities None,
    map keys strings; ``undefined`` is left out of maps and None in arrays;
    an unknown extension type is ``[type, data]``. Bytes stay bytes.

    Raises:
        WireError: the value is nested deeper than :data:`MAX_DEPTH`.
    """
    if _depth > MAX_DEPTH:
        raise WireError(f"value nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, (str, bool, int, bytes)) or value is None:
        return value
    if isinstance(value, float):
        return None if value != value or value in (math.inf, -math.inf) else value
    if isinstance(value, list):
        return [None if v is UNDEFINED else plain(v, _depth + 1) for v in value]
    if isinstance(value, dict):
        return {js_string(k): plain(v, _depth + 1) for k, v in value.items() if v is not UNDEFINED}
    if isinstance(value, msgpack.Timestamp):
        return date_to_json(_timestamp_ms(value))
    if isinstance(value, msgpack.ExtType):
        return [value.code, value.data]
    if value is UNDEFINED:
        return None
    if isinstance(value, tuple):
        return [plain(v, _depth + 1) for v in value]
    raise WireError(f"unexpected value of type {type(value).__name__}")


# ---------------------------------------------------------------- MessagePack

_FIXEXT1, _FIXEXT8 = 0xD4, 0xD7


def _ext_hook(formats: list[int] | None) -> Any:
    # notepack's legacy type-0 values, told apart by the format byte (§3.2):
    # fixext 1 is undefined, fixext 8 a Date in ms, other sizes an ArrayBuffer.
    # Any other type decodes as notepack does: [type, data].
    order = iter(formats or ())

    def hook(code: int, data: bytes) -> Any:
        fmt = next(order, None)
        if code != 0:
            return msgpack.ExtType(code, data)
        if fmt == _FIXEXT1:
            return UNDEFINED
        if fmt == _FIXEXT8:
            ms: int = int.from_bytes(data, "big", signed=True)
            return msgpack.Timestamp.from_unix_nano(ms * 1_000_000)
        return data

    return hook


def unpack(payload: bytes) -> Any:
    """Decode one MessagePack value (notepack's dialect, §3.2).

    Raises:
        WireError: not exactly one valid value.
    """
    try:
        maybe_legacy = b"\xd4\x00" in payload or b"\xd7\x00" in payload
        formats = ext_formats(payload) if maybe_legacy else None
        return msgpack.unpackb(
            payload,
            raw=False,
            strict_map_key=False,
            timestamp=0,
            ext_hook=_ext_hook(formats),
        )
    except (
        ValueError,  # includes ExtraData, FormatError, StackError, UnicodeDecodeError
        TypeError,  # an array as a map key (unhashable)
        OverflowError,
        RecursionError,
        IndexError,
    ) as exc:
        raise WireError(f"invalid MessagePack: {type(exc).__name__}: {exc}"[:200]) from None


def _pack_default(obj: Any) -> Any:
    if isinstance(obj, (bytearray, memoryview)):
        return bytes(obj)
    raise TypeError(f"cannot encode an object of type {type(obj).__name__} with MessagePack")


_packer = msgpack.Packer(use_bin_type=True, datetime=True, default=_pack_default)


def pack(obj: Any) -> bytes:
    """Encode ``obj`` as notepack writes it: str, bin, arrays, maps, Dates as ext -1.

    Raises:
        LocalProtocolError: ``obj`` holds something MessagePack cannot carry.
    """
    global _packer
    try:
        return _packer.pack(obj)  # type: ignore[no-any-return]
    except (TypeError, ValueError, OverflowError) as exc:
        # A failed pack may leave bytes in the packer's buffer: start afresh.
        _packer = msgpack.Packer(use_bin_type=True, datetime=True, default=_pack_default)
        raise LocalProtocolError(f"cannot encode for the cluster: {exc}") from None


# ---------------------------------------------------------------- JSON


def jsonable(value: Any, depth: int = 0) -> Any:
    """What ``JSON.stringify`` makes of ``value`` as Node would hold it (§3.1).

    A Buffer becomes ``{"type": "Buffer", "data": [...]}``, NaN null, a set a
    list, a date its ISO string; what JSON has no form for, null.
    """
    if depth > MAX_DEPTH:
        return None
    if isinstance(value, (str, bool, int)) or value is None:
        return value
    if isinstance(value, float):
        return None if value != value or value in (math.inf, -math.inf) else value
    if isinstance(value, BINARY_TYPES):
        return {"type": "Buffer", "data": list(bytes(value))}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, depth + 1) for v in value]
    if isinstance(value, Mapping):
        return {js_string(k): jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return [jsonable(v, depth + 1) for v in value]
    if isinstance(value, msgpack.Timestamp):
        return date_to_json(_timestamp_ms(value))
    if hasattr(value, "isoformat") and callable(value.isoformat):
        return value.isoformat()
    return None  # what JSON.stringify does with a function or undefined


def to_json(obj: Any) -> bytes:
    """``JSON.stringify(obj)`` as UTF-8, ``{`` at byte 0 for an object (§3.1).

    Values JSON cannot carry are converted as Node would send them (bytes as a
    Buffer object, NaN as null); what has no JSON form at all becomes null.
    """
    try:
        text = dumps(obj, max_depth=MAX_DEPTH)
    except LocalProtocolError:
        text = dumps(jsonable(obj), max_depth=MAX_DEPTH + 2)
    return text.encode("utf-8", "surrogatepass")


_json_reader = JSONReader(max_depth=MAX_DEPTH, max_int_digits=MAX_INT_DIGITS)


def load_message(payload: bytes) -> Any:
    """A request or response: JSON if byte 0 is ``{``, else MessagePack (§3.1).

    Raises:
        WireError: neither.
    """
    if payload[:1] == b"{":
        try:
            return _json_reader.loads(payload.decode("utf-8"))
        except UnicodeDecodeError:
            raise WireError("JSON that is not UTF-8") from None
        except RemoteProtocolError as exc:
            raise WireError(f"invalid JSON: {exc}"[:200]) from None
    return unpack(payload)
