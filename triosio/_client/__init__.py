"""Layer 2': the Socket.IO client (manager, namespace sockets, reconnection).

Public names are re-exported from :mod:`triosio`; nothing here imports the
server or the Redis adapter. The modules:

- ``connect.py``: :func:`triosio.connect`, a manager and its first socket in one call.
- ``manager.py``: :class:`~triosio.Manager`, the options, the sockets by namespace.
- ``connection.py``: the manager's Engine.IO connection and its reconnection loop.
- ``socket.py``: :class:`~triosio.ClientSocket`, its lifecycle and public API;
  ``lifecycle.py``: its states and transition table.
- ``outbox.py``: what a socket sends (buffer, volatile, backpressure);
  ``acks.py``: the acknowledgements it waits for and the at-least-once queue.
- ``incoming.py``: what a socket receives (streams, handlers, acknowledgements);
  ``stream.py``: :class:`~triosio.EventStream`; ``dispatcher.py``: the one task
  that runs a client's handlers, in order.
"""
