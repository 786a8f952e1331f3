// Exercises the chat example's event contract with the npm socket.io-client.
// Usage: node chat_contract.js URL ; prints one JSON object of observations.
const { io } = require("socket.io-client");
const url = process.argv[2];

function client(name) {
  const s = io(url, { transports: ["websocket"], forceNew: true });
  s.log = [];
  s.onAny((event, ...args) => s.log.push([event, ...args]));
  return new Promise((resolve) => s.on("connect", () => resolve(s)));
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const events = (s, name) => s.log.filter((e) => e[0] === name).map((e) => e[1]);

(async () => {
  const out = {};
  const a = await client("a"), b = await client("b"), c = await client("c");
  out.join_a = await a.emitWithAck("join", { name: "alice", room: "lobby" });
  out.join_taken = await b.emitWithAck("join", { name: "alice", room: "lobby" });
  out.join_empty = await b.emitWithAck("join", { name: "   ", room: "lobby" });
  out.join_long_name = await b.emitWithAck("join", { name: "x".repeat(30), room: "lobby" });
  out.join_long_room = await b.emitWithAck("join", { name: "bob", room: "r".repeat(40) });
  out.message_before_join = await b.emitWithAck("message", "too early");
  out.join_b = await b.emitWithAck("join", { name: "bob", room: "lobby" });
  out.join_c = await c.emitWithAck("join", { name: "carol", room: "other" });
  await sleep(100);
  out.users_seen_by_a = events(a, "users");
  out.message_ack = await a.emitWithAck("message", "hi all");
  out.long_message = await a.emitWithAck("message", "m".repeat(1001));
  a.emit("typing", true);
  out.private_ack = await b.emitWithAck("private", { to: "alice", text: "psst" });
  out.private_unknown = await b.emitWithAck("private", { to: "nobody", text: "psst" });
  await sleep(100);
  out.a_messages = events(a, "message");
  out.b_messages = events(b, "message");
  out.c_messages = events(c, "message");
  out.a_typing = events(a, "typing");
  out.b_typing = events(b, "typing");
  out.c_typing = events(c, "typing");
  out.a_private = events(a, "private");
  out.b_private = events(b, "private");
  out.c_private = events(c, "private");
  for (let i = 0; i < 55; i++) await a.emitWithAck("message", "n" + i);
  const d = await client("d");
  out.join_d = await d.emitWithAck("join", { name: "dave", room: "lobby" });
  await sleep(100);
  a.log.length = 0;
  b.disconnect();
  await sleep(200);
  out.users_after_leave = events(a, "users");
  out.rooms_seen_by_d = events(d, "rooms");
  c.emit("join", { name: "carol", room: "lobby" });
  await sleep(100);
  out.users_after_switch = events(a, "users");
  for (const s of [a, c, d]) s.disconnect();
  console.log(JSON.stringify(out));
  process.exit(0);
})().catch((e) => { console.log(JSON.stringify({ error: String(e) })); process.exit(1); });
