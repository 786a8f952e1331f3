// The socket.io-client 4.8 browser bundle in headless Chromium (Debian's, via
// playwright-core) against the server under test: emits DOC `count` times with
// an ack and receives each back as an ack and as a `doc` event, over the given
// transports. The page comes from PAGE_URL; the Socket.IO connection goes to
// SIO_URL (a byte-counting relay in the test).
// Usage: node compression_browser.js PAGE_URL SIO_URL TRANSPORTS COUNT DOC_JSON_FILE
// Prints one JSON line: {"ok": true, "transport": ..., "acks": n, "events": n}.
const fs = require("fs");
const { launch } = require("./browser");

const [pageUrl, sioUrl, transports, count, docFile] = process.argv.slice(2);
const doc = JSON.parse(fs.readFileSync(docFile, "utf8"));

(async () => {
  const browser = await launch();
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(`${pageUrl}/index.html`);
    const result = await page.evaluate(async ({ sioUrl, transports, count, doc }) => {
      const socket = io(sioUrl, { transports: transports.split(","), reconnection: false });
      const same = (a) => JSON.stringify(a) === JSON.stringify(doc);
      let events = 0;
      socket.on("doc", (value) => { if (same(value)) events += 1; });
      await new Promise((resolve, reject) => {
        socket.on("connect", resolve);
        socket.on("connect_error", reject);
      });
      let acks = 0;
      for (let i = 0; i < count; i++) {
        if (same(await socket.emitWithAck("doc", doc))) acks += 1;
      }
      const small = await socket.emitWithAck("small", "hi");
      const transport = socket.io.engine.transport.name;
      socket.disconnect();
      return { small, transport, acks, events };
    }, { sioUrl, transports, count: Number(count), doc });
    console.log(JSON.stringify({ ok: errors.length === 0 && result.small === "hi", errors, ...result }));
  } catch (e) {
    console.log(JSON.stringify({ ok: false, error: String(e) }));
  } finally {
    await browser.close();
  }
})();
