"""HTTP long-polling over real loopback sockets: handshake, GET/POST, overlaps, closes."""

from __future__ import annotations

import json
import string

import pytest
import trio
from eio_peers import (
    RS,
    HTTPClient,
    Recorder,
    message,
    poll_url,
    raw_post_head,
    running_server,
    wait_until,
)

from triosio import DisconnectReason, EngineSession

HANDSHAKE = "/engine.io/?EIO=4&transport=polling"


async def test_handshake_has_exactly_the_five_fields() -> None:
    with trio.fail_after(10):
        async with running_server(ping_interval=0.3, ping_timeout=0.2) as srv:
            response = await srv.get(HANDSHAKE)
            assert response.status == 200
            assert response.header("content-type") == "text/plain; charset=UTF-8"
            assert response.text[0] == "0"
            data = json.loads(response.text[1:])
            assert list(data) == ["sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"]
            assert data["upgrades"] == ["websocket"]
            assert data["pingInterval"] == 300
            assert data["pingTimeout"] == 200
            assert data["maxPayload"] == 1_000_000
            assert srv.engine.sessions[data["sid"]].transport == "polling"


@pytest.mark.parametrize(
    ("options", "upgrades"),
    [({"transports": ("polling",)}, []), ({"allow_upgrades": False}, [])],
)
async def test_handshake_without_upgrades(options: dict[str, object], upgrades: list[str]) -> None:
    with trio.fail_after(10):
        async with running_server(**options) as srv:
            _, data = await srv.handshake()
            assert data["upgrades"] == upgrades


async def test_session_ids_are_random_and_url_safe() -> None:
    with trio.fail_after(10):
        async with running_server() as srv:
            client = await srv.http()
            sids = set()
            for _ in range(20):  # keep-alive: one connection for all of them
                response = await client.request("GET", HANDSHAKE)
                sids.add(json.loads(response.text[1:])["sid"])
            await client.aclose()
            assert len(sids) == 20
            alphabet = set(string.ascii_letters + string.digits + "-_")
            for sid in sids:
                assert len(sid) >= 20  # 120 bits from secrets.token_urlsafe
                assert set(sid) <= alphabet


async def test_post_then_get_echoes_text_and_binary() -> None:
    with trio.fail_after(10):
        async with running_server() as srv:
            sid, _ = await srv.handshake()
            response = await srv.post(poll_url(sid), f"4hello{RS}bAQIDBA=={RS}4é✓")
            assert (response.status, response.text) == (200, "ok")
            response = await srv.get(poll_url(sid))
            assert response.status == 200
            assert response.text == f"4hello{RS}bAQIDBA=={RS}4é✓"
            assert [m for _, m in srv.app.messages] == ["hello", b"\x01\x02\x03\x04", "é✓"]


async def test_pending_get_returns_every_queued_packet_at_once() -> None:
    with trio.fail_after(10):
        async with running_server() as srv:
            sid, _ = await srv.handshake()
            session = srv.engine.sessions[sid]
            client = await srv.http()
            await client.send_request("GET", poll_url(sid))
            await wait_until(lambda: session.writable)  # the GET is parked
            # Three sends with no checkpoint in between: one response carries them.
            session.send_nowait([message("a")])
            session.send_nowait([message(b"\xff")])
            session.send_nowait([message("c")])
            response = await client.read_response()
            assert response.text == f"4a{RS}b/w=={RS}4c"
            await client.aclose()


async def test_keep_alive_carries_the_whole_session() -> None:
    with trio.fail_after(10):
        async with running_server() as srv:
            client = await srv.http()
            response = await client.request("GET", HANDSHAKE)
            sid = json.loads(response.text[1:])["sid"]
            for i in range(5):
                body = f"4m{i}".encode()
                response = await client.request(
                    "POST", poll_url(sid), [("content-type", "text/plain")], body
                )
                assert response.text == "ok"
                response = await client.request("GET", poll_url(sid))
                assert response.text == f"4m{i}"
            assert client.reusable
            await client.aclose()


async def test_second_get_closes_the_session() -> None:
    with trio.fail_after(10):
        async with running_server() as srv:
            sid, _ = await srv.handshake()
            first = await srv.http()
            await first.send_request("GET", poll_url(sid))
            await wait_until(lambda: srv.engine.sessions[sid].writable)
            second = await srv.get(poll_url(sid))
            assert second.status == 400
            assert second.json() == {"code": 3, "message": "Bad request"}
            response = await first.read_response()
            assert (response.status, response.text) == (200, "1")
            assert await srv.app.wait_closed(sid) is DisconnectReason.TRANSPORT_ERROR
            third = await srv.get(poll_url(sid))
            assert third.json() == {"code": 1, "message": "Session ID unknown"}
            await first.aclose()


