// No gaps across reconnects: thread:join {threadId, after} (a position: every message carries
// `seq`, the join ack the newest one) or {threadId, since} (a message id) replays what a client
// missed, then the live messages, with nothing missing or repeated at the seam.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  startServer, createThread, postMessage, connect, emitAck, collect, waitUntil, api, sleep,
} from "./harness.mjs";

let server;
before(async () => (server = await startServer(["--replay-limit", "50"])));
after(async () => server.stop());

test("since replays the missed messages in order, then the live ones", async () => {
  const threadId = await createThread(server);
  const seen = await postMessage(server, threadId, "seen");
  const missed = [];
  for (let i = 0; i < 5; i++) missed.push(await postMessage(server, threadId, `missed ${i}`));
  const socket = await connect(server);
  try {
    const box = collect(socket);
    const ack = await emitAck(socket, "thread:join", { threadId, since: seen.id });
    assert.deepEqual(ack, { ok: true, replayed: 5, seq: 6 });
    const live = await postMessage(server, threadId, "live");
    await waitUntil(() => box.length === 6, 5000, "replay and live");
    assert.deepEqual(box, [...missed, live]);
  } finally {
    socket.close();
  }
});

test("a join without since replays nothing, as in the stub", async () => {
  const threadId = await createThread(server);
  await postMessage(server, threadId, "old");
  const socket = await connect(server);
  try {
    const box = collect(socket);
    assert.deepEqual(await emitAck(socket, "thread:join", { threadId }), { ok: true, seq: 1 });
    await sleep(100);
    assert.equal(box.length, 0);
  } finally {
    socket.close();
  }
});

test("past the replay limit the ack says truncated and the newest messages come", async () => {
  const threadId = await createThread(server);
  const seen = await postMessage(server, threadId, "seen");
  const posted = [];
  for (let i = 0; i < 60; i++) posted.push(await postMessage(server, threadId, `m${i}`));
  const socket = await connect(server);
  try {
    const box = collect(socket);
    const ack = await emitAck(socket, "thread:join", { threadId, since: seen.id });
    assert.deepEqual(ack, { ok: true, replayed: 50, truncated: true, seq: 61 });
    await waitUntil(() => box.length === 50, 5000, "the capped replay");
    assert.deepEqual(box.map((m) => m.id), posted.slice(10).map((m) => m.id));
    // The rest is in the REST history after `since`.
    const page = await api(server, "GET", `/api/threads/${threadId}/messages?cursor=${seen.id}&limit=10`);
    assert.deepEqual(page.body.messages.map((m) => m.id), posted.slice(0, 10).map((m) => m.id));
  } finally {
    socket.close();
  }
});

test("after replays by position; a client that saw nothing of an empty thread loses nothing", async () => {
  const threadId = await createThread(server);
  const first = await connect(server);
  const again = await connect(server);
  try {
    // Joined an empty thread, then dropped before the first message.
    assert.deepEqual(await emitAck(first, "thread:join", { threadId }), { ok: true, seq: 0 });
    first.close();
    const posted = [];
    for (let i = 0; i < 3; i++) posted.push(await postMessage(server, threadId, `m${i}`));
    assert.deepEqual(posted.map((m) => m.seq), [1, 2, 3], "every message carries its position");
    const box = collect(again);
    assert.deepEqual(await emitAck(again, "thread:join", { threadId, after: 0 }), { ok: true, replayed: 3, seq: 3 });
    const live = await postMessage(server, threadId, "live");
    await waitUntil(() => box.length === 4, 5000, "replay and live");
    assert.deepEqual(box, [...posted, live]);
    assert.equal(live.seq, 4);
    // From the middle: everything after position 2.
    const third = await connect(server);
    try {
      const rest = collect(third);
      assert.deepEqual(await emitAck(third, "thread:join", { threadId, after: 2 }), { ok: true, replayed: 2, seq: 4 });
      await waitUntil(() => rest.length === 2, 5000, "replay after 2");
      assert.deepEqual(rest.map((m) => m.seq), [3, 4]);
    } finally {
      third.close();
    }
  } finally {
    first.close();
    again.close();
  }
});

test("bad after values get a clear error ack", async () => {
  const threadId = await createThread(server);
  await postMessage(server, threadId, "one");
  const socket = await connect(server);
  try {
    for (const after of [-1, 1.5, "2", {}]) {
      assert.deepEqual(await emitAck(socket, "thread:join", { threadId, after }), { error: "invalid_after" }, JSON.stringify(after));
    }
    assert.deepEqual(await emitAck(socket, "thread:join", { threadId, after: 7 }), { error: "unknown_after" });
  } finally {
    socket.close();
  }
});

