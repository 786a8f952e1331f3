"""triosio's JSON is byte-identical to JavaScript's JSON.stringify.

Each value crosses to node as the standard library writes it (floats as their
shortest round-trip repr, lone surrogates as escapes), so node holds exactly the
same value; node answers ``JSON.stringify(JSON.parse(text))``, which must equal
``triosio._proto._json.dumps(value)`` byte for byte. One node process serves
the whole module.
"""

from __future__ import annotations

import json
import math
import random
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from node_codec import NodeCodec, require_peers

from triosio._proto import _json
from triosio._proto.sio import JSONEncoder, SioPacket, SioType

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def node() -> Iterator[NodeCodec]:
    require_peers()
    codec = NodeCodec()
    yield codec
    codec.close()


def _stringify(node: NodeCodec, values: list[Any]) -> list[str]:
    response = node.call("stringify", json=[json.dumps(v) for v in values])
    assert "error" not in response, response["error"]
    out: list[str] = response["out"]
    return out


def _assert_identical(node: NodeCodec, values: list[Any]) -> None:
    theirs = _stringify(node, values)
    for value, expected in zip(values, theirs, strict=True):
        ours = _json.dumps(value)
        assert ours.encode("utf-8") == expected.encode("utf-8"), value


FLOATS = [
    0.0, -0.0, 1.0, -1.0, 0.5, 100.0, 123456789.0, 1e15, 1e16, 1e17, 1e20, 1e21, 1e22,
    1.5e21, 123e18, 1e-6, 1e-7, 1.5e-7, 0.000001, 0.0000015, 1e-5, 2.5e-5, 1e100, -1e-100,
    5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, -1.7976931348623157e308,
    0.1 + 0.2, 1 / 3, 2 / 3, math.pi, math.e, 9007199254740992.0, 9007199254740993.0,
    4.35, 0.3, 1.1, 100.5, 1e-323, 4.9406564584124654e-324, 123456789012345680000.0,
    1.2345678901234567e-5, 0.1, 1e21 - 65536, 999999999999999900000.0,
]  # fmt: skip


def _random_floats(count: int) -> list[float]:
    # Seeded, so every run checks the same values: random bit patterns (every
    # exponent), random decimals, and powers of two.
    rng = random.Random(20240506)
    out: list[float] = []
    while len(out) < count:
        (value,) = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))
        if math.isfinite(value):
            out.append(value)
    out += [round(rng.uniform(-1e6, 1e6), rng.randint(0, 12)) for _ in range(count // 4)]
    out += [2.0**k for k in range(-1074, 1024, 7)]
    return out


def test_floats_of_every_shape(node: NodeCodec) -> None:
    _assert_identical(node, FLOATS)


def test_random_floats(node: NodeCodec) -> None:
    _assert_identical(node, _random_floats(4000))


def test_integers(node: NodeCodec) -> None:
    ints = [0, 1, -1, 2**31 - 1, -(2**31), 2**32, 2**53, -(2**53), 2**53 - 1, 10**15, 10**16]
    _assert_identical(node, ints)


STRINGS = [
    "",
    "plain",
    "h\u00e9llo w\u00f6rld",
    "\u20ac\u00a3\u00a5",
    "\U0001f600\U0001f468\u200d\U0001f469\u200d\U0001f467",
    "\u4e2d\u6587 \u0627\u0644\u0639\u0631\u0628\u064a\u0629 \u05e2\u05d1\u05e8\u05d9\u05ea",
    "\ud800",
    "\udfff",
    "a\ud83db",
    "\ude00\ud83d",  # a low then a high: two lone surrogates
    "\ud83d\ude00",  # a pair as two code points: JavaScript sees one character
    "\u2028\u2029",
    '"quoted" \\backslash\\ /slash/',
    "</script><!--",
    "\x7f\x80\x9f\xa0\u00ad\ufeff\ufffe\uffff",
    "".join(chr(i) for i in range(32)),
    "tab\there\nnew\rline\bback\fform",
]


def test_strings(node: NodeCodec) -> None:
    _assert_identical(node, STRINGS)


CONTAINERS: list[Any] = [
    None,
    True,
    False,
    [],
    {},
    [[]],
    [{}],
    {"a": {}},
    [None, True, False, 0, -0.0, 1.0, "s", [1.5, [2.0, [3e-7]]]],
    {"b": 1, "a": 2, "c": {"z": [1, {"y": None, "x": True}], "d": "e"}},
    {"zeta": 1, "alpha": 2, "Mid": 3, "_under": 4, "": 5, "\u00e9": 6, "\U0001f600": 7},
    {"nested": {"deeper": {"deepest": [1, 2, {"k": "v\u2028"}]}}},
    ["message", {"user": "alice", "text": "hi \U0001f44b", "at": 1714979289123, "score": 0.75}],
    [[[[[[[[[[[[[[[[[["deep"]]]]]]]]]]]]]]]]]],
]


def test_containers_and_key_order(node: NodeCodec) -> None:
    _assert_identical(node, CONTAINERS)


def test_event_packets_write_the_same_json(node: NodeCodec) -> None:
    # The packet text is the type digit and JSON.stringify of the arguments.
    values = [*FLOATS, *STRINGS, *CONTAINERS]
    theirs = _stringify(node, [["v", v] for v in values])
    for value, expected in zip(values, theirs, strict=True):
        (text,) = JSONEncoder().encode(SioPacket(SioType.EVENT, "/", ["v", value]))
        assert text == "2" + expected
