"""Layer 2': the Socket.IO client (manager, namespace sockets, reconnection).

Public names are re-exported from :mod:`triosio`; nothing here imports the server.
"""
