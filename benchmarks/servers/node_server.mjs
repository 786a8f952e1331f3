// The Node socket.io 4.8 benchmark server. Behaviour is defined in
// benchmarks/README.md ("The benchmark servers") and is the same in every server here.
//
//   node benchmarks/servers/node_server.mjs --port 5000 [--ping-interval 25] [--ping-timeout 20]
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { parseArgs } from "node:util";
import { nowMs } from "../js/clock.mjs";

// socket.io is installed (pinned) in benchmarks/js/node_modules, not next to this file.
const require = createRequire(new URL("../js/package.json", import.meta.url));
const { Server } = require("socket.io");

const { values } = parseArgs({
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string" },
    "ping-interval": { type: "string", default: "25" },
    "ping-timeout": { type: "string", default: "20" },
  },
});

const httpServer = createServer();
const io = new Server(httpServer, {
  path: "/socket.io/",
  serveClient: false,
  transports: ["polling", "websocket"],
  perMessageDeflate: false,
  httpCompression: false,
  pingInterval: Number(values["ping-interval"]) * 1000,
  pingTimeout: Number(values["ping-timeout"]) * 1000,
});

io.on("connection", (socket) => {
  socket.on("echo", (...args) => {
    const ack = args.at(-1);
    if (typeof ack === "function") {
      args.pop();
      ack(...args);
    }
  });
  socket.on("join", (room, ack) => {
    socket.join(room);
    if (typeof ack === "function") ack(true);
  });
});

// Resolves on the next turn of the event loop, after pending I/O callbacks, so a
// flat-out broadcast still lets the server serve its sockets between emits.
const yieldToLoop = () => new Promise((resolve) => setImmediate(resolve));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function broadcast({ n, rate = 0, room = null, size = 0 }) {
  const payload = "x".repeat(size);
  const target = () => (room ? io.of("/").to(room) : io.of("/"));
  const start = performance.now();
  for (let seq = 0; seq < n; seq++) {
    if (rate > 0) {
      // A fixed schedule (not a fixed gap) so that slow emits do not lower the rate.
      const wait = start + (seq * 1000) / rate - performance.now();
      if (wait > 0) await sleep(wait);
    }
    target().emit("tick", seq, nowMs(), payload);
    if (rate <= 0) await yieldToLoop();
  }
  return { sent: n, elapsed_ms: performance.now() - start };
}

io.of("/control").on("connection", (socket) => {
  socket.on("bench_broadcast", async (opts, ack) => {
    const result = await broadcast(opts ?? {});
    if (typeof ack === "function") ack(result);
  });
});

httpServer.listen(Number(values.port), values.host, () => {
  console.log(`node socket.io benchmark server on ${values.host}:${values.port}`);
});

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => process.exit(0));
}
