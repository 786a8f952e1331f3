"""WebSocket for the Engine.IO client: trio-websocket over a connector's stream.

trio-websocket runs a reader task in a nursery we give it, and a rejected
handshake makes that task raise. So each connection gets a *holder* task with a
nursery of its own: failures before the handshake completes come back as one
:class:`WebSocketError`, and nothing the library raises can reach the client's
nursery.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any, cast

import trio
import trio_websocket

from .eio_client_http import Connector, describe

log = logging.getLogger("triosio.client")

#: How long a closing handshake may take before the stream is just closed.
CLOSE_TIMEOUT = 2.0


class WebSocketError(Exception):
    """The WebSocket could not be opened (connection refused, handshake rejected...)."""


class ClientWebSocket:
    """One client WebSocket connection, held open by a task in ``nursery``.

    Use :meth:`open`, then :meth:`get_message` / :meth:`send_message`, and
    :meth:`aclose` when done (also safe if :meth:`open` failed).
    """

    def __init__(self) -> None:
        self._ws: trio_websocket.WebSocketConnection | None = None
        self._release = trio.Event()
        self._done = trio.Event()

    async def open(
        self,
        nursery: trio.Nursery,
        connector: Connector,
        host: str,
        port: int,
        tls: ssl.SSLContext | None,
        host_header: str,
        resource: str,
        headers: list[tuple[str, str]],
        max_message_size: int,
    ) -> None:
        """Connect and complete the WebSocket handshake.

        Raises:
            WebSocketError: the connection or the handshake failed.
        """
        try:
            stream = await connector(host, port, tls)
        except Exception as exc:  # whatever the connector raises is a failed connection
            raise WebSocketError(f"cannot connect to {host}:{port}: {describe(exc)}") from exc
        result = await nursery.start(
            self._hold, stream, host_header, resource, headers, max_message_size
        )
        if isinstance(result, BaseException):
            raise WebSocketError(f"websocket handshake failed: {result}") from result
        self._ws = result

    async def _hold(
        self,
        stream: trio.abc.Stream,
        host_header: str,
        resource: str,
        headers: list[tuple[str, str]],
        max_message_size: int,
        *,
        task_status: trio.TaskStatus[Any],
    ) -> None:
        started = False
        try:
            async with trio.open_nursery() as inner:
                ws = await trio_websocket.wrap_client_stream(
                    inner,
                    cast(Any, stream),
                    host_header,
                    resource,
                    extra_headers=[(k.encode(), v.encode()) for k, v in headers],
                    message_queue_size=64,
                    max_message_size=max_message_size,
                )
                started = True
                task_status.started(ws)
                await self._release.wait()
                # A closing handshake, bounded in time. (When cancelled instead,
                # there is no handshake: the stream is just closed below.)
                with trio.move_on_after(CLOSE_TIMEOUT):
                    await ws.aclose()
                inner.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            if group.subgroup(trio.Cancelled) is not None:
                raise  # never swallow a cancellation
            if not started:
                task_status.started(_first_error(group))
            else:
                log.debug("websocket holder ended with %r", group)
        except trio.Cancelled:
            raise
        except Exception as exc:
            if not started:
                task_status.started(exc)
            else:
                log.debug("websocket holder ended with %r", exc)
        finally:
            try:
                await trio.aclose_forcefully(stream)
            finally:
                self._done.set()

    async def get_message(self) -> str | bytes:
        """The next message.

        Raises:
            trio_websocket.ConnectionClosed: the connection is closed.
        """
        assert self._ws is not None
        return await self._ws.get_message()

    async def send_message(self, message: str | bytes) -> None:
        """Send one message (a text or binary frame).

        Raises:
            trio_websocket.ConnectionClosed: the connection is closed.
        """
        assert self._ws is not None
        await self._ws.send_message(message)

    async def aclose(self) -> None:
        """Close the connection (a closing handshake, bounded in time) and wait for it."""
        self._release.set()
        if self._ws is not None:
            await self._done.wait()


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first_error(exc)
        if not isinstance(exc, trio.Cancelled):
            return exc
    return group
