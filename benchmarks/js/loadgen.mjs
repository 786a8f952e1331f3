// The benchmark load generator: many raw Engine.IO/Socket.IO clients over `ws`.
//
//   node loadgen.mjs MODE --url http://127.0.0.1:PORT [--server-pid PID] [options]
//
// MODE is one of
//   check    validate: run one scripted conversation with this generator's client and
//            one with socket.io-client, and require the two transcripts to be equal
//   connect  connect --clients N (connections/s, server memory per idle connection)
//   echo     --clients C each do echo-with-ack round trips for --duration seconds
//   fanout   --clients N receive --n ticks broadcast flat out or at --rate per second,
//            to everyone or (--rooms R) to the R-th of them that joined room "r0"
//   soak     hold --clients N for --duration seconds with heartbeats, count drops
//
// The server's CPU (utime+stime of /proc/PID/stat) and memory (VmRSS of
// /proc/PID/status) are read here, at the exact instants a measured phase starts and
// ends, rather than by the harness from outside. Progress goes to stderr; the result is
// one JSON object on the last line of stdout.
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { nowMs } from "./clock.mjs";
import { connectClient } from "./eio.mjs";

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    url: { type: "string" },
    "server-pid": { type: "string" },
    "clk-tck": { type: "string", default: "100" },
    clients: { type: "string" },
    concurrency: { type: "string", default: "64" },
    duration: { type: "string" },
    warmup: { type: "string" },
    n: { type: "string" },
    rate: { type: "string", default: "0" },
    size: { type: "string", default: "32" },
    rooms: { type: "string", default: "0" },
    settle: { type: "string", default: "3" },
    "ping-interval": { type: "string", default: "1" },
  },
});

const MODE = positionals[0];
const URL_BASE = values.url;
// One pid, or several separated by commas (a supervisor and its workers): summed.
const SERVER_PIDS = values["server-pid"] ? values["server-pid"].split(",").map(Number) : null;
const CLK_TCK = Number(values["clk-tck"]);
const CONCURRENCY = Number(values.concurrency);

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const log = (...args) => console.error(`[loadgen ${MODE}]`, ...args);

// --- measuring the server and ourselves ---------------------------------------------

/** Server CPU seconds [user, system] (all threads), or null without --server-pid. */
function serverCpu() {
  if (SERVER_PIDS === null) return null;
  const total = [0, 0];
  for (const pid of SERVER_PIDS) {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may contain spaces; the fields after it do not.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // fields[0] is field 3 (state), so utime (14) and stime (15) are 11 and 12.
    total[0] += Number(fields[11]) / CLK_TCK;
    total[1] += Number(fields[12]) / CLK_TCK;
  }
  return total;
}

/** Server resident memory in bytes (VmRSS) or null without --server-pid. */
function serverRss() {
  if (SERVER_PIDS === null) return null;
  let total = 0;
  for (const pid of SERVER_PIDS) {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const match = /^VmRSS:\s+(\d+) kB/m.exec(status);
    if (!match) return null;
    total += Number(match[1]) * 1024;
  }
  return total;
}

/** This generator's own CPU seconds [user, system], to show whether it was saturated. */
function genCpu() {
  const usage = process.cpuUsage();
  return [usage.user / 1e6, usage.system / 1e6];
}

/**
 * CPU seconds the whole machine spent busy (all cores, from /proc/stat). Busy time that
 * is neither the server's nor ours is other work on the machine competing for the same
 * cores: reported, so a run disturbed by it can be recognised.
 */
function machineBusy() {
  const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0];
  const [, user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).map(Number);
  return (user + nice + system + irq + softirq + steal) / CLK_TCK;
}

/** A snapshot of the clocks that a measured phase is delimited by. */
function mark() {
  return { t: nowMs(), server: serverCpu(), gen: genCpu(), busy: machineBusy() };
}

/**
 * Wall seconds, server and generator CPU seconds between two marks. On loopback the
 * kernel's TCP work is charged to whichever process's system call ran it (a send also
 * runs the receive path), so user and system time are reported apart.
 */
