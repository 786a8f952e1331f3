"""Pieces below the layers, shared by the engine, the server and the client.

Trio helpers (``sync``) and the handler registry with its calling convention
(``handlers``). Imports the standard library, trio and ``_errors`` only: never
``_engine``, ``_server``, ``_client`` or the Redis adapter (a test checks it).
"""
