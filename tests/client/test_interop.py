"""The Trio client against real servers: npm socket.io 4.8 and python-socketio.

Every test runs against each kind of ``server`` (see conftest.py), started on
127.0.0.1 for the test. Waits are bounded with ``trio.fail_after``; nothing here
asserts on timing (that is done under MockClock in test_reconnection.py).
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.lowlevel
from client_fixtures import (
    SERVER_KINDS,
    require_kind,
    server_fixture,  # noqa: F401 (the fixture server)
)
from real_peers import ServerProcess, root_conftest
from recorder import SEED_EVENTS, Recorder
from support import relay

import triosio
from triosio import ConnectError, DisconnectReason
from triosio._proto.msgpack_parser import MsgpackParser

pytestmark = pytest.mark.interop

MODES = {
    "polling": ("polling",),
    "websocket": ("websocket",),
    "upgrade": ("polling", "websocket"),
}

NESTED = {
    "a": [b"\x00\x01\x02", {"b": bytearray(b"\xff\xfe")}],
    "m": memoryview(b"view"),
    "n": None,
    "s": "text",
    "f": 1.5,
}
NESTED_DECODED = {
    "a": [b"\x00\x01\x02", {"b": b"\xff\xfe"}],
    "m": b"view",
    "n": None,
    "s": "text",
    "f": 1.5,
}


@pytest.mark.parametrize("mode", list(MODES))
async def test_events_acks_and_binary_both_ways(server: ServerProcess, mode: str) -> None:
    recorder = Recorder()
    with trio.fail_after(15):
        async with triosio.Manager(server.url, transports=MODES[mode]) as manager:
            recorder.manager(manager)
            client = manager.socket("/")
            await client.connect()
            assert client.connected
            assert client.id
            # Client -> server, acknowledged; nested binary both ways.
            assert await client.emit_with_ack("echo", 1, NESTED) == (1, NESTED_DECODED)
            assert await client.emit_with_ack("echo") is None
            assert await client.emit_with_ack("echo", "one") == "one"

            # Server -> client events, with nested binary.
            received: list[tuple[Any, ...]] = []
            got = trio.Event()

            @client.on("echo")
            def on_echo(*args: Any) -> None:
                received.append(args)
                got.set()

            await client.emit("echo-back", "x", [b"bin", {"k": b"v"}])
            await got.wait()
            assert received == [("x", [b"bin", {"k": b"v"}])]

            # Server -> client with an acknowledgement: the handler's return value.
            @client.on("question")
            async def question(q: str) -> dict[str, Any]:
                return {"answer": q.upper(), "bin": b"\x01"}

            with client.events("answer") as answers:
                await client.emit("ask", "life")
                event = await answers.__anext__()
            assert event.args == ({"answer": "LIFE", "bin": b"\x01"},)

            if mode == "upgrade":
                await recorder.wait_for(lambda: recorder.count("manager", "upgrade") == 1)
                assert manager.transport == "websocket"
                assert await client.emit_with_ack("echo", b"after upgrade") == b"after upgrade"
            else:
                assert manager.transport == MODES[mode][0]
                assert recorder.count("manager", "upgrade") == 0


@pytest.mark.parametrize("kind", SERVER_KINDS)
async def test_msgpack_parser(kind: str) -> None:
    require_kind(kind)
    server = ServerProcess(kind, parser="msgpack")
    await server.start()
    try:
        with trio.fail_after(15):
            async with triosio.connect(server.url, parser=MsgpackParser()) as client:
                assert await client.emit_with_ack("echo", 1, NESTED) == (1, NESTED_DECODED)
                chat = client.manager.socket("/chat")
                await chat.connect()
                assert (await chat.emit_with_ack("whoami"))["nsp"] == "/chat"

                @client.on("question")
                def question(q: str) -> list[Any]:
                    return [q, b"\x01"]

                with client.events("answer") as answers:
                    await client.emit("ask", "why")
                    event = await answers.__anext__()
                assert event.args == (["why", b"\x01"],)
    finally:
        await server.stop()


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1, its own CA (made with the openssl tool)."""
    openssl = root_conftest().require_binary("openssl")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.mark.parametrize("kind", SERVER_KINDS)
