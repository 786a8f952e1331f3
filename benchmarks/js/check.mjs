// `loadgen.mjs check`: shows that the generator's view of a conversation is the one
// socket.io-client has, and that the server behaves as benchmarks/README.md defines.
//
// One scripted conversation (connect, echo acks of awkward arguments, join, broadcasts
// to all / to my room at a rate / to a room I am not in, two heartbeats of idling) runs
// twice against the same server: once driven by this generator's raw client (eio.mjs),
// once by the official socket.io-client over its websocket transport. Each run writes a
// transcript of what the application saw; the two must be equal, and equal to the
// transcript the behaviour definition predicts.
import { createRequire } from "node:module";
import { nowMs } from "./clock.mjs";
import { connectClient } from "./eio.mjs";

const require = createRequire(import.meta.url);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const ACK_TIMEOUT_MS = 5000;

const ECHO_CASES = [
  [],
  [1],
  ["héllo ☃ 🐍 \u2028 \"quoted\" \\ back"],
  [{ a: [1, 2, { b: null }], c: "x" }, true, 3.5, null],
  [[1, 2, 3]],
  ["y".repeat(10000)],
  [0, -1, 1e300, "", {}],
];

const BROADCASTS = [
  // [label, request, ticks this client must see]
  ["to all, flat out", { n: 5, rate: 0, room: null, size: 10 }, 5],
  ["to my room at 50/s", { n: 5, rate: 50, room: "r1", size: 3 }, 5],
  ["to a room I am not in", { n: 3, rate: 0, room: "r2", size: 1 }, 0],
];

function withTimeout(promise, label) {
  return Promise.race([
    promise,
    sleep(ACK_TIMEOUT_MS).then(() => {
      throw new Error(`timeout: ${label}`);
    }),
  ]);
}

/** The generator's own client behind the driver interface the script uses. */
async function rawDriver(url) {
  const ticks = [];
  const onEvent = (nsp, event, args) => {
    ticks.push([nsp, event, ...args]);
  };
  let main = null;
  let control = null;
  return {
    name: "generator (ws)",
    ticks,
    async connect() {
      main = await connectClient(url, "/", { onEvent });
      return main.sids.get("/");
    },
    async connectControl() {
      control = await connectClient(url, "/control", {});
      return control.sids.get("/control");
    },
    emitWithAck: (event, ...args) => withTimeout(main.emitWithAck("/", event, ...args), event),
    control: (event, ...args) => withTimeout(control.emitWithAck("/control", event, ...args), event),
    alive: () => !main.closed,
    pings: () => main.pings,
    close() {
      main.close();
      control.close();
    },
  };
}

/**
 * All the ack's arguments. (socket.io-client's emitWithAck() resolves with the first
 * one only, so a plain ack callback it is.)
 */
function ackArgs(socket, event, args) {
  return new Promise((resolve, reject) => {
    socket.timeout(ACK_TIMEOUT_MS).emit(event, ...args, (err, ...ack) => {
      if (err) reject(new Error(`${event}: ${err.message ?? err}`));
      else resolve(ack);
    });
  });
}

/** The reference: socket.io-client, websocket transport only, no compression. */
async function socketIoDriver(url) {
  const { io } = require("socket.io-client");
  const options = {
    transports: ["websocket"],
    reconnection: false,
    forceNew: true,
    perMessageDeflate: false,
    timeout: ACK_TIMEOUT_MS,
  };
  const ticks = [];
  let pings = 0;
  let closed = false;
  let main = null;
  let control = null;
  const connected = (socket) =>
    withTimeout(
      new Promise((resolve, reject) => {
        socket.once("connect", () => resolve(socket.id));
        socket.once("connect_error", reject);
      }),
      "connect",
    );
  return {
    name: "socket.io-client",
    ticks,
    async connect() {
      main = io(url, options);
      main.on("tick", (...args) => ticks.push(["/", "tick", ...args]));
      main.io.on("ping", () => pings++);
      main.on("disconnect", () => {
        closed = true;
      });
      return connected(main);
    },
    async connectControl() {
      control = io(`${url}/control`, options);
      return connected(control);
    },
    emitWithAck: (event, ...args) => ackArgs(main, event, args),
    control: (event, ...args) => ackArgs(control, event, args),
    alive: () => !closed && main.connected,
    pings: () => pings,
    close() {
      main.close();
      control.close();
    },
  };
}

