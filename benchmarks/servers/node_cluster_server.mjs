// The Node socket.io 4.8 benchmark server in a Redis cluster, for benchmarks/cluster.py:
// the behaviour of node_server.mjs, with @socket.io/redis-adapter 8.3 (pub/sub) or
// @socket.io/redis-streams-adapter 0.3 on node-redis 4.
//
//   node benchmarks/servers/node_cluster_server.mjs --port 5000 --redis redis://... \
//        [--adapter pubsub|streams|sharded] [--relay]
//
// With --relay, a bench_broadcast request from the control client is passed to the
// other server (serverSideEmit "bench_broadcast"), which emits the ticks and answers
// with serverSideEmit "bench_done" (not an ack: the streams adapter's serverSideEmit
// acks time out after a fixed 5 s, shorter than a run).
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { parseArgs } from "node:util";
import { nowMs } from "../js/clock.mjs";

// The Redis adapters are pinned with the interop tests' packages (tests/js), with the
// same socket.io 4.8.3 as benchmarks/js.
const require = createRequire(new URL("../../tests/js/package.json", import.meta.url));
const { Server } = require("socket.io");
const { createClient, createCluster } = require("redis");

const { values } = parseArgs({
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string" },
    redis: { type: "string" },
    adapter: { type: "string", default: "pubsub" },
    relay: { type: "boolean", default: false },
  },
});

const pub =
  values.adapter === "sharded"
    ? createCluster({ rootNodes: [{ url: values.redis }] })
    : createClient({ url: values.redis });
const sub = pub.duplicate();
for (const client of [pub, sub]) client.on("error", () => {});
await Promise.all([pub.connect(), sub.connect()]);
const adapter =
  values.adapter === "streams"
    ? require("@socket.io/redis-streams-adapter").createAdapter(pub)
    : values.adapter === "sharded"
      ? require("@socket.io/redis-adapter").createShardedAdapter(pub, sub)
      : require("@socket.io/redis-adapter").createAdapter(pub, sub, { requestsTimeout: 600000 });

const httpServer = createServer();
const io = new Server(httpServer, {
  adapter,
  serveClient: false,
  perMessageDeflate: false,
  httpCompression: false,
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

const yieldToLoop = () => new Promise((resolve) => setImmediate(resolve));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function broadcast({ n, rate = 0, room = null, size = 0 }) {
  const payload = "x".repeat(size);
  const target = () => (room ? io.of("/").to(room) : io.of("/"));
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  for (let seq = 0; seq < n; seq++) {
    if (rate > 0) {
      const wait = start + (seq * 1000) / rate - performance.now();
      if (wait > 0) await sleep(wait);
    }
    target().emit("tick", seq, nowMs(), payload);
    if (rate <= 0) await yieldToLoop();
  }
  const elapsed_ms = performance.now() - start;
  await sleep(200); // what the adapter still has to publish
  const cpu = process.cpuUsage(cpu0);
  return { sent: n, elapsed_ms, cpu_s: (cpu.user + cpu.system) / 1e6 };
}

// Server-side events from the other server.
io.on("bench_broadcast", async (opts) => {
  io.serverSideEmit("bench_done", await broadcast(opts ?? {}));
});
let relayed = null;
io.on("bench_done", (result) => relayed?.(result));

io.of("/control").on("connection", (socket) => {
  socket.on("bench_broadcast", async (opts, ack) => {
    let result;
    if (values.relay) {
      const done = new Promise((resolve) => {
        relayed = resolve;
      });
      io.serverSideEmit("bench_broadcast", opts ?? {});
      result = { ...(await done), relayed: true };
    } else {
      result = await broadcast(opts ?? {});
    }
    if (typeof ack === "function") ack(result);
  });
});

httpServer.listen(Number(values.port), values.host, () => {
  console.log(`node socket.io cluster benchmark server on ${values.host}:${values.port}`);
});

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => process.exit(0));
}
