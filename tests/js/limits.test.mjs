// Abuse limits on the socket, with the real socket.io-client: message:send over its rate gets an
// error ack, a handshake over a connection rate or cap is refused with connect_error, and other
// users and addresses are unaffected. On by default in jwt mode.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { io } from "socket.io-client";
import { CLIENTS, startServer, connect, emitAck, collect, waitUntil, api, createThread, postMessage } from "./harness.mjs";

const SECRET = "limits-js-secret-long-enough";
const b64url = (v) => Buffer.from(JSON.stringify(v)).toString("base64url");
function token(sub) {
  const head = b64url({ alg: "HS256", typ: "JWT" });
  const body = b64url({ sub, exp: Math.floor(Date.now() / 1000) + 600 });
  const sig = createHmac("sha256", SECRET).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}

/** Tries a websocket handshake; resolves with the connected socket or the refusal message. */
function attempt(server, options = {}) {
  const socket = io(server.url, { path: "/ws", transports: ["websocket"], forceNew: true, reconnection: false, ...options });
  return new Promise((resolve) => {
    socket.once("connect_error", (e) => {
      socket.close();
      resolve({ refused: e.message });
    });
    socket.once("connect", () => resolve({ socket }));
  });
}

/** Retries a handshake for a while: a closed connection gives its place back asynchronously. */
async function attemptUntilConnected(server, options = {}) {
  let outcome;
  for (let tries = 0; tries < 60; tries++) {
    outcome = await attempt(server, options);
    if (outcome.socket) return outcome.socket;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`still refused: ${outcome.refused}`);
}

/** The connections already held are untouched: each joins a thread and gets its message. */
async function assertAllReceive(server, sockets) {
  const threadId = await createThread(server);
  const boxes = [];
  for (const s of sockets) {
    await emitAck(s, "thread:join", { threadId });
    boxes.push(collect(s));
  }
  await postMessage(server, threadId, "still flowing");
  await waitUntil(() => boxes.every((b) => b.length === 1), 3000, "deliveries to held sockets");
}

async function withServer(args, body) {
  const server = await startServer(args);
  try {
    await body(server);
  } finally {
    await server.stop();
  }
}

/** Calls `step` (which answers the refusal, or nothing) until refused; at most 100 times. */
async function untilRefused(step) {
  for (let through = 0; through < 100; through++) {
    const refused = await step();
    if (refused) return { through, refused };
  }
  return { through: 100, refused: undefined };
}

/** `through` is the burst left, plus at most what the rate gave back over `elapsedMs`. */
function assertWithinRate(through, burst, perMs, elapsedMs) {
  const most = burst + Math.floor(elapsedMs * perMs);
  assert.ok(through >= burst && through <= most, `${through} went through in ${elapsedMs} ms; expected ${burst}..${most}`);
}

const send = (socket, threadId, body) => emitAck(socket, "message:send", { threadId, body });

test("message:send over a user's rate gets a rate_limited ack; the socket and other users go on", () =>
  withServer(["--post-rate-per-user", "3/60s"], async (server) => {
    const threadId = await createThread(server, ["ann", "bob"]);
    const ann = await connect(server, CLIENTS[0], { auth: { userId: "ann" } });
    const bob = await connect(server, CLIENTS[0], { auth: { userId: "bob" } });
    try {
      await emitAck(ann, "thread:join", { threadId });
      const annBox = collect(ann);
      for (let i = 0; i < 3; i++) assert.equal((await send(ann, threadId, `a${i}`)).ok, true);
      const refused = await send(ann, threadId, "one too many");
      assert.equal(refused.error, "rate_limited");
      assert.ok(refused.retryAfter >= 15 && refused.retryAfter <= 20, `retryAfter ${refused.retryAfter}`);
      assert.equal((await send(bob, threadId, "bob is fine")).ok, true);
      await waitUntil(() => annBox.length === 4, 3000, "ann still receives");
      assert.equal(ann.connected, true);
      const stored = await api(server, "GET", `/api/threads/${threadId}/messages`);
      assert.deepEqual(stored.body.messages.map((m) => m.body).sort(), ["a0", "a1", "a2", "bob is fine"]);
      // REST posts of the same user share the bucket.
      const rest = await api(server, "POST", `/api/threads/${threadId}/messages`, { body: "x" }, { "x-user-id": "ann" });
      assert.equal(rest.status, 429);
    } finally {
      ann.close();
      bob.close();
    }
  }));

test("message:send over an address's rate is refused; another address sends on", () =>
  withServer(["--post-rate-per-ip", "2/60s"], async (server) => {
    const threadId = await createThread(server);
    const here = await connect(server, CLIENTS[0]);
    const there = await connect(server, CLIENTS[0], { localAddress: "127.0.0.2" });
    try {
      for (let i = 0; i < 2; i++) assert.equal((await send(here, threadId, `h${i}`)).ok, true);
      assert.equal((await send(here, threadId, "more")).error, "rate_limited");
      assert.equal((await send(there, threadId, "from elsewhere")).ok, true);
    } finally {
      here.close();
      there.close();
    }
  }));

