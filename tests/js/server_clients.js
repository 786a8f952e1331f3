// Many socket.io-client 4.8 sockets in one node process, driven by triosio's
// server interop tests (tests/interop/test_server_*.py, through server_peers.py).
//
// Reads one JSON command per line on stdin; answers each with one line
// {"id": n, "result": ...} or {"id": n, "error": "..."}; between answers it writes
// what the sockets see as notices {"note": kind, "client": name, ...}:
//
//   {"note": "connect", "client", "sid", "recovered"}
//   {"note": "connect_error", "client", "message", "data"}
//   {"note": "disconnect", "client", "reason"}
//   {"note": "event", "client", "event", "args", "ack": bool}
//   {"note": "upgrade", "client", "transport"}
//
// Binary values cross as {"$bytes": "<base64>"} both ways.
//
// Commands (each has "op" and "id"):
//   connect {client, url, opts, acks?, share?, nsp?, quiet?}
//       -> {sid} or {error: {message, data}}; with quiet, events are only counted
//       opts go to io(url, opts) (forceNew and reconnection:false by default);
//       acks: event -> "echo" (ack with the event's args, the default),
//       {"value": [...]} (ack with those args), "none" (never ack),
//       {"echo": true, "delay": ms}; with share (a client's name) and nsp, the socket
//       is namespace nsp on that client's connection.
//   emit {client, event, args}              -> null
//   emitWithAck {client, event, args, timeout} -> the ack's args, or error "timeout"
//   disconnect {client}                     -> null (socket.disconnect())
//   closeEngine {client}                    -> null (close the Engine.IO connection)
//   moveTo {client, url}                    -> null (its next reconnection goes to url:
//                                              another server of a cluster)
//   counts {}                               -> {client: {event: how many}} (quiet clients)
//   transport {client}                      -> the transport's name
//   extensions {client}                     -> {name: params} of the extensions the ws
//                                              package negotiated, or null (not a WebSocket)
//   block {ms}                              -> null, after blocking node's event loop for ms
//                                              (no pong, no reading: a frozen client)
//   reset {}                                -> null (every socket disconnected, forgotten)
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
    for (const key of Object.keys(value)) {
      if (value[key] !== undefined) {
        out[key] = toWire(value[key]);
      }
    }
    return out;
  }
  return value;
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
    for (const key of keys) {
      out[key] = fromWire(value[key]);
    }
    return out;
  }
  return value;
}

function write(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

const sockets = new Map();
const counts = new Map();

function note(kind, client, fields) {
  write({ note: kind, client, ...fields });
}

function get(name) {
  const socket = sockets.get(name);
  if (!socket) {
    throw new Error(`no client ${name}`);
  }
  return socket;
}

function connect(cmd) {
  const name = cmd.client;
  const acks = cmd.acks || {};
  const opts = { forceNew: true, reconnection: false, ...fromWire(cmd.opts || {}) };
  // With "share": another namespace on that client's connection (multiplexed).
  const socket = cmd.share
    ? get(cmd.share).io.socket(cmd.nsp, { auth: opts.auth }).connect()
    : io(cmd.url, opts);
  sockets.set(name, socket);
  socket.onAny((event, ...args) => {
    const ack = typeof args[args.length - 1] === "function" ? args.pop() : null;
    if (cmd.quiet) {
      // Load tests: count events instead of reporting each one.
      const mine = counts.get(name) || {};
      mine[event] = (mine[event] || 0) + 1;
      counts.set(name, mine);
    } else {
      note("event", name, { event, args: toWire(args), ack: ack !== null });
    }
    if (!ack) {
      return;
    }
    const rule = acks[event] === undefined ? "echo" : acks[event];
    if (rule === "none") {
      return;
    }
    const reply = rule.value !== undefined ? fromWire(rule.value) : args;
    if (rule.delay) {
      setTimeout(() => ack(...reply), rule.delay);
    } else {
      ack(...reply);
    }
  });
  socket.on("disconnect", (reason) => note("disconnect", name, { reason }));
  if (!cmd.share) {
    socket.io.on("open", () =>
      socket.io.engine.on("upgrade", (transport) =>
        note("upgrade", name, { transport: transport.name }),
      ),
    );
  }
  return new Promise((resolve) => {
    socket.on("connect", () => {
      note("connect", name, { sid: socket.id, recovered: socket.recovered });
      resolve({ sid: socket.id });
    });
    socket.on("connect_error", (err) => {
      const error = { message: err.message, data: toWire(err.data === undefined ? null : err.data) };
      note("connect_error", name, error);
      resolve({ error });
    });
  });
}

async function run(cmd) {
  switch (cmd.op) {
    case "connect":
      return connect(cmd);
    case "emit":
      get(cmd.client).emit(cmd.event, ...fromWire(cmd.args || []));
      return null;
    case "emitWithAck": {
      const socket = get(cmd.client).timeout(cmd.timeout || 5000);
      try {
        const reply = await new Promise((resolve, reject) => {
          socket.emit(cmd.event, ...fromWire(cmd.args || []), (err, ...args) =>
            err ? reject(err) : resolve(args),
          );
        });
        return toWire(reply);
      } catch (err) {
        throw new Error("timeout");
      }
    }
    case "disconnect":
      get(cmd.client).disconnect();
      return null;
    case "closeEngine":
      get(cmd.client).io.engine.close();
      return null;
    case "moveTo":
      // The Manager opens each new Engine.IO connection on its uri.
      get(cmd.client).io.uri = cmd.url;
      return null;
    case "counts":
      return Object.fromEntries(counts);
    case "transport":
      return get(cmd.client).io.engine.transport.name;
    case "extensions": {
      const transport = get(cmd.client).io.engine.transport;
      if (!transport.ws) {
        return null;
      }
      // ws keeps each accepted extension with the parameters the server answered.
      const out = {};
      for (const [name, ext] of Object.entries(transport.ws._extensions || {})) {
        out[name] = ext.params || {};
      }
      return out;
    }
    case "block": {
      const end = Date.now() + cmd.ms;
      while (Date.now() < end) {
        // busy: timers, sockets and pongs all wait
      }
      return null;
    }
    case "reset":
      for (const socket of sockets.values()) {
        socket.removeAllListeners();
        socket.offAny();
        socket.disconnect();
        socket.io.engine.close();
      }
      sockets.clear();
      counts.clear();
      return null;
    default:
      throw new Error(`unknown op ${cmd.op}`);
  }
}

const lines = readline.createInterface({ input: process.stdin });
lines.on("line", (line) => {
  const cmd = JSON.parse(line);
  run(cmd).then(
    (result) => write({ id: cmd.id, result: result === undefined ? null : result }),
    (err) => write({ id: cmd.id, error: String(err && err.message ? err.message : err) }),
  );
});
lines.on("close", () => {
  for (const socket of sockets.values()) {
    socket.disconnect();
  }
  process.exit(0);
});
