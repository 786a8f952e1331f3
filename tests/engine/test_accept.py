"""The TCP accept loop: connections accepted in batches, each with its address."""

from __future__ import annotations

import trio
from eio_peers import HTTPClient, running_server


async def test_a_burst_of_connections_is_served_with_each_address() -> None:
    # 150 connections opened at once (often more than one accept batch).
    with trio.fail_after(20):
        async with running_server() as srv:
            ports: list[int] = []

            async def one() -> None:
                stream = await srv.connect()
                assert isinstance(stream, trio.SocketStream)
                ports.append(stream.socket.getsockname()[1])
                client = HTTPClient(stream)
                await client.send_request("GET", "/engine.io/?EIO=4&transport=polling")
                response = await client.read_response()
                assert response.status == 200 and response.text.startswith("0{")
                await stream.aclose()

            async with trio.open_nursery() as nursery:
                for _ in range(150):
                    nursery.start_soon(one)
            assert len(srv.app.opened) == 150
            # The address comes from accept(): the peer's own host and port.
            seen = {s.request.client for s in srv.app.opened}
            assert seen == {("127.0.0.1", port) for port in ports}
            for session in srv.app.opened:
                session.close_nowait()
