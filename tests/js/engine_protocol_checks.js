// The checks of the Engine.IO v4 protocol test suite (docs/engine.io-protocol/
// v4-test-suite of socket.io), written anew for node's fetch and the `ws`
// package, run against examples/protocol_server.py (pingInterval 300 ms,
// pingTimeout 200 ms, maxPayload 1e6). Used by tests/engine/test_engine_example.py.
//
//   node engine_protocol_checks.js http://127.0.0.1:PORT
//
// Prints one JSON line {"passed": [names], "failed": [{name, error}]}.
"use strict";

const assert = require("node:assert/strict");
const WebSocket = require("ws");

const base = process.argv[2];
const wsBase = base.replace(/^http/, "ws");
const EIO = `${base}/engine.io/`;
const WS = `${wsBase}/engine.io/`;
const PING_INTERVAL = 300;
const PING_TIMEOUT = 200;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function nextMessage(ws) {
  return new Promise((resolve, reject) => {
    ws.once("message", (data, isBinary) => resolve(isBinary ? data : data.toString()));
    ws.once("close", () => reject(new Error("closed while waiting for a message")));
  });
}

function closed(ws) {
  return new Promise((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) resolve();
    else ws.once("close", resolve);
  });
}

function opened(ws) {
  return new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
}

function socket(query) {
  const ws = new WebSocket(`${WS}?${query}`);
  ws.on("error", () => {});
  return ws;
}

async function polling() {
  const response = await fetch(`${EIO}?EIO=4&transport=polling`);
  const text = await response.text();
  return JSON.parse(text.slice(1)).sid;
}

const poll = (sid, init) => fetch(`${EIO}?EIO=4&transport=polling&sid=${sid}`, init);
const post = (sid, body) => poll(sid, { method: "POST", body });

function checkOpen(data, upgrades) {
  assert.equal(data[0], "0");
  const value = JSON.parse(data.slice(1));
  assert.deepEqual(Object.keys(value).sort(), [
    "maxPayload",
    "pingInterval",
    "pingTimeout",
    "sid",
    "upgrades",
  ]);
  assert.equal(typeof value.sid, "string");
  assert.deepEqual(value.upgrades, upgrades);
  assert.equal(value.pingInterval, PING_INTERVAL);
  assert.equal(value.pingTimeout, PING_TIMEOUT);
  assert.equal(value.maxPayload, 1000000);
}

