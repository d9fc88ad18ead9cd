// Two threadline nodes sharing one PostgreSQL database and one Redis: a client on one node
// receives what is posted on the other, in order, and a node restarting loses nobody's messages.
// Runs in the PostgreSQL pass of the suite (THREADLINE_TEST_DATABASE=postgres://…) with
// THREADLINE_TEST_REDIS set, as tests/run.sh does.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  startServer, databaseArgs, createThread, postMessage, connect, emitAck, collect, waitUntil, api,
  sleep, CLIENTS,
} from "./harness.mjs";

const postgres = process.env.THREADLINE_TEST_DATABASE || "";
const redis = process.env.THREADLINE_TEST_REDIS;
const enabled = postgres.startsWith("postgres") && redis;

const skip = !enabled && "needs THREADLINE_TEST_DATABASE=postgres://… and THREADLINE_TEST_REDIS";

/** Two nodes on one fresh database and the shared Redis. */
async function twoNodes() {
  const database = databaseArgs(mkdtempSync(join(tmpdir(), "threadline-db-")));
  const node = () => startServer(["--redis-url", redis], { dataDir: mkdtempSync(join(tmpdir(), "threadline-node-")), database });
  return [await node(), await node()];
}

test("two nodes: clients on both rejoin with since under jitter: nothing lost, repeated or reordered", { skip }, async () => {
  const [a, b] = await twoNodes();
  const clients = [];
  try {
    const threadId = await createThread(a);
    const start = await postMessage(a, threadId, "before the run");
    for (let i = 0; i < 10; i++) {
      const state = { lastId: start.id, got: [] };
      const socket = await connect(i % 2 ? b : a, undefined, { reconnectionDelay: 20, reconnectionDelayMax: 100 });
      socket.on("message:new", ({ message }) => {
        state.got.push(message.id);
        state.lastId = message.id;
      });
      socket.on("connect", () => socket.emit("thread:join", { threadId, since: state.lastId }));
      await emitAck(socket, "thread:join", { threadId });
      clients.push({ socket, state });
    }
    let running = true;
    const chaos = clients.map(async ({ socket }) => {
      while (running) {
        await sleep(300 + Math.random() * 900);
        if (running && socket.connected) socket.io.engine.close();
      }
    });
    // Both nodes post at once: each node's clients get the other's messages through the peers
    // channel, interleaved with their own node's, racing their rejoins.
    const poster = async (node, name) => {
      for (let i = 0; i < 200; i++) {
        await postMessage(node, threadId, `${name}${i}`);
        await sleep(Math.random() * 8);
      }
    };
    await Promise.all([poster(a, "a"), poster(b, "b")]);
    running = false;
    await Promise.all(chaos);
    // The store's order is the one every client must have seen.
    const posted = [];
    for (let cursor = start.id; cursor; ) {
      const page = await api(b, "GET", `/api/threads/${threadId}/messages?cursor=${cursor}&limit=200`);
      posted.push(...page.body.messages.map((m) => m.id));
      cursor = page.body.nextCursor;
    }
    assert.equal(posted.length, 400);
    await waitUntil(() => clients.every(({ state }) => state.got.length >= posted.length), 20000, "every message on every client");
    await sleep(300);
    for (const { state } of clients) {
      const got = new Set(state.got);
      const summary = {
        received: state.got.length,
        repeated: state.got.length - got.size,
        missing: posted.filter((id) => !got.has(id)).length,
        firstDifference: state.got.findIndex((id, i) => id !== posted[i]),
      };
      assert.deepEqual(summary, { received: posted.length, repeated: 0, missing: 0, firstDifference: -1 });
    }
  } finally {
    clients.forEach(({ socket }) => socket.close());
    await a.stop();
    await b.stop();
  }
});

test("two nodes: presence, typing, receipts and edits cross nodes", { skip }, async () => {
  const [a, b] = await twoNodes();
  const sockets = [];
  try {
    const [x, y] = [`x${process.pid}`, `y${process.pid}`];
    const threadId = await createThread(a, [x, y]);
    const onA = await connect(a, CLIENTS[0], { auth: { userId: x } });
    const onB = await connect(b, CLIENTS[0], { auth: { userId: y } });
    sockets.push(onA, onB);
    const events = [];
    for (const name of ["presence", "typing", "receipt", "message:updated"]) onA.on(name, (p) => events.push([name, p]));
    await emitAck(onA, "thread:join", { threadId });
    await emitAck(onB, "thread:join", { threadId });
    await waitUntil(() => events.some(([n, p]) => n === "presence" && p.online.length === 2), 5000, "presence from B");
    for (const node of [a, b]) {
      assert.deepEqual((await api(node, "GET", `/api/threads/${threadId}/presence`)).body, { online: [x, y].sort() });
    }
    await emitAck(onB, "typing", { threadId, typing: true });
    await waitUntil(() => events.some(([n]) => n === "typing"), 5000, "typing from B");
    const msg = await postMessage(a, threadId, "draft", { "x-user-id": x });
    await emitAck(onB, "thread:read", { threadId, messageId: msg.id });
    await waitUntil(() => events.some(([n]) => n === "receipt"), 5000, "receipt from B");
    assert.equal((await api(b, "PATCH", `/api/threads/${threadId}/messages/${msg.id}`, { body: "final" }, { "x-user-id": x })).status, 200);
    await waitUntil(() => events.some(([n]) => n === "message:updated"), 5000, "edit made on B");
    onB.close();
    await waitUntil(() => events.filter(([n]) => n === "presence").at(-1)[1].online.length === 1, 5000, "B's user went offline");
  } finally {
    sockets.forEach((s) => s.close());
    await a.stop();
    await b.stop();
  }
});

