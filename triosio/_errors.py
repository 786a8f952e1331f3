"""The one exception tree of triosio, and the disconnect reasons.

This module imports nothing from triosio (and nothing from trio), so every layer,
including the sans-I/O protocol core, can use it.
"""

from __future__ import annotations

import enum
from typing import Any


class DisconnectReason(enum.StrEnum):
    """Why a session, a socket or a client connection ended.

    The values are spelled exactly like the reasons of the JavaScript reference
    (``socket.on("disconnect", (reason) => ...)``), so logs and cross-language
    dashboards read the same. Reasons marked *triosio* have no JavaScript twin.
    """

    #: The transport failed (the TCP connection broke, a write failed).
    TRANSPORT_ERROR = "transport error"
    #: The peer closed the connection (page closed, network cut, close packet).
    TRANSPORT_CLOSE = "transport close"
    #: The Engine.IO session was closed on purpose (server ``close()``).
    FORCED_CLOSE = "forced close"
    #: No pong (server side) or no ping (client side) in time.
    PING_TIMEOUT = "ping timeout"
    #: The peer sent something that is not valid Engine.IO / Socket.IO.
    PARSE_ERROR = "parse error"
    #: The server is shutting down.
    SERVER_SHUTTING_DOWN = "server shutting down"
    #: The server closed the whole connection (``socket.disconnect(close=True)``).
    FORCED_SERVER_CLOSE = "forced server close"
    #: The client left the namespace (``socket.disconnect()`` on the client).
    CLIENT_NAMESPACE_DISCONNECT = "client namespace disconnect"
    #: The server removed the socket from the namespace (``socket.disconnect()``).
    SERVER_NAMESPACE_DISCONNECT = "server namespace disconnect"
    #: Client side: the server disconnected this socket.
    IO_SERVER_DISCONNECT = "io server disconnect"
    #: Client side: the application called ``disconnect()``.
    IO_CLIENT_DISCONNECT = "io client disconnect"
    #: *triosio*: a message exceeded ``max_http_buffer_size``.
    PAYLOAD_TOO_LARGE = "payload too large"
    #: *triosio*: the client did not read fast enough and its bounded outbound
    #: queue overflowed (see the backpressure policy in the docs).
    SLOW_CLIENT = "slow client"

    def __str__(self) -> str:
        return self.value


class LifecycleError(RuntimeError):
    """A step a lifecycle table does not allow from a socket's state.

    Server and client sockets each have one table of transitions; this means
    a bug in triosio, never bad input.
    """


class TriosioError(Exception):
    """Root of every exception that triosio raises on purpose."""


class ProtocolError(TriosioError):
    """Something broke the Engine.IO v4 / Socket.IO v5 protocol.

    Never raised directly: it is either a :class:`LocalProtocolError` (this side
    tried to send something the protocol cannot carry) or a
    :class:`RemoteProtocolError` (the peer sent something malformed).
    """

    def __init__(self, msg: str) -> None:
        if type(self) is ProtocolError:
            raise TypeError("ProtocolError is abstract: raise a subclass")
        super().__init__(msg)


class LocalProtocolError(ProtocolError):
    """This side tried to encode something the protocol cannot carry.

    For example ``NaN`` in an event payload, an object that is not JSON
    serialisable, or a reserved event name passed to ``emit``.
    """


class RemoteProtocolError(ProtocolError):
    """The peer sent malformed input. Each kind of fault has its own subclass."""


class EmptyPacket(RemoteProtocolError):
    """An Engine.IO or Socket.IO packet with no content at all."""


class UnknownPacketType(RemoteProtocolError):
    """The packet type is not one the protocol defines."""


class InvalidNamespace(RemoteProtocolError):
    """A namespace that does not start with ``/`` (or is not a string)."""


class InvalidAckId(RemoteProtocolError):
    """An acknowledgement id that is not digits, too long, or above 2**53."""


class InvalidJSON(RemoteProtocolError):
    """The packet data is not valid JSON (``NaN`` and ``Infinity`` included)."""


class NestingTooDeep(RemoteProtocolError):
    """JSON (or msgpack) nested deeper than the configured ``max_depth``."""


class IntegerTooLong(RemoteProtocolError):
    """A JSON integer with more digits than the configured ``max_int_digits``."""


class InvalidEventPayload(RemoteProtocolError):
    """An EVENT payload that is not a non-empty array."""