async def test_tls_is_verified(kind: str, tmp_path: Path) -> None:
    require_kind(kind)
    cert, key = _self_signed(tmp_path)
    server = ServerProcess(kind, tls=(cert, key))
    await server.start()
    try:
        with trio.fail_after(15):
            assert server.url.startswith("https://")
            # The default context trusts the system's CAs only: refused.
            with pytest.raises(ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                async with triosio.connect(server.url):
                    pytest.fail("an unknown certificate must be refused")
            # With the certificate's CA: polling over HTTPS, then wss.
            context = ssl.create_default_context(cafile=str(cert))
            async with triosio.Manager(server.url, ssl=context) as manager:
                recorder = Recorder()
                recorder.manager(manager)
                client = manager.socket("/")
                await client.connect()
                await recorder.wait_for(lambda: recorder.count("manager", "upgrade") == 1)
                assert await client.emit_with_ack("echo", b"secret") == b"secret"
    finally:
        await server.stop()


async def test_many_events_in_order(server: ServerProcess) -> None:
    with trio.fail_after(15):
        async with triosio.connect(server.url) as client:
            with client.events("pushed") as stream:
                await client.emit("push", 200)
                got = [(await stream.__anext__()).args[0] for _ in range(200)]
            assert got == list(range(200))


async def test_two_namespaces_share_one_connection(server: ServerProcess) -> None:
    with trio.fail_after(15):
        async with triosio.connect(server.url + "/chat") as chat:
            assert chat.namespace == "/chat"
            main = chat.manager.socket("/")
            await main.connect()
            assert main.id != chat.id
            me = await main.emit_with_ack("whoami")
            them = await chat.emit_with_ack("whoami")
            assert me["sid"] == main.id
            assert me["nsp"] == "/"
            assert them["sid"] == chat.id
            assert them["nsp"] == "/chat"
            # One Engine.IO session carries both namespaces.
            assert me["eio"] == them["eio"] == chat.manager.engine_id

            # Leaving one namespace keeps the other (and the connection).
            await main.disconnect()
            assert not main.connected
            assert await chat.emit_with_ack("echo", 7) == 7
            assert chat.manager.engine_id == me["eio"]


async def test_auth_and_connect_error_with_data(server: ServerProcess) -> None:
    with trio.fail_after(15):
        with pytest.raises(ConnectError) as info:
            async with triosio.connect(server.url + "/private", auth={"token": "wrong"}):
                pytest.fail("the server should refuse")
        assert info.value.message == "unauthorized"
        assert info.value.data == {"code": 401, "hint": "send a token"}

        calls = 0

        async def auth() -> dict[str, Any]:
            nonlocal calls
            calls += 1
            await trio.lowlevel.checkpoint()
            return {"token": "secret", "call": calls}

        async with triosio.connect(server.url + "/private", auth=auth) as client:
            assert await client.emit_with_ack("auth") == {"token": "secret", "call": 1}

        # A refused namespace leaves the others of the manager alone.
        async with triosio.connect(server.url) as main:
            recorder = Recorder()
            private = main.manager.socket("/private", auth={"token": "nope"})
            recorder.socket(private)
            with pytest.raises(ConnectError):
                await private.connect()
            await recorder.wait_for(lambda: recorder.count("/private", "connect_failed") == 1)
            assert recorder.names("/private") == ["connecting", "connect_error", "connect_failed"]
            error = recorder.entries("/private", "connect_error")[0].args[0]
            assert error.data == {"code": 401, "hint": "send a token"}
            assert main.connected
            assert await main.emit_with_ack("echo", "still here") == "still here"


async def test_server_disconnects_the_socket(server: ServerProcess) -> None:
    with trio.fail_after(15):
        async with triosio.connect(server.url) as client:
            recorder = Recorder()
            recorder.socket(client, "client")
            await client.emit("kick")
            await recorder.wait_for(lambda: recorder.count("client", "disconnect") == 1)
            assert recorder.entries("client", "disconnect")[0].args == (
                DisconnectReason.IO_SERVER_DISCONNECT,
            )
            assert not client.active
            # Nothing reconnects it; the manager closed its connection.
            recorder.manager(client.manager)
            await recorder.wait_for(lambda: recorder.count("manager", "close") == 1)
            assert not client.manager.is_open
            assert recorder.names("client") == ["disconnect"]


@pytest.mark.parametrize("mode", list(MODES))
async def test_server_restart_reconnects_namespaces_and_flushes_the_buffer(
    server: ServerProcess, mode: str
) -> None:
    calls = {"/": 0, "/chat": 0}

    def auth_for(nsp: str) -> Any:
        def auth() -> dict[str, int]:
            calls[nsp] += 1
            return {"n": calls[nsp]}

        return auth

    recorder = Recorder()
    with trio.fail_after(20):
        async with triosio.Manager(
            server.url,
            transports=MODES[mode],
            reconnection_delay=0.05,
            reconnection_delay_max=0.2,
        ) as manager:
            recorder.manager(manager)
            sockets = {nsp: manager.socket(nsp, auth=auth_for(nsp)) for nsp in ("/", "/chat")}
            for nsp, sock in sockets.items():
                recorder.socket(sock)
                recorder.on(sock, "echo", f"{nsp} echo")
                await sock.connect()
            old_ids = {nsp: sock.id for nsp, sock in sockets.items()}

            await server.stop()
            await recorder.wait_for(
                lambda: all(recorder.count(nsp, "disconnect") == 1 for nsp in sockets)
            )
            for nsp in sockets:
                (entry,) = recorder.entries(nsp, "disconnect")
                assert entry.args[0] in (
                    DisconnectReason.TRANSPORT_CLOSE,
                    DisconnectReason.TRANSPORT_ERROR,
                )
            # Emitted while disconnected: buffered, then sent in order.
            for i in range(5):
                for nsp, sock in sockets.items():
                    await sock.emit("echo-back", f"{nsp}{i}")

            await server.start()  # the same port
            await recorder.wait_for(
                lambda: all(recorder.count(nsp, "connect") == 2 for nsp in sockets)
            )
            await recorder.wait_for(
                lambda: all(recorder.count(f"{nsp} echo", "echo") == 5 for nsp in sockets)
            )
            for nsp, sock in sockets.items():
                echoed = [e.args for e in recorder.entries(f"{nsp} echo", "echo")]
                assert echoed == [(f"{nsp}{i}",) for i in range(5)]
                assert sock.connected
                assert sock.id != old_ids[nsp]
                # The auth function ran again; the server got the new payload.
                assert await sock.emit_with_ack("auth") == {"n": 2}
                seed = recorder.names(nsp, SEED_EVENTS)
                assert seed[:3] == ["connecting", "connect", "disconnect"]
                assert seed[-3:] == ["connecting", "reconnect", "connect"]
                # "error" after "disconnect" when the loss was a transport error.
                middle = [name for name in seed[3:-3] if name != "error"]
                assert middle
                assert set(middle) == {"reconnecting"}
            assert recorder.count("manager", "reconnect") == 1


def _dead_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_reconnect_failed_after_n_attempts_on_a_dead_port() -> None:
    url = f"http://127.0.0.1:{_dead_port()}"
    recorder = Recorder()
    with trio.fail_after(10):
        async with triosio.Manager(
            url,
            retry_connect=True,
            reconnection_attempts=3,
            reconnection_delay=0.01,
            reconnection_delay_max=0.02,
        ) as manager:
            recorder.manager(manager)
            sock = manager.socket("/")
            recorder.socket(sock, "socket")
            with pytest.raises(ConnectError, match="gave up reconnecting after 3 attempts"):
                await sock.connect()
            await recorder.wait_for(lambda: recorder.count("socket", "connect_failed") == 1)
    assert recorder.names("manager") == [
        "error",
        *(["reconnect_attempt", "error", "reconnect_error"] * 3),
        "reconnect_failed",
    ]
    assert recorder.names("socket") == [
        "connect_error",
        *(["reconnecting", "connect_error"] * 3),
        "reconnect_failed",
        "connect_failed",
    ]
    assert not sock.active


async def test_first_connect_fails_at_once_without_retry_connect() -> None:
    url = f"http://127.0.0.1:{_dead_port()}"
    with trio.fail_after(10), pytest.raises(ConnectError, match="cannot connect"):
        async with triosio.connect(url):
            pytest.fail("nothing listens there")


async def test_long_polls_come_compressed(server: ServerProcess) -> None:
    # The client says it takes gzip/deflate: each server (engine.io's
    # httpCompression, python-engineio's, triosio's) compresses long-poll
    # answers of 1 KiB and more, counted on the wire through a relay.
    assert server.scheme == "http"  # the relay carries plain TCP
    document = [{"id": i, "text": f"message number {i}", "tags": ["a", "b"]} for i in range(200)]
    size = len(json.dumps(document, separators=(",", ":")))
    counts: Counter[str] = Counter()
    recorder = Recorder()
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(relay, server.port, counts)
            url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"
            async with triosio.Manager(url, transports=("polling",)) as manager:
                sock = manager.socket("/")
                recorder.socket(sock)
                recorder.on(sock, "echo", "echo")
                await sock.connect()
                for _ in range(5):
                    await sock.emit("echo-back", document)
                    count = recorder.count("echo", "echo") + 1
                    await recorder.wait_for(lambda c=count: recorder.count("echo", "echo") >= c)
                assert [e.args for e in recorder.entries("echo", "echo")] == [(document,)] * 5
            nursery.cancel_scope.cancel()
    assert counts["up"] > 5 * size  # what the client POSTs goes as it is
    assert counts["down"] < 5 * size / 3, counts
