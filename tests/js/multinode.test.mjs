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
} from "./harness.mjs";

const postgres = process.env.THREADLINE_TEST_DATABASE || "";
const redis = process.env.THREADLINE_TEST_REDIS;
const enabled = postgres.startsWith("postgres") && redis;

test("two nodes: cross-node delivery, order, and a restart that loses nothing", { skip: !enabled && "needs THREADLINE_TEST_DATABASE=postgres://… and THREADLINE_TEST_REDIS" }, async () => {
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
    assert.deepEqual(await emitAck(onA, "thread:join", { threadId }), { ok: true });
    assert.deepEqual(await emitAck(onB, "thread:join", { threadId }), { ok: true });
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
    assert.deepEqual(await emitAck(onB2, "thread:join", { threadId }), { ok: true });
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