class InvalidEventName(RemoteProtocolError):
    """An event name that is not a string."""


class ReservedEventName(RemoteProtocolError):
    """A peer sent an event whose name is reserved (``connect``, ``disconnect``...)."""


class InvalidAckPayload(RemoteProtocolError):
    """An ACK payload that is not an array."""


class InvalidConnectPayload(RemoteProtocolError):
    """A CONNECT payload that is not an object."""


class InvalidDisconnectPayload(RemoteProtocolError):
    """A DISCONNECT packet that carries a payload."""


class InvalidConnectErrorPayload(RemoteProtocolError):
    """A CONNECT_ERROR payload that is neither an object nor a string."""


class InvalidAttachmentCount(RemoteProtocolError):
    """A binary packet's attachment count: not digits, zero, or above the maximum."""


class InvalidPlaceholder(RemoteProtocolError):
    """A binary placeholder whose ``num`` is not an int or is out of range."""


class AttachmentMismatch(RemoteProtocolError):
    """Binary attachments that do not match the placeholders of their packet.

    Also raised for a binary frame that no packet is waiting for, and for a text
    packet that arrives while attachments are still expected.
    """


class PayloadTooLarge(RemoteProtocolError):
    """A packet, payload or attachment set above the configured size limit."""


class TooManyPackets(RemoteProtocolError):
    """A polling payload with more packets than ``max_packets_per_payload``."""


class InvalidEncoding(RemoteProtocolError):
    """Bytes that are not valid UTF-8, or base64 that is not valid base64."""


class InvalidHandshake(RemoteProtocolError):
    """An Engine.IO OPEN packet whose handshake data is malformed (client side)."""


class ConnectionRefused(TriosioError):
    """Raise it in a connection middleware or handler to refuse a client.

    The client receives a CONNECT_ERROR packet ``{"message": message, "data": data}``
    (``data`` is left out when it is ``None``), which ``socket.io-client`` reports
    as a ``connect_error`` with ``err.message`` and ``err.data``.

    Args:
        message: Shown to the client as the error message.
        data: Any JSON-serialisable value for the client, or ``None``.
    """

    def __init__(self, message: str = "Connection refused", data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


class Disconnected(TriosioError):
    """The peer or the transport went away (not something this side closed).

    Attributes:
        reason: Why, as a :class:`DisconnectReason`.
    """

    def __init__(self, reason: DisconnectReason, message: str | None = None) -> None:
        super().__init__(message or f"disconnected: {reason.value}")
        self.reason = reason


class ConnectError(TriosioError):
    """A client could not connect (the server refused, or the transport failed).

    Attributes:
        message: The server's message (from CONNECT_ERROR) or a description of
            the transport failure.
        data: The ``data`` of the server's CONNECT_ERROR, if any.
    """

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


class AckTimeout(TriosioError, TimeoutError):
    """No acknowledgement arrived within the timeout."""


class BroadcastAckTimeout(AckTimeout):
    """Some recipients of a broadcast did not acknowledge within the timeout.

    Attributes:
        responses: The acknowledgements that did arrive, one item per client
            (as ``emit_with_ack`` returns them).
        missing: The ids of the sockets that did not answer.
    """

    def __init__(self, responses: list[Any], missing: list[str]) -> None:
        super().__init__(
            f"{len(missing)} of {len(responses) + len(missing)} clients did not acknowledge"
        )
        self.responses = responses
        self.missing = missing


class ClusterTimeout(BroadcastAckTimeout):
    """Not every server of the cluster (or every remote client) answered in time.

    Raised by cluster-wide operations through an adapter: ``fetch_sockets``,
    ``all_rooms``, ``server_side_emit_with_ack``, and broadcast
    ``emit_with_ack`` when a remote part is missing.

    Attributes:
        responses: What did arrive: sockets, rooms or acknowledgements.
        missing: Ids of this server's sockets that did not acknowledge.
        expected: Answers expected from other servers (servers, or for a
            broadcast, remote clients and servers' client counts).
        received: How many of those arrived.
    """

    def __init__(
        self,
        what: str,
        responses: list[Any],
        missing: list[str] | None = None,
        *,
        expected: int,
        received: int,
    ) -> None:
        super().__init__(responses, list(missing or ()))
        self.args = (
            f"{what}: {received} of {expected} remote answers arrived in time"
            + (f", {len(self.missing)} local clients did not acknowledge" if self.missing else ""),
        )
        self.expected = expected
        self.received = received