async def test_second_post_closes_the_session() -> None:
    with trio.fail_after(10):
        async with running_server() as srv:
            sid, _ = await srv.handshake()
            first = await srv.http()
            # A POST whose body has not all arrived yet is still being processed.
            await first.stream.send_all(raw_post_head(sid, 10) + b"4ab")
            await wait_until(lambda: srv.engine.sessions[sid]._posting)
            second = await srv.post(poll_url(sid), "4cd")
            assert second.status == 400
            assert await srv.app.wait_closed(sid) is DisconnectReason.TRANSPORT_ERROR
            await first.aclose()


async def test_client_aborting_its_pending_get_closes_the_session() -> None:
    with trio.fail_after(10):
        async with running_server() as srv:
            sid, _ = await srv.handshake()
            client = await srv.http()
            await client.send_request("GET", poll_url(sid))
            await wait_until(lambda: srv.engine.sessions[sid].writable)
            await client.aclose()
            assert await srv.app.wait_closed(sid) is DisconnectReason.TRANSPORT_ERROR


async def test_client_aborting_a_post_body_closes_the_session() -> None:
    with trio.fail_after(10):
        async with running_server() as srv:
            sid, _ = await srv.handshake()
            client = await srv.http()
            await client.stream.send_all(raw_post_head(sid, 100) + b"4a")
            await wait_until(lambda: srv.engine.sessions[sid]._posting)
            await client.aclose()
            assert await srv.app.wait_closed(sid) is DisconnectReason.TRANSPORT_ERROR


async def test_octet_stream_post_is_refused_and_closes_the_session() -> None:
    with trio.fail_after(10):
        async with running_server() as srv:
            sid, _ = await srv.handshake()
            response = await srv.post(
                poll_url(sid), b"\x04hi", [("content-type", "application/octet-stream")]
            )
            assert response.status == 400
            assert response.json()["code"] == 3
            assert await srv.app.wait_closed(sid) is DisconnectReason.TRANSPORT_ERROR
            assert srv.app.messages == []


@pytest.mark.parametrize("body", ["abc", "", "4a\x1e", "b!!notbase64", "9x"])
async def test_invalid_payload_answers_400_and_closes(body: str) -> None:
    with trio.fail_after(10):
        async with running_server() as srv:
            sid, _ = await srv.handshake()
            response = await srv.post(poll_url(sid), body)
            assert response.status == 400
            assert response.json() == {"code": 3, "message": "Bad request"}
            assert await srv.app.wait_closed(sid) is DisconnectReason.PARSE_ERROR
            assert (await srv.get(poll_url(sid))).status == 400


async def test_client_close_packet_releases_the_pending_get_with_noop() -> None:
    with trio.fail_after(10):
        async with running_server() as srv:
            sid, _ = await srv.handshake()
            poller = await srv.http()
            await poller.send_request("GET", poll_url(sid))
            await wait_until(lambda: srv.engine.sessions[sid].writable)
            response = await srv.post(poll_url(sid), "1")
            assert (response.status, response.text) == (200, "ok")
            response = await poller.read_response()
            assert (response.status, response.text) == (200, "6")
            assert await srv.app.wait_closed(sid) is DisconnectReason.TRANSPORT_CLOSE
            assert (await srv.get(poll_url(sid))).status == 400
            await poller.aclose()


async def test_server_close_delivers_queued_packets_then_close() -> None:
    with trio.fail_after(10):
        async with running_server() as srv:
            sid, _ = await srv.handshake()
            session = srv.engine.sessions[sid]
            poller = await srv.http()
            await poller.send_request("GET", poll_url(sid))
            await wait_until(lambda: session.writable)
            session.send_nowait([message("bye")])
            session.close_nowait(DisconnectReason.FORCED_CLOSE)
            response = await poller.read_response()
            assert response.text == f"4bye{RS}1"
            assert await srv.app.wait_closed(sid) is DisconnectReason.FORCED_CLOSE
            await poller.aclose()


