// message:send: posting over the socket with an ack, through the same path as the REST post.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import {
  CLIENTS, startServer, createThread, connect, emitAck, collect, waitUntil, api, sleep, JWT_MODE, anonymousAuthor,
} from "./harness.mjs";

let server;
before(async () => (server = await startServer()));
after(async () => server.stop());

for (const flavour of [CLIENTS[0], CLIENTS[1], CLIENTS[3]]) {
  test(`${flavour.name}: the ack carries the stored message, the room gets it as message:new`, async () => {
    const threadId = await createThread(server);
    const sender = await connect(server, flavour);
    const listener = await connect(server);
    try {
      await emitAck(listener, "thread:join", { threadId });
      const box = collect(listener);
      const ack = await emitAck(sender, "message:send", { threadId, body: "  over the socket  " });
      assert.equal(ack.ok, true);
      assert.equal(ack.message.body, "over the socket");
      assert.equal(ack.message.authorId, anonymousAuthor(server), "anonymous sockets post as the stub's author");
      await waitUntil(() => box.length === 1, 5000, "broadcast");
      assert.deepEqual(box[0], ack.message);
      const history = await api(server, "GET", `/api/threads/${threadId}/messages`);
      assert.deepEqual(history.body.messages, [ack.message], "stored exactly like a REST post");
    } finally {
      sender.close();
      listener.close();
    }
  });
}

test("a socket that names its user in the handshake posts as that user", async () => {
  const threadId = await createThread(server, ["ada", `other${Date.now()}`]);
  const socket = await connect(server, CLIENTS[0], { auth: { userId: "ada" } });
  try {
    const ack = await emitAck(socket, "message:send", { threadId, body: "hi" });
    assert.equal(ack.message.authorId, "ada");
  } finally {
    socket.close();
  }
});

test("an invalid userId in the handshake is refused with connect_error", { skip: JWT_MODE && "open mode: jwt mode names users by token" }, async () => {
  const socket = io(server.url, { path: "/ws", transports: ["websocket"], forceNew: true, reconnection: false, auth: { userId: "not valid" } });
  const err = await new Promise((resolve) => socket.once("connect_error", resolve));
  assert.equal(err.message, "invalid_user_id");
  socket.close();
});

test("a retried send with the same clientMessageId is acked with the original, broadcast once", async () => {
  const threadId = await createThread(server, ["bo", `other${Date.now()}`]);
  const sender = await connect(server, CLIENTS[0], { auth: { userId: "bo" } });
  const listener = await connect(server);
  try {
    await emitAck(listener, "thread:join", { threadId });
    const box = collect(listener);
    const first = await emitAck(sender, "message:send", { threadId, body: "once", clientMessageId: "k1" });
    const retry = await emitAck(sender, "message:send", { threadId, body: "once", clientMessageId: "k1" });
    assert.deepEqual(retry, first);
    assert.equal(first.message.clientMessageId, "k1");
    const marker = await emitAck(sender, "message:send", { threadId, body: "marker" });
    await waitUntil(() => box.length >= 2, 5000, "deliveries");
    await sleep(50);
    assert.deepEqual(box.map((m) => m.id), [first.message.id, marker.message.id]);
  } finally {
    sender.close();
    listener.close();
  }
});

test("bad sends get the REST post's error codes and store nothing", async () => {
  const threadId = await createThread(server);
  const socket = await connect(server);
  try {
    const cases = [
      [{ threadId, body: "   " }, "empty_message"],
      [{ threadId }, "empty_message"],
      [{ threadId, body: "x".repeat(16 * 1024 + 1) }, "message_too_long"],
      [{ threadId, body: "a\u0000b" }, "invalid_text"],
      [{ threadId, body: "x", fileIds: ["nope"] }, "unknown_file"],
      [{ threadId, body: "x", clientMessageId: "" }, "invalid_client_message_id"],
      [{ threadId: "no-such-thread", body: "x" }, "thread_not_found"],
      [{ threadId: "bad id", body: "x" }, "invalid_thread_id"],
      [{ body: "x" }, "invalid_payload"],
      [{ threadId, body: 5 }, "invalid_payload"],
      ["just a string", "invalid_payload"],
    ];
    for (const [payload, code] of cases) {
      assert.deepEqual(await emitAck(socket, "message:send", payload), { error: code }, JSON.stringify(payload).slice(0, 80));
    }
    const history = await api(server, "GET", `/api/threads/${threadId}/messages`);
    assert.deepEqual(history.body.messages, []);
    assert.ok(socket.connected);
  } finally {
    socket.close();
  }
});
