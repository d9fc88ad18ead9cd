// Webhooks end to end: a real HTTP receiver on loopback verifies every delivery with the
// Standard Webhooks reference library (`standardwebhooks` from npm), not with our code.
// It answers 500 at first and goes down for a while: every event still arrives, verified, in
// order per thread. Then: a SIGKILL with undelivered events (SQL backends), two nodes sharing
// the outbox (PostgreSQL + Redis), posting while the endpoint hangs, and the backlog on /readyz.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Webhook } from "standardwebhooks";
import { startServer, databaseArgs, createThread, postMessage, api, identify, waitUntil, sleep } from "./harness.mjs";

const backend = process.env.THREADLINE_TEST_DATABASE || "memory";
const durable = backend !== "memory";
const redis = process.env.THREADLINE_TEST_REDIS;
const SECRET = `whsec_${randomBytes(32).toString("base64")}`;
const FAST_RETRIES = ["--webhook-retry-base-ms", "50", "--webhook-retry-max-ms", "400"];

/**
 * An endpoint: verifies each delivery with the reference library, answers what `answer` says
 * (a status, or "hang" to never answer), and records what it accepted, in arrival order.
 */
async function receiver(answer = () => 204) {
  const accepted = [];
  const attempts = [];
  const forged = [];
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      let event;
      try {
        event = new Webhook(SECRET).verify(body, req.headers);
      } catch (e) {
        forged.push(String(e));
        res.writeHead(400).end();
        return;
      }
      attempts.push(event.id);
      assert.equal(req.headers["webhook-id"], event.id, "the header names the event");
      const status = answer(event, attempts.length);
      if (status === "hang") return; // never answers: the sender's timeout ends it
      if (status >= 200 && status < 300) accepted.push(event);
      res.writeHead(status).end();
    });
  });
  const listen = (port = 0) => new Promise((resolve) => server.listen(port, "127.0.0.1", () => resolve(server.address().port)));
  const port = await listen();
  return {
    url: `http://127.0.0.1:${port}/hook`,
    accepted,
    attempts,
    forged,
    async down() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
    up: () => listen(port),
    close() {
      server.closeAllConnections();
      server.close();
    },
  };
}

const hookArgs = (url, extra = []) => ["--webhook-url", url, "--webhook-secret", SECRET, ...FAST_RETRIES, ...extra];

/** The distinct events accepted, first arrival of each, in arrival order. */
function firstArrivals(accepted) {
  const seen = new Set();
  return accepted.filter((e) => !seen.has(e.id) && seen.add(e.id));
}

