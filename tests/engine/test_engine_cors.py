"""CORS (the reference's ``cors`` semantics), the WebSocket Origin check, the cookie."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio
from eio_peers import Response, RunningServer, WSRejected, poll_url, running_server

from triosio import CookieOptions

HANDSHAKE = "/engine.io/?EIO=4&transport=polling"
WS_HANDSHAKE = "/engine.io/?EIO=4&transport=websocket"
FOREIGN = "https://evil.example"


# ---------------------------------------------------------------- same origin (default)


@pytest.mark.parametrize(
    "origin",
    ["http://127.0.0.1", "https://127.0.0.1", "http://127.0.0.1:80", "HTTP://127.0.0.1"],
)
async def test_same_origin_is_allowed_by_default(origin: str) -> None:
    with trio.fail_after(10):
        async with running_server() as srv:
            response = await srv.get(HANDSHAKE, [("origin", origin)])
            assert response.status == 200
            assert response.header("access-control-allow-origin") is None  # none needed
            ws = await srv.ws(WS_HANDSHAKE, [("origin", origin)])
            assert (await ws.receive())[0] == "0"  # type: ignore[index]
            await ws.close()


async def test_requests_without_origin_are_allowed() -> None:
    with trio.fail_after(10):
        async with running_server() as srv:
            assert (await srv.get(HANDSHAKE)).status == 200
            ws, _ = await srv.ws_handshake()
            await ws.close()


@pytest.mark.parametrize(
    "origin", [FOREIGN, "http://127.0.0.1:8080", "null", "http://127.0.0.1.evil.example"]
)
async def test_cross_origin_is_refused_by_default(origin: str) -> None:
    with trio.fail_after(10):
        async with running_server() as srv:
            response = await srv.get(HANDSHAKE, [("origin", origin)])
            assert response.status == 403
            assert response.json() == {"code": 4, "message": "Forbidden"}
            # CORS headers do not bind a WebSocket: the Origin check does
            # (CVE-2019-13611).
            with pytest.raises(WSRejected) as info:
                await srv.ws(WS_HANDSHAKE, [("origin", origin)])
            assert info.value.status == 403
            assert srv.engine.sessions == {}


async def test_cross_origin_upgrade_of_an_existing_session_is_refused() -> None:
    with trio.fail_after(10):
        async with running_server() as srv:
            sid, _ = await srv.handshake()
            with pytest.raises(WSRejected) as info:
                await srv.ws(poll_url(sid, "websocket"), [("origin", FOREIGN)])
            assert info.value.status == 403
            assert srv.engine.sessions[sid].transport == "polling"
            response = await srv.get(poll_url(sid), [("origin", FOREIGN)])
            assert response.status == 403


async def test_preflight_is_refused_without_cors() -> None:
    with trio.fail_after(10):
        async with running_server() as srv:
            client = await srv.http()
            response = await client.request(
                "OPTIONS",
                HANDSHAKE,
                [("origin", FOREIGN), ("access-control-request-method", "POST")],
            )
            assert response.status == 403
            await client.aclose()


# ---------------------------------------------------------------- CORS enabled


async def preflight(srv: RunningServer, origin: str) -> Response:
    client = await srv.http()
    response = await client.request(
        "OPTIONS",
        HANDSHAKE,
        [
            ("origin", origin),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "content-type, x-custom"),
        ],
    )
    await client.aclose()
    return response


async def test_wildcard() -> None:
    with trio.fail_after(10):
        async with running_server(cors_allowed_origins="*") as srv:
            response = await preflight(srv, FOREIGN)
            assert response.status == 204
            assert response.header("access-control-allow-origin") == "*"
            methods = response.header("access-control-allow-methods")
            assert set(methods.split(",")) >= {"GET", "POST"}
            allowed_headers = response.header("access-control-allow-headers")
            assert allowed_headers == "content-type, x-custom"
            assert response.body == b""
            response = await srv.get(HANDSHAKE, [("origin", FOREIGN)])
            assert response.status == 200
            assert response.header("access-control-allow-origin") == "*"
            assert response.header("access-control-allow-credentials") is None
            ws = await srv.ws(WS_HANDSHAKE, [("origin", FOREIGN)])
            await ws.close()


async def test_errors_carry_cors_headers_so_browsers_can_read_them() -> None:
    with trio.fail_after(10):
        async with running_server(cors_allowed_origins="*") as srv:
            response = await srv.get("/engine.io/?EIO=4&transport=tobi", [("origin", FOREIGN)])
            assert response.status == 400
            assert response.header("access-control-allow-origin") == "*"


async def test_credentials_reflect_the_origin() -> None:
    with trio.fail_after(10):
        async with running_server(cors_allowed_origins="*", cors_credentials=True) as srv:
            sid, _ = await srv.handshake([("origin", FOREIGN)])
            for response in (
                await preflight(srv, FOREIGN),
                await srv.post(poll_url(sid), "4x", [("origin", FOREIGN)]),
                await srv.get(poll_url(sid), [("origin", FOREIGN)]),
            ):
                assert response.header("access-control-allow-origin") == FOREIGN
                assert response.header("access-control-allow-credentials") == "true"
                assert response.header("vary") == "Origin"


ALLOWED = "https://app.example"


@pytest.mark.parametrize(
    "setting",
    [[ALLOWED, "https://other.example"], lambda origin: origin == ALLOWED],
    ids=["list", "callable"],
)
async def test_allowed_origins(setting: list[str] | Callable[[str], bool]) -> None:
    with trio.fail_after(10):
        async with running_server(cors_allowed_origins=setting) as srv:
            response = await preflight(srv, ALLOWED)
            assert response.status == 204
            assert response.header("access-control-allow-origin") == ALLOWED
            response = await srv.get(HANDSHAKE, [("origin", ALLOWED)])
            assert response.status == 200
            assert response.header("access-control-allow-origin") == ALLOWED
            ws = await srv.ws(WS_HANDSHAKE, [("origin", ALLOWED)])
            await ws.close()
            # Everyone else is refused, WebSocket included; no Origin is fine.
            response = await preflight(srv, FOREIGN)
            assert response.status == 403
            assert (await srv.get(HANDSHAKE, [("origin", FOREIGN)])).status == 403
            with pytest.raises(WSRejected):
                await srv.ws(WS_HANDSHAKE, [("origin", FOREIGN)])
            assert (await srv.get(HANDSHAKE)).status == 200


async def test_raising_origin_callable_refuses(caplog: pytest.LogCaptureFixture) -> None:
    def broken(origin: str) -> bool:
        raise RuntimeError("oops")

    with trio.fail_after(10):
        async with running_server(cors_allowed_origins=broken) as srv:
            assert (await srv.get(HANDSHAKE, [("origin", ALLOWED)])).status == 403
            assert "cors_allowed_origins callable raised" in caplog.text


# ---------------------------------------------------------------- cookie


async def test_no_cookie_by_default() -> None:
    with trio.fail_after(10):
        async with running_server() as srv:
            assert (await srv.get(HANDSHAKE)).header("set-cookie") is None


async def test_cookie_on_the_handshake_only() -> None:
    with trio.fail_after(10):
        async with running_server(cookie=CookieOptions()) as srv:
            response = await srv.get(HANDSHAKE)
            sid = response.text.split('"sid":"')[1].split('"')[0]
            assert response.header("set-cookie") == f"io={sid}; Path=/; HttpOnly; SameSite=Lax"
            response = await srv.post(poll_url(sid), "4x")
            assert response.header("set-cookie") is None
            assert (await srv.get(poll_url(sid))).header("set-cookie") is None
            ws = await srv.ws(WS_HANDSHAKE)
            opening = await ws.receive()
            assert isinstance(opening, str)
            ws_sid = opening.split('"sid":"')[1].split('"')[0]
            assert ("set-cookie", f"io={ws_sid}; Path=/; HttpOnly; SameSite=Lax") in (
                ws.accept_headers
            )
            await ws.close()


async def test_cookie_options() -> None:
    cookie = CookieOptions(
        name="eio", path="/app", http_only=False, same_site="Strict", secure=True, max_age=60
    )
    with trio.fail_after(10):
        async with running_server(cookie=cookie) as srv:
            response = await srv.get(HANDSHAKE)
            sid = response.text.split('"sid":"')[1].split('"')[0]
            assert response.header("set-cookie") == (
                f"eio={sid}; Path=/app; SameSite=Strict; Secure; Max-Age=60"
            )
