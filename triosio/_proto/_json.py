"""JSON as JavaScript writes it, and a JSON reader with limits.

Encoding: the output is byte-identical to ``JSON.stringify`` for the same values
(ECMA-262, "JSON.stringify" and "Number::toString"): compact separators, key
order kept, non-ASCII left as UTF-8, lone surrogates escaped as ``\\udXXX``,
numbers formatted the JavaScript way (``1`` not ``1.0``, ``1e-7`` not ``1e-07``,
``100000000000000000000`` not ``1e+20``). ``NaN`` and the infinities are refused.
``bytes`` become binary placeholders when a collector is given.

One difference is left on purpose: JavaScript objects list integer-like keys
(``"0"``, ``"42"``) first, in ascending order, whatever the insertion order; a
Python ``dict`` keeps its insertion order. Peers decode the same object either
way, and reordering would cost every encode a key scan.

The fast path is CPython's C encoder; its float formatting differs from
JavaScript's only in shapes a regex can spot in the output (``1.0``, ``1e-05``,
``1e+16``), and only then do we re-encode exactly, in Python.

Decoding: ``json`` from the standard library, with a cap on nesting depth (so no
input can recurse without bound), on integer digits, and refusing ``NaN``,
``Infinity`` and numbers that overflow to infinity. Every check is linear in the
input size, so no input of bounded size can make it loop for long.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from typing import Any

from .._errors import (
    IntegerTooLong,
    InvalidJSON,
    LocalProtocolError,
    NestingTooDeep,
)

_encode_str: Callable[[str], str] = json.encoder.encode_basestring
_c_make_encoder: Any = json.encoder.c_make_encoder  # type: ignore[attr-defined]

BINARY_TYPES = (bytes, bytearray, memoryview)


class _FoundBinary(Exception):
    pass


def _no_binary(obj: object) -> object:
    if isinstance(obj, BINARY_TYPES):
        raise _FoundBinary
    raise TypeError(f"cannot encode an object of type {type(obj).__name__} as JSON")


def _make_c_encoder(default: Callable[[object], object]) -> Callable[[object, int], Any]:
    # (markers, default, encoder, indent, key_sep, item_sep, sort_keys, skipkeys, allow_nan)
    return _c_make_encoder(None, default, _encode_str, None, ":", ",", False, False, False)  # type: ignore[no-any-return]


_fast_encoder = _make_c_encoder(_no_binary)

# Python's float repr differs from JavaScript's only for integral values ("1.0"),
# and in scientific notation ("1e-05", "1e+16"). Strings may match too: then we
# simply take the exact path.
_FLOAT_SUSPECT = re.compile(r"[0-9](?:\.0(?![0-9])|e[-+])")
_SURROGATE = re.compile("[\ud800-\udfff]")


def js_number(value: float) -> str:
    """Format a float exactly as JavaScript's ``Number.prototype.toString``."""
    if value != value or value in (float("inf"), float("-inf")):
        raise LocalProtocolError(f"cannot encode {value!r} as JSON")
    if value == 0:
        return "0"  # also -0, as JSON.stringify(-0) === "0"
    sign = "-" if value < 0 else ""
    text = repr(abs(value))  # the shortest round-trip digits, as JavaScript picks
    mantissa, _, exp_text = text.partition("e")
    exponent = int(exp_text) if exp_text else 0
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    # value = 0.d1d2...dk * 10**n
    n = len(whole) + exponent if whole != "0" else exponent - (len(frac) - len(frac.lstrip("0")))
    digits = digits.rstrip("0") or "0"
    k = len(digits)
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    e = n - 1
    exp = f"e+{e}" if e >= 0 else f"e-{-e}"
    if k == 1:
        return sign + digits + exp
    return sign + digits[0] + "." + digits[1:] + exp


def _js_string(s: str) -> str:
    out = _encode_str(s)
    if not out.isascii() and _SURROGATE.search(out):
        out = _escape_surrogates(out)
    return out


def _escape_surrogates(text: str) -> str:
    # Join valid pairs first (JavaScript sees a pair as one character), then
    # escape what is left alone, as JSON.stringify does since ES2019.
    joined = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", joined)


