"""The HTTP application: several servers mounted in one, static files, 404."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
from eio_peers import HTTPClient, Recorder, Response, read_raw_response

from triosio import App, EngineServer, StaticFiles, serve


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "public"
    (root / "js").mkdir(parents=True)
    (root / "docs").mkdir()
    (root / "empty").mkdir()
    (root / "index.html").write_text("<h1>home</h1>")
    (root / "js" / "app.js").write_text("console.log(1)")
    (root / "style.css").write_text("body{}")
    (root / "data.json").write_text("{}")
    (root / "logo.svg").write_text("<svg/>")
    (root / "blob.bin").write_bytes(b"\x00\x01")
    (root / "docs" / "index.html").write_text("docs")
    (root / "space name.txt").write_text("spaced")
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    (root / "escape.txt").symlink_to(secret)
    (root / "escape-dir").symlink_to(tmp_path)
    (root / "inside.txt").symlink_to(root / "style.css")
    (root / "sneaky").mkdir()
    (root / "sneaky" / "index.html").symlink_to(secret)
    return root


@asynccontextmanager
async def serving(app: App) -> AsyncIterator[int]:
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(serve, app, "127.0.0.1", 0)
        yield listeners[0].socket.getsockname()[1]
        nursery.cancel_scope.cancel()


async def get(port: int, target: str, method: str = "GET") -> Response:
    client = HTTPClient(await trio.open_tcp_stream("127.0.0.1", port))
    try:
        return await client.request(method, target)
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    ("target", "body", "ctype"),
    [
        ("/", b"<h1>home</h1>", "text/html; charset=utf-8"),
        ("/index.html", b"<h1>home</h1>", "text/html; charset=utf-8"),
        ("/js/app.js", b"console.log(1)", "text/javascript; charset=utf-8"),
        ("/style.css", b"body{}", "text/css; charset=utf-8"),
        ("/data.json", b"{}", "application/json; charset=utf-8"),
        ("/logo.svg", b"<svg/>", "image/svg+xml; charset=utf-8"),
        ("/blob.bin", b"\x00\x01", "application/octet-stream"),
        ("/docs/", b"docs", "text/html; charset=utf-8"),
        ("/space%20name.txt", b"spaced", "text/plain; charset=utf-8"),
        ("/inside.txt", b"body{}", "text/plain; charset=utf-8"),  # a symlink kept inside
        ("/js/app.js?v=3", b"console.log(1)", "text/javascript; charset=utf-8"),
    ],
)
async def test_static_files(site: Path, target: str, body: bytes, ctype: str) -> None:
    with trio.fail_after(10):
        async with serving(App(static={"/": site})) as port:
            response = await get(port, target)
            assert response.status == 200
            assert response.body == body
            assert response.header("content-type") == ctype


@pytest.mark.parametrize(
    "target",
    [
        "/missing.txt",
        "/empty/",  # a folder without index.html
        "/../secret.txt",
        "/js/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/js/%2e%2e%2f%2e%2e%2fsecret.txt",
        "/%252e%252e/secret.txt",  # double encoding is a literal name, not a climb
        "/..%5csecret.txt",
        "/escape.txt",  # a symlink to a file outside
        "/escape-dir/secret.txt",  # a symlink to a folder outside
        "/sneaky/",  # a folder whose index.html is a symlink to outside
        "/index.html%00.txt",
        "//etc/passwd",
    ],
)
async def test_static_refuses_what_is_not_inside(site: Path, target: str) -> None:
    with trio.fail_after(10):
        async with serving(App(static={"/": site})) as port:
            response = await get(port, target)
            assert response.status == 404
            assert b"secret" not in response.body


async def test_raw_traversal_request_line(site: Path) -> None:
    # Sent by hand: an HTTP client library would normalise the path first.
    with trio.fail_after(10):
        async with serving(App(static={"/static/": site})) as port:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await stream.send_all(
                b"GET /static/../../secret.txt HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
            )
            answer = await read_raw_response(stream)
            await stream.aclose()
            assert answer.startswith(b"HTTP/1.1 404 ")
            assert b"top secret" not in answer


async def test_static_methods_and_head(site: Path) -> None:
    with trio.fail_after(10):
        async with serving(App(static={"/": site})) as port:
            response = await get(port, "/style.css", "HEAD")
            assert response.status == 200
            assert response.header("content-length") == "6"
            assert response.body == b""
            response = await get(port, "/style.css", "POST")
            assert response.status == 405
            assert response.header("allow") == "GET, HEAD"


async def test_static_prefix_and_redirect(site: Path) -> None:
    with trio.fail_after(10):
        async with serving(App(static={"/static": site})) as port:
            assert (await get(port, "/static/style.css")).body == b"body{}"
            response = await get(port, "/static")
            assert response.status == 301
            assert response.header("location") == "/static/"
            assert (await get(port, "/static/")).body == b"<h1>home</h1>"
            assert (await get(port, "/style.css")).status == 404
            assert (await get(port, "/staticstyle.css")).status == 404


async def test_engine_and_socketio_paths_and_static_in_one_server(site: Path) -> None:
    engine = EngineServer(Recorder(), path="/engine.io/")
    other = EngineServer(Recorder(), path="/socket.io/")
    app = App(engine, other, static={"/": site, "/assets/": site / "js"})
    with trio.fail_after(10):
        async with serving(app) as port:
            for path, server in (("/engine.io/", engine), ("/socket.io/", other)):
                response = await get(port, f"{path}?EIO=4&transport=polling")
                assert response.status == 200
                sid = json.loads(response.text[1:])["sid"]
                assert sid in server.sessions
            assert (await get(port, "/assets/app.js")).body == b"console.log(1)"
            assert (await get(port, "/")).body == b"<h1>home</h1>"
            assert (await get(port, "/nope")).status == 404


async def test_404_without_static(site: Path) -> None:
    with trio.fail_after(10):
        async with serving(App(EngineServer(Recorder()))) as port:
            response = await get(port, "/index.html")
            assert response.status == 404


def test_app_checks_its_configuration(site: Path) -> None:
    with pytest.raises(ValueError, match="same path"):
        App(EngineServer(Recorder()), EngineServer(Recorder()))
    with pytest.raises(ValueError, match="start with"):
        StaticFiles("static", site)
    with pytest.raises(ValueError, match="not a folder"):
        StaticFiles("/", site / "style.css")


async def test_serve_a_bare_engine_server() -> None:
    engine = EngineServer(Recorder())
    with trio.fail_after(10):
        async with serving(engine) as port:  # type: ignore[arg-type]
            response = await get(port, "/engine.io/?EIO=4&transport=polling")
            assert response.status == 200
