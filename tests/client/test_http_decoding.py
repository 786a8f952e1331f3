"""The polling client's compressed responses: gzip, deflate (zlib or raw), and
what it refuses: a body past ``max_body`` once inflated (a small "bomb"), a
truncated or invalid one, an encoding it never asked for."""

from __future__ import annotations

import gzip
import zlib

import pytest

from triosio._engine.eio_client_http import HttpConnection, HttpError


def _connection(max_body: int = 1000) -> HttpConnection:
    async def never(host: str, port: int, tls: object) -> object:
        raise AssertionError("no connection in these tests")

    return HttpConnection(never, "127.0.0.1", 1, None, max_body)  # type: ignore[arg-type]


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


BODY = b'4["doc",' + b"1234567890" * 50 + b"]"


@pytest.mark.parametrize(
    ("encoding", "data"),
    [
        (b"gzip", gzip.compress(BODY)),
        (b"x-gzip", gzip.compress(BODY)),
        (b"deflate", zlib.compress(BODY)),
        (b"deflate", _raw_deflate(BODY)),
        (b"", BODY),
        (b"identity", BODY),
    ],
)
def test_what_it_inflates(encoding: bytes, data: bytes) -> None:
    headers = [(b"content-encoding", encoding)] if encoding else []
    assert _connection()._decoded(headers, data) == BODY


@pytest.mark.parametrize(
    ("encoding", "data", "message"),
    [
        (b"gzip", gzip.compress(b"\0" * 10_000_000), "above 1000 bytes once inflated"),
        (b"gzip", gzip.compress(BODY)[:-10], "truncated"),
        (b"deflate", b"not deflate at all", "invalid deflate"),
        (b"br", b"whatever", "unknown Content-Encoding 'br'"),
    ],
    ids=["bomb", "truncated", "invalid", "unasked encoding"],
)
def test_what_it_refuses(encoding: bytes, data: bytes, message: str) -> None:
    with pytest.raises(HttpError, match=message):
        _connection()._decoded([(b"content-encoding", encoding)], data)
