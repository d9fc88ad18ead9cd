// Reactions, replies and mentions over the socket, with the real socket.io-client: the events
// the room (and the mentioned users) get, the acks, and what a rejoin replays.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, createThread, connect, emitAck, waitUntil, api, sleep, CLIENTS } from "./harness.mjs";

let server;
before(async () => (server = await startServer()));
after(async () => server.stop());

let seq = 0;
/** A thread of fresh users and a connected socket for each (not yet joined). */
async function room(...names) {
  const tag = `${process.pid}r${++seq}`;
  const users = names.map((n) => `${n}${tag}`);
  const threadId = await createThread(server, users);
  const sockets = [];
  for (const userId of users) sockets.push(await connect(server, CLIENTS[0], { auth: { userId } }));
  return { threadId, users, sockets, close: () => sockets.forEach((s) => s.close()) };
}

function record(socket, event) {
  const got = [];
  socket.on(event, (payload) => got.push(payload));
  return got;
}

test("reaction:add and reaction:remove ack the reactions and the room hears reaction:updated", async () => {
  const r = await room("ann", "ben");
  const [ann, ben] = r.sockets;
  try {
    for (const s of r.sockets) await emitAck(s, "thread:join", { threadId: r.threadId });
    const heard = record(ben, "reaction:updated");
    const sent = await emitAck(ann, "message:send", { threadId: r.threadId, body: "ship it?" });
    const messageId = sent.message.id;
    assert.deepEqual(sent.message.reactions, []);

    const added = await emitAck(ann, "reaction:add", { threadId: r.threadId, messageId, emoji: "🚀" });
    const one = [{ emoji: "🚀", count: 1, userIds: [r.users[0]] }];
    assert.deepEqual(added, { ok: true, messageId, reactions: one });
    await waitUntil(() => heard.length === 1, 3000, "reaction:updated");
    assert.deepEqual(heard[0], { threadId: r.threadId, messageId, reactions: one });

    // Again: nothing changes, nobody is told.
    assert.deepEqual(await emitAck(ann, "reaction:add", { threadId: r.threadId, messageId, emoji: "🚀" }), added);
    // Over REST as ben: the socket room hears it too.
    const put = await api(server, "PUT", `/api/threads/${r.threadId}/messages/${messageId}/reactions/${encodeURIComponent("🚀")}`,
      undefined, { "x-user-id": r.users[1] });
    assert.equal(put.status, 201);
    await waitUntil(() => heard.length === 2, 3000, "the REST reaction");
    assert.deepEqual(heard[1].reactions, [{ emoji: "🚀", count: 2, userIds: r.users }]);

    const removed = await emitAck(ann, "reaction:remove", { threadId: r.threadId, messageId, emoji: "🚀" });
    assert.deepEqual(removed.reactions, [{ emoji: "🚀", count: 1, userIds: [r.users[1]] }]);
    await waitUntil(() => heard.length === 3, 3000, "the removal");
    await sleep(100);
    assert.equal(heard.length, 3, "the repeated add was not broadcast");

    assert.deepEqual(await emitAck(ann, "reaction:add", { threadId: r.threadId, messageId, emoji: "two words" }), { error: "invalid_emoji" });
    assert.deepEqual(await emitAck(ann, "reaction:add", { threadId: r.threadId, messageId }), { error: "invalid_payload" });
    assert.deepEqual(await emitAck(ann, "reaction:add", { threadId: r.threadId, messageId: "nope", emoji: "👍" }), { error: "message_not_found" });
  } finally {
    r.close();
  }
});

test("a reply reaches the room as message:new, and its parent as message:updated with replyCount", async () => {
  const r = await room("ann", "ben");
  const [ann, ben] = r.sockets;
  try {
    for (const s of r.sockets) await emitAck(s, "thread:join", { threadId: r.threadId });
    const events = [];
    for (const name of ["message:new", "message:updated"]) ben.on(name, ({ message }) => events.push([name, message]));
    const parent = (await emitAck(ann, "message:send", { threadId: r.threadId, body: "lunch?" })).message;
    const reply = await emitAck(ben, "message:send", { threadId: r.threadId, body: "yes", replyTo: parent.id });
    assert.equal(reply.ok, true);
    assert.equal(reply.message.replyTo, parent.id);
    await waitUntil(() => events.length === 3, 3000, "reply and parent update");
    assert.deepEqual(events.map(([name, m]) => [name, m.id]), [
      ["message:new", parent.id], ["message:new", reply.message.id], ["message:updated", parent.id],
    ]);
    assert.equal(events[2][1].replyCount, 1);
    assert.equal(events[2][1].editedAt, undefined, "a reply is not an edit of its parent");
    const bad = await emitAck(ben, "message:send", { threadId: r.threadId, body: "?", replyTo: "0190a4d6-0000-7000-8000-000000000000" });
    assert.deepEqual(bad, { error: "invalid_reply_to" });
  } finally {
    r.close();
  }
});

