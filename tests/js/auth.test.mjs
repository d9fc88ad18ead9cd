// jwt mode on the socket: the handshake must carry a valid token (auth payload or `token`
// query parameter, the latter for socket.io-client 2.x), and only members join or post.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { io } from "socket.io-client";
import ioV2 from "socket.io-client-v2";
import { CLIENTS, startServer, connect, emitAck, collect, waitUntil, api } from "./harness.mjs";

const SECRET = "js-test-secret-long-enough";
const b64url = (v) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");
function jwt(claims, secret = SECRET) {
  const head = b64url({ alg: "HS256", typ: "JWT" });
  const body = b64url(claims);
  const sig = createHmac("sha256", secret).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}
const now = () => Math.floor(Date.now() / 1000);
const token = (sub) => jwt({ sub, exp: now() + 600 });
const bearer = (sub) => ({ authorization: `Bearer ${token(sub)}` });

let server;
before(async () => (server = await startServer(["--jwt-secret", SECRET])));
after(async () => server.stop());

async function thread(members) {
  const res = await api(server, "POST", "/api/threads", { memberIds: members }, bearer(members[0]));
  assert.ok(res.status === 201 || res.status === 200, JSON.stringify(res.body));
  return res.body.id;
}

function refusal(options) {
  const socket = io(server.url, { path: "/ws", transports: ["websocket"], forceNew: true, reconnection: false, ...options });
  return new Promise((resolve) => {
    socket.once("connect_error", (e) => { socket.close(); resolve(e.message); });
    socket.once("connect", () => { socket.close(); resolve("connected"); });
  });
}

test("a handshake without a valid token is refused before the socket exists", async () => {
  assert.equal(await refusal({}), "unauthorized");
  assert.equal(await refusal({ auth: { userId: "ann" } }), "unauthorized", "open-mode identity is ignored");
  assert.equal(await refusal({ auth: { token: "garbage" } }), "invalid_token");
  assert.equal(await refusal({ auth: { token: jwt({ sub: "ann", exp: now() + 600 }, "other-secret") } }), "invalid_token");
  // Older than the 60 s leeway allowed for clock skew.
  assert.equal(await refusal({ auth: { token: jwt({ sub: "ann", exp: now() - 600 }) } }), "token_expired");
});

test("members join and receive; non-members are refused with an error ack", async () => {
  const threadId = await thread(["ann", "bob"]);
  const ann = await connect(server, CLIENTS[0], { auth: { token: token("ann") } });
  const eve = await connect(server, CLIENTS[0], { auth: { token: token("eve") } });
  try {
    assert.deepEqual(await emitAck(ann, "thread:join", { threadId }), { ok: true, seq: 0 });
    assert.deepEqual(await emitAck(eve, "thread:join", { threadId }), { error: "not_a_member" });
    const annBox = collect(ann);
    const eveBox = collect(eve);
    const posted = await api(server, "POST", `/api/threads/${threadId}/messages`, { body: "private" }, bearer("bob"));
    assert.equal(posted.status, 201);
    await waitUntil(() => annBox.length === 1, 5000, "member delivery");
    assert.equal(annBox[0].authorId, "bob");
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(eveBox.length, 0, "the non-member never joined the room");
  } finally {
    ann.close();
    eve.close();
  }
});

test("message:send is authored by the token's subject and refused to non-members", async () => {
  const threadId = await thread(["ann", "bob"]);
  const bob = await connect(server, CLIENTS[1], { auth: { token: token("bob"), userId: "ann" } });
  const eve = await connect(server, CLIENTS[0], { auth: { token: token("eve") } });
  try {
    const ack = await emitAck(bob, "message:send", { threadId, body: "from bob" });
    assert.equal(ack.message.authorId, "bob");
    assert.deepEqual(await emitAck(eve, "message:send", { threadId, body: "x" }), { error: "not_a_member" });
  } finally {
    bob.close();
    eve.close();
  }
});

test("socket.io-client 2.x passes the token as a query parameter", async () => {
  const threadId = await thread(["ann", "bob"]);
  const socket = server.track(ioV2(server.url, { path: "/ws", transports: ["websocket"], forceNew: true, query: { token: token("ann") } }));
  await new Promise((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
    socket.once("connect_error", reject);
  });
  try {
    const joined = await emitAck(socket, "thread:join", { threadId });
    assert.deepEqual(joined, { ok: true, seq: joined.seq });
    assert.ok(Number.isInteger(joined.seq), "the newest position of a shared thread");
  } finally {
    socket.close();
  }
});

test("typing, receipts, rejoins, presence and edits: members only, authors only", async () => {
  const threadId = await thread(["ann", "bob"]);
  const posted = await api(server, "POST", `/api/threads/${threadId}/messages`, { body: "hi" }, bearer("bob"));
  const messageId = posted.body.message.id;
  const eve = await connect(server, CLIENTS[0], { auth: { token: token("eve") } });
  const ann = await connect(server, CLIENTS[0], { auth: { token: token("ann") } });
  try {
    assert.deepEqual(await emitAck(eve, "typing", { threadId, typing: true }), { error: "not_a_member" });
    assert.deepEqual(await emitAck(eve, "thread:read", { threadId, messageId }), { error: "not_a_member" });
    assert.deepEqual(await emitAck(eve, "thread:join", { threadId, since: messageId }), { error: "not_a_member" });
    assert.equal((await api(server, "GET", `/api/threads/${threadId}/presence`, undefined, bearer("eve"))).status, 403);
    assert.equal((await api(server, "POST", `/api/threads/${threadId}/read`, { messageId }, bearer("eve"))).status, 403);
    const path = `/api/threads/${threadId}/messages/${messageId}`;
    assert.equal((await api(server, "PATCH", path, { body: "x" }, bearer("eve"))).status, 403);
    // A member who is not the author, even claiming to be with X-User-Id, is refused.
    const notAuthor = await api(server, "PATCH", path, { body: "x" }, { ...bearer("ann"), "x-user-id": "bob" });
    assert.deepEqual(notAuthor, { status: 403, body: { error: "not_author" } });
    assert.equal((await api(server, "DELETE", path, undefined, bearer("ann"))).status, 403);
    assert.deepEqual(await emitAck(ann, "thread:read", { threadId, messageId }), { ok: true, messageId });
    const rejoined = await emitAck(ann, "thread:join", { threadId, since: messageId });
    assert.deepEqual(rejoined, { ok: true, replayed: 0, seq: rejoined.seq });
    assert.ok(Number.isInteger(rejoined.seq));
    assert.equal((await api(server, "PATCH", path, { body: "edited" }, bearer("bob"))).status, 200);
  } finally {
    eve.close();
    ann.close();
  }
});
