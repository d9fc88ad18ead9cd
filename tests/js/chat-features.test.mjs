// Typing, presence, read receipts, edits and deletions, with the real socket.io-client.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  startServer, createThread, postMessage, connect, emitAck, waitUntil, api, sleep, CLIENTS, JWT_MODE,
} from "./harness.mjs";

let server;
before(async () => (server = await startServer()));
after(async () => server.stop());

let seq = 0;
/** A thread of fresh users, and a connected, joined socket for each name. */
async function room(...names) {
  const tag = `${process.pid}x${++seq}`;
  const users = names.map((n) => `${n}${tag}`);
  const threadId = await createThread(server, users);
  const sockets = [];
  for (const userId of users) {
    const socket = await connect(server, CLIENTS[0], { auth: { userId } });
    sockets.push(socket);
  }
  return { threadId, users, sockets, close: () => sockets.forEach((s) => s.close()) };
}

function record(socket, event) {
  const got = [];
  socket.on(event, (payload) => got.push(payload));
  return got;
}

test("typing reaches the others in the room, not the sender, and a true expires by itself", async () => {
  const r = await room("ann", "ben", "cat");
  const [ann, ben] = r.sockets;
  try {
    const seen = r.sockets.map((s) => record(s, "typing"));
    for (const s of r.sockets) await emitAck(s, "thread:join", { threadId: r.threadId });
    assert.deepEqual(await emitAck(ann, "typing", { threadId: r.threadId, typing: true }), { ok: true });
    const expected = { threadId: r.threadId, userId: r.users[0], typing: true };
    await waitUntil(() => seen[1].length === 1 && seen[2].length === 1, 3000, "typing true");
    assert.deepEqual(seen[1][0], expected);
    assert.deepEqual(seen[2][0], expected);
    const t0 = Date.now();
    await waitUntil(() => seen[1].length === 2, 8000, "the expiry");
    const waited = Date.now() - t0;
    assert.ok(waited > 4000 && waited < 7000, `expired after ~5 s (${waited} ms)`);
    assert.deepEqual(seen[1][1], { ...expected, typing: false });
    assert.equal(seen[0].length, 0, "the sender hears nothing of its own typing");
    // An explicit false ends it at once; renewing keeps it alive.
    await emitAck(ben, "typing", { threadId: r.threadId, typing: true });
    await emitAck(ben, "typing", { threadId: r.threadId, typing: false });
    await waitUntil(() => seen[2].length === 4, 3000, "typing false");
    assert.deepEqual(seen[2].slice(2).map((e) => e.typing), [true, false]);
    await sleep(100);
    assert.equal(seen[1].length, 2, "ben never hears himself");
  } finally {
    r.close();
  }
});

test("typing needs a user and a valid payload", async () => {
  const threadId = await createThread(server);
  const anonymous = await connect(server);
  try {
    // In jwt mode there are no anonymous sockets: every one is its token's user.
    if (!JWT_MODE) assert.deepEqual(await emitAck(anonymous, "typing", { threadId, typing: true }), { error: "identity_required" });
    assert.deepEqual(await emitAck(anonymous, "typing", { threadId, typing: "yes" }), { error: "invalid_payload" });
    assert.deepEqual(await emitAck(anonymous, "typing", "x"), { error: "invalid_payload" });
  } finally {
    anonymous.close();
  }
});

test("presence follows joins, leaves and disconnects; GET presence agrees", async () => {
  const r = await room("dan", "eve");
  const [dan, eve] = r.sockets;
  const [danId, eveId] = r.users;
  const sorted = (xs) => [...xs].sort();
  try {
    const heard = record(dan, "presence");
    await emitAck(dan, "thread:join", { threadId: r.threadId });
    await waitUntil(() => heard.length === 1, 3000, "own join");
    assert.deepEqual(heard[0], { threadId: r.threadId, online: [danId] });
    await emitAck(eve, "thread:join", { threadId: r.threadId });
    await waitUntil(() => heard.length === 2, 3000, "eve's join");
    assert.deepEqual(heard[1].online, sorted([danId, eveId]));
    const presence = await api(server, "GET", `/api/threads/${r.threadId}/presence`);
    assert.deepEqual(presence, { status: 200, body: { online: sorted([danId, eveId]) } });
    // A second socket of eve's changes nothing; closing one of two neither.
    const eve2 = await connect(server, CLIENTS[0], { auth: { userId: eveId } });
    await emitAck(eve2, "thread:join", { threadId: r.threadId });
    eve2.close();
    await sleep(200);
    assert.equal(heard.length, 2, "eve stayed online throughout");
    await emitAck(eve, "thread:leave", { threadId: r.threadId });
    await waitUntil(() => heard.length === 3, 3000, "eve's leave");
    assert.deepEqual(heard[2].online, [danId]);
    await emitAck(eve, "thread:join", { threadId: r.threadId });
    await waitUntil(() => heard.length === 4, 3000, "eve's rejoin");
    eve.close();
    await waitUntil(() => heard.length === 5, 3000, "eve's disconnect");
    assert.deepEqual(heard[4].online, [danId]);
    assert.deepEqual((await api(server, "GET", `/api/threads/${r.threadId}/presence`)).body, { online: [danId] });
  } finally {
    r.close();
  }
});

