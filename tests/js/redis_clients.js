// socket.io-client 4.8 sockets for the cluster tests (tests/redis/), in one node process.
//
// Reads one JSON command per line on stdin and answers each with one line
// {"id": n, "ok": result} or {"id": n, "error": "..."}. Between answers it
// writes what the sockets see:
//   {"note": "event", "client": name, "event": ev, "args": [...]}
//   {"note": "disconnect", "client": name, "reason": reason}
// Every event that asks for an acknowledgement is answered with
// {"client": name, "event": ev, "first": <first argument>}.
// Binary values cross as {"$bytes": "<base64>"}.
//
// Commands: connect {client, url, auth, transports?} -> {sid}
//           close {client} -> null
"use strict";

const readline = require("node:readline");
const { io } = require("socket.io-client");

function toWire(value) {
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) {
    return { $bytes: Buffer.from(value).toString("base64") };
  }
  if (value instanceof ArrayBuffer) {
    return { $bytes: Buffer.from(value).toString("base64") };
  }
  if (Array.isArray(value)) {
    return value.map(toWire);
  }
  if (value !== null && typeof value === "object") {
    const out = {};
    for (const [k, v] of Object.entries(value)) {
      out[k] = toWire(v);
    }
    return out;
  }
  return value;
}

function write(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

const sockets = new Map();

function connect(cmd) {
  return new Promise((resolve, reject) => {
    const socket = io(cmd.url, {
      auth: cmd.auth || {},
      transports: cmd.transports || ["websocket"],
      forceNew: true,
      reconnection: false,
      timeout: 10000,
    });
    sockets.set(cmd.client, socket);
    socket.onAny((event, ...args) => {
      const ack = typeof args[args.length - 1] === "function" ? args.pop() : null;
      write({ note: "event", client: cmd.client, event, args: toWire(args) });
      if (ack) {
        ack({ client: cmd.client, event, first: args[0] ?? null });
      }
    });
    socket.on("disconnect", (reason) => {
      write({ note: "disconnect", client: cmd.client, reason });
    });
    socket.once("connect", () => resolve({ sid: socket.id }));
    socket.once("connect_error", (err) => reject(err));
  });
}

async function handle(cmd) {
  switch (cmd.op) {
    case "connect":
      return await connect(cmd);
    case "close": {
      const socket = sockets.get(cmd.client);
      if (socket) {
        socket.disconnect();
        sockets.delete(cmd.client);
      }
      return null;
    }
    default:
      throw new Error(`unknown op ${cmd.op}`);
  }
}

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => {
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (err) {
    write({ id: null, error: `bad command: ${err.message}` });
    return;
  }
  handle(cmd).then(
    (ok) => write({ id: cmd.id, ok: ok ?? null }),
    (err) => write({ id: cmd.id, error: String(err && err.message ? err.message : err) }),
  );
});
rl.on("close", () => {
  for (const socket of sockets.values()) {
    socket.disconnect();
  }
  process.exit(0);
});
