"""triosio: a Socket.IO (v5, over Engine.IO v4) server and client for Trio.

Public names are re-exported here from private modules; nothing else is public
except the :mod:`triosio.testing` and :mod:`triosio.asgi` modules.
"""

from __future__ import annotations

# client
from ._client.connect import connect as connect
from ._client.manager import Manager as Manager
from ._client.outbox import BufferFull as BufferFull
from ._client.outbox import EmitFlags as EmitFlags
from ._client.socket import ClientSocket as ClientSocket
from ._client.stream import Event as Event
from ._client.stream import EventStream as EventStream
from ._client.stream import EventStreamOverflow as EventStreamOverflow

# engine and HTTP server
from ._engine.app import App as App
from ._engine.app import StaticFiles as StaticFiles
from ._engine.app import serve as serve
from ._engine.deflate import HTTPCompression as HTTPCompression
from ._engine.deflate import PerMessageDeflate as PerMessageDeflate
from ._engine.exchange import Request as Request
from ._engine.h11server import HTTPLimits as HTTPLimits
from ._engine.options import CookieOptions as CookieOptions
from ._engine.server import EngineServer as EngineServer
from ._engine.session import EngineApp as EngineApp
from ._engine.session import EngineSession as EngineSession
from ._errors import AckTimeout as AckTimeout
from ._errors import AttachmentMismatch as AttachmentMismatch
from ._errors import BroadcastAckTimeout as BroadcastAckTimeout
from ._errors import ClusterTimeout as ClusterTimeout
from ._errors import ConnectError as ConnectError
from ._errors import ConnectionRefused as ConnectionRefused
from ._errors import Disconnected as Disconnected
from ._errors import DisconnectReason as DisconnectReason
from ._errors import EmptyPacket as EmptyPacket
from ._errors import IntegerTooLong as IntegerTooLong
from ._errors import InvalidAckId as InvalidAckId
from ._errors import InvalidAckPayload as InvalidAckPayload
from ._errors import InvalidAttachmentCount as InvalidAttachmentCount
from ._errors import InvalidConnectErrorPayload as InvalidConnectErrorPayload
from ._errors import InvalidConnectPayload as InvalidConnectPayload
from ._errors import InvalidDisconnectPayload as InvalidDisconnectPayload
from ._errors import InvalidEncoding as InvalidEncoding
from ._errors import InvalidEventName as InvalidEventName
from ._errors import InvalidEventPayload as InvalidEventPayload
from ._errors import InvalidHandshake as InvalidHandshake
from ._errors import InvalidJSON as InvalidJSON
from ._errors import InvalidNamespace as InvalidNamespace
from ._errors import InvalidPlaceholder as InvalidPlaceholder
from ._errors import LocalProtocolError as LocalProtocolError
from ._errors import NestingTooDeep as NestingTooDeep
from ._errors import PayloadTooLarge as PayloadTooLarge
from ._errors import ProtocolError as ProtocolError
from ._errors import RemoteProtocolError as RemoteProtocolError
from ._errors import ReservedEventName as ReservedEventName
from ._errors import TooManyPackets as TooManyPackets
from ._errors import TriosioError as TriosioError
from ._errors import UnknownPacketType as UnknownPacketType

# server
from ._server.broadcast import BroadcastOperator as BroadcastOperator
from ._server.namespace import Namespace as Namespace
from ._server.namespace import ParentNamespace as ParentNamespace
from ._server.ratelimit import RateLimit as RateLimit
from ._server.recovery import ConnectionStateRecovery as ConnectionStateRecovery
from ._server.remote import RemoteSocket as RemoteSocket
from ._server.server import Server as Server
from ._server.socket import Handshake as Handshake
from ._server.socket import Socket as Socket
from ._version import __version__ as __version__

__all__ = [
    "AckTimeout",
    "App",
    "AttachmentMismatch",
    "BroadcastAckTimeout",
    "BroadcastOperator",
    "BufferFull",
    "ClientSocket",
    "ClusterTimeout",
    "ConnectError",
    "ConnectionRefused",
    "ConnectionStateRecovery",
    "CookieOptions",
    "DisconnectReason",
    "Disconnected",
    "EmitFlags",
    "EmptyPacket",
    "EngineApp",
    "EngineServer",
    "EngineSession",
    "Event",
    "EventStream",
    "EventStreamOverflow",
    "HTTPCompression",
    "HTTPLimits",
    "Handshake",
    "IntegerTooLong",
    "InvalidAckId",
    "InvalidAckPayload",
    "InvalidAttachmentCount",
    "InvalidConnectErrorPayload",
    "InvalidConnectPayload",
    "InvalidDisconnectPayload",
    "InvalidEncoding",
    "InvalidEventName",
    "InvalidEventPayload",
    "InvalidHandshake",
    "InvalidJSON",
    "InvalidNamespace",
    "InvalidPlaceholder",
    "LocalProtocolError",
    "Manager",
    "Namespace",
    "NestingTooDeep",
    "ParentNamespace",
    "PayloadTooLarge",
    "PerMessageDeflate",
    "ProtocolError",
    "RateLimit",
    "RemoteProtocolError",
    "RemoteSocket",
    "Request",
    "ReservedEventName",
    "Server",
    "Socket",
    "StaticFiles",
    "TooManyPackets",
    "TriosioError",
    "UnknownPacketType",
    "__version__",
    "connect",
    "serve",
]


def _fixup_module_metadata() -> None:
    # Make public names report the public module, as trio does.
    for name in __all__:
        obj = globals()[name]
        if getattr(obj, "__module__", "").startswith("triosio."):
            obj.__module__ = "triosio"


_fixup_module_metadata()
del _fixup_module_metadata