test("every event arrives, verified, in order per thread, through 500s and an outage", async () => {
  let failFirst = 3;
  const hook = await receiver(() => (failFirst-- > 0 ? 500 : 204));
  const server = await startServer(hookArgs(hook.url));
  try {
    const users = [`wa${process.pid}`, `wb${process.pid}`];
    const threads = [await createThread(server, users), await createThread(server, [users[0], `wc${process.pid}`])];
    const posted = [];
    for (let i = 0; i < 10; i++) {
      for (const t of threads) posted.push(await postMessage(server, t, `m${i}`, { "x-user-id": users[0] }));
      if (i === 3) await hook.down(); // the endpoint is down for a while
      if (i === 7) await hook.up();
    }
    const [t0] = threads;
    const first = posted[0];
    const as = { "x-user-id": users[0] };
    assert.equal((await api(server, "PATCH", `/api/threads/${t0}/messages/${first.id}`, { body: "m0, edited" }, as)).status, 200);
    assert.equal((await api(server, "PUT", `/api/threads/${t0}/messages/${first.id}/reactions/%F0%9F%91%8D`, undefined, as)).status, 201);
    const reply = await api(server, "POST", `/api/threads/${t0}/messages`, { body: "re @b", replyTo: first.id, mentions: [users[1]] }, as);
    assert.equal(reply.status, 201);
    assert.equal((await api(server, "DELETE", `/api/threads/${t0}/messages/${posted[2].id}`, undefined, as)).status, 204);
    const form = new FormData();
    form.append("file", new Blob(["hello"], { type: "text/plain" }), "hello.txt");
    const upload = await fetch(`${server.url}/api/files`, { method: "POST", body: form, headers: identify(server, as) });
    assert.equal(upload.status, 201);
    const file = await upload.json();

    const expected = { "thread.created": 2, "message.created": 21, "message.updated": 1, "reaction.updated": 1, "member.mentioned": 1, "message.deleted": 1, "file.ready": 1 };
    const count = (kind) => firstArrivals(hook.accepted).filter((e) => e.type === kind).length;
    await waitUntil(() => Object.entries(expected).every(([kind, n]) => count(kind) >= n), 20000, "every event type");
    await sleep(300);
    const events = firstArrivals(hook.accepted);
    assert.deepEqual(hook.forged, [], "every delivery verified");
    assert.deepEqual(Object.fromEntries(Object.keys(expected).map((k) => [k, count(k)])), expected, "each event once among the accepted");
    assert.ok(hook.attempts.length > events.length, "the 500s were retried");

    // Shapes: {id, type, timestamp, data} with data in the threads-API shapes.
    const created = events.filter((e) => e.type === "message.created");
    assert.deepEqual(Object.keys(created[0]).sort(), ["data", "id", "timestamp", "type"]);
    assert.ok(new Set(created.map((e) => e.data.id)).size === 21);
    assert.deepEqual(created.find((e) => e.data.id === posted[1].id).data, posted[1]);
    assert.deepEqual(events.find((e) => e.type === "member.mentioned").data, { threadId: t0, userId: users[1], message: reply.body.message });
    assert.equal(events.find((e) => e.type === "message.updated").data.body, "m0, edited");
    assert.deepEqual(events.find((e) => e.type === "reaction.updated").data, { threadId: t0, messageId: first.id, reactions: [{ emoji: "👍", count: 1, userIds: [users[0]] }] });
    assert.equal(events.find((e) => e.type === "message.deleted").data.deletedAt !== undefined, true);
    assert.deepEqual(events.find((e) => e.type === "file.ready").data, { ...file, status: "ready" });

    // Per thread, in the order the changes happened: messages by seq, the edit after the post.
    for (const t of threads) {
      const seqs = events.filter((e) => e.type === "message.created" && e.data.threadId === t).map((e) => e.data.seq);
      assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), `thread ${t} in order`);
      const kinds = events.filter((e) => (e.data.threadId ?? e.data.id) === t).map((e) => e.type);
      assert.equal(kinds[0], "thread.created", "the thread before its messages");
    }
    const order = events.filter((e) => e.data.threadId === t0).map((e) => `${e.type}:${e.data.id ?? e.data.messageId}`);
    assert.ok(order.indexOf(`message.created:${first.id}`) < order.indexOf(`message.updated:${first.id}`));
    assert.ok(order.indexOf(`message.updated:${first.id}`) < order.indexOf(`reaction.updated:${first.id}`));
  } finally {
    hook.close();
    await server.stop();
  }
});

test("a SIGKILL with undelivered events loses none of them", { skip: !durable && "needs a durable backend" }, async () => {
  const hook = await receiver();
  await hook.down(); // nobody listens yet
  const dataDir = mkdtempSync(join(tmpdir(), "threadline-hooks-"));
  const database = databaseArgs(dataDir);
  let server = await startServer(hookArgs(hook.url), { dataDir, database });
  const threadId = await createThread(server);
  const posted = [];
  for (let i = 0; i < 30; i++) posted.push(await postMessage(server, threadId, `before the crash ${i}`));
  server.proc.kill("SIGKILL");
  await server.exited;
  await hook.up();
  server = await startServer(hookArgs(hook.url), { dataDir, database });
  try {
    const ids = () => new Set(hook.accepted.filter((e) => e.type === "message.created").map((e) => e.data.id));
    await waitUntil(() => posted.every((m) => ids().has(m.id)), 20000, "every acknowledged post's event");
    const seqs = firstArrivals(hook.accepted).filter((e) => e.type === "message.created").map((e) => e.data.seq);
    assert.deepEqual(seqs, posted.map((m) => m.seq), "in order");
  } finally {
    hook.close();
    await server.stop();
  }
});

