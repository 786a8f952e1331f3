// socket.io-client 4.8 in Node (engine.io-client over the `ws` package, which
// offers permessage-deflate with a 1 KiB threshold by default) against the
// server under test: emits DOC `count` times with an ack, receives each echoed
// back as an ack and as a `doc` event, then reports what the transport agreed.
// Usage: node compression_client.js URL TRANSPORTS COUNT DOC_JSON_FILE
// Prints one JSON line: {"ok": true, "extensions": "...", "acks": n, "events": n}.
const fs = require("fs");
const { io } = require("socket.io-client");

const [url, transports, count, docFile] = process.argv.slice(2);
const doc = JSON.parse(fs.readFileSync(docFile, "utf8"));

const socket = io(url, { transports: transports.split(","), reconnection: false, forceNew: true });
const timer = setTimeout(() => {
  console.log(JSON.stringify({ ok: false, error: "timed out" }));
  process.exit(1);
}, 20000);
let events = 0;
socket.on("doc", (value) => {
  if (JSON.stringify(value) === JSON.stringify(doc)) events += 1;
});
socket.on("connect_error", (err) => {
  console.log(JSON.stringify({ ok: false, error: String(err) }));
  process.exit(1);
});
socket.on("connect", async () => {
  let acks = 0;
  for (let i = 0; i < Number(count); i++) {
    const answer = await socket.emitWithAck("doc", doc);
    if (JSON.stringify(answer) === JSON.stringify(doc)) acks += 1;
  }
  const small = await socket.emitWithAck("small", "hi");
  const ws = socket.io.engine.transport.ws;
  const result = {
    ok: small === "hi",
    transport: socket.io.engine.transport.name,
    extensions: ws ? ws.extensions : null,
    acks,
    events,
  };
  clearTimeout(timer);
  console.log(JSON.stringify(result));
  socket.disconnect();
});
