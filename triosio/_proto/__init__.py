"""Layer 0: the sans-I/O protocol core (Engine.IO v4, Socket.IO v5, parsers).

Standard library only: nothing here imports trio, h11 or wsproto.
"""
