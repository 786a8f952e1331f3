"""The WebSocket upgrade GET parsed without h11 (``H11Connection._fast_head``).

What it accepts it must read exactly as h11 does; everything else goes to h11,
so malformed input keeps its old answers. The parser is checked against h11 on
generated heads (hypothesis), and over loopback: upgrades that take the fast
path and ones that fall back, refused upgrades, the head limits.
"""

from __future__ import annotations

import base64
import json

import h11
import pytest
import trio
from eio_peers import read_raw_response, running_server
from hypothesis import given, settings
from hypothesis import strategies as st

from triosio import HTTPLimits
from triosio._engine.exchange import Request
from triosio._engine.h11server import H11Connection

KEY = base64.b64encode(b"0123456789abcdef").decode()
UPGRADE = (
    "GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
    "Host: 127.0.0.1:5000\r\n"
    "Connection: Upgrade\r\n"
    "Upgrade: websocket\r\n"
    f"Sec-WebSocket-Key: {KEY}\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "\r\n"
).encode()


async def _unused_handler(exchange: object) -> None:
    raise AssertionError("not called")


def _connection(limits: HTTPLimits | None = None) -> H11Connection:
    stream, _peer = trio.testing.memory_stream_pair()
    return H11Connection(stream, _unused_handler, limits or HTTPLimits())


def _by_h11(data: bytes, limits: HTTPLimits) -> Request | None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_head_size)
    conn.receive_data(data)
    try:
        event = conn.next_event()
    except h11.RemoteProtocolError:
        return None
    if not isinstance(event, h11.Request):
        return None
    path, _, query = event.target.decode("latin-1").partition("?")
    return Request(
        method=event.method.decode("ascii"),
        path=path,
        query_string=query,
        headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers],
    )


def _same(a: Request, b: Request) -> bool:
    return (a.method, a.path, a.query_string, a.headers) == (
        b.method,
        b.path,
        b.query_string,
        b.headers,
    )


def test_a_plain_upgrade_takes_the_fast_path() -> None:
    conn = _connection()
    request = conn._fast_head(UPGRADE + b"\x81\x80rest")
    assert request is not None and conn.fast
    expected = _by_h11(UPGRADE, HTTPLimits())
    assert expected is not None and _same(request, expected)
    assert request.is_websocket_upgrade
    assert request.query == {"EIO": "4", "transport": "websocket"}
    assert conn.rest == b"\x81\x80rest"  # the bytes after the head: the first frame


@pytest.mark.parametrize(
    "data",
    [
        UPGRADE.replace(b"Host: ", b"HOST:\t"),
        UPGRADE.replace(b"Upgrade: websocket", b"upgrade:   WebSocket  \t"),
        UPGRADE.replace(b"\r\n\r\n", b"\r\nX-Empty:\r\nX-Sp:  a  b \r\n\r\n"),
        UPGRADE.replace(b"/engine.io/?", b"/e%20x/?q=%E9&"),
        UPGRADE.replace(b"?EIO=4&transport=websocket", b""),
    ],
)
def test_accepted_variants_read_as_h11_reads_them(data: bytes) -> None:
    fast = _connection()._fast_head(data)
    slow = _by_h11(data, HTTPLimits())
    assert fast is not None and slow is not None
    assert _same(fast, slow)


@pytest.mark.parametrize(
    "data",
    [
        UPGRADE[:-2],  # incomplete
        UPGRADE.replace(b"GET", b"POST"),
        UPGRADE.replace(b"HTTP/1.1", b"HTTP/1.0"),
        UPGRADE.replace(b"Host: 127.0.0.1:5000\r\n", b""),  # h11 wants a Host
        UPGRADE.replace(b"Host:", b"Host: a\r\nHost:"),
        UPGRADE.replace(b"Upgrade: websocket", b"Upgrade: h2c"),
        UPGRADE.replace(b"Upgrade: websocket\r\n", b""),
        UPGRADE.replace(b"Connection: Upgrade\r\n", b"Connection: Upgrade\r\n  folded\r\n"),
        UPGRADE.replace(b"Connection: Upgrade", b"Connection : Upgrade"),
        UPGRADE.replace(b"Connection: Upgrade", b"Connection: Up\x00grade"),
        UPGRADE.replace(b"Connection: Upgrade", b"Connection: Upgr\xe9de"),
        UPGRADE.replace(b"Connection: Upgrade", b"Connection: Up\rgrade"),
        UPGRADE.replace(b"\r\n\r\n", b"\r\nContent-Length: 3\r\n\r\nabc"),
        UPGRADE.replace(b"\r\n\r\n", b"\r\nTransfer-Encoding: chunked\r\n\r\n"),
        UPGRADE.replace(b"\r\n\r\n", b"\r\nExpect: 100-continue\r\n\r\n"),
        UPGRADE.replace(b"/engine.io/", b"/engine.io/\x7f"),
        UPGRADE.replace(b"\r\n", b"\n"),
    ],
)
def test_anything_else_is_left_to_h11(data: bytes) -> None:
    conn = _connection()
    assert conn._fast_head(data) is None
    assert not conn.fast


def test_the_head_limits_are_left_to_h11() -> None:
    big = UPGRADE.replace(b"\r\n\r\n", b"\r\nx-big: " + b"a" * 3000 + b"\r\n\r\n")
    assert _connection(HTTPLimits(max_head_size=2048))._fast_head(big) is None
    many = UPGRADE.replace(b"\r\n\r\n", b"\r\n" + b"".join(b"x-%d: v\r\n" % i for i in range(5)))
    assert _connection(HTTPLimits(max_headers=8))._fast_head(many + b"\r\n") is None
    assert _connection(HTTPLimits(max_headers=10))._fast_head(many + b"\r\n") is not None


