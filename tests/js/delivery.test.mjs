// Delivery guarantees: order, exactly-once, concurrency, reconnects, and joins emitted the
// instant a client connects.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import {
  CLIENTS, startServer, createThread, postMessage, connect, emitAck, collect, waitUntil, api, sleep, within, socketIdentity,
} from "./harness.mjs";

let server;
before(async () => (server = await startServer()));
after(async () => server.stop());

test("200 sequential posts reach 3 clients in order, exactly once", async () => {
  const threadId = await createThread(server);
  const flavours = [CLIENTS[0], CLIENTS[1], CLIENTS[3]];
  const sockets = await Promise.all(flavours.map((f) => connect(server, f)));
  try {
    for (const s of sockets) assert.deepEqual(await emitAck(s, "thread:join", { threadId }), { ok: true, seq: 0 });
    const inboxes = sockets.map(collect);
    const sent = [];
    for (let i = 0; i < 200; i++) sent.push((await postMessage(server, threadId, `n${i}`)).id);
    await waitUntil(() => inboxes.every((box) => box.length >= 200), 10000, "200 deliveries");
    await sleep(100);
    for (const box of inboxes) assert.deepEqual(box.map((m) => m.id), sent);
  } finally {
    sockets.forEach((s) => s.close());
  }
});

test("concurrent posts are broadcast in exactly the stored order", async () => {
  const threadId = await createThread(server);
  const socket = await connect(server);
  try {
    await emitAck(socket, "thread:join", { threadId });
    const box = collect(socket);
    await Promise.all(
      Array.from({ length: 8 }, (_, w) =>
        (async () => {
          for (let i = 0; i < 50; i++) await postMessage(server, threadId, `${w}:${i}`);
        })(),
      ),
    );
    await waitUntil(() => box.length >= 400, 10000, "400 deliveries");
    const history = await api(server, "GET", `/api/threads/${threadId}/messages?limit=200`);
    let stored = history.body.messages;
    let cursor = history.body.nextCursor;
    while (cursor) {
      const page = await api(server, "GET", `/api/threads/${threadId}/messages?limit=200&cursor=${cursor}`);
      stored = stored.concat(page.body.messages);
      cursor = page.body.nextCursor;
    }
    assert.equal(stored.length, 400);
    assert.deepEqual(box.map((m) => m.id), stored.map((m) => m.id));
  } finally {
    socket.close();
  }
});

test("after the transport is killed the client reconnects, re-joins and receives again", async () => {
  for (const flavour of [CLIENTS[0], CLIENTS[1], CLIENTS[3]]) {
    const threadId = await createThread(server);
    const socket = await connect(server, flavour);
    try {
      // The chat page pattern: join on every connect.
      let joins = 0;
      socket.on("connect", () => socket.emit("thread:join", { threadId }, () => joins++));
      await emitAck(socket, "thread:join", { threadId });
      const box = collect(socket);
      const before = await postMessage(server, threadId, "before");
      await waitUntil(() => box.length === 1, 5000, "first delivery");

      const reconnected = new Promise((r) => socket.io.once("reconnect", r));
      socket.io.engine.close(); // kill the transport under the client
      await reconnected;
      await waitUntil(() => joins >= 1, 5000, `${flavour.name}: re-join ack`);
      const after = await postMessage(server, threadId, "after");
      await waitUntil(() => box.length === 2, 5000, `${flavour.name}: delivery after reconnect`);
      assert.deepEqual(box.map((m) => m.id), [before.id, after.id], flavour.name);
    } finally {
      socket.close();
    }
  }
});

test("an idempotent retry is not broadcast again", async () => {
  const threadId = await createThread(server);
  const socket = await connect(server);
  try {
    await emitAck(socket, "thread:join", { threadId });
    const box = collect(socket);
    const first = await api(server, "POST", `/api/threads/${threadId}/messages`, { body: "once", clientMessageId: "retry-1" });
    const retry = await api(server, "POST", `/api/threads/${threadId}/messages`, { body: "once", clientMessageId: "retry-1" });
    assert.equal(first.status, 201);
    assert.equal(retry.status, 200);
    assert.deepEqual(retry.body, first.body);
    const marker = await postMessage(server, threadId, "marker");
    await waitUntil(() => box.length >= 2, 5000, "deliveries");
    await sleep(50);
    assert.deepEqual(box.map((m) => m.id), [first.body.message.id, marker.id]);
  } finally {
    socket.close();
  }
});

test("every client that emits thread:join right after io() is joined and acked", async () => {
  // Chat pages emit before the connection is even open; socket.io-client buffers the emit and
  // sends it right behind the CONNECT packet. None may be lost.
  const CLIENTS_N = Number(process.env.JOIN_CLIENTS || 1000);
  const threadId = await createThread(server);
  const sockets = [];
  const acks = [];
  for (let i = 0; i < CLIENTS_N; i++) {
    const s = io(server.url, socketIdentity(server, CLIENTS[0], { path: "/ws", transports: ["websocket"], forceNew: true, reconnection: false }));
    sockets.push(s);
    acks.push(
      new Promise((resolve) => s.emit("thread:join", { threadId }, resolve)),
    );
  }
  try {
    const results = await within(30000, Promise.all(acks), "every join acked");
    assert.equal(results.filter((a) => a && a.ok).length, CLIENTS_N);
    const boxes = sockets.map(collect);
    const m = await postMessage(server, threadId, "to everyone");
    await waitUntil(() => boxes.every((b) => b.length === 1), 10000, "fan-out to every client");
    assert.ok(boxes.every((b) => b[0].id === m.id));
  } finally {
    sockets.forEach((s) => s.close());
  }
});
