// @socket.io/redis-streams-adapter 0.3 (on node-redis 4): its session store, driven
// directly, for tests/redis/test_streams_sessions.py. A socket.io Server with
// connection state recovery and the streams adapter; reads one JSON array of
// operations from argv, performs them in order, prints one JSON line per result.
//
//   node redis_streams_session.js --redis redis://127.0.0.1:PORT/0 --ops '[...]'
//
// Operations: {op: "persist", nsp?, session: {sid, pid, rooms, data}}  -> null
//             {op: "restore", nsp?, pid, offset}  -> the session, or {rejected: reason}
//             {op: "emit", nsp?, rooms?, except?, event, args, volatile?}  -> null
// Values {"$bytes": base64} become Buffers, and Buffers come back so.
"use strict";

const http = require("node:http");
const { Server } = require("socket.io");
const { createClient } = require("redis");
const { createAdapter } = require("@socket.io/redis-streams-adapter");

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

function fromWire(value) {
  if (Array.isArray(value)) {
    return value.map(fromWire);
  }
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value);
    if (keys.length === 1 && keys[0] === "$bytes") {
      return Buffer.from(value.$bytes, "base64");
    }
    const out = {};
    for (const k of keys) {
      out[k] = fromWire(value[k]);
    }
    return out;
  }
  return value;
}

function toWire(value) {
  if (value instanceof Uint8Array) {
    return { $bytes: Buffer.from(value).toString("base64") };
  }
  if (Array.isArray(value)) {
    return value.map(toWire);
  }
  if (value !== null && typeof value === "object") {
    const out = {};
    for (const k of Object.keys(value)) {
      out[k] = toWire(value[k]);
    }
    return out;
  }
  return value;
}

async function main() {
  const client = createClient({ url: arg("redis") });
  client.on("error", (err) => console.error(`redis client error: ${err.message}`));
  await client.connect();
  const io = new Server(http.createServer(), {
    adapter: createAdapter(client),
    connectionStateRecovery: { maxDisconnectionDuration: 60000 },
  });
  for (const op of JSON.parse(arg("ops"))) {
    const nsp = io.of(op.nsp || "/");
    let result = null;
    if (op.op === "persist") {
      nsp.adapter.persistSession(fromWire(op.session));
      await new Promise((resolve) => setTimeout(resolve, 50)); // SET is not awaited there
    } else if (op.op === "restore") {
      try {
        result = toWire(await nsp.adapter.restoreSession(op.pid, op.offset));
      } catch (err) {
        result = { rejected: String(err) };
      }
    } else if (op.op === "emit") {
      let target = nsp;
      if (op.rooms && op.rooms.length) {
        target = target.to(op.rooms);
      }
      if (op.except && op.except.length) {
        target = target.except(op.except);
      }
      if (op.volatile) {
        target = target.volatile;
      }
      target.emit(op.event, ...fromWire(op.args || []));
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    process.stdout.write(JSON.stringify(result) + "\n");
  }
  // Exit without closing: closing the adapter disconnects its readers in the
  // middle of their XREAD, which node-redis reports as an unhandled rejection.
  process.stdout.write("", () => process.exit(0));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