_names = st.sampled_from(
    ["Host", "host", "Upgrade", "Connection", "Origin", "X-A", "x-b!#", "Content-Length", "a b"]
)
_values = st.text(alphabet=st.sampled_from("az09 \t:/.;,=\"'\x00\x7f\xe9\r\n"), max_size=12)
_targets = st.text(alphabet=st.sampled_from("/az?=&%.\x7f \xe9"), min_size=1, max_size=12)


@settings(max_examples=400, deadline=None)
@given(
    target=_targets,
    lines=st.lists(st.tuples(_names, st.sampled_from([": ", ":", " : ", ":\t"]), _values)),
    method=st.sampled_from(["GET", "GET", "POST", "get"]),
    host=st.booleans(),
)
def test_whatever_the_fast_path_accepts_h11_reads_the_same(
    target: str, lines: list[tuple[str, str, str]], method: str, host: bool
) -> None:
    head = f"{method} {target} HTTP/1.1\r\n"
    if host:
        head += "Host: x\r\n"
    head += "Upgrade: websocket\r\n"
    head += "".join(f"{name}{sep}{value}\r\n" for name, sep, value in lines)
    data = (head + "\r\n").encode("latin-1")
    limits = HTTPLimits()
    fast = _connection(limits)._fast_head(data)
    if fast is not None:
        slow = _by_h11(data, limits)
        assert slow is not None, data
        assert _same(fast, slow), data


# ---------------------------------------------------------------- over loopback


async def _exchange(srv: object, data: bytes) -> bytes:
    stream = await srv.connect()  # type: ignore[attr-defined]
    await stream.send_all(data)
    answer = await read_raw_response(stream)
    await stream.aclose()
    return answer


async def test_fast_upgrade_and_a_frame_in_the_same_segment() -> None:
    # The client's first frame (a masked "4hi" MESSAGE) right behind its head.
    payload = b"4hi"
    mask = b"\x01\x02\x03\x04"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    frame = bytes([0x81, 0x80 | len(payload)]) + mask + masked
    with trio.fail_after(10):
        async with running_server() as srv:
            stream = await srv.connect()
            await stream.send_all(UPGRADE + frame)
            data = b""
            while b"\r\n\r\n" not in data or not data.split(b"\r\n\r\n", 1)[1]:
                data += await stream.receive_some(65536)
            head, rest = data.split(b"\r\n\r\n", 1)
            assert head.startswith(b"HTTP/1.1 101 ")
            assert b"sec-websocket-accept: " in head.lower()
            # OPEN came in the same write as the 101.
            assert rest[0] == 0x81 and rest[2:3] == b"0"
            sid = json.loads(rest[2 : 2 + rest[1]][1:])["sid"]
            await srv.app.wait_messages(1)
            assert srv.app.messages == [(sid, "hi")]
            await stream.aclose()


async def test_fast_path_refusals_are_clean_and_close() -> None:
    with trio.fail_after(10):
        async with running_server() as srv:
            # A bad key: the handshake's own 400.
            answer = await _exchange(srv, UPGRADE.replace(KEY.encode(), b"short"))
            assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
            assert b"connection: close\r\n" in answer.lower()
            assert answer.endswith(b"invalid Sec-WebSocket-Key")
            # No EIO: the Engine.IO error, as JSON.
            answer = await _exchange(srv, UPGRADE.replace(b"EIO=4&", b""))
            head, body = answer.split(b"\r\n\r\n", 1)
            assert head.startswith(b"HTTP/1.1 400 ")
            assert json.loads(body) == {"code": 3, "message": "Bad request"}
            # Unknown transport.
            answer = await _exchange(srv, UPGRADE.replace(b"transport=websocket", b"transport=x"))
            assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["code"] == 0
            assert srv.engine.sessions == {}


async def test_fallbacks_still_upgrade_or_answer_as_before() -> None:
    with trio.fail_after(10):
        async with running_server(limits=HTTPLimits(max_headers=10)) as srv:
            # A head in two segments goes through h11 and still upgrades.
            stream = await srv.connect()
            await stream.send_all(UPGRADE[:40])
            await trio.sleep(0.05)
            await stream.send_all(UPGRADE[40:])
            data = b""
            while b"\r\n\r\n" not in data:
                data += await stream.receive_some(65536)
            assert data.startswith(b"HTTP/1.1 101 ")
            await stream.aclose()
            # Folded header line: h11's 400.
            folded = UPGRADE.replace(b"Connection: Upgrade\r\n", b"Connection: Upgrade\r\n x\r\n")
            answer = await _exchange(srv, folded)
            assert answer.startswith(b"HTTP/1.1 400 ")
            # Too many header lines: h11's path, 431.
            many = UPGRADE.replace(
                b"\r\n\r\n", b"\r\n" + b"".join(b"x-%d: v\r\n" % i for i in range(6)) + b"\r\n"
            )
            answer = await _exchange(srv, many)
            assert answer.startswith(b"HTTP/1.1 431 ")
            # No Host: h11's 400.
            answer = await _exchange(srv, UPGRADE.replace(b"Host: 127.0.0.1:5000\r\n", b""))
            assert answer.startswith(b"HTTP/1.1 400 ")
            assert srv.engine.sessions == {}


def test_response_heads_refuse_what_h11_refuses() -> None:
    from triosio._engine.h11server import _Abort, _head_bytes

    assert _head_bytes(400, [("content-type", "text/plain"), ("x", "")]) == (
        b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\nx: \r\n\r\n"
    )
    for name, value in [("x", "a\r\nset-cookie: 1"), ("x y", "v"), ("x", " v"), ("x", "v\x00")]:
        with pytest.raises(_Abort):
            _head_bytes(400, [(name, value)])
