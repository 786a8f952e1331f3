"""The workers' sans-I/O pieces, the local bus through its hub, and the command line."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st
from support import until

from triosio import _cli
from triosio._cluster.channels import Channels
from triosio._workers.bus import UnixBus
from triosio._workers.hub import Hub
from triosio._workers.target import TargetError, load
from triosio._workers.wire import (
    Frame,
    FrameDecoder,
    FrameError,
    asked_worker,
    encode,
    glob_matcher,
    head_end,
    head_sid,
    sid_generator,
    worker_of,
)

HERE = Path(__file__).resolve().parent


def test_session_ids_name_their_worker() -> None:
    make = sid_generator(7)
    sids = {make() for _ in range(100)}
    assert len(sids) == 100
    assert all(worker_of(s) == 7 and s.startswith("w7-") for s in sids)
    for foreign in ("", "abc", "w-1", "wx-", "W1-abc", "w12345-x"):
        assert worker_of(foreign) is None


def test_the_sid_of_a_request_head() -> None:
    head = b"GET /socket.io/?EIO=4&transport=polling&sid=w1-a%2Bb HTTP/1.1\r\nHost: x\r\n\r\n"
    assert head_end(head) == len(head)
    assert head_sid(head) == "w1-a+b"
    assert head_sid(b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\n\r\n") is None
    assert head_sid(b"garbage\r\n\r\n") is None
    assert head_sid(b"GET /?sid=\xff HTTP/1.1\r\n\r\n") is None
    assert head_end(b"GET / HTTP/1.1\r\nHost: x\r\n") == -1
    assert asked_worker(b"GET /socket.io/?triosio-worker=1&EIO=4 HTTP/1.1\r\n\r\n") == 1
    assert asked_worker(b"GET /socket.io/?triosio-worker=-1 HTTP/1.1\r\n\r\n") is None


@given(st.lists(st.tuples(st.sampled_from(list(Frame)), st.lists(st.binary(), max_size=4))))
def test_frames_round_trip_whatever_the_cuts(frames: list[tuple[Frame, list[bytes]]]) -> None:
    data = b"".join(encode(kind, *fields) for kind, fields in frames)
    decoder = FrameDecoder()
    out = []
    for i in range(0, len(data), 7):
        decoder.feed(data[i : i + 7])
        out.extend(decoder.frames())
    assert out == [(kind, fields) for kind, fields in frames]


def test_bad_frames_are_errors() -> None:
    for bad in (b"\x00\x00\x00\x00", b"\x00\x00\x00\x01\x63", b"\x00\x00\x00\x03\x03\x00\x00"):
        decoder = FrameDecoder()
        decoder.feed(bad)
        with pytest.raises(FrameError):
            list(decoder.frames())


def test_glob_patterns_as_redis_reads_them() -> None:
    channels = Channels.make("socket.io", "/a*b", "uid")
    matches = glob_matcher(channels.pattern)
    assert matches(b"socket.io#/a*b#")
    assert matches(b"socket.io#/a*b#room#")
    assert not matches(b"socket.io#/axb#room#")
    assert glob_matcher(b"h?llo")(b"hello") and not glob_matcher(b"h?llo")(b"hllo")
    assert glob_matcher(b"h[ae]llo")(b"hallo") and not glob_matcher(b"h[ae]llo")(b"hillo")
    assert glob_matcher(b"h[^e]llo")(b"hallo") and not glob_matcher(b"h[^e]llo")(b"hello")


async def test_the_local_bus_through_the_hub() -> None:
    # Two buses on one hub: pub/sub by channel and pattern, the publisher
    # included, in order; subscriber counts.
    hub = Hub()
    received: dict[str, list[tuple[bytes, bytes, bytes]]] = {"a": [], "b": []}
    async with trio.open_nursery() as nursery:
        buses = {}
        for name in ("a", "b"):
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            nursery.start_soon(hub.serve, name, ours)
            bus = buses[name] = UnixBus(theirs)

            async def receive(sub: bytes, ch: bytes, payload: bytes, name: str = name) -> None:
                received[name].append((sub, ch, payload))

            await nursery.start(bus.run, receive)
        buses["a"].subscribe([b"news#*"], [b"req"])
        buses["b"].subscribe([], [b"req", b"news#x"])
        await until(lambda: _equals(buses["a"].subscriber_count(b"req"), 2))
        assert await buses["b"].subscriber_count(b"nobody") == 0
        for i in range(100):
            buses["b"].publish_nowait(b"news#x", b"%d" % i)
        await buses["a"].publish(b"req", b"q")
        await until(lambda: len(received["a"]) >= 101 and len(received["b"]) >= 101)
        # Each publisher's messages in its order (two publishers: no order between them).
        news = [(b"news#x", b"%d" % i) for i in range(100)]
        assert [m for m in received["a"] if m[0] == b"news#*"] == [(b"news#*", *n) for n in news]
        assert [m for m in received["b"] if m[0] == b"news#x"] == [(b"news#x", *n) for n in news]
        for name in ("a", "b"):
            assert received[name].count((b"req", b"req", b"q")) == 1
            assert len(received[name]) == 101
        nursery.cancel_scope.cancel()


async def test_a_bus_whose_hub_is_gone_answers_for_itself() -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    bus = UnixBus(theirs, requests_timeout=1)

    async def receive(sub: bytes, ch: bytes, payload: bytes) -> None:
        raise AssertionError("nothing arrives")

    async with trio.open_nursery() as nursery:
        await nursery.start(bus.run, receive)
        ours.close()
        await until(lambda: _equals(bus.subscriber_count(b"x"), 1))
        await bus.publish(b"x", b"dropped")  # never raises, never waits
        nursery.cancel_scope.cancel()


async def _equals(count: Any, expected: int) -> bool:
    return bool(await count == expected)


def test_targets_that_cannot_be_served_say_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(HERE)
    assert load("workers_app:sio") is not None
    for spec, words in (
        ("workers_app", "module:attribute"),
        ("no_such_module:sio", "no module named"),
        ("workers_app:nothing", "has no attribute"),
        ("workers_app:HERE_IS_NOT_A_SERVER", "expected a triosio.Server"),
    ):
        with pytest.raises(TargetError, match=words):
            load(spec)


def test_help_reads_well() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "triosio", "run", "--help"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    for words in (
        "TARGET",
        "--workers N",
        "--redis URL",
        "--static DIR",
        "--certfile",
        "examples:",
    ):
        assert words in out.stdout


def test_command_line_errors_are_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.chdir(HERE)
    cert = tmp_path / "cert.pem"
    cert.write_text("not a certificate")
    cases: list[tuple[list[str], str]] = [
        (["run", "nope:sio"], "no module named 'nope'"),
        (
            ["run", "workers_app:sio", "--static", str(tmp_path / "missing")],
            "--static: not a folder",
        ),
        (["run", "workers_app:sio", "--certfile", str(cert)], "cannot load the certificate"),
        (
            ["run", "workers_app:sio", "--workers", "2", "--certfile", str(cert)],
            "TLS with --workers",
        ),
    ]
    for argv, words in cases:
        assert _cli.main(argv) == 2
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1, err
    with pytest.raises(SystemExit):
        _cli.main(["run", "workers_app:sio", "--workers", "0"])
    assert "must be at least 1" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("target", "extra"),
    [
        ("workers_app:sio", ()),
        ("workers_app:make_app", ("--static", "static")),
        ("workers_app:asgi_factory", ()),
    ],
)
def test_single_process_serves_and_stops_on_sigterm(target: str, extra: tuple[str, ...]) -> None:
    import signal
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "triosio", "run", target, "--port", "0", *extra],
        cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        assert f"serving {target}" in line, line
        port = int(line.rsplit(":", 1)[1].split()[0])
        handshake = b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n"
        _expect(port, handshake, b"HTTP/1.1 200", b'"sid":"')
        if extra:
            page = b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n"
            _expect(port, page, b"HTTP/1.1 200", b"hello from --static")
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert time.monotonic() - started < 10
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()


def _expect(port: int, request: bytes, start: bytes, inside: bytes) -> None:
    deadline = __import__("time").monotonic() + 10
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        data = b""
        while inside not in data and __import__("time").monotonic() < deadline:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    assert data.startswith(start) and inside in data, data