const checks = {
  async "handshake: polling"() {
    const response = await fetch(`${EIO}?EIO=4&transport=polling`);
    assert.equal(response.status, 200);
    checkOpen(await response.text(), ["websocket"]);
  },
  async "handshake: polling, bad EIO"() {
    assert.equal((await fetch(`${EIO}?transport=polling`)).status, 400);
    assert.equal((await fetch(`${EIO}?EIO=abc&transport=polling`)).status, 400);
  },
  async "handshake: polling, bad transport"() {
    assert.equal((await fetch(`${EIO}?EIO=4`)).status, 400);
    assert.equal((await fetch(`${EIO}?EIO=4&transport=abc`)).status, 400);
  },
  async "handshake: polling, bad method"() {
    const url = `${EIO}?EIO=4&transport=polling`;
    assert.equal((await fetch(url, { method: "POST" })).status, 400);
    assert.equal((await fetch(url, { method: "PUT" })).status, 400);
  },
  async "handshake: websocket"() {
    const ws = socket("EIO=4&transport=websocket");
    checkOpen(await nextMessage(ws), []);
    ws.close();
  },
  async "handshake: websocket, bad EIO or transport"() {
    for (const query of ["transport=websocket", "EIO=abc&transport=websocket", "EIO=4", "EIO=4&transport=abc"]) {
      const ws = socket(query);
      await closed(ws);
    }
  },
  async "polling: one text packet"() {
    const sid = await polling();
    const pushed = await post(sid, "4hello");
    assert.equal(pushed.status, 200);
    assert.equal(await pushed.text(), "ok");
    const pulled = await poll(sid);
    assert.equal(pulled.status, 200);
    assert.equal(await pulled.text(), "4hello");
  },
  async "polling: several text packets"() {
    const sid = await polling();
    const payload = "4test1\x1e4test2\x1e4test3";
    assert.equal(await (await post(sid, payload)).text(), "ok");
    assert.equal(await (await poll(sid)).text(), payload);
  },
  async "polling: text and binary"() {
    const sid = await polling();
    const payload = "4hello\x1ebAQIDBA==";
    assert.equal(await (await post(sid, payload)).text(), "ok");
    assert.equal(await (await poll(sid)).text(), payload);
  },
  async "polling: invalid packet closes the session"() {
    const sid = await polling();
    assert.equal((await post(sid, "abc")).status, 400);
    assert.equal((await poll(sid)).status, 400);
  },
  async "polling: duplicate GET closes the session"() {
    const sid = await polling();
    const [first, second] = await Promise.all([
      poll(sid),
      sleep(5).then(() => fetch(`${EIO}?EIO=4&transport=polling&sid=${sid}&t=burst`)),
    ]);
    assert.equal(first.status, 200);
    assert.equal(await first.text(), "1");
    assert.equal(second.status, 400);
    assert.equal((await poll(sid)).status, 400);
  },
  async "websocket: text"() {
    const ws = socket("EIO=4&transport=websocket");
    await nextMessage(ws);
    ws.send("4hello");
    assert.equal(await nextMessage(ws), "4hello");
    ws.close();
  },
  async "websocket: binary"() {
    const ws = socket("EIO=4&transport=websocket");
    await nextMessage(ws);
    ws.send(Uint8Array.from([1, 2, 3, 4]));
    const data = await nextMessage(ws);
    assert.ok(Buffer.isBuffer(data));
    assert.deepEqual([...data], [1, 2, 3, 4]);
    ws.close();
  },
  async "websocket: invalid packet closes the session"() {
    const ws = socket("EIO=4&transport=websocket");
    await nextMessage(ws);
    ws.send("abc");
    await closed(ws);
  },
  async "heartbeat: polling ping/pong"() {
    const sid = await polling();
    for (let i = 0; i < 3; i++) {
      const pulled = await poll(sid);
      assert.equal(pulled.status, 200);
      assert.equal(await pulled.text(), "2");
      assert.equal((await post(sid, "3")).status, 200);
    }
  },
  async "heartbeat: polling ping timeout"() {
    const sid = await polling();
    await sleep(PING_INTERVAL + PING_TIMEOUT);
    assert.equal((await poll(sid)).status, 400);
  },
  async "heartbeat: websocket ping/pong"() {
    const ws = socket("EIO=4&transport=websocket");
    await nextMessage(ws);
    for (let i = 0; i < 3; i++) {
      assert.equal(await nextMessage(ws), "2");
      ws.send("3");
    }
    ws.close();
  },
  async "heartbeat: websocket ping timeout"() {
    const ws = socket("EIO=4&transport=websocket");
    await closed(ws);
  },
  async "close: polling"() {
    const sid = await polling();
    const [pulled] = await Promise.all([poll(sid), sleep(5).then(() => post(sid, "1"))]);
    assert.equal(pulled.status, 200);
    assert.equal(await pulled.text(), "6");
    assert.equal((await poll(sid)).status, 400);
  },
  async "close: websocket"() {
    const ws = socket("EIO=4&transport=websocket");
    await nextMessage(ws);
    ws.send("1");
    await closed(ws);
  },
  async "upgrade: polling to websocket"() {
    const sid = await polling();
    const ws = socket(`EIO=4&transport=websocket&sid=${sid}`);
    await opened(ws);
    ws.send("2probe");
    assert.equal(await nextMessage(ws), "3probe");
    const pulled = await poll(sid);
    assert.equal(pulled.status, 200);
    assert.equal(await pulled.text(), "6");
    ws.send("5");
    ws.send("4hello");
    assert.equal(await nextMessage(ws), "4hello");
    ws.close();
  },
  async "upgrade: HTTP requests with the same sid are refused after it"() {
    const sid = await polling();
    const ws = socket(`EIO=4&transport=websocket&sid=${sid}`);
    await opened(ws);
    ws.send("2probe");
    ws.send("5");
    assert.equal(await nextMessage(ws), "3probe");
    ws.send("4sync"); // its echo proves the switch is done
    assert.equal(await nextMessage(ws), "4sync");
    assert.equal((await poll(sid)).status, 400);
    ws.send("4hello");
    assert.equal(await nextMessage(ws), "4hello");
    ws.close();
  },
  async "upgrade: a second websocket with the same sid is closed"() {
    const sid = await polling();
    const ws = socket(`EIO=4&transport=websocket&sid=${sid}`);
    await opened(ws);
    ws.send("2probe");
    ws.send("5");
    await nextMessage(ws);
    const second = socket(`EIO=4&transport=websocket&sid=${sid}`);
    await closed(second);
    ws.send("4hello");
    assert.equal(await nextMessage(ws), "4hello");
    ws.close();
  },
};

// One check at a time (the suite's 300 ms heartbeat leaves little slack on a
// busy machine), and up to two retries for a check that failed: "retried"
// lists them (the exact timing rules are tested on Trio's mock clock).
async function attempt(check) {
  try {
    await Promise.race([
      check(),
      sleep(5000).then(() => {
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
