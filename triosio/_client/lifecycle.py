"""A client socket's lifecycle: its states and the one table of transitions.

::

                  start                  accepted
    DISCONNECTED ───────► CONNECTING ◄──────────────► CONNECTED
         ▲                    │            lost           │
         └──────stopped───────┴───────────stopped─────────┘

- *start*: the application called ``connect()``; the socket sends its CONNECT
  as soon as the manager's connection is open (again and again, across
  reconnections, until the server answers).
- *accepted*: the server's CONNECT answer gave the socket its id.
- *lost*: the connection ended; the socket stays active, the manager reconnects.
- *stopped*: the socket gave up for good: the application disconnected it, the
  server did or refused it, the manager gave up or closed. Also taken from
  DISCONNECTED (``disconnect()`` of an inactive socket, the manager's close),
  which ends what an inactive socket may still hold: its retry queue, its
  event streams.

:meth:`ClientSocket._advance` is the only code that changes a socket's state;
a step the table does not allow raises :class:`LifecycleError`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType

from .._errors import LifecycleError


class SocketState(enum.Enum):
    """Where a client socket is in its lifecycle."""

    DISCONNECTED = "disconnected"  # not connected, not trying (inactive)
    CONNECTING = "connecting"  # waiting for the connection or the server's answer
    CONNECTED = "connected"


class Step(enum.Enum):
    """What happened to a client socket: the input of the state machine."""

    START = "start"
    ACCEPTED = "accepted"
    LOST = "lost"
    STOPPED = "stopped"


_S = SocketState

#: Every legal transition: (state, step) -> next state. Nothing else is allowed.
TRANSITIONS: Mapping[tuple[SocketState, Step], SocketState] = MappingProxyType(
    {
        (_S.DISCONNECTED, Step.START): _S.CONNECTING,
        (_S.CONNECTING, Step.ACCEPTED): _S.CONNECTED,
        (_S.CONNECTED, Step.LOST): _S.CONNECTING,
        (_S.CONNECTING, Step.STOPPED): _S.DISCONNECTED,
        (_S.CONNECTED, Step.STOPPED): _S.DISCONNECTED,
        (_S.DISCONNECTED, Step.STOPPED): _S.DISCONNECTED,
    }
)


def next_state(state: SocketState, step: Step) -> SocketState:
    """The state ``step`` leads to from ``state``.

    Raises:
        LifecycleError: the table has no such transition.
    """
    new = TRANSITIONS.get((state, step))
    if new is None:
        raise LifecycleError(f"client socket: {step.value!r} while {state.value}")
    return new
