// The reference socket.io 4.8 server with the app of examples/protocol_server.py
// (the Socket.IO side of the v5 protocol test suite's expectations), to compare
// results: namespaces "/" and "/custom", "auth" emitted on connect with the
// CONNECT payload, "message" -> "message-back", "message-with-ack" acknowledged.
//
// Usage: node protocol_server_node.js  (RECOVERY=1: connectionStateRecovery on)
// Prints "listening <port>" once it accepts connections (a free loopback port).
"use strict";

const http = require("http");
const { Server } = require("socket.io");

const httpServer = http.createServer();
const io = new Server(httpServer, {
  pingInterval: 300,
  pingTimeout: 200,
  maxHttpBufferSize: 1e6,
  cors: { origin: "*" },
  ...(process.env.RECOVERY === "1" ? { connectionStateRecovery: {} } : {}),
});

function setup(nsp) {
  nsp.on("connection", (socket) => {
    socket.emit("auth", socket.handshake.auth);
    socket.on("message", (...args) => socket.emit("message-back", ...args));
    socket.on("message-with-ack", (...args) => {
      const ack = args.pop();
      ack(...args);
    });
  });
}

setup(io.of("/"));
setup(io.of("/custom"));
httpServer.listen(0, "127.0.0.1", () => {
  process.stdout.write(`listening ${httpServer.address().port}\n`);
});
process.on("SIGTERM", () => process.exit(0));
