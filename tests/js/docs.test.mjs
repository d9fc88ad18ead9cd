// The API docs page (`/docs/`) in headless Chromium: it renders every operation of
// `/openapi.json` and the Socket.IO events, with every asset from this server (it works
// offline), and "Try it out" reaches the server.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, launchChromium } from "./harness.mjs";

let server;
let browser;
before(async () => {
  server = await startServer();
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await server.stop();
});

test("the docs page renders every operation and the Socket.IO events, offline", async () => {
  const document = await (await fetch(`${server.url}/openapi.json`)).json();
  const operations = Object.values(document.paths)
    .flatMap((item) => Object.keys(item).filter((k) => ["get", "post", "put", "patch", "delete"].includes(k)));
  const page = await browser.newPage();
  const elsewhere = [];
  page.on("request", (request) => {
    if (!request.url().startsWith(server.url)) elsewhere.push(request.url());
  });
  await page.goto(`${server.url}/docs/`);
  await page.waitForSelector(".opblock", { timeout: 15000 });
  const shown = await page.locator(".opblock").count();
  assert.equal(shown, operations.length);
  const text = await page.locator(".information-container").innerText();
  assert.match(text, /message:new/);
  assert.match(text, /thread:join/);
  assert.deepEqual(elsewhere, [], "requests left the server");

  // "Try it out" on GET /healthz answers from this server.
  const health = page.locator("#operations-operations-healthz");
  await health.locator(".opblock-summary").click();
  await health.locator("button.try-out__btn").click();
  await health.locator("button.execute").click();
  await health.locator(".responses-table .response-col_status").first().waitFor();
  const body = await health.locator(".live-responses-table .microlight").first().innerText();
  assert.match(body, /"status": "ok"/);
  await page.close();
});
