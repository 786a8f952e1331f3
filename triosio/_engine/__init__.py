"""Layer 1: Engine.IO v4 on Trio (HTTP server, polling, WebSocket, sessions).

Knows nothing of Socket.IO: it reports upward through :class:`EngineApp`.
"""
