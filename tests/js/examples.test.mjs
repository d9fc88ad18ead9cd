// The client examples, run as their users would: the Node client and the polling uploader with
// node, the browser chat page in headless Chromium.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, startServer, createThread, postMessage, api, signToken, launchChromium } from "./harness.mjs";

const run = promisify(execFile);
const EXAMPLES = join(ROOT, "client-examples");

let server;
before(async () => (server = await startServer()));

/** In jwt mode the examples get a token for their user, as a deployment would hand them one. */
const tokenArgs = (user) => (server.jwt ? ["--token", signToken(user)] : []);
after(async () => server.stop());

test("node client: joins, posts, and prints the message:new it receives", async () => {
  const threadId = await createThread(server, ["node-client", "bob"]);
  const { stdout } = await run(
    "node",
    ["node/chat.mjs", server.url, threadId, "--say", "hello from the example", "--once", ...tokenArgs("node-client")],
    { cwd: EXAMPLES, timeout: 20000 },
  );
  assert.match(stdout, new RegExp(`joined thread:${threadId}`));
  assert.match(stdout, /message:new \S+ node-client: hello from the example/);
});

test("polling client: uploads, polls status until ready, downloads identical bytes", async () => {
  const dir = mkdtempSync(join(tmpdir(), "threadline-upload-"));
  const file = join(dir, "report.bin");
  writeFileSync(file, Buffer.alloc(2 * 1024 * 1024, 7));
  const { stdout } = await run("node", ["polling/upload-and-poll.mjs", file, server.url, ...tokenArgs("uploader")], {
    cwd: EXAMPLES,
    timeout: 20000,
  }).finally(() => rmSync(dir, { recursive: true, force: true }));
  assert.match(stdout, /"status":"ready"/);
  assert.match(stdout, /downloaded 2097152 bytes, identical/);
});

test("webhook receiver: verifies and prints the events a server posts to it", async () => {
  const { spawn } = await import("node:child_process");
  const { randomBytes } = await import("node:crypto");
  const { createInterface } = await import("node:readline");
  const secret = `whsec_${randomBytes(32).toString("base64")}`;
  const receiver = spawn("node", ["webhooks/receiver.mjs", "0"], { cwd: EXAMPLES, env: { ...process.env, WEBHOOK_SECRET: secret } });
  const lines = [];
  createInterface({ input: receiver.stdout }).on("line", (line) => lines.push(line));
  try {
    const port = await new Promise((resolve, reject) => {
      const wait = setInterval(() => {
        const m = lines.map((l) => /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(l)).find(Boolean);
        if (m) {
          clearInterval(wait);
          resolve(m[1]);
        }
      }, 20);
      receiver.once("exit", (code) => reject(new Error(`receiver exited (${code})`)));
    });
    const hooked = await startServer(["--webhook-url", `http://127.0.0.1:${port}/`, "--webhook-secret", secret]);
    try {
      const threadId = await createThread(hooked, ["hook-user", "bob"]);
      await postMessage(hooked, threadId, "to the receiver", { "x-user-id": "hook-user" });
      const deadline = Date.now() + 10000;
      while (!lines.some((l) => l.includes("to the receiver")) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.ok(lines.includes(`message.created ${threadId} hook-user: to the receiver`), lines.join("\n"));
      assert.ok(lines.some((l) => l.startsWith("thread.created evt_")), lines.join("\n"));
    } finally {
      await hooked.stop();
    }
  } finally {
    receiver.kill();
  }
});

test("browser page: loads history, shows live messages, posts", async () => {
  const threadId = await createThread(server, ["web-user", "other"]);
  const earlier = await postMessage(server, threadId, "from before the page loaded");
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    const token = server.jwt ? `&token=${signToken("web-user")}` : "";
    await page.goto(`${server.url}/demo/?thread=${threadId}&user=web-user${token}`);
    await page.waitForSelector("body[data-state=joined]", { timeout: 15000 });
    assert.equal(await page.textContent(`li[data-id="${earlier.id}"] .body`), earlier.body);

    // Live: a message posted by someone else over REST appears.
    const live = await postMessage(server, threadId, "live from REST", { "x-user-id": "other" });
    await page.waitForSelector(`li[data-id="${live.id}"]`, { timeout: 10000 });

    // Posting from the page stores the message and shows it once.
    await page.fill("#body", "typed in the browser");
    await page.press("#body", "Enter");
    let stored;
    for (let i = 0; i < 100 && !stored; i++) {
      const history = await api(server, "GET", `/api/threads/${threadId}/messages`);
      stored = history.body.messages.find((m) => m.body === "typed in the browser");
      if (!stored) await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(stored, "the page's message was stored");
    assert.equal(stored.authorId, "web-user");
    await page.waitForSelector(`li[data-id="${stored.id}"]`, { timeout: 10000 });
    assert.equal(await page.locator(`li[data-id="${stored.id}"]`).count(), 1, "shown once");

    // A dropped connection loses nothing: the page rejoins with `since` and gets the replay.
    await page.evaluate(() => window.chat.socket.disconnect());
    await page.waitForSelector("body[data-state=disconnected]", { timeout: 5000 });
    const missed = [];
    for (let i = 0; i < 3; i++) missed.push(await postMessage(server, threadId, `while away ${i}`, { "x-user-id": "other" }));
    await page.evaluate(() => window.chat.socket.connect());
    await page.waitForSelector("body[data-state=joined]", { timeout: 10000 });
    for (const m of missed) await page.waitForSelector(`li[data-id="${m.id}"]`, { timeout: 10000 });
    const order = await page.$$eval("li", (items) => items.map((li) => li.dataset.id));
    assert.deepEqual(order.slice(-3), missed.map((m) => m.id), "replayed in order, at the end");
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});
