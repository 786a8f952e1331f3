// Drives the real Socket.IO Admin UI (the built UI of @socket.io/admin-ui,
// served by the triosio server under test) in headless Chromium (Debian's,
// via playwright-core): log in, read the servers, the sockets and the rooms it
// shows, take screenshots, then disconnect one socket from the UI.
// Usage: node admin_browser.js UI_URL SERVER_URL USERNAME PASSWORD SOCKET_IDS DISCONNECT_ID SHOT_DIR
//   SOCKET_IDS: comma-separated ids of namespace "/" that the UI must list.
// Prints one JSON line: {"ok": true, ...} or {"ok": false, "error": ...}.
const path = require("path");
const { launch } = require("./browser");

const [uiUrl, serverUrl, username, password, socketIds, disconnectId, shotDir] =
  process.argv.slice(2);
const TIMEOUT = 20000;

async function show(page, route) {
  // The UI routes by the URL's hash; the page (and its connection) stays.
  await page.evaluate((r) => { window.location.hash = r; }, route);
}

async function texts(page, selector) {
  return page.$$eval(selector, (els) => els.map((el) => el.textContent.trim()));
}

(async () => {
  const browser = await launch();
  const errors = [];
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    page.setDefaultTimeout(TIMEOUT);
    page.on("pageerror", (e) => errors.push(String(e)));
    // The UI's page links a web font and an icon font on public CDNs: this
    // machine reaches no such host, so they are refused at once (the page
    // falls back to local fonts) instead of waiting for a timeout.
    const local = new URL(uiUrl).host;
    await page.route("**/*", (route) =>
      new URL(route.request().url()).host === local ? route.continue() : route.abort());

    await page.goto(uiUrl);
    // Not connected yet: the UI opens its connection form.
    await page.getByLabel("Server URL").fill(serverUrl);
    await page.getByLabel("Username").fill(username);
    await page.getByLabel("Password").fill(password);
    await page.getByRole("button", { name: "Connect" }).click();
    await page.getByLabel("Server URL").waitFor({ state: "hidden" });

    // The server: its id on the servers page.
    await show(page, "#/servers/");
    await page.waitForSelector("table tbody tr td");
    const servers = await texts(page, "table tbody tr td:first-child");

    // The sockets of namespace "/" (the UI selects it first).
    await show(page, "#/sockets/");
    const wanted = socketIds.split(",");
    await page.waitForFunction((ids) => {
      const text = document.querySelector("table") ? document.querySelector("table").innerText : "";
      return ids.every((id) => text.includes(id));
    }, wanted);
    const socketRows = await texts(page, "table tbody tr");

    // One socket's page (a click on its row), with the rooms it is in.
    await page.locator("table tbody tr", { hasText: disconnectId }).locator("td").first().click();
    await page.waitForFunction((id) => window.location.hash.endsWith(id), disconnectId);
    await page.waitForSelector("text=Rooms");
    const socketPage = await page.innerText("main");

    // The rooms (private rooms, one per socket, are hidden by default).
    await show(page, "#/rooms/");
    await page.waitForSelector("table tbody tr td");
    const rooms = await texts(page, "table tbody tr td:first-child");

    await show(page, "#/");
    await page.waitForTimeout(2500); // a server_stats or two for the charts
    await page.screenshot({ path: path.join(shotDir, "admin-ui-dashboard.png") });
    await show(page, "#/sockets/");
    await page.waitForFunction((id) => document.querySelector("table").innerText.includes(id),
      disconnectId);
    await page.screenshot({ path: path.join(shotDir, "admin-ui-sockets.png") });

    // Disconnect one socket with the button of its row; the UI drops the row
    // when the server reports the socket gone.
    // (The click reaches the row too, which opens the socket's page.)
    await page.locator("table tbody tr", { hasText: disconnectId }).locator("button").click();
    await page.waitForFunction(() => window.location.hash.includes("/sockets/") &&
      window.location.hash !== "#/sockets/");
    await show(page, "#/sockets/");
    const others = wanted.filter((id) => id !== disconnectId);
    await page.waitForFunction(([gone, kept]) => {
      const table = document.querySelector("table");
      if (window.location.hash !== "#/sockets/" || !table) return false;
      const text = table.innerText;
      return !text.includes(gone) && kept.every((id) => text.includes(id));
    }, [disconnectId, others]);
    const socketsAfter = await texts(page, "table tbody tr");

    console.log(JSON.stringify({
      ok: errors.length === 0, servers, sockets: socketRows, socketPage, rooms, socketsAfter,
      errors,
    }));
  } catch (e) {
    console.log(JSON.stringify({ ok: false, error: String(e), errors }));
  } finally {
    await browser.close();
  }
})();
