// socket.io-client 4.8 against the Socket.IO app of examples/protocol_server.py
// (the behaviour the v5 protocol test suite expects), over each transport.
//
//   node engine_protocol_sio.js http://127.0.0.1:PORT
//
// Prints one JSON line {"passed": [names], "failed": [{name, error}]}.
"use strict";

const assert = require("node:assert/strict");
const { io } = require("socket.io-client");

const base = process.argv[2];
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function connect(nsp, opts) {
  const socket = io(`${base}${nsp}`, { forceNew: true, reconnection: false, ...opts });
  // Registered at once: "auth" follows the CONNECT reply immediately.
  const auth = new Promise((resolve) => socket.once("auth", resolve));
  const connected = new Promise((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("connect_error", reject);
  });
  return { socket, auth, connected };
}

const ARGS = [1, "2", { 3: [4, null, true] }, Buffer.from([5, 6, 7])];

function checkArgs(got) {
  assert.equal(got.length, ARGS.length);
  assert.deepEqual(got.slice(0, 3), ARGS.slice(0, 3));
  assert.deepEqual([...Buffer.from(got[3])], [5, 6, 7]);
}

// Every argument of the acknowledgement (emitWithAck resolves with the first only).
function ackArgs(socket, ...args) {
  return new Promise((resolve, reject) =>
    socket.timeout(3000).emit("message-with-ack", ...args, (err, ...reply) =>
      err ? reject(err) : resolve(reply),
    ),
  );
}

async function scenario(nsp, transports, authPayload) {
  const { socket, auth, connected } = connect(nsp, {
    transports,
    ...(authPayload === undefined ? {} : { auth: authPayload }),
  });
  try {
    await connected;
    assert.deepEqual(await auth, authPayload === undefined ? {} : authPayload);
    const back = new Promise((resolve) => socket.once("message-back", (...args) => resolve(args)));
    socket.emit("message", ...ARGS);
    checkArgs(await back);
    checkArgs(await ackArgs(socket, ...ARGS));
    assert.deepEqual(await ackArgs(socket, "only"), ["only"]);
    if (transports.length > 1) {
      while (socket.io.engine.transport.name !== "websocket") await sleep(10);
      socket.emit("message", "after upgrade");
      const [text] = await new Promise((resolve) =>
        socket.once("message-back", (...args) => resolve(args)),
      );
      assert.equal(text, "after upgrade");
    }
  } finally {
    socket.disconnect();
  }
}

const checks = {};
for (const nsp of ["/", "/custom"]) {
  for (const [label, transports] of [
    ["polling", ["polling"]],
    ["websocket", ["websocket"]],
    ["upgrade", ["polling", "websocket"]],
  ]) {
    checks[`${nsp} ${label}`] = () => scenario(nsp, transports, undefined);
  }
  checks[`${nsp} with auth`] = () => scenario(nsp, ["websocket"], { token: "123" });
}

// One check at a time (the suite's 300 ms heartbeat leaves little slack on a
// busy machine), and up to two retries for a check that failed: "retried"
// lists them (the exact timing rules are tested on Trio's mock clock).
async function attempt(check) {
  try {
    await Promise.race([
      check(),
      sleep(8000).then(() => {
        throw new Error("timed out");
      }),
    ]);
    return null;
  } catch (err) {
    return String(err && err.message ? err.message : err);
  }
}

async function main() {
  const passed = [];
  const failed = [];
  const retried = [];
  for (const [name, check] of Object.entries(checks)) {
    let error = await attempt(check);
    for (let i = 0; i < 2 && error !== null; i++) {
      retried.push({ name, error });
      error = await attempt(check);
    }
    if (error === null) passed.push(name);
    else failed.push({ name, error });
  }
  process.stdout.write(JSON.stringify({ passed: passed.sort(), failed, retried }) + "\n");
  process.exit(0);
}

main();
