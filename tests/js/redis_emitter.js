// @socket.io/redis-emitter 5.1 (on node-redis 4) for the cluster tests: reads one
// JSON array of operations from argv, performs them in order, then exits.
//
//   node redis_emitter.js --redis redis://127.0.0.1:PORT/0 --ops '[...]'
//
// Operations: {op: "emit", nsp?, rooms?, except?, flags?, event, args | dates: <ms>}
//             {op: "socketsJoin" | "socketsLeave", nsp?, rooms?, change}
//             {op: "disconnectSockets", nsp?, rooms?, close}
//             {op: "serverSideEmit", nsp?, event, args}
// Values {"$bytes": base64} become Buffers.
"use strict";

const { createClient } = require("redis");
const { Emitter } = require("@socket.io/redis-emitter");

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

async function main() {
  const client = createClient({ url: arg("redis") });
  client.on("error", (err) => console.error(`redis client error: ${err.message}`));
  await client.connect();
  const root = new Emitter(client, { key: arg("key", "socket.io") });
  for (const op of JSON.parse(arg("ops"))) {
    let target = op.nsp && op.nsp !== "/" ? root.of(op.nsp) : root;
    if (op.rooms && op.rooms.length) {
      target = target.to(op.rooms);
    }
    if (op.except && op.except.length) {
      target = target.except(op.except);
    }
    // Flags in call order: "volatile", "compress" (true), "no-compress" (false).
    for (const flag of op.flags || []) {
      target = flag === "volatile" ? target.volatile : target.compress(flag === "compress");
    }
    // "dates": values JSON and MessagePack carry differently, which only Node can
    // write: a Date (ext -1 on Redis), NaN, -Infinity, undefined in an array and in
    // an object.
    const args = op.dates
      ? [new Date(op.dates), NaN, -Infinity, [undefined, 1], { a: undefined, b: 2 }]
      : fromWire(op.args || []);
    if (op.op === "emit") {
      target.emit(op.event, ...args);
    } else if (op.op === "socketsJoin") {
      target.socketsJoin(op.change);
    } else if (op.op === "socketsLeave") {
      target.socketsLeave(op.change);
    } else if (op.op === "disconnectSockets") {
      target.disconnectSockets(!!op.close);
    } else if (op.op === "serverSideEmit") {
      target.serverSideEmit(op.event, ...args);
    } else {
      throw new Error(`unknown op ${op.op}`);
    }
  }
  await client.quit(); // after every queued PUBLISH has been answered
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