test("two nodes share the outbox: each event is delivered by one of them", { skip: !(backend.startsWith("postgres") && redis) && "needs PostgreSQL and Redis" }, async () => {
  const hook = await receiver();
  const database = databaseArgs(mkdtempSync(join(tmpdir(), "threadline-db-")));
  const node = () => startServer(["--redis-url", redis, ...hookArgs(hook.url)], { dataDir: mkdtempSync(join(tmpdir(), "threadline-node-")), database });
  const [a, b] = [await node(), await node()];
  try {
    const threadId = await createThread(a);
    const posted = [];
    for (let i = 0; i < 60; i++) posted.push(await postMessage(i % 2 ? b : a, threadId, `n${i}`));
    const created = () => hook.accepted.filter((e) => e.type === "message.created");
    await waitUntil(() => created().length >= 60, 20000, "60 deliveries");
    await sleep(1000);
    const perId = new Map();
    for (const e of created()) perId.set(e.data.id, (perId.get(e.data.id) ?? 0) + 1);
    assert.equal(perId.size, 60);
    assert.deepEqual([...perId.values()].filter((n) => n !== 1), [], "no event delivered twice");
    assert.deepEqual(created().map((e) => e.data.seq), posted.map((m) => m.seq), "in order");
    const delivered = async (n) => Number(/threadline_webhook_attempts_total\{outcome="delivered"\} (\d+)/.exec(await (await fetch(`${n.url}/metrics`)).text())?.[1] ?? 0);
    const [byA, byB] = [await delivered(a), await delivered(b)];
    assert.equal(byA + byB, 61, "60 messages and the thread, once each");
    assert.ok(byA > 0 && byB > 0, `both nodes delivered (${byA}, ${byB})`);
  } finally {
    hook.close();
    await a.stop();
    await b.stop();
  }
});

test("posting does not wait for a hanging endpoint, and the backlog shows on /readyz", async () => {
  let hang = false;
  const hook = await receiver(() => (hang ? "hang" : 204));
  const server = await startServer(hookArgs(hook.url, ["--webhook-timeout-ms", "2000", "--webhook-backlog-limit", "20"]));
  try {
    const threadId = await createThread(server);
    const time = async (n) => {
      const took = [];
      for (let i = 0; i < n; i++) {
        const t = performance.now();
        await postMessage(server, threadId, `p${i}`);
        took.push(performance.now() - t);
      }
      took.sort((x, y) => x - y);
      return took[Math.floor(n / 2)];
    };
    const up = await time(100);
    hang = true;
    const down = await time(100);
    console.log(`# post p50 with the endpoint answering: ${up.toFixed(2)} ms; hanging: ${down.toFixed(2)} ms`);
    let ready;
    const deadline = Date.now() + 5000;
    do {
      ready = await api(server, "GET", "/readyz");
      if (ready.body.warnings) break;
      await sleep(200);
    } while (Date.now() < deadline);
    assert.equal(ready.status, 200, "a backlog is reported, the node still serves");
    assert.deepEqual(ready.body.warnings, ["webhook_backlog"]);
    assert.ok(ready.body.webhookBacklog > 20, JSON.stringify(ready.body));
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(metrics, /threadline_webhook_outbox_pending \d+/);
  } finally {
    hook.close();
    await server.stop();
  }
});

test("an event refused past --webhook-max-age-secs is marked failed, counted, and no longer waits", async () => {
  const hook = await receiver(() => 500);
  const server = await startServer(hookArgs(hook.url, ["--webhook-max-age-secs", "1"]));
  const metric = async (pattern) => Number(pattern.exec(await (await fetch(`${server.url}/metrics`)).text())?.[1] ?? -1);
  try {
    const threadId = await createThread(server);
    await postMessage(server, threadId, "nobody will take this");
    let failed = 0;
    const deadline = Date.now() + 10000;
    while (failed < 2 && Date.now() < deadline) {
      failed = await metric(/threadline_webhook_attempts_total\{outcome="failed"\} (\d+)/);
      await sleep(100);
    }
    assert.equal(failed, 2, "the thread's event and the message's, given up");
    assert.ok(hook.attempts.length >= 2, "they were tried");
    await sleep(1200);
    assert.equal(await metric(/threadline_webhook_outbox_pending (\d+)/), 0, "nothing waits any more");
    assert.equal((await api(server, "GET", "/readyz")).body.webhookBacklog, 0);
  } finally {
    hook.close();
    await server.stop();
  }
});

test("a redirect to another host is not followed: the event is retried, never sent there", async () => {
  const elsewhere = [];
  const other = createServer((req, res) => {
    elsewhere.push(req.url);
    res.writeHead(204).end();
  });
  const otherPort = await new Promise((resolve) => other.listen(0, "127.0.0.2", () => resolve(other.address().port)));
  let redirects = 0;
  const redirecting = createServer((req, res) => {
    redirects++;
    res.writeHead(307, { location: `http://127.0.0.2:${otherPort}/stolen` }).end();
  });
  const port = await new Promise((resolve) => redirecting.listen(0, "127.0.0.1", () => resolve(redirecting.address().port)));
  const server = await startServer(hookArgs(`http://127.0.0.1:${port}/hook`));
  try {
    await createThread(server);
    await waitUntil(() => redirects >= 3, 10000, "retried attempts");
    assert.deepEqual(elsewhere, [], "nothing reached the other host");
  } finally {
    redirecting.close();
    other.close();
    await server.stop();
  }
});
