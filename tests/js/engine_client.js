// engine.io-client 6.6 against a triosio Engine.IO echo server
// (tests/engine/test_engine_npm.py).
//
//   node engine_client.js <url> <mode> [count]
//
// mode: "polling" (polling only), "websocket" (WebSocket only) or "upgrade"
// (polling, then the upgrade). The client sends `count` text and `count` binary
// messages, half right after "open" and half once the transport is final (so in
// "upgrade" mode messages are in flight while the upgrade happens), waits for
// every echo, and prints one JSON line:
//   {"ok": bool, "transport": name, "upgraded": bool, "error"?: string,
//    "mismatches": [...]}
// It exits 0 when it could run at all; the Python test judges the result.
"use strict";

const { Socket } = require("engine.io-client");

const [url, mode, countArg] = process.argv.slice(2);
const count = Number(countArg || 20);
const transports = {
  polling: ["polling"],
  websocket: ["websocket"],
  upgrade: ["polling", "websocket"],
}[mode];

function expected() {
  const out = [];
  for (let i = 0; i < count; i++) {
    out.push(`text ${i} é✓`);
    out.push(Buffer.from([i, 255 - i, 0, 1, 2]));
  }
  return out;
}

function same(a, b) {
  if (typeof a === "string" || typeof b === "string") return a === b;
  return Buffer.isBuffer(a) && Buffer.compare(a, b) === 0;
}

function describe(value) {
  return typeof value === "string" ? value : `<bytes ${value.toString("hex")}>`;
}

const want = expected();
const got = [];
let upgraded = false;
let finished = false;

const socket = new Socket(url, { transports, upgrade: mode === "upgrade" });

const timer = setTimeout(() => finish("timeout"), 15000);

function finish(error) {
  if (finished) return;
  finished = true;
  clearTimeout(timer);
  const mismatches = [];
  for (let i = 0; i < Math.max(want.length, got.length); i++) {
    if (i >= got.length || i >= want.length || !same(want[i], got[i])) {
      mismatches.push({
        index: i,
        want: i < want.length ? describe(want[i]) : null,
        got: i < got.length ? describe(got[i]) : null,
      });
    }
  }
  const result = {
    ok: !error && mismatches.length === 0,
    transport: socket.transport ? socket.transport.name : null,
    upgraded,
    mismatches: mismatches.slice(0, 5),
  };
  if (error) result.error = String(error);
  process.stdout.write(JSON.stringify(result) + "\n");
  socket.close();
  setTimeout(() => process.exit(0), 50);
}

function sendRange(from, to) {
  for (let i = from; i < to; i++) socket.send(want[i]);
}

socket.on("open", () => {
  const half = want.length / 2;
  sendRange(0, half);
  if (mode === "upgrade") {
    socket.on("upgrade", () => {
      upgraded = true;
      sendRange(half, want.length);
    });
  } else {
    sendRange(half, want.length);
  }
});

socket.on("message", (data) => {
  got.push(typeof data === "string" ? data : Buffer.from(data));
  if (got.length === want.length) finish(null);
});

socket.on("error", (err) => finish(err && err.message ? err.message : err));
socket.on("close", (reason) => {
  if (!finished) finish(`closed: ${reason}`);
});