test("read receipts move only forward, reach the room, and drive unreadCount", async () => {
  const r = await room("fay", "gus");
  const [fay, gus] = r.sockets;
  const [fayId, gusId] = r.users;
  try {
    const receipts = record(gus, "receipt");
    for (const s of r.sockets) await emitAck(s, "thread:join", { threadId: r.threadId });
    const m = [];
    for (let i = 0; i < 4; i++) m.push(await postMessage(server, r.threadId, `m${i}`, { "x-user-id": gusId }));
    await postMessage(server, r.threadId, "fay's own", { "x-user-id": fayId });
    const unread = async () =>
      (await api(server, "GET", `/api/threads/${r.threadId}`, undefined, { "x-user-id": fayId })).body.unreadCount;
    assert.equal(await unread(), 4, "others' messages count, one's own do not");
    assert.deepEqual(await emitAck(fay, "thread:read", { threadId: r.threadId, messageId: m[2].id }), { ok: true, messageId: m[2].id });
    await waitUntil(() => receipts.length === 1, 3000, "receipt");
    assert.deepEqual(receipts[0], { threadId: r.threadId, userId: fayId, messageId: m[2].id });
    assert.equal(await unread(), 1);
    // Backwards: the position stays, nobody is told.
    assert.deepEqual(await emitAck(fay, "thread:read", { threadId: r.threadId, messageId: m[0].id }), { ok: true, messageId: m[2].id });
    await sleep(150);
    assert.equal(receipts.length, 1);
    assert.equal(await unread(), 1);
    // Deleted messages are not unread.
    await api(server, "DELETE", `/api/threads/${r.threadId}/messages/${m[3].id}`, undefined, { "x-user-id": gusId });
    assert.equal(await unread(), 0);
    assert.deepEqual(await emitAck(fay, "thread:read", { threadId: r.threadId, messageId: "nope" }), { error: "message_not_found" });
    assert.deepEqual(await emitAck(fay, "thread:read", { threadId: r.threadId }), { error: "invalid_payload" });
    const anonymous = await connect(server);
    if (!JWT_MODE) assert.deepEqual(await emitAck(anonymous, "thread:read", { threadId: r.threadId, messageId: m[0].id }), { error: "identity_required" });
    anonymous.close();
  } finally {
    r.close();
  }
});

test("edits and deletions reach the room; only the author may make them", async () => {
  const r = await room("hal", "ivy");
  const [hal] = r.sockets;
  const [halId, ivyId] = r.users;
  try {
    const updated = record(hal, "message:updated");
    const deleted = record(hal, "message:deleted");
    await emitAck(hal, "thread:join", { threadId: r.threadId });
    const msg = await postMessage(server, r.threadId, "first draft", { "x-user-id": ivyId });
    const path = `/api/threads/${r.threadId}/messages/${msg.id}`;
    const refused = await api(server, "PATCH", path, { body: "hijack" }, { "x-user-id": halId });
    assert.deepEqual(refused, { status: 403, body: { error: "not_author" } });
    assert.equal((await api(server, "DELETE", path, undefined, { "x-user-id": halId })).status, 403);
    assert.equal((await api(server, "PATCH", path, { body: "   " }, { "x-user-id": ivyId })).body.error, "empty_message");
    const edit = await api(server, "PATCH", path, { body: "final" }, { "x-user-id": ivyId });
    assert.equal(edit.status, 200);
    assert.equal(edit.body.message.body, "final");
    assert.ok(edit.body.message.editedAt);
    await waitUntil(() => updated.length === 1, 3000, "message:updated");
    assert.deepEqual(updated[0], edit.body);
    const del = await api(server, "DELETE", path, undefined, { "x-user-id": ivyId });
    assert.equal(del.status, 204);
    await waitUntil(() => deleted.length === 1, 3000, "message:deleted");
    assert.deepEqual(deleted[0], { threadId: r.threadId, messageId: msg.id });
    assert.equal((await api(server, "DELETE", path, undefined, { "x-user-id": ivyId })).status, 204, "deleting again is harmless");
    assert.deepEqual((await api(server, "PATCH", path, { body: "back" }, { "x-user-id": ivyId })).body, { error: "message_deleted" });
    const history = await api(server, "GET", `/api/threads/${r.threadId}/messages`);
    const tomb = history.body.messages[0];
    assert.equal(tomb.id, msg.id);
    assert.equal(tomb.body, "");
    assert.deepEqual(tomb.fileIds, []);
    assert.ok(tomb.deletedAt, "a tombstone keeps its place in history");
    assert.equal((await api(server, "PATCH", `/api/threads/${r.threadId}/messages/nope`, { body: "x" })).status, 404);
  } finally {
    r.close();
  }
});

test("a full default replay of 500 messages arrives whole, then live ones", async () => {
  const threadId = await createThread(server);
  const seen = await postMessage(server, threadId, "seen");
  const missed = [];
  for (let i = 0; i < 500; i++) missed.push((await postMessage(server, threadId, `m${i}`)).id);
  const socket = await connect(server);
  try {
    const got = [];
    socket.on("message:new", ({ message }) => got.push(message.id));
    assert.deepEqual(await emitAck(socket, "thread:join", { threadId, since: seen.id }), { ok: true, replayed: 500, seq: 501 });
    const live = await postMessage(server, threadId, "live");
    await waitUntil(() => got.length === 501, 10000, "replay and live");
    assert.deepEqual(got, [...missed, live.id]);
  } finally {
    socket.close();
  }
});