function span(a, b) {
  const wall = (b.t - a.t) / 1000;
  const gen = b.gen[0] - a.gen[0] + (b.gen[1] - a.gen[1]);
  return {
    wall_s: wall,
    server_cpu_s: a.server === null ? null : b.server[0] - a.server[0] + (b.server[1] - a.server[1]),
    server_sys_s: a.server === null ? null : b.server[1] - a.server[1],
    gen_cpu_s: gen,
    gen_sys_s: b.gen[1] - a.gen[1],
    gen_cpu_util: wall > 0 ? gen / wall : null,
    // Cores' worth of CPU used by other processes meanwhile (0 on a quiet machine).
    other_cpu_util:
      a.server === null || wall <= 0
        ? null
        : Math.max(0, b.busy - a.busy - gen - (b.server[0] - a.server[0] + (b.server[1] - a.server[1]))) / wall,
  };
}

// A latency histogram with logarithmic buckets 1% wide: constant memory for millions
// of samples, percentiles within 1%.
class Histogram {
  static STEP = Math.log(1.01);
  constructor() {
    this.buckets = new Float64Array(4096);
    this.count = 0;
    this.negative = 0; // receive before send stamp: a clock problem, counted, not hidden
    this.max = 0;
  }
  add(ms) {
    this.count++;
    if (ms < 0) {
      this.negative++;
      ms = 0;
    }
    if (ms > this.max) this.max = ms;
    const us = ms * 1000;
    const index = us < 1 ? 0 : Math.min(4095, 1 + Math.floor(Math.log(us) / Histogram.STEP));
    this.buckets[index]++;
  }
  /** The p-th percentile in milliseconds (bucket's geometric middle), or null. */
  percentile(p) {
    if (this.count === 0) return null;
    const rank = Math.ceil((p / 100) * this.count);
    let seen = 0;
    for (let i = 0; i < this.buckets.length; i++) {
      seen += this.buckets[i];
      if (seen >= rank) return i === 0 ? 0 : Math.exp((i - 0.5) * Histogram.STEP) / 1000;
    }
    return this.max;
  }
  summary() {
    return {
      samples: this.count,
      p50_ms: this.percentile(50),
      p99_ms: this.percentile(99),
      max_ms: this.count ? this.max : null,
      negative: this.negative,
    };
  }
}

// --- connecting many clients ----------------------------------------------------------

/**
 * Connects `n` clients to namespace "/" with at most CONCURRENCY handshakes in flight
 * (more would only overflow small listen backlogs and measure SYN retries). A client
 * whose handshake fails is tried again up to `retries` times (counted in `retried`).
 * Returns {clients, failures, retried, error}; a client that never connected leaves a
 * null slot.
 */
async function connectMany(n, hooks, retries = 0) {
  const clients = new Array(n).fill(null);
  let next = 0;
  let failures = 0;
  let retried = 0;
  let error = null;
  async function worker() {
    while (next < n) {
      const index = next++;
      for (let attempt = 0; ; attempt++) {
        try {
          const client = await connectClient(URL_BASE, "/", hooks);
          // Only a connected client can be "dropped": onClose also sees failed handshakes.
          client.established = true;
          clients[index] = client;
          break;
        } catch (err) {
          error ??= String(err.message ?? err);
          if (attempt >= retries) {
            failures++;
            break;
          }
          retried++;
        }
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, n) }, worker));
  return { clients, failures, retried, error };
}

function closeAll(clients) {
  for (const client of clients) client?.close();
}

// --- modes ----------------------------------------------------------------------------

