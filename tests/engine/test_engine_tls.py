"""HTTPS and WSS: on a TLS stream every WebSocket write goes through the writer task."""

from __future__ import annotations

import functools
import json
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
import trio
from eio_peers import HTTPClient, Recorder, WSClient, message, poll_url, root_conftest

from triosio import App, DisconnectReason, EngineServer, serve


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root_conftest().require(shutil.which("openssl") is not None, "openssl")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


async def _tls_server(
    certificate: tuple[Path, Path], app: Recorder, nursery: trio.Nursery
) -> tuple[EngineServer, int, ssl.SSLContext]:
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=str(cert))
    engine = EngineServer(app)
    listeners = await nursery.start(
        functools.partial(serve, App(engine), "127.0.0.1", 0, ssl_context=server_context)
    )
    # SSLListener wraps the TCP listener.
    port = listeners[0].transport_listener.socket.getsockname()[1]
    return engine, port, client_context


async def _connect(port: int, context: ssl.SSLContext) -> trio.SSLStream[trio.SocketStream]:
    tcp = await trio.open_tcp_stream("127.0.0.1", port)
    return trio.SSLStream(tcp, context, server_hostname="127.0.0.1", https_compatible=True)


async def test_polling_and_websocket_over_tls(certificate: tuple[Path, Path]) -> None:
    app = Recorder()
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            engine, port, context = await _tls_server(certificate, app, nursery)
            client = HTTPClient(await _connect(port, context))
            response = await client.request("GET", "/engine.io/?EIO=4&transport=polling")
            sid = json.loads(response.text[1:])["sid"]
            assert engine.sessions[sid].request.secure
            await client.request("POST", poll_url(sid), body=b"4over https")
            assert (await client.request("GET", poll_url(sid))).text == "4over https"
            # Upgrade that session to WSS, then push a lot both ways at once.
            ws = await WSClient.open(await _connect(port, context), poll_url(sid, "websocket"))
            await ws.send("2probe")
            assert await ws.receive() == "3probe"
            await ws.send("5")
            session = engine.sessions[sid]
            big = "x" * 200_000
            async with trio.open_nursery() as both:

                async def push() -> None:
                    for i in range(50):
                        await session.send(f"{i}:{big}")  # waits while 4 MB are queued

                both.start_soon(push)
                for i in range(20):
                    await ws.send(f"4c{i}")
                got: list[str | bytes] = []
                while len(got) < 70:
                    got.append(await ws.receive())
            pushed = [m for m in got if isinstance(m, str) and ":" in m]
            echoed = [m for m in got if m not in pushed]
            assert pushed == [f"4{i}:{big}" for i in range(50)]
            assert echoed == [f"4c{i}" for i in range(20)]
            await ws.close()
            assert await app.wait_closed(sid) is DisconnectReason.TRANSPORT_CLOSE
            await client.aclose()
            nursery.cancel_scope.cancel()


async def test_websocket_only_over_tls_and_server_close(certificate: tuple[Path, Path]) -> None:
    app = Recorder()
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            engine, port, context = await _tls_server(certificate, app, nursery)
            ws = await WSClient.open(
                await _connect(port, context), "/engine.io/?EIO=4&transport=websocket"
            )
            opening = await ws.receive()
            assert isinstance(opening, str)
            sid = json.loads(opening[1:])["sid"]
            await ws.send(b"\x00\x01")
            assert await ws.receive() == b"\x00\x01"
            engine.sessions[sid].send_nowait([message("bye")])
            engine.sessions[sid].close_nowait(DisconnectReason.FORCED_CLOSE)
            assert await ws.receive_until_closed() == ["4bye", "1"]
            nursery.cancel_scope.cancel()


async def test_a_failed_tls_handshake_costs_one_connection(
    certificate: tuple[Path, Path],
) -> None:
    app = Recorder()
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            _, port, context = await _tls_server(certificate, app, nursery)
            plain = await trio.open_tcp_stream("127.0.0.1", port)
            await plain.send_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")  # HTTP on a TLS port
            try:
                while await plain.receive_some(65536):
                    pass
            except trio.BrokenResourceError:
                pass
            await plain.aclose()
            client = HTTPClient(await _connect(port, context))
            response = await client.request("GET", "/engine.io/?EIO=4&transport=polling")
            assert response.status == 200
            await client.aclose()
            nursery.cancel_scope.cancel()
