"""Error answers, as the reference server gives them: status, code and message."""

from __future__ import annotations

import json

import pytest
import trio
from eio_peers import WSRejected, poll_url, running_server

from triosio import Request

MESSAGES = {
    0: "Transport unknown",
    1: "Session ID unknown",
    2: "Bad handshake method",
    3: "Bad request",
    4: "Forbidden",
    5: "Unsupported protocol version",
}


def assert_error(status: int, body: object, code: int) -> None:
    assert status == (403 if code == 4 else 400)
    assert body == {"code": code, "message": MESSAGES[code]}


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("EIO=4", 0),
        ("EIO=4&transport=abc", 0),
        ("EIO=4&transport=constructor", 0),
        ("EIO=4&transport=webtransport", 0),
        ("EIO=4&transport=polling&sid=nope", 1),
        ("transport=polling", 3),
        ("EIO=abc&transport=polling", 3),
        ("EIO=5&transport=polling", 3),
        ("EIO=4&transport=websocket", 3),  # a websocket handshake without Upgrade
        ("EIO=3&transport=polling", 5),
    ],
)
async def test_polling_errors(query: str, code: int) -> None:
    with trio.fail_after(10):
        async with running_server() as srv:
            response = await srv.get(f"/engine.io/?{query}")
            assert response.header("content-type") == "application/json"
            assert_error(response.status, response.json(), code)
            assert srv.engine.sessions == {}


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
async def test_bad_handshake_method(method: str) -> None:
    with trio.fail_after(10):
        async with running_server() as srv:
            client = await srv.http()
            response = await client.request(
                method, "/engine.io/?EIO=4&transport=polling", body=b"4x"
            )
            assert_error(response.status, response.json(), 2)
            await client.aclose()


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("EIO=4", 0),
        ("EIO=4&transport=abc", 0),
        ("EIO=4&transport=websocket&sid=nope", 1),
        ("transport=websocket", 3),
        ("EIO=abc&transport=websocket", 3),
        ("EIO=4&transport=polling", 3),  # never serve an upgrade request as a poll
        ("EIO=3&transport=websocket", 5),
    ],
)
async def test_websocket_errors(query: str, code: int) -> None:
    with trio.fail_after(10):
        async with running_server() as srv:
            with pytest.raises(WSRejected) as info:
                await srv.ws(f"/engine.io/?{query}")
            assert_error(info.value.status, json.loads(info.value.body), code)
            assert srv.engine.sessions == {}


async def test_transport_mismatch_is_a_bad_request() -> None:
    with trio.fail_after(10):
        async with running_server() as srv:
            ws, sid = await srv.ws_handshake()
            response = await srv.get(poll_url(sid))
            assert_error(response.status, response.json(), 3)
            response = await srv.post(poll_url(sid), "4x")
            assert_error(response.status, response.json(), 3)
            # The websocket session is unharmed.
            await ws.send("4still here")
            assert await ws.receive() == "4still here"
            await ws.close()


async def test_polling_with_an_unknown_method_on_a_session() -> None:
    with trio.fail_after(10):
        async with running_server() as srv:
            sid, _ = await srv.handshake()
            client = await srv.http()
            response = await client.request("PUT", poll_url(sid), body=b"4x")
            assert_error(response.status, response.json(), 3)
            await client.aclose()


async def _allow_async(request: Request) -> bool:
    await trio.lowlevel.checkpoint()
    return request.header("x-token") == "ok"


def _allow_sync(request: Request) -> bool:
    return request.header("x-token") == "ok"


def _allow_raising(request: Request) -> bool:
    raise RuntimeError("hook bug")


@pytest.mark.parametrize("hook", [_allow_sync, _allow_async])
async def test_allow_request(hook: object) -> None:
    with trio.fail_after(10):
        async with running_server(allow_request=hook) as srv:
            response = await srv.get("/engine.io/?EIO=4&transport=polling")
            assert_error(response.status, response.json(), 4)
            with pytest.raises(WSRejected) as info:
                await srv.ws("/engine.io/?EIO=4&transport=websocket")
            assert info.value.status == 403
            sid, _ = await srv.handshake([("x-token", "ok")])
            assert sid in srv.engine.sessions
            ws = await srv.ws("/engine.io/?EIO=4&transport=websocket", [("x-token", "ok")])
            assert (await ws.receive())[0] == "0"  # type: ignore[index]
            await ws.close()


async def test_allow_request_raising_refuses(caplog: pytest.LogCaptureFixture) -> None:
    with trio.fail_after(10):
        async with running_server(allow_request=_allow_raising) as srv:
            response = await srv.get("/engine.io/?EIO=4&transport=polling")
            assert_error(response.status, response.json(), 4)
            assert "allow_request raised" in caplog.text


async def test_allow_request_is_not_asked_for_requests_of_a_session() -> None:
    asked: list[str] = []

    def hook(request: Request) -> bool:
        asked.append(request.url)
        return True

    with trio.fail_after(10):
        async with running_server(allow_request=hook) as srv:
            sid, _ = await srv.handshake()
            await srv.post(poll_url(sid), "4x")
            await srv.get(poll_url(sid))
            assert len(asked) == 1


async def test_other_paths_are_404() -> None:
    with trio.fail_after(10):
        async with running_server() as srv:
            for path in ("/", "/socket.io/?EIO=4&transport=polling", "/engine.io.js", "/x"):
                response = await srv.get(path)
                assert response.status == 404
            # The mount point answers with or without its trailing slash.
            response = await srv.get("/engine.io?EIO=4&transport=polling")
            assert response.status == 200