async function modeConnect() {
  const n = Number(values.clients ?? 1000);
  // Connect and drop a few first so one-time costs (lazy imports, first allocations of
  // pools) are not charged to the measured connections.
  const warm = await connectMany(Math.min(10, n), {});
  closeAll(warm.clients);
  await sleep(1000);
  const rssBefore = serverRss();
  const begin = mark();
  const { clients, failures, error } = await connectMany(n, {});
  const end = mark();
  // Idle connections settle: handshake buffers are released, heartbeats are scheduled.
  await sleep(Number(values.settle) * 1000);
  const rssAfter = serverRss();
  const open = clients.filter((c) => c !== null && !c.closed).length;
  const times = span(begin, end);
  const connected = n - failures;
  closeAll(clients);
  return {
    ok: failures === 0 && open === n,
    clients: n,
    failures,
    first_error: error,
    still_open: open,
    ...times,
    conn_per_s: connected / times.wall_s,
    server_cpu_per_conn_us: times.server_cpu_s === null ? null : (times.server_cpu_s / connected) * 1e6,
    rss_before: rssBefore,
    rss_after: rssAfter,
    mem_per_conn_bytes: rssBefore === null ? null : (rssAfter - rssBefore) / connected,
  };
}

async function modeEcho() {
  const n = Number(values.clients ?? 50);
  const duration = Number(values.duration ?? 10);
  const warmup = Number(values.warmup ?? 1);
  const payload = "x".repeat(Number(values.size));
  const { clients, failures, error } = await connectMany(n, {});
  if (failures) throw new Error(`${failures} clients failed to connect: ${error}`);
  const hist = new Histogram();
  let measuring = false;
  let stopping = false;
  let completed = 0;
  let wrong = 0;
  let failed = null;

  // Each client keeps exactly one echo in flight: N concurrent request/response loops.
  async function loop(client) {
    let seq = 0;
    while (!stopping) {
      const sent = nowMs();
      const ack = await client.emitWithAck("/", "echo", seq, payload);
      const latency = nowMs() - sent;
      if (ack.length !== 2 || ack[0] !== seq || ack[1] !== payload) wrong++;
      if (measuring) {
        hist.add(latency);
        completed++;
      }
      seq++;
    }
  }
  const loops = clients.map((c) =>
    loop(c).catch((err) => {
      failed ??= String(err.message ?? err);
    }),
  );
  await sleep(warmup * 1000);
  const begin = mark();
  measuring = true;
  await sleep(duration * 1000);
  measuring = false;
  const end = mark();
  stopping = true;
  await Promise.race([Promise.all(loops), sleep(10000)]);
  closeAll(clients);
  const times = span(begin, end);
  return {
    ok: failed === null && wrong === 0,
    clients: n,
    error: failed,
    wrong_acks: wrong,
    round_trips: completed,
    ...times,
    rt_per_s: completed / times.wall_s,
    server_cpu_per_rt_us: times.server_cpu_s === null ? null : (times.server_cpu_s / completed) * 1e6,
    latency: hist.summary(),
  };
}

