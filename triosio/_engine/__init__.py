"""Layer 1: Engine.IO v4 on Trio, server and client.

The server: HTTP (``h11server.py``, or ASGI through ``asgi_transport.py``),
polling and WebSocket transports, sessions. The client: ``eio_client*.py``.
Knows nothing of Socket.IO: the server reports upward through
:class:`EngineApp`, the client through the callbacks of :class:`EngineClient`.
"""
