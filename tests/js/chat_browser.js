// Drives the chat page in headless Chromium (Debian's, via playwright-core):
// two pages join one room, one sends a message, the other must show it.
// Usage: node chat_browser.js URL TRANSPORTS SCREENSHOT_PATH|-
// Prints one JSON line: {"ok": true, ...} or {"ok": false, "error": ...}.
const { launch } = require("./browser");

const [url, transports, shot] = process.argv.slice(2);

async function open(browser, name, room) {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(`${url}?transports=${transports}`);
  await page.waitForSelector('#status[data-state="connected"]', { timeout: 15000 });
  await page.fill("#join-name", name);
  await page.fill("#join-room", room);
  await page.click("#join-button");
  await page.waitForFunction(() => !document.getElementById("join-dialog").open, null, { timeout: 10000 });
  return { page, errors };
}

(async () => {
  const browser = await launch();
  try {
    const room = "room-" + transports.replace(/,/g, "-");
    const alice = await open(browser, "alice", room);
    const bob = await open(browser, "bob", room);
    await alice.page.waitForFunction(() =>
      [...document.querySelectorAll("#users li")].some((li) => li.textContent.startsWith("bob")),
      null, { timeout: 10000 });
    const text = `hello over ${transports} ${Date.now()}`;
    await alice.page.fill("#text", text);
    await alice.page.press("#text", "Enter");
    await bob.page.waitForFunction((t) =>
      [...document.querySelectorAll("#messages li .text")].some((el) => el.textContent === t),
      text, { timeout: 10000 });
    const transport = await bob.page.evaluate(() => document.getElementById("status-text").textContent);
    const users = await bob.page.evaluate(() => [...document.querySelectorAll("#users li")].map((li) => li.textContent));
    if (shot && shot !== "-") await bob.page.screenshot({ path: shot });
    const errors = alice.errors.concat(bob.errors);
    console.log(JSON.stringify({ ok: errors.length === 0, text, transport, users, errors }));
  } catch (e) {
    console.log(JSON.stringify({ ok: false, error: String(e) }));
  } finally {
    await browser.close();
  }
})();