test("a mentioned member hears mention on every socket, joined to the room or not", async () => {
  const r = await room("ann", "ben", "cat");
  const [ann, ben, cat] = r.sockets;
  try {
    await emitAck(ann, "thread:join", { threadId: r.threadId });
    // ben is connected but never joined the thread's room; a second socket of his too.
    const benElsewhere = await connect(server, CLIENTS[1], { auth: { userId: r.users[1] } });
    const heard = [record(ben, "mention"), record(benElsewhere, "mention"), record(cat, "mention"), record(ann, "mention")];
    const sent = await emitAck(ann, "message:send", { threadId: r.threadId, body: "@ben look", mentions: [r.users[1], r.users[0]] });
    assert.equal(sent.ok, true);
    assert.deepEqual(sent.message.mentions, [r.users[1], r.users[0]]);
    await waitUntil(() => heard[0].length === 1 && heard[1].length === 1, 3000, "mention");
    assert.deepEqual(heard[0][0], { threadId: r.threadId, message: sent.message });
    await sleep(150);
    assert.equal(heard[2].length, 0, "cat was not mentioned");
    assert.equal(heard[3].length, 0, "the author is not told of their own mention");
    const unread = await api(server, "GET", `/api/threads/${r.threadId}`, undefined, { "x-user-id": r.users[1] });
    assert.equal(unread.body.unreadMentions, 1);
    const refused = await emitAck(ann, "message:send", { threadId: r.threadId, body: "hi", mentions: ["stranger"] });
    assert.deepEqual(refused, { error: "invalid_mention" });
    benElsewhere.close();
  } finally {
    r.close();
  }
});

test("a rejoin with since replays reaction changes and reply counts of what it saw", async () => {
  const r = await room("ann", "ben");
  const [ann, ben] = r.sockets;
  try {
    await emitAck(ann, "thread:join", { threadId: r.threadId });
    await emitAck(ben, "thread:join", { threadId: r.threadId });
    const seen = (await emitAck(ann, "message:send", { threadId: r.threadId, body: "plan" })).message;
    await sleep(20);
    // ben steps away; meanwhile ann reacts to and answers what ben saw.
    assert.deepEqual(await emitAck(ben, "thread:leave", { threadId: r.threadId }), { ok: true });
    await emitAck(ann, "reaction:add", { threadId: r.threadId, messageId: seen.id, emoji: ":tada:" });
    const answer = (await emitAck(ann, "message:send", { threadId: r.threadId, body: "details", replyTo: seen.id })).message;

    const replayed = [];
    for (const name of ["message:new", "message:updated", "reaction:updated"]) ben.on(name, (p) => replayed.push([name, p]));
    const ack = await emitAck(ben, "thread:join", { threadId: r.threadId, since: seen.id });
    assert.equal(ack.ok, true);
    assert.equal(ack.replayed, 2);
    assert.deepEqual(replayed.map(([name, p]) => [name, p.message.id]), [
      ["message:updated", seen.id], ["message:new", answer.id],
    ]);
    const updated = replayed[0][1].message;
    assert.equal(updated.replyCount, 1);
    assert.deepEqual(updated.reactions, [{ emoji: ":tada:", count: 1, userIds: [r.users[0]] }]);
  } finally {
    r.close();
  }
});

test("search over REST finds what the socket sent", async () => {
  const r = await room("ann", "ben");
  const [ann] = r.sockets;
  try {
    const word = `zebra${process.pid}${seq}`;
    await emitAck(ann, "message:send", { threadId: r.threadId, body: `A ${word} crossed` });
    const found = await api(server, "GET", `/api/search/messages?q=${word.slice(0, -1)}&threadId=${r.threadId}`, undefined, { "x-user-id": r.users[0] });
    assert.equal(found.status, 200);
    assert.deepEqual(found.body.messages.map((m) => m.body), [`A ${word} crossed`]);
  } finally {
    r.close();
  }
});
