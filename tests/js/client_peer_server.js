// A socket.io 4.8 server for triosio's client tests (tests/client/).
//
// Usage: node client_peer_server.js <port>
// Prints "listening <port>" on stdout once it accepts connections.
// The behaviour matches tests/client/pysio_server.py (the python-socketio twin):
//
//   "/" and "/chat"       accept everyone; "/private" needs auth {token: "secret"},
//                         otherwise CONNECT_ERROR {message: "unauthorized", data: {...}}
//   "echo" (...args)      with an ack: acks the args; without: emits "echo" back
//   "auth"                acks the auth the client sent on this connection
//   "whoami"              acks {sid, nsp}
//   "ask" (question)      emits "question" with an ack to the client, then emits
//                         "answer" with what the client acknowledged
//   "push" (n)            emits n events "pushed" (0..n-1)
//   "kick"                disconnects this socket (the client sees "io server disconnect")
//   "noack"               never acknowledges (for ack timeouts)
//   "count" (...args)     acks how many "count" events this socket sent so far,
//                         the first acks only on the second try (at-least-once tests)
"use strict";

const http = require("http");
const { Server } = require("socket.io");

const port = Number(process.argv[2]);
const pingInterval = Number(process.env.PING_INTERVAL || 25000);
const pingTimeout = Number(process.env.PING_TIMEOUT || 20000);

const httpServer = http.createServer();
const io = new Server(httpServer, {
  pingInterval,
  pingTimeout,
  cors: { origin: "*" },
  maxHttpBufferSize: 1e7,
});

function setup(nsp) {
  nsp.on("connection", (socket) => {
    let counted = 0;
    let ignoredFirst = false;
    socket.on("echo", (...args) => {
      const ack = typeof args[args.length - 1] === "function" ? args.pop() : null;
      if (ack) ack(...args);
      else socket.emit("echo", ...args);
    });
    socket.on("auth", (ack) => ack(socket.handshake.auth));
    socket.on("whoami", (ack) => ack({ sid: socket.id, nsp: nsp.name }));
    socket.on("ask", async (question) => {
      try {
        const answer = await socket.timeout(5000).emitWithAck("question", question);
        socket.emit("answer", answer);
      } catch (err) {
        socket.emit("answer", "timeout");
      }
    });
    socket.on("push", (n) => {
      for (let i = 0; i < n; i++) socket.emit("pushed", i);
    });
    socket.on("kick", () => socket.disconnect());
    socket.on("noack", () => {});
    socket.on("count", (...args) => {
      const ack = args.pop();
      if (!ignoredFirst) {
        ignoredFirst = true;
        return;
      }
      counted += 1;
      ack(counted, ...args);
    });
  });
}

setup(io.of("/"));
setup(io.of("/chat"));
const priv = io.of("/private");
priv.use((socket, next) => {
  if (socket.handshake.auth && socket.handshake.auth.token === "secret") return next();
  const err = new Error("unauthorized");
  err.data = { code: 401, hint: "send a token" };
  next(err);
});
setup(priv);

httpServer.listen(port, "127.0.0.1", () => {
  process.stdout.write(`listening ${httpServer.address().port}\n`);
});
process.on("SIGTERM", () => process.exit(0));
