// Uploaded files never run script on the server's origin: an uploaded page with a script,
// opened at its download URL in headless Chromium, does nothing, whatever type the upload
// claimed.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, createThread, api, identify, sleep, launchChromium } from "./harness.mjs";

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

async function upload(name, type, text) {
  const form = new FormData();
  form.append("file", new Blob([text], { type }), name);
  const res = await fetch(`${server.url}/api/files`, {
    method: "POST",
    body: form,
    headers: identify(server, {}, "/api/files"),
  });
  assert.equal(res.status, 201, await res.clone().text());
  const file = await res.json();
  for (let i = 0; i < 200; i++) {
    const status = await api(server, "GET", `/api/files/${file.id}/status`);
    if (status.body.status === "ready") return file;
    await sleep(20);
  }
  throw new Error(`${name} never became ready`);
}

/** A script that marks the page and posts to the thread as whoever opened it. */
const attack = (threadId) =>
  `document.title = "ran"; fetch("/api/threads/${threadId}/messages", {method: "POST", ` +
  `headers: {"content-type": "application/json"}, body: JSON.stringify({body: "script ran"})});`;

const pages = [
  ["page.html", "text/html", (js) => `<!doctype html><html><body><script>${js}</script></body></html>`],
  ["image.svg", "image/svg+xml", (js) => `<svg xmlns="http://www.w3.org/2000/svg"><script><![CDATA[${js}]]></script></svg>`],
  ["page.xhtml", "application/xhtml+xml", (js) => `<html xmlns="http://www.w3.org/1999/xhtml"><body><script>${js}</script></body></html>`],
  ["cat.png", "image/png", (js) => `<html><body><script>${js}</script></body></html>`],
  ["notes.txt", "text/plain", (js) => `<script>${js}</script>`],
];

for (const [name, claimed, page] of pages) {
  test(`an uploaded ${name} (claimed ${claimed}) runs no script when its URL is opened`, async () => {
    const threadId = await createThread(server);
    const file = await upload(name, claimed, page(attack(threadId)));

    const head = await fetch(server.url + file.url, { headers: identify(server, {}, file.url) });
    assert.equal(head.headers.get("x-content-type-options"), "nosniff");
    assert.equal(head.headers.get("content-security-policy"), "sandbox; default-src 'none'");
    assert.match(head.headers.get("content-disposition"), /^attachment; filename="/);
    assert.equal(head.headers.get("content-type"), "application/octet-stream");

    const tab = await browser.newPage();
    try {
      if (server.jwt) await tab.setExtraHTTPHeaders(identify(server, {}, file.url));
      // A download aborts the navigation; either way nothing may run.
      await tab.goto(server.url + file.url).catch(() => {});
      await sleep(300);
      assert.notEqual(await tab.title().catch(() => ""), "ran");
    } finally {
      await tab.close();
    }
    const history = await api(server, "GET", `/api/threads/${threadId}/messages`);
    assert.deepEqual(history.body.messages.map((m) => m.body), [], "nothing was posted");
  });
}

test("a real image is still shown in place", async () => {
  const png = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(64, 1)]);
  const file = await upload("été.png", "application/octet-stream", png);
  const res = await fetch(server.url + file.url, { headers: identify(server, {}, file.url) });
  assert.equal(res.headers.get("content-type"), "image/png");
  assert.equal(
    res.headers.get("content-disposition"),
    `inline; filename="_t_.png"; filename*=UTF-8''%C3%A9t%C3%A9.png`,
  );
  assert.equal(res.headers.get("content-security-policy"), "sandbox; default-src 'none'");
});