class _Slow(Recorder):
    """Parks on "4park" until cancelled; records the order of what happens."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[str] = []
        self.parked = trio.Event()

    async def on_message(self, session: EngineSession, data: str | bytes) -> None:
        self.log.append(f"message {data!r}")
        if data == "park":
            self.parked.set()
            try:
                await trio.sleep_forever()
            finally:
                self.log.append("message cancelled")
        if data == "close":
            session.close_nowait(DisconnectReason.FORCED_SERVER_CLOSE)

    async def on_close(self, session: EngineSession, reason: DisconnectReason) -> None:
        self.log.append(f"close {reason}")
        await super().on_close(session, reason)


async def test_session_closing_during_a_post_cancels_its_handling_first() -> None:
    app = _Slow()
    with trio.fail_after(10):
        async with running_server(app=app) as srv:
            sid, _ = await srv.handshake()
            async with trio.open_nursery() as nursery:
                responses = []

                async def post() -> None:
                    responses.append(await srv.post(poll_url(sid), f"4park{RS}4after"))

                nursery.start_soon(post)
                await app.parked.wait()
                srv.engine.sessions[sid].close_nowait(DisconnectReason.FORCED_CLOSE)
            assert responses[0].text == "ok"
            await app.wait_closed(sid)
            # The parked handler ended before on_close; the packet after it was dropped.
            assert app.log == ["message 'park'", "message cancelled", "close forced close"]


async def test_packets_after_a_closing_packet_are_dropped() -> None:
    app = _Slow()
    with trio.fail_after(10):
        async with running_server(app=app) as srv:
            sid, _ = await srv.handshake()
            response = await srv.post(poll_url(sid), f"4one{RS}4close{RS}4three")
            assert response.text == "ok"
            await app.wait_closed(sid)
            assert app.log == ["message 'one'", "message 'close'", "close forced server close"]


async def test_the_first_packet_of_the_session_is_open_whatever_on_open_sends() -> None:
    class Greeter(Recorder):
        async def on_open(self, session: EngineSession) -> None:
            session.send_nowait([message("welcome")])
            await super().on_open(session)

    with trio.fail_after(10):
        async with running_server(app=Greeter()) as srv:
            client = await srv.http()
            response = await client.request("GET", HANDSHAKE)
            records = response.text.split(RS)
            assert records[0].startswith("0{")
            sid = json.loads(records[0][1:])["sid"]
            rest = records[1:] or (await client.request("GET", poll_url(sid))).text.split(RS)
            assert rest == ["4welcome"]
            await client.aclose()


async def test_an_exception_in_the_app_costs_one_session_not_the_server(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Crashy(Recorder):
        async def on_message(self, session: EngineSession, data: str | bytes) -> None:
            raise RuntimeError("bug in the app")

    with trio.fail_after(10):
        async with running_server(app=Crashy()) as srv:
            sid, _ = await srv.handshake()
            response = await srv.post(poll_url(sid), "4x")
            assert response.text == "ok"
            assert await srv.app.wait_closed(sid) is DisconnectReason.FORCED_CLOSE
            assert "bug in the app" in caplog.text
            other, _ = await srv.handshake()  # the server lives on
            assert other in srv.engine.sessions


async def test_http_connection_reuse_after_a_refused_request() -> None:
    with trio.fail_after(10):
        async with running_server() as srv:
            client = HTTPClient(await srv.connect())
            response = await client.request("GET", "/engine.io/?EIO=4&transport=nope")
            assert response.status == 400
            response = await client.request("GET", HANDSHAKE)
            assert response.status == 200
            await client.aclose()


@pytest.mark.parametrize("transport", ["polling", "websocket"])
async def test_a_closed_session_is_unknown_at_once(transport: str) -> None:
    # As in the reference, a session is gone the moment it closes, even while
    # its task is still saying goodbye (engine.io's test suite relies on it).
    with trio.fail_after(10):
        async with running_server() as srv:
            if transport == "polling":
                sid, _ = await srv.handshake()
            else:
                ws, sid = await srv.ws_handshake()
            srv.engine.sessions[sid].close_nowait(DisconnectReason.FORCED_CLOSE)
            for url in (poll_url(sid), poll_url(sid, "websocket")):
                response = await srv.get(url)
                assert response.json() == {"code": 1, "message": "Session ID unknown"}
            response = await srv.post(poll_url(sid), "4x")
            assert response.json() == {"code": 1, "message": "Session ID unknown"}
            if transport == "websocket":
                await ws.receive_until_closed()