test("bad since values get a clear error ack and no join", async () => {
  const threadId = await createThread(server);
  const other = await createThread(server);
  const foreign = await postMessage(server, other, "elsewhere");
  const socket = await connect(server);
  try {
    const box = collect(socket);
    assert.deepEqual(await emitAck(socket, "thread:join", { threadId, since: 5 }), { error: "invalid_since" });
    assert.deepEqual(await emitAck(socket, "thread:join", { threadId, since: "no such id" }), { error: "invalid_since" });
    assert.deepEqual(await emitAck(socket, "thread:join", { threadId, since: foreign.id }), { error: "unknown_since" });
    await postMessage(server, threadId, "not joined");
    await sleep(100);
    assert.equal(box.length, 0, "a refused join does not enter the room");
  } finally {
    socket.close();
  }
});

test("the replay carries edits and deletions that happened meanwhile", async () => {
  const threadId = await createThread(server, [`ed${Date.now()}`, "bob"]);
  const author = { "x-user-id": "bob" };
  const old = await postMessage(server, threadId, "old", author);
  const gone = await postMessage(server, threadId, "will go", author);
  const seen = await postMessage(server, threadId, "seen", author);
  await sleep(5);
  const later = await postMessage(server, threadId, "later", author);
  assert.equal((await api(server, "PATCH", `/api/threads/${threadId}/messages/${old.id}`, { body: "old, edited" }, author)).status, 200);
  assert.equal((await api(server, "DELETE", `/api/threads/${threadId}/messages/${gone.id}`, undefined, author)).status, 204);
  assert.equal((await api(server, "PATCH", `/api/threads/${threadId}/messages/${later.id}`, { body: "later, edited" }, author)).status, 200);
  const socket = await connect(server);
  try {
    const events = [];
    for (const name of ["message:new", "message:updated", "message:deleted"]) {
      socket.on(name, (payload) => events.push([name, payload]));
    }
    const ack = await emitAck(socket, "thread:join", { threadId, since: seen.id });
    assert.deepEqual(ack, { ok: true, replayed: 3, seq: 4 });
    await waitUntil(() => events.length === 3, 5000, "replay");
    assert.equal(events[0][0], "message:updated");
    assert.equal(events[0][1].message.body, "old, edited");
    assert.deepEqual(events[1], ["message:deleted", { threadId, messageId: gone.id }]);
    assert.equal(events[2][0], "message:new");
    assert.equal(events[2][1].message.body, "later, edited", "new messages come in their current state");
    assert.ok(events[2][1].message.editedAt);
  } finally {
    socket.close();
  }
});

/**
 * 20 clients in one thread, empty when they join, each forcibly disconnected every 0.5–2 s (the
 * transport is closed under it, as a network drop does), while 1,000 messages are posted at a
 * steady rate. Each client rejoins on every reconnect; with `useAfter` it names the position of
 * the last message it saw (the join ack's `seq` before the first one).
 */
async function jitter(useAfter) {
  const threadId = await createThread(server);
  const clients = [];
  for (let i = 0; i < 20; i++) {
    const state = { lastSeq: 0, got: [], drops: 0, joins: 0 };
    const socket = await connect(server, undefined, { reconnectionDelay: 20, reconnectionDelayMax: 100 });
    socket.on("message:new", ({ message }) => {
      state.got.push(message.id);
      state.lastSeq = message.seq;
    });
    const join = () => {
      state.joins++;
      socket.emit("thread:join", useAfter ? { threadId, after: state.lastSeq } : { threadId });
    };
    socket.on("connect", join);
    state.lastSeq = (await emitAck(socket, "thread:join", { threadId })).seq;
    clients.push({ socket, state });
  }
  let running = true;
  const chaos = clients.map(async ({ socket, state }) => {
    while (running) {
      await sleep(500 + Math.random() * 1500);
      if (!running) break;
      if (socket.connected) {
        state.drops++;
        socket.io.engine.close();
      }
    }
  });
  const posted = [];
  const t0 = Date.now();
  for (let i = 0; i < 1000; i++) {
    // A steady 125 messages a second.
    const due = t0 + i * 8;
    if (Date.now() < due) await sleep(due - Date.now());
    posted.push((await postMessage(server, threadId, `m${i}`)).id);
  }
  running = false;
  await Promise.all(chaos);
  await waitUntil(() => clients.every(({ socket }) => socket.connected), 10000, "everyone reconnected");
  return { clients, posted };
}

test("jitter: with after, every client ends with all 1,000 messages, once, in order", async () => {
  const { clients, posted } = await jitter(true);
  try {
    await waitUntil(() => clients.every(({ state }) => state.got.length >= posted.length), 20000, "every message everywhere");
    await sleep(300);
    const drops = clients.reduce((n, { state }) => n + state.drops, 0);
    assert.ok(drops >= 40, `the clients were really disconnected (${drops} drops)`);
    for (const { state } of clients) assert.deepEqual(state.got, posted);
  } finally {
    for (const { socket } of clients) socket.close();
  }
});

test("jitter: without after the same disconnections lose messages (so the test above can fail)", async () => {
  const { clients, posted } = await jitter(false);
  try {
    await sleep(1000);
    const missing = clients.reduce((n, { state }) => n + (posted.length - new Set(state.got).size), 0);
    assert.ok(missing > 0, "plain rejoins lose what was sent while disconnected");
  } finally {
    for (const { socket } of clients) socket.close();
  }
});