test("two nodes: reactions, replies, mentions and search cross nodes", { skip }, async () => {
  const [a, b] = await twoNodes();
  const sockets = [];
  try {
    const [x, y, z] = [`rx${process.pid}`, `ry${process.pid}`, `rz${process.pid}`];
    const threadId = await createThread(a, [x, y, z]);
    const onA = await connect(a, CLIENTS[0], { auth: { userId: x } });
    // z is on node A too, in no room at all: only its user room hears the mention.
    const zOnA = await connect(a, CLIENTS[0], { auth: { userId: z } });
    const onB = await connect(b, CLIENTS[0], { auth: { userId: y } });
    sockets.push(onA, zOnA, onB);
    const events = [];
    for (const name of ["message:new", "message:updated", "reaction:updated"]) onA.on(name, (p) => events.push([name, p]));
    const mentions = [];
    zOnA.on("mention", (p) => mentions.push(p));
    await emitAck(onA, "thread:join", { threadId });
    await emitAck(onB, "thread:join", { threadId });

    const parent = (await emitAck(onB, "message:send", { threadId, body: "kickoff agenda" })).message;
    await emitAck(onB, "reaction:add", { threadId, messageId: parent.id, emoji: "👀" });
    const reply = (await emitAck(onB, "message:send", { threadId, body: "first item", replyTo: parent.id, mentions: [z] })).message;
    await waitUntil(() => events.length === 4, 5000, "B's events on A");
    assert.deepEqual(events.map(([n, p]) => [n, p.message?.id ?? p.messageId]), [
      ["message:new", parent.id], ["reaction:updated", parent.id], ["message:new", reply.id], ["message:updated", parent.id],
    ]);
    assert.deepEqual(events[1][1].reactions, [{ emoji: "👀", count: 1, userIds: [y] }]);
    assert.equal(events[3][1].message.replyCount, 1);
    await waitUntil(() => mentions.length === 1, 5000, "the mention made on B, on A");
    assert.deepEqual(mentions[0], { threadId, message: reply });
    // Both nodes search the one database.
    for (const node of [a, b]) {
      const found = await api(node, "GET", `/api/search/messages?q=agend&threadId=${threadId}`, undefined, { "x-user-id": x });
      assert.deepEqual(found.body.messages.map((m) => m.id), [parent.id]);
    }
  } finally {
    sockets.forEach((s) => s.close());
    await a.stop();
    await b.stop();
  }
});

test("two nodes: cross-node delivery, order, and a restart that loses nothing", { skip }, async () => {
  const database = databaseArgs(mkdtempSync(join(tmpdir(), "threadline-db-")));
  const node = (dataDir = mkdtempSync(join(tmpdir(), "threadline-node-"))) =>
    startServer(["--redis-url", redis], { dataDir, database });
  const a = await node();
  let b = await node();
  const clients = [];
  try {
    const threadId = await createThread(a);
    const onA = await connect(a);
    const onB = await connect(b);
    clients.push(onA, onB);
    assert.deepEqual(await emitAck(onA, "thread:join", { threadId }), { ok: true, seq: 0 });
    assert.deepEqual(await emitAck(onB, "thread:join", { threadId }), { ok: true, seq: 0 });
    const boxA = collect(onA);
    const boxB = collect(onB);

    // Sequential posts alternating between the nodes reach both clients, in order, once.
    const sent = [];
    for (let i = 0; i < 40; i++) sent.push(await postMessage(i % 2 ? b : a, threadId, `m${i}`));
    await waitUntil(() => boxA.length >= 40 && boxB.length >= 40, 10000, "cross-node deliveries");
    assert.deepEqual(boxA, sent, "client on A: every message, REST shape, in order");
    assert.deepEqual(boxB, sent, "client on B: every message, REST shape, in order");

    // Node B dies without warning; A keeps serving; B comes back on the same database.
    b.proc.kill("SIGKILL");
    await b.exited;
    const whileDown = [];
    for (let i = 0; i < 5; i++) whileDown.push(await postMessage(a, threadId, `down${i}`));
    b = await node();
    const onB2 = await connect(b);
    clients.push(onB2);
    assert.deepEqual(await emitAck(onB2, "thread:join", { threadId }), { ok: true, seq: 45 });
    const boxB2 = collect(onB2);
    const afterRestart = [];
    for (let i = 0; i < 5; i++) afterRestart.push(await postMessage(b, threadId, `back${i}`));
    await waitUntil(() => boxA.length >= 50 && boxB2.length >= 5, 10000, "deliveries after the restart");
    assert.deepEqual(boxA, [...sent, ...whileDown, ...afterRestart]);
    assert.deepEqual(boxB2, afterRestart);

    // Either node's history holds all 50, once, in order.
    for (const server of [a, b]) {
      const history = await api(server, "GET", `/api/threads/${threadId}/messages?limit=200`);
      assert.deepEqual(
        history.body.messages.map((m) => m.id),
        [...sent, ...whileDown, ...afterRestart].map((m) => m.id),
      );
    }
  } finally {
    clients.forEach((c) => c.close());
    await a.stop();
    await b.stop();
  }
});
