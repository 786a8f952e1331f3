// Headless Chromium for the browser tests: Debian's binary (CHROMIUM_PATH, or
// /usr/bin/chromium) through playwright-core, with the flags every test uses.
const { chromium } = require("playwright-core");

function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

module.exports = { launch };