test("new connections over a user's rate are refused with connect_error; others connect", () =>
  withServer(["--connect-rate-per-user", "3/60s"], async (server) => {
    for (let i = 0; i < 3; i++) {
      const { socket } = await attempt(server, { auth: { userId: "ann" } });
      assert.ok(socket, `connection ${i}`);
      socket.close();
    }
    assert.deepEqual(await attempt(server, { auth: { userId: "ann" } }), { refused: "rate_limited" });
    const bob = await attempt(server, { auth: { userId: "bob" } });
    const anon = await attempt(server);
    assert.ok(bob.socket && anon.socket);
    bob.socket.close();
    anon.socket.close();
  }));

test("new connections over an address's rate are refused; another address connects", () =>
  withServer(["--connect-rate-per-ip", "3/60s"], async (server) => {
    const held = [];
    try {
      for (let i = 0; i < 3; i++) held.push((await attempt(server)).socket);
      assert.ok(held.every(Boolean));
      // Before any token or user name is looked at.
      assert.deepEqual(await attempt(server, { auth: { userId: "someone" } }), { refused: "rate_limited" });
      const elsewhere = await attempt(server, { localAddress: "127.0.0.2" });
      assert.ok(elsewhere.socket);
      held.push(elsewhere.socket);
      await assertAllReceive(server, held);
    } finally {
      held.forEach((s) => s?.close());
    }
  }));

test("past --max-connections a handshake is refused with server_full until a place frees up", () =>
  withServer(["--max-connections", "3"], async (server) => {
    const held = [];
    try {
      for (let i = 0; i < 3; i++) held.push(await connect(server, CLIENTS[i % 2]));
      assert.deepEqual(await attempt(server), { refused: "server_full" });
      await assertAllReceive(server, held);
      held.shift().close();
      held.push(await attemptUntilConnected(server));
      assert.deepEqual(await attempt(server), { refused: "server_full" });
    } finally {
      held.forEach((s) => s.close());
    }
  }));

test("past --max-connections-per-user that user is refused; other users are not", () =>
  withServer(["--max-connections-per-user", "2"], async (server) => {
    const ann = [];
    try {
      for (let i = 0; i < 2; i++) ann.push(await connect(server, CLIENTS[0], { auth: { userId: "ann" } }));
      assert.deepEqual(await attempt(server, { auth: { userId: "ann" } }), { refused: "too_many_connections" });
      const bob = await attempt(server, { auth: { userId: "bob" } });
      const anon = await attempt(server);
      assert.ok(bob.socket && anon.socket);
      bob.socket.close();
      anon.socket.close();
      ann.shift().close();
      ann.push(await attemptUntilConnected(server, { auth: { userId: "ann" } }));
    } finally {
      ann.forEach((s) => s.close());
    }
  }));

test("jwt mode applies the connection and post limits by default", () =>
  withServer(["--jwt-secret", SECRET], async (server) => {
    const auth = (user) => ({ auth: { token: token(user) } });
    const held = [];
    try {
      // 20 connections per user at once.
      const connectsFrom = Date.now();
      for (let i = 0; i < 20; i++) held.push((await attempt(server, auth("ann"))).socket);
      assert.ok(held.every(Boolean));
      assert.deepEqual(await attempt(server, auth("ann")), { refused: "too_many_connections" });
      // 30 new connections per user a minute: 21 used so far, and one more comes back every
      // 2 s (a slow machine may see one or two of those).
      held.splice(0).forEach((s) => s.close());
      // Wait until the closed ones are gone, without spending attempts.
      await new Promise((r) => setTimeout(r, 500));
      const connects = await untilRefused(async () => {
        const outcome = await attempt(server, auth("ann"));
        outcome.socket?.close();
        return outcome.refused;
      });
      assert.equal(connects.refused, "rate_limited");
      assertWithinRate(connects.through, 9, 30 / 60_000, Date.now() - connectsFrom);

      // 30 posts per user per 10 s, over the socket; one more comes back every 333 ms.
      const res = await api(server, "POST", "/api/threads", { memberIds: ["bob", "cat"] }, { authorization: `Bearer ${token("bob")}` });
      const threadId = res.body.id;
      const bob = (await attempt(server, auth("bob"))).socket;
      const cat = (await attempt(server, auth("cat"))).socket;
      held.push(bob, cat);
      const postsFrom = Date.now();
      let n = 0;
      const posts = await untilRefused(async () => (await send(bob, threadId, `b${n++}`)).error);
      assert.equal(posts.refused, "rate_limited");
      assertWithinRate(posts.through, 30, 30 / 10_000, Date.now() - postsFrom);
      assert.equal((await send(cat, threadId, "cat is fine")).ok, true);
    } finally {
      held.forEach((s) => s?.close());
    }
  }));