async function modeFanout() {
  const n = Number(values.clients ?? 1000);
  const ticks = Number(values.n ?? 1000);
  const rate = Number(values.rate);
  const size = Number(values.size);
  const rooms = Number(values.rooms);
  const room = rooms > 0 ? "r0" : null;
  const warmupTicks = Number(values.warmup ?? Math.min(50, ticks));

  let hist = new Histogram();
  let expect = 0; // ticks each member must receive in the current round
  let membersDone = 0;
  let lastTick = 0; // time of the latest tick received
  let ticksSeen = 0; // all ticks, for noticing when they stop arriving
  let onAllDone = null;
  let stray = 0; // ticks that reached a client outside the target room
  let badPayload = 0;
  let otherEvents = 0;

  function onEvent(nsp, event, args, client) {
    if (event !== "tick" || nsp !== "/") {
      otherEvents++;
      return;
    }
    const now = nowMs();
    lastTick = now;
    ticksSeen++;
    const state = client.state;
    if (!state.member) {
      stray++;
      return;
    }
    const seq = args[0];
    if (seq <= state.last) state.disorder++;
    state.last = seq;
    state.received++;
    hist.add(now - args[1]);
    if (typeof args[2] !== "string" || args[2].length !== size) badPayload++;
    if (state.received === expect) {
      membersDone++;
      if (membersDone === memberCount && onAllDone) onAllDone();
    }
  }

  const { clients, failures, error } = await connectMany(n, { onEvent });
  if (failures) throw new Error(`${failures} clients failed to connect: ${error}`);
  let memberCount = 0;
  clients.forEach((client, index) => {
    const member = room === null || index % rooms === 0;
    if (member) memberCount++;
    client.state = { member, received: 0, last: -1, disorder: 0 };
  });
  if (rooms > 0) {
    const acks = await Promise.all(
      clients.map((client, index) => client.emitWithAck("/", "join", `r${index % rooms}`)),
    );
    const refused = acks.filter((ack) => ack.length !== 1 || ack[0] !== true).length;
    if (refused) throw new Error(`${refused} joins were not acked with true`);
  }
  const control = await connectClient(URL_BASE, "/control", {});

  /** One bench_broadcast of `count` ticks; waits until every member has them all. */
  async function round(count) {
    for (const client of clients) {
      client.state.received = 0;
      client.state.last = -1;
      client.state.disorder = 0;
    }
    hist = new Histogram();
    expect = count;
    membersDone = 0;
    stray = 0;
    lastTick = 0;
    const allDone = new Promise((resolve) => {
      onAllDone = resolve;
    });
    const begin = mark();
    const acked = control.emitWithAck("/control", "bench_broadcast", {
      n: count,
      rate,
      room,
      size,
    });
    // Done when every member has every tick, or when ticks stop arriving (loss).
    let stalled = false;
    const stallMs = 15000;
    let seen = -1;
    let seenAt = nowMs();
    let watching = true;
    await Promise.race([
      allDone,
      (async () => {
        while (watching) {
          await sleep(250);
          if (ticksSeen !== seen) {
            seen = ticksSeen;
            seenAt = nowMs();
          } else if (nowMs() - seenAt > stallMs) {
            stalled = true;
            return;
          }
        }
      })(),
    ]);
    watching = false;
    onAllDone = null;
    const end = mark();
    end.t = lastTick || end.t; // wall time ends at the last delivery
    let ack = null;
    try {
      ack = (await Promise.race([acked, sleep(30000).then(() => null)]))?.[0] ?? null;
    } catch (err) {
      ack = { error: String(err.message ?? err) };
    }
    let received = 0;
    let disorder = 0;
    let closed = 0;
    for (const client of clients) {
      received += client.state.member ? client.state.received : 0;
      disorder += client.state.disorder;
      if (client.closed) closed++;
    }
    const expected = count * memberCount;
    const times = span(begin, end);
    return {
      ok: !stalled && received === expected && disorder === 0 && stray === 0 && badPayload === 0 && closed === 0,
      ticks: count,
      recipients: memberCount,
      expected,
      received,
      lost: expected - received,
      out_of_order: disorder,
      stray,
      bad_payload: badPayload,
      closed_clients: closed,
      stalled,
      server_ack: ack,
      ...times,
      deliveries_per_s: received / times.wall_s,
      server_cpu_per_delivery_us: times.server_cpu_s === null ? null : (times.server_cpu_s / received) * 1e6,
      latency: hist.summary(),
    };
  }

  if (warmupTicks > 0) {
    const warm = await round(warmupTicks);
    if (!warm.ok) log("warm-up round was not clean:", JSON.stringify(warm));
  }
  const result = await round(ticks);
  control.close();
  closeAll(clients);
  return { clients: n, rate, rooms, size, other_events: otherEvents, ...result };
}