def _exact(obj: Any, binary: list[bytes] | None, depth: int, max_depth: int) -> str:
    """Encode like JSON.stringify, in Python: the slow path, always exact."""
    if depth > max_depth:
        raise LocalProtocolError(f"data nested deeper than {max_depth} levels")
    if isinstance(obj, str):
        return _js_string(obj)
    if obj is None:
        return "null"
    if obj is True:
        return "true"
    if obj is False:
        return "false"
    if isinstance(obj, int):
        return int.__repr__(obj)
    if isinstance(obj, float):
        return js_number(obj)
    if isinstance(obj, (list, tuple)):
        return "[" + ",".join(_exact(v, binary, depth + 1, max_depth) for v in obj) + "]"
    if isinstance(obj, dict):
        parts = []
        for key, value in obj.items():
            parts.append(_js_key(key) + ":" + _exact(value, binary, depth + 1, max_depth))
        return "{" + ",".join(parts) + "}"
    if isinstance(obj, BINARY_TYPES):
        if binary is None:
            raise LocalProtocolError("binary data cannot be encoded here")
        binary.append(bytes(obj))
        return '{"_placeholder":true,"num":' + str(len(binary) - 1) + "}"
    raise LocalProtocolError(f"cannot encode an object of type {type(obj).__name__} as JSON")


def _js_key(key: object) -> str:
    if isinstance(key, str):
        return _js_string(key)
    if key is True:
        return '"true"'
    if key is False:
        return '"false"'
    if key is None:
        return '"null"'
    if isinstance(key, int):
        return '"' + int.__repr__(key) + '"'
    if isinstance(key, float):
        return '"' + js_number(key) + '"'
    raise LocalProtocolError(f"cannot use a key of type {type(key).__name__} in JSON")


def dumps(obj: Any, *, max_depth: int = 1000) -> str:
    """Encode ``obj`` as ``JSON.stringify`` would. No binary allowed.

    Raises:
        LocalProtocolError: for NaN/Infinity, unserialisable objects, binary
            data, or nesting deeper than ``max_depth``.
    """
    try:
        out = "".join(_fast_encoder(obj, 0))
    except _FoundBinary:
        raise LocalProtocolError("binary data cannot be encoded here") from None
    except (ValueError, TypeError, RecursionError) as exc:
        raise LocalProtocolError(f"cannot encode as JSON: {exc}") from None
    # Substring tests first: they are far cheaper than the regex, which runs only
    # when one of them hits (words like "e-mail" make them hit now and then).
    if (".0" in out or "e-" in out or "e+" in out) and _FLOAT_SUSPECT.search(out):
        return _exact(obj, None, 0, max_depth)
    if not out.isascii() and _SURROGATE.search(out):
        return _escape_surrogates(out)
    return out


def dumps_binary(obj: Any, *, max_depth: int = 1000) -> tuple[str, list[bytes]]:
    """Encode ``obj`` with every bytes-like value replaced by a placeholder.

    Returns the JSON text and the attachments in placeholder order. Attachments
    are numbered depth first, in key order, as the JavaScript parser does.
    """
    try:
        out = "".join(_fast_encoder(obj, 0))
    except _FoundBinary:
        # Swap bytes for placeholders in a copy, then let the C encoder do the rest.
        attachments: list[bytes] = []
        try:
            replaced = _replace_binary(obj, attachments, 0, max_depth)
        except RecursionError:
            raise LocalProtocolError("data nested too deeply to encode") from None
        return dumps(replaced, max_depth=max_depth), attachments
    except (ValueError, TypeError, RecursionError) as exc:
        raise LocalProtocolError(f"cannot encode as JSON: {exc}") from None
    if (".0" in out or "e-" in out or "e+" in out) and _FLOAT_SUSPECT.search(out):
        return _exact(obj, None, 0, max_depth), []
    if not out.isascii() and _SURROGATE.search(out):
        return _escape_surrogates(out), []
    return out, []


def _replace_binary(obj: Any, attachments: list[bytes], depth: int, max_depth: int) -> Any:
    if depth > max_depth:
        raise LocalProtocolError(f"data nested deeper than {max_depth} levels")
    if isinstance(obj, BINARY_TYPES):
        attachments.append(bytes(obj))
        return {"_placeholder": True, "num": len(attachments) - 1}
    if isinstance(obj, (list, tuple)):
        return [_replace_binary(v, attachments, depth + 1, max_depth) for v in obj]
    if isinstance(obj, dict):
        return {k: _replace_binary(v, attachments, depth + 1, max_depth) for k, v in obj.items()}
    return obj


def contains_binary(obj: Any, _depth: int = 0) -> bool:
    """Whether ``obj`` holds bytes, bytearray or memoryview at any depth."""
    if isinstance(obj, BINARY_TYPES):
        return True
    if _depth > 1000:
        return False
    if isinstance(obj, (list, tuple)):
        return any(contains_binary(v, _depth + 1) for v in obj)
    if isinstance(obj, dict):
        return any(contains_binary(v, _depth + 1) for v in obj.values())
    return False


