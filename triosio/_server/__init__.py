"""Layer 2: the Socket.IO server (router, namespaces, sockets, broadcasts)."""