/**
 * Broadcasts through the control client and collects what the main client received.
 * Stamps are checked here (a number within a second of our clock: the servers and the
 * generator share one wall clock) and then left out of the transcript, which must be
 * the same every run.
 */
async function broadcast(driver, request, expected) {
  driver.ticks.length = 0;
  const [ack] = await driver.control("bench_broadcast", request);
  const deadline = nowMs() + ACK_TIMEOUT_MS;
  while (driver.ticks.length < expected && nowMs() < deadline) await sleep(10);
  await sleep(expected === 0 ? 300 : 50); // stray or extra ticks would arrive by now
  const received = nowMs();
  const stamps = driver.ticks.map((t) => t[3]);
  const stampsSane = stamps.every((t) => typeof t === "number" && t <= received + 1 && received - t < 10000);
  const ticks = driver.ticks.map(([nsp, event, seq, , payload, ...rest]) => [nsp, event, seq, payload, ...rest]);
  let spaced = null;
  if (request.rate > 0 && stamps.length > 1) {
    // At `rate` per second, n ticks span (n-1)/rate seconds; allow timer slack.
    const wanted = ((stamps.length - 1) * 1000) / request.rate;
    spaced = stamps.at(-1) - stamps[0] >= wanted * 0.8;
  }
  return { ack: { sent: ack?.sent }, ticks, stampsSane, spaced };
}

async function conversation(driver, pingInterval) {
  const transcript = [];
  const sid = await driver.connect();
  transcript.push(["connected to /", typeof sid === "string" && sid.length > 0]);
  const controlSid = await driver.connectControl();
  transcript.push(["connected to /control", typeof controlSid === "string" && controlSid.length > 0]);
  for (const args of ECHO_CASES) {
    transcript.push(["echo ack", args, await driver.emitWithAck("echo", ...args)]);
  }
  transcript.push(["join ack", await driver.emitWithAck("join", "r1")]);
  for (const [label, request, expected] of BROADCASTS) {
    transcript.push([`broadcast ${label}`, await broadcast(driver, request, expected)]);
  }
  // Idle for more than two heartbeats: the connection survives only if pongs go back.
  await sleep(pingInterval * 2500);
  transcript.push(["alive after idling", driver.alive(), driver.pings() >= 2]);
  transcript.push(["echo ack after idling", await driver.emitWithAck("echo", "still here")]);
  driver.close();
  return transcript;
}

/** The transcript the behaviour definition in benchmarks/README.md predicts. */
function expectedTranscript() {
  const transcript = [["connected to /", true], ["connected to /control", true]];
  for (const args of ECHO_CASES) transcript.push(["echo ack", args, args]);
  transcript.push(["join ack", [true]]);
  for (const [label, request, expected] of BROADCASTS) {
    const payload = "x".repeat(request.size);
    transcript.push([
      `broadcast ${label}`,
      {
        ack: { sent: request.n },
        ticks: Array.from({ length: expected }, (_, seq) => ["/", "tick", seq, payload]),
        stampsSane: true,
        spaced: request.rate > 0 && expected > 1 ? true : null,
      },
    ]);
  }
  transcript.push(["alive after idling", true, true]);
  transcript.push(["echo ack after idling", ["still here"]]);
  return transcript;
}

function differences(a, b) {
  const rows = [];
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = JSON.stringify(a[i]);
    const y = JSON.stringify(b[i]);
    if (x !== y) rows.push({ step: i, left: x?.slice(0, 300), right: y?.slice(0, 300) });
  }
  return rows;
}

export async function runCheck(url, pingInterval) {
  const raw = await conversation(await rawDriver(url), pingInterval);
  const reference = await conversation(await socketIoDriver(url), pingInterval);
  const expected = expectedTranscript();
  const generatorVsSocketIo = differences(raw, reference);
  const serverVsDefinition = differences(reference, expected);
  return {
    ok: generatorVsSocketIo.length === 0 && serverVsDefinition.length === 0,
    steps: raw.length,
    generator_vs_socketio_client: generatorVsSocketIo,
    server_vs_definition: serverVsDefinition,
  };
}
