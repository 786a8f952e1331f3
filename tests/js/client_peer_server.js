// A socket.io 4.8 server for triosio's client tests (tests/client/).
//
// Usage: node client_peer_server.js <port>
// Prints "listening <port>" on stdout once it accepts connections.
// The behaviour matches tests/client/pysio_server.py (the python-socketio twin):
//
//   "/" and "/chat"       accept everyone; "/private" needs auth {token: "secret"},
//                         otherwise CONNECT_ERROR {message: "unauthorized", data: {...}}
//   "echo" (...args)      acknowledges with the args
//   "echo-back" (...args) emits "echo" with the args
//   "auth"                acknowledges with the auth the client sent on this connection
//   "whoami"              acknowledges with {sid, nsp, eio} (eio: the Engine.IO session id)
//   "ask" (question)      emits "question" with an ack request to the client, then
//                         emits "answer" with what the client acknowledged
//   "push" (n)            emits n events "pushed" (0..n-1)
//   "kick"                disconnects this socket (the client sees "io server disconnect")
//   "noack"               no handler: never acknowledged
//   "join" (room)         joins the room; acknowledges with the socket's rooms
//   "data" (value?)       sets socket.data.value when given; acknowledges with socket.data
//   "drop" (room, n)      closes this socket's Engine.IO connection (a recoverable
//                         "forced close"), then emits n events "tick" (0..n-1) to room
//   "recovered"           acknowledges with {sid, recovered}
//
// RECOVERY=1: connectionStateRecovery on (the defaults: 2 minutes, skip middlewares).
"use strict";

const http = require("http");
const { Server } = require("socket.io");

const port = Number(process.argv[2]);
const pingInterval = Number(process.env.PING_INTERVAL || 25000);
const pingTimeout = Number(process.env.PING_TIMEOUT || 20000);

// TLS_CERT and TLS_KEY (PEM file paths): serve HTTPS instead of HTTP.
const httpServer = process.env.TLS_CERT
  ? require("https").createServer({
      cert: require("fs").readFileSync(process.env.TLS_CERT),
      key: require("fs").readFileSync(process.env.TLS_KEY),
    })
  : http.createServer();
const io = new Server(httpServer, {
  // PARSER=msgpack: socket.io-msgpack-parser instead of the default JSON parser.
  ...(process.env.PARSER === "msgpack" ? { parser: require("socket.io-msgpack-parser") } : {}),
  pingInterval,
  pingTimeout,
  cors: { origin: "*" },
  maxHttpBufferSize: 1e7,
  ...(process.env.RECOVERY === "1" ? { connectionStateRecovery: {} } : {}),
});

function setup(nsp) {
  nsp.on("connection", (socket) => {
    const withAck = (handler) => (...args) => {
      const ack = typeof args[args.length - 1] === "function" ? args.pop() : () => {};
      handler(ack, ...args);
    };
    socket.on("echo", withAck((ack, ...args) => ack(...args)));
    socket.on("echo-back", withAck((ack, ...args) => socket.emit("echo", ...args)));
    socket.on("auth", withAck((ack) => ack(socket.handshake.auth)));
    socket.on("whoami", withAck((ack) => ack({ sid: socket.id, nsp: nsp.name, eio: socket.conn.id })));
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
    socket.on("join", withAck((ack, room) => {
      socket.join(room);
      ack([...socket.rooms]);
    }));
    socket.on("data", withAck((ack, ...value) => {
      if (value.length) socket.data.value = value[0];
      ack(socket.data);
    }));
    socket.on("drop", (room, n) => {
      socket.conn.close();
      setTimeout(() => {
        for (let i = 0; i < n; i++) nsp.to(room).emit("tick", i);
      }, 20);
    });
    socket.on("recovered", withAck((ack) => ack({ sid: socket.id, recovered: socket.recovered })));
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
