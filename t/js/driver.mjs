// Drives Debian's Chromium for t/integration/test_js_client.py.
//
//   node t/js/driver.mjs
//
// Reads one JSON command per line on stdin and answers each with one JSON
// line on stdout ({"ok": true, "value": ...} or {"ok": false, "error": "..."}):
//   {"cmd": "open", "url": U}          a new browser context (own cookies, own
//                                      network) and page at U; waits for window.ready
//   {"cmd": "eval", "js": CODE}        CODE is an async function body run in the
//                                      page; its return value (JSON) is the answer
//   {"cmd": "offline", "value": B}     the context's network off (true) or on
//   {"cmd": "quit"}                    closes the browser and exits
// The browser is never downloaded: PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD, Debian's
// /usr/bin/chromium.
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const browser = await chromium.launch({
  executablePath: process.env.REALTIME_CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
let context = null;
let page = null;
const consoleLines = [];

async function handle(msg) {
  switch (msg.cmd) {
    case "open":
      if (context) await context.close();
      context = await browser.newContext();
      page = await context.newPage();
      page.on("console", (m) => consoleLines.push(m.type() + ": " + m.text()));
      page.on("pageerror", (e) => consoleLines.push("pageerror: " + e.message));
      await page.goto(msg.url);
      try {
        await page.waitForFunction(() => window.ready === true, null, { timeout: 10000 });
      } catch (e) {
        throw new Error(e.message + "; console: " + JSON.stringify(consoleLines));
      }
      return null;
    case "eval":
      return await page.evaluate(`(async () => { ${msg.js} })()`);
    case "offline":
      await context.setOffline(Boolean(msg.value));
      return null;
    case "console":
      return consoleLines.splice(0);
    case "quit":
      await browser.close();
      process.exit(0);
    default:
      throw new Error("unknown command " + msg.cmd);
  }
}

const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
out({ ok: true, value: "ready" });
for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  try {
    out({ ok: true, value: (await handle(JSON.parse(line))) ?? null });
  } catch (e) {
    out({ ok: false, error: String(e && e.stack || e) });
  }
}
await browser.close();
