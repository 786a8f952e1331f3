"""Passing a TCP connection to another process (SCM_RIGHTS over a Unix socket).

Each worker shares one ``SOCK_SEQPACKET`` socket pair with the supervisor: one
message carries one connection's file descriptor and the bytes already read
from it, whole (a datagram cannot be half delivered). Both directions: the
acceptor hands connections to the worker; the worker gives back a
connection whose next request belongs to another worker.
"""

from __future__ import annotations

import array
import socket

import trio

#: The most bytes that go with a connection: a request head (16 KiB at most,
#: ``HTTPLimits.max_head_size``) and what came behind it in the same reads.
MAX_MESSAGE = 256 * 1024
_FD_SPACE = socket.CMSG_SPACE(array.array("i", [0]).itemsize)


def pair() -> tuple[socket.socket, socket.socket]:
    """A connected pair of sockets to pass connections on (supervisor's, worker's)."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    for sock in (a, b):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 2 * MAX_MESSAGE)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2 * MAX_MESSAGE)
    return a, b


async def send(
    channel: trio.socket.SocketType,
    connection: socket.socket | trio.socket.SocketType,
    data: bytes,
) -> None:
    """Send ``connection`` (and ``data``, read from it) over ``channel``.

    The caller still holds ``connection``'s descriptor and closes it (the
    receiver has its own). Raises OSError if the other side is gone.
    """
    if len(data) > MAX_MESSAGE:
        raise OSError(f"{len(data)} bytes read ahead is more than one message takes")
    fds = array.array("i", [connection.fileno()])
    await channel.sendmsg([data or b"\0"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
    # An empty message would read as the end of the stream: b"\0" stands for no
    # data (a request never starts with NUL).


async def receive(channel: trio.socket.SocketType) -> tuple[socket.socket, bytes] | None:
    """The next connection sent over ``channel`` and its bytes; None when the sender is gone."""
    while True:
        data, ancillary, _flags, _addr = await channel.recvmsg(MAX_MESSAGE, _FD_SPACE)
        fds: list[int] = []
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                received = array.array("i")
                received.frombytes(payload[: len(payload) - len(payload) % received.itemsize])
                fds.extend(received)
        if not fds:
            if not data:
                return None  # the other side closed
            continue  # nothing to serve (cannot happen between our own processes)
        for extra in fds[1:]:
            socket.close(extra)
        connection = socket.socket(fileno=fds[0])
        return connection, b"" if data == b"\0" else data