async function modeSoak() {
  const n = Number(values.clients ?? 10000);
  const duration = Number(values.duration ?? 120);
  let dropped = 0;
  const reasons = new Map();
  function onClose(client, code, why) {
    if (!client.established) return; // a handshake that failed: counted in failures
    dropped++;
    const key = `${code} ${why}`;
    reasons.set(key, (reasons.get(key) ?? 0) + 1);
  }
  let ticks = 0;
  function onEvent(nsp, event) {
    if (event === "tick") ticks++;
  }
  const warm = await connectMany(10, {});
  closeAll(warm.clients);
  await sleep(1000);
  const rssBefore = serverRss();
  const connectBegin = mark();
  // The soak is about holding connections, not about the ramp: on a busy machine a
  // handshake may time out, and is then tried again (and counted).
  const { clients, failures, retried, error } = await connectMany(n, { onClose, onEvent }, 3);
  const connectEnd = mark();
  log(`${n - failures}/${n} connected in ${((connectEnd.t - connectBegin.t) / 1000).toFixed(1)} s`);
  const begin = mark();
  let rssPeak = serverRss();
  const deadline = begin.t + duration * 1000;
  while (nowMs() < deadline) {
    await sleep(Math.min(10000, Math.max(0, deadline - nowMs())));
    const rss = serverRss();
    if (rss > rssPeak) rssPeak = rss;
    const elapsed = ((nowMs() - begin.t) / 1000).toFixed(0);
    log(`${elapsed} s: ${n - failures - dropped} open, ${dropped} dropped, server RSS ${(rss / 2 ** 20).toFixed(0)} MiB`);
  }
  const end = mark();
  const rssAfter = serverRss();
  // Every client that is still open must still be served: one broadcast to all.
  const control = await connectClient(URL_BASE, "/control", {});
  const live = clients.filter((c) => c !== null && !c.closed).length;
  const ack = await Promise.race([
    control.emitWithAck("/control", "bench_broadcast", { n: 1, rate: 0, room: null, size: 8 }),
    sleep(60000).then(() => null),
  ]);
  const waitUntil = nowMs() + 30000;
  while (ticks < live && nowMs() < waitUntil) await sleep(100);
  control.close();
  const pings = clients.filter((c) => c !== null).map((c) => c.pings).sort((a, b) => a - b);
  closeAll(clients);
  const times = span(begin, end);
  return {
    ok: failures === 0 && dropped === 0 && ticks === live && ack !== null,
    clients: n,
    failures,
    connect_retries: retried,
    first_error: error,
    connect_s: (connectEnd.t - connectBegin.t) / 1000,
    hold_s: times.wall_s,
    dropped,
    drop_reasons: Object.fromEntries(reasons),
    final_broadcast_received: ticks,
    final_broadcast_expected: live,
    pings_min: pings[0] ?? 0,
    pings_median: pings[Math.floor(pings.length / 2)] ?? 0,
    server_cpu_s: times.server_cpu_s,
    server_cpu_util: times.server_cpu_s === null ? null : times.server_cpu_s / times.wall_s,
    gen_cpu_util: times.gen_cpu_util,
    rss_before: rssBefore,
    rss_after: rssAfter,
    rss_peak: rssPeak,
    mem_per_conn_bytes: rssBefore === null ? null : (rssAfter - rssBefore) / (n - failures),
  };
}

async function main() {
  if (!URL_BASE) throw new Error("--url is required");
  let result;
  switch (MODE) {
    case "check": {
      const { runCheck } = await import("./check.mjs");
      result = await runCheck(URL_BASE, Number(values["ping-interval"]));
      break;
    }
    case "connect":
      result = await modeConnect();
      break;
    case "echo":
      result = await modeEcho();
      break;
    case "fanout":
      result = await modeFanout();
      break;
    case "soak":
      result = await modeSoak();
      break;
    default:
      throw new Error(`unknown mode ${MODE}`);
  }
  result = { mode: MODE, ...result };
  process.stdout.write(`${JSON.stringify(result)}\n`);
  // Sockets are terminated; exit without waiting for their close handshakes.
  process.exit(result.ok ? 0 : 1);
}

main().catch((err) => {
  process.stdout.write(`${JSON.stringify({ mode: MODE, ok: false, error: String(err.stack ?? err) })}\n`);
  process.exit(2);
});