# ---------------------------------------------------------------- decoding

# A JSON string, or an unterminated one running to the end of the text. Matching
# never fails at a quote, so the scan is linear: requiring the closing quote made
# an unterminated string of escaped quotes cost O(n**2) (33 ``[`` then ``"\\"``
# repeated took seconds for 64 KB).
_STRING_LITERAL = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_INNERMOST = re.compile(r"\[\]|\{\}")


def _refuse_constant(name: str) -> Any:
    raise InvalidJSON(f"{name} is not valid JSON")


def _reject_infinite(text: str) -> float:
    value = float(text)
    if value - value != 0.0:  # inf - inf is nan; every finite value gives 0.0
        raise InvalidJSON(f"number out of range: {text[:40]}")
    return value


class JSONReader:
    """Parses JSON text with limits. One instance per set of limits.

    Args:
        max_depth: Deepest allowed nesting of arrays and objects.
        max_int_digits: Most digits allowed in one integer.
    """

    __slots__ = ("_decoder", "_deep_run", "_int_chars", "_scan", "max_depth", "max_int_digits")

    def __init__(self, *, max_depth: int = 32, max_int_digits: int = 100) -> None:
        self.max_depth = max_depth
        self.max_int_digits = max_int_digits
        # More opening brackets in a row than the limit: too deep, found in one pass.
        self._deep_run = re.compile(r"[\[{]{" + str(max_depth + 1) + "}")
        # Longest integer text that needs no closer look (a sign and the digits).
        self._int_chars = max_int_digits
        # The hooks run only for numbers (never for strings, arrays or objects), so
        # they cost nothing on number-free data and keep every check in one place.
        self._decoder = json.JSONDecoder(
            parse_constant=_refuse_constant,
            parse_int=self._int_parser(),
            parse_float=_reject_infinite,
        )
        self._scan: Callable[[str, int], tuple[Any, int]] = self._decoder.scan_once  # type: ignore[attr-defined]

    def _int_parser(self) -> Callable[[str], int]:
        # A closure over the limits: called for every integer, so no attribute lookups.
        longest = self._int_chars
        max_digits = self.max_int_digits

        def parse_int(text: str) -> int:
            if len(text) > longest:
                digits = len(text) - (text[0] == "-")
                if digits > max_digits:
                    raise IntegerTooLong(f"integer with {digits} digits (at most {max_digits})")
            return int(text)

        return parse_int

    def _check_depth(self, text: str) -> None:
        brackets = _NOT_BRACKET.sub("", _STRING_LITERAL.sub("", text))
        if self._deep_run.search(brackets):
            raise NestingTooDeep(f"JSON nested deeper than {self.max_depth} levels")
        depth = 0
        while brackets:
            inner = _INNERMOST.sub("", brackets)
            if inner == brackets:
                return  # unbalanced: the parser reports it
            depth += 1
            if depth > self.max_depth:
                raise NestingTooDeep(f"JSON nested deeper than {self.max_depth} levels")
            brackets = inner

    def loads(self, text: str, start: int = 0) -> Any:
        """Parse ``text[start:]``; raise a :class:`RemoteProtocolError` subclass if invalid.

        ``start`` saves the caller a copy when the JSON follows a header.
        """
        # Nesting d needs d opening brackets, so short texts need no depth check.
        if len(text) - start > self.max_depth and (
            text.count("[", start) + text.count("{", start) > self.max_depth
        ):
            self._check_depth(text[start:])
        try:
            try:
                # Fast path: one scan from the first character. Leading or trailing
                # whitespace, trailing data and syntax errors take the full decode,
                # which accepts exactly what JSON.parse accepts.
                value, end = self._scan(text, start)
                if end == len(text):
                    return value
            except StopIteration:
                pass
            return self._decoder.decode(text[start:] if start else text)
        except (IntegerTooLong, InvalidJSON):
            raise
        except RecursionError:
            raise NestingTooDeep("JSON nested too deeply") from None
        except ValueError as exc:  # JSONDecodeError, int conversion limits
            raise InvalidJSON(f"invalid JSON: {exc}") from None


@functools.lru_cache(maxsize=64)
def shared_reader(max_depth: int = 32, max_int_digits: int = 100) -> JSONReader:
    """A :class:`JSONReader` for these limits, shared (it keeps no state per use)."""
    return JSONReader(max_depth=max_depth, max_int_digits=max_int_digits)
