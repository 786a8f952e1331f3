// Connection state recovery in headless Chromium (Debian's, via playwright-core):
// the socket.io-client 4.8 browser bundle, served by the triosio server under
// test, connects, receives one event, has its Engine.IO connection closed under
// it, reconnects and must recover (same id, `recovered`, the missed events).
// Usage: node recovery_browser.js URL TRANSPORTS COUNT
// Prints one JSON line: {"ok": true, connects: [...], ticks: [...]} or {"ok": false, "error": ...}.
const { launch } = require("./browser");

const [url, transports, count] = process.argv.slice(2);

(async () => {
  const browser = await launch();
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(`${url}/index.html`);
    const result = await page.evaluate(async ({ transports, count }) => {
      const socket = io({
        transports: transports.split(","),
        reconnectionDelay: 1000,
        randomizationFactor: 0,
      });
      const connects = [];
      const ticks = [];
      let cut = false;
      return await new Promise((resolve, reject) => {
        setTimeout(() => reject(new Error("timed out: " + JSON.stringify({ connects, ticks }))), 20000);
        socket.on("connect", () => {
          connects.push({ id: socket.id, recovered: socket.recovered });
          if (connects.length === 2) socket.emit("live");
        });
        socket.on("tick", (...args) => {
          ticks.push(args);
          if (!cut) {
            // The first event (and so an offset) came: lose the connection.
            cut = true;
            socket.io.engine.close();
          }
          if (args[0] === "live") resolve({ connects, ticks });
        });
      });
    }, { transports, count: Number(count) });
    console.log(JSON.stringify({ ok: errors.length === 0, errors, ...result }));
  } catch (e) {
    console.log(JSON.stringify({ ok: false, error: String(e) }));
  } finally {
    await browser.close();
  }
})();
