"""Compression: WebSocket permessage-deflate (RFC 7692) and gzip/deflate polling bodies.

Sans-I/O: the negotiation of the ``Sec-WebSocket-Extensions`` header, the
compression of one message and its inflation with a size limit, and the
choice of a ``Content-Encoding`` for a polling response.

Why the server never keeps its compression context between messages by
default (it says ``server_no_context_takeover``, which RFC 7692 section
7.1.1.1 lets a server add to any accepted offer): a message compressed on its
own is the same bytes for every recipient, so a broadcast is compressed once
per packet, not once per client (:meth:`OutPacket.ws_deflated_frame`), and no
connection holds a compressor (zlib's is about 256 KiB at the default memory
level). The reference server keeps its context by default;
``server_no_context_takeover=False`` does that here too, at those costs.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

#: What a sync flush ends a deflate stream with; RFC 7692 section 7.2.1 drops
#: it from each message and section 7.2.2 puts it back before inflating.
_TAIL = b"\x00\x00\xff\xff"


@dataclass(frozen=True, slots=True)
class PerMessageDeflate:
    """Options of WebSocket permessage-deflate (RFC 7692), as engine.io's ``perMessageDeflate``.

    Pass ``per_message_deflate=True`` (these defaults) or an instance to the
    server; it is off by default, as in the reference server.

    Attributes:
        threshold: Messages smaller than this many bytes are sent uncompressed
            (the reference's default, 1024).
        server_no_context_takeover: Compress each message on its own (the
            default; a broadcast is then compressed once for all its
            recipients, and no connection keeps a compressor). ``False`` keeps
            one compression context per connection, as the reference does:
            better ratios on similar messages, about 256 KiB per connection
            and one compression per recipient.
        client_no_context_takeover: Ask clients to compress each message on
            its own, so the server keeps no decompressor between messages
            (less memory per connection, worse ratios on the client's side).
        server_max_window_bits: Largest LZ77 window the server compresses
            with (9-15; smaller saves memory, compresses less).
        client_max_window_bits: Largest window asked of clients that offer
            to limit theirs (8-15).
        level: zlib compression level (0-9, or -1 for zlib's default, 6).
        mem_level: zlib memory level (1-9).
    """

    threshold: int = 1024
    server_no_context_takeover: bool = True
    client_no_context_takeover: bool = False
    server_max_window_bits: int = 15
    client_max_window_bits: int = 15
    level: int = -1
    mem_level: int = 8

    def __post_init__(self) -> None:
        if self.threshold < 0:
            raise ValueError("threshold must be >= 0")
        # zlib makes no raw deflate stream with an 8-bit window (it uses 9).
        if not 9 <= self.server_max_window_bits <= 15:
            raise ValueError("server_max_window_bits must be between 9 and 15")
        if not 8 <= self.client_max_window_bits <= 15:
            raise ValueError("client_max_window_bits must be between 8 and 15")
        if not -1 <= self.level <= 9:
            raise ValueError("level must be between -1 and 9")
        if not 1 <= self.mem_level <= 9:
            raise ValueError("mem_level must be between 1 and 9")


@dataclass(frozen=True, slots=True)
class HTTPCompression:
    """Compression of long-polling responses, as engine.io's ``httpCompression``.

    On by default, as in the reference server: a response body of at least
    ``threshold`` bytes is sent gzip- or deflate-encoded when the request's
    ``Accept-Encoding`` allows it (gzip preferred).

    Attributes:
        threshold: Smallest body compressed, in bytes (the reference's 1024).
        level: zlib compression level (0-9, or -1 for zlib's default, 6).
    """

    threshold: int = 1024
    level: int = -1

    def __post_init__(self) -> None:
        if self.threshold < 0:
            raise ValueError("threshold must be >= 0")
        if not -1 <= self.level <= 9:
            raise ValueError("level must be between -1 and 9")


# ------------------------------------------------------------ negotiation


@dataclass(frozen=True, slots=True)
class Negotiated:
    """What one connection agreed on: how the server compresses and inflates."""

    threshold: int
    level: int
    mem_level: int
    #: The window the server compresses with.
    server_bits: int
    #: The window the client may compress with (the server inflates with it).
    client_bits: int
    #: The server keeps a compression context between its messages.
    server_takeover: bool
    #: The client may keep its context: the server keeps its decompressor.
    client_takeover: bool


class _Declined(Exception):
    pass


def _params(text: str) -> dict[str, str | None]:
    # One offer's parameters, e.g. "client_max_window_bits; server_max_window_bits=10".
    params: dict[str, str | None] = {}
    for item in text.split(";"):
        item = item.strip()
        if not item:
            raise _Declined("empty parameter")
        name, eq, value = item.partition("=")
        name = name.strip().lower()
        if name in params:
            raise _Declined(f"{name} given twice")
        value = value.strip()
        if eq and len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]  # a quoted-string value (RFC 7692 section 7.1)
        params[name] = value if eq else None
    return params


def _bits(value: str | None, *, optional: bool) -> int:
    if value is None:
        if optional:
            return 15
        raise _Declined("window bits without a value")
    if not (value.isdigit() and len(value) <= 2 and 8 <= int(value) <= 15):
        raise _Declined(f"invalid window bits {value!r}")
    return int(value)


def _accept(params: dict[str, str | None], options: PerMessageDeflate) -> tuple[str, Negotiated]:
    # The response for one offer of permessage-deflate, or _Declined.
    response = ["permessage-deflate"]
    server_takeover = not options.server_no_context_takeover
    client_takeover = not options.client_no_context_takeover
    server_bits = options.server_max_window_bits
    client_bits = 15  # a client that may not be limited may use the largest window
    for name, value in params.items():
        if name == "server_no_context_takeover":
            if value is not None:
                raise _Declined("server_no_context_takeover takes no value")
            server_takeover = False
        elif name == "client_no_context_takeover":
            if value is not None:
                raise _Declined("client_no_context_takeover takes no value")
            client_takeover = False
        elif name == "server_max_window_bits":
            server_bits = min(server_bits, _bits(value, optional=False))
        elif name == "client_max_window_bits":
            # The client can be limited: to ours, or to its own value if smaller.
            client_bits = min(options.client_max_window_bits, _bits(value, optional=True))
            response.append(f"client_max_window_bits={client_bits}")
        else:
            raise _Declined(f"unknown parameter {name}")
    if not server_takeover:
        response.append("server_no_context_takeover")
    if not client_takeover:
        response.append("client_no_context_takeover")
    if "server_max_window_bits" in params:
        # Only if asked (section 7.1.2.1): otherwise a smaller window needs no word.
        response.append(f"server_max_window_bits={server_bits}")
    if server_bits == 8:
        # zlib makes no raw deflate stream with an 8-bit window: decline.
        raise _Declined("server_max_window_bits=8 is not supported by zlib")
    negotiated = Negotiated(
        threshold=options.threshold,
        level=options.level,
        mem_level=options.mem_level,
        server_bits=server_bits,
        client_bits=client_bits,
        server_takeover=server_takeover,
        client_takeover=client_takeover,
    )
    return "; ".join(response), negotiated


def negotiate(header: str | None, options: PerMessageDeflate) -> tuple[str, Negotiated] | None:
    """Accept the first acceptable permessage-deflate offer of a ``Sec-WebSocket-Extensions``.

    Returns the response header's value and what was agreed, or None (no
    offer, or none acceptable: the connection goes on uncompressed, as RFC 7692
    section 5 lets a server decline). Malformed offers are declined, never an error.
    """
    if not header:
        return None
    for offer in header.split(","):
        name, _, rest = offer.partition(";")
        if name.strip().lower() != "permessage-deflate":
            continue
        try:
            return _accept(_params(rest) if rest.strip() else {}, options)
        except _Declined:
            continue
    return None


# ------------------------------------------------------------ messages


def deflate_message(data: bytes, bits: int, level: int, mem_level: int) -> bytes:
    """``data`` compressed on its own, as one permessage-deflate message's payload."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, -bits, mem_level)
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return out[:-4] if out.endswith(_TAIL) else out


class Deflater:
    """A connection's compressor that keeps its context (``server_takeover``)."""

    __slots__ = ("_zlib",)

    def __init__(self, negotiated: Negotiated) -> None:
        self._zlib = zlib.compressobj(
            negotiated.level, zlib.DEFLATED, -negotiated.server_bits, negotiated.mem_level
        )

    def deflate(self, data: bytes) -> bytes:
        """The payload of the next compressed message."""
        out = self._zlib.compress(data) + self._zlib.flush(zlib.Z_SYNC_FLUSH)
        return out[:-4] if out.endswith(_TAIL) else out


class InflateError(Exception):
    """A compressed message that cannot be inflated; close with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Inflater:
    """A connection's decompressor for the client's compressed messages.

    Made on the first compressed message (idle connections hold none); kept
    between messages only when the client may keep its context.
    """

    __slots__ = ("_bits", "_keep", "_zlib")

    def __init__(self, negotiated: Negotiated) -> None:
        # A larger window inflates any stream a smaller one made; zlib's raw
        # inflate starts at 9.
        self._bits = max(negotiated.client_bits, 9)
        self._keep = negotiated.client_takeover
        self._zlib: zlib._Decompress | None = None

    def inflate(self, payload: bytes, max_size: int) -> bytes:
        """The message, or :class:`InflateError` (1009 if over ``max_size`` inflated).

        Inflates at most ``max_size + 1`` bytes, so a small message that
        inflates to gigabytes (a "zip bomb") costs no more than a large one.
        """
        inflater = self._zlib
        if inflater is None:
            inflater = zlib.decompressobj(-self._bits)
            if self._keep:
                self._zlib = inflater
        try:
            out = inflater.decompress(payload + _TAIL, max_size + 1)
        except zlib.error as exc:
            raise InflateError(1007, f"invalid compressed data: {exc}") from None
        if len(out) > max_size or inflater.unconsumed_tail:
            raise InflateError(1009, "message too big once inflated")
        if inflater.eof:
            # The client ended its stream (a BFINAL block, which RFC 7692
            # section 7.2.3.4 allows): its next message starts a new one.
            self._zlib = None
        return out


# ------------------------------------------------------------ HTTP


def choose_encoding(accept_encoding: str | None) -> str | None:
    """``"gzip"``, ``"deflate"`` or None for an ``Accept-Encoding`` header (gzip preferred)."""
    if not accept_encoding:
        return None
    weights: dict[str, float] = {}
    for item in accept_encoding.split(","):
        name, _, params = item.partition(";")
        name = name.strip().lower()
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
        if name and name not in weights:
            weights[name] = q
    best: str | None = None
    best_q = 0.0
    for name in ("gzip", "deflate"):
        q = weights.get(name, weights.get("*", 0.0))
        if q > best_q:
            best, best_q = name, q
    return best


def http_compress(body: bytes, encoding: str, level: int) -> bytes:
    """``body`` as a gzip (RFC 1952) or deflate (zlib, RFC 1950) response body."""
    bits = 31 if encoding == "gzip" else 15
    compressor = zlib.compressobj(level, zlib.DEFLATED, bits)
    return compressor.compress(body) + compressor.flush()
