// The stub's realtime contract, with every client flavour: thread:join / thread:leave with acks,
// message:new carrying exactly the REST shape, room isolation, and bad payloads.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  CLIENTS, startServer, createThread, postMessage, connect, emitAck, collect, waitUntil, sleep,
} from "./harness.mjs";

let server;
before(async () => (server = await startServer()));
after(async () => {
  const { code } = await server.stop();
  assert.equal(code, 0, "graceful shutdown exits 0");
});

for (const flavour of CLIENTS) {
  describe(flavour.name, () => {
    test("join, then receive message:new with the POST's exact message", async () => {
      const threadId = await createThread(server);
      const socket = await connect(server, flavour);
      try {
        assert.deepEqual(await emitAck(socket, "thread:join", { threadId }), { ok: true, seq: 0 });
        const received = collect(socket);
        const sent = await postMessage(server, threadId, "hello " + flavour.name);
        await waitUntil(() => received.length === 1, 5000, "message:new");
        assert.deepEqual(received[0], sent);
      } finally {
        socket.close();
      }
    });

    test("rooms are isolated and leave stops delivery", async () => {
      const a = await createThread(server, ["a1", "a2"]);
      const b = await createThread(server, ["b1", "b2"]);
      const inA = await connect(server, flavour);
      const inB = await connect(server, flavour);
      try {
        await emitAck(inA, "thread:join", { threadId: a });
        await emitAck(inB, "thread:join", { threadId: b });
        const gotA = collect(inA);
        const gotB = collect(inB);
        const m1 = await postMessage(server, a, "for a");
        const m2 = await postMessage(server, b, "for b");
        await waitUntil(() => gotA.length === 1 && gotB.length === 1, 5000, "deliveries");
        assert.equal(gotA[0].id, m1.id);
        assert.equal(gotB[0].id, m2.id);

        assert.deepEqual(await emitAck(inA, "thread:leave", { threadId: a }), { ok: true });
        await postMessage(server, a, "after leave");
        const marker = await postMessage(server, b, "marker");
        await waitUntil(() => gotB.length === 2, 5000, "marker");
        assert.equal(gotB[1].id, marker.id);
        await sleep(50);
        assert.equal(gotA.length, 1, "no delivery after leave");
      } finally {
        inA.close();
        inB.close();
      }
    });

    test("a client joined twice receives each message once", async () => {
      const threadId = await createThread(server);
      const socket = await connect(server, flavour);
      try {
        await emitAck(socket, "thread:join", { threadId });
        await emitAck(socket, "thread:join", { threadId });
        const received = collect(socket);
        const first = await postMessage(server, threadId, "once");
        const second = await postMessage(server, threadId, "twice?");
        await waitUntil(() => received.length >= 2, 5000, "messages");
        await sleep(50);
        assert.deepEqual(received.map((m) => m.id), [first.id, second.id]);
      } finally {
        socket.close();
      }
    });
  });
}

describe("malformed payloads", () => {
  test("get an error ack and disturb nobody", async () => {
    const threadId = await createThread(server);
    const bystander = await connect(server);
    const sender = await connect(server);
    try {
      await emitAck(bystander, "thread:join", { threadId });
      const received = collect(bystander);
      const cases = [
        [{}, "invalid_payload"],
        ["just-a-string", "invalid_payload"],
        [42, "invalid_payload"],
        [null, "invalid_payload"],
        [[threadId], "invalid_payload"],
        [{ threadId: 7 }, "invalid_thread_id"],
        [{ threadId: "" }, "invalid_thread_id"],
        [{ threadId: "has spaces" }, "invalid_thread_id"],
        [{ threadId: "x".repeat(500) }, "invalid_thread_id"],
        [{ threadId: "no-such-thread" }, "thread_not_found"],
      ];
      for (const [payload, code] of cases) {
        assert.deepEqual(
          await emitAck(sender, "thread:join", payload),
          { error: code },
          JSON.stringify(payload),
        );
      }
      assert.deepEqual(await emitAck(sender, "thread:leave", { nope: 1 }), { error: "invalid_payload" });
      // Without an ack callback a bad payload is ignored; unknown events too.
      sender.emit("thread:join", "garbage");
      sender.emit("no:such:event", { x: 1 });
      sender.emit("thread:join");
      const m = await postMessage(server, threadId, "still flowing");
      await waitUntil(() => received.length === 1, 5000, "bystander delivery");
      assert.equal(received[0].id, m.id);
      assert.ok(sender.connected, "the sender is not disconnected for bad payloads");
      assert.deepEqual(await emitAck(sender, "thread:join", { threadId }), { ok: true, seq: 1 });
    } finally {
      bystander.close();
      sender.close();
    }
  });

  test("a payload over 1 MB closes only the sender; up to 1 MB is accepted", async () => {
    const threadId = await createThread(server);
    const bystander = await connect(server);
    const sender = await connect(server);
    try {
      await emitAck(bystander, "thread:join", { threadId });
      const received = collect(bystander);
      // ~900 KB: within Node's (and our) 1 MB maxHttpBufferSize, so it is processed.
      const big = await emitAck(sender, "thread:join", { threadId, pad: "x".repeat(900_000) });
      assert.deepEqual(big, { ok: true, seq: 0 });
      const closed = new Promise((r) => sender.once("disconnect", r));
      sender.emit("thread:join", { threadId, pad: "x".repeat(1_100_000) });
      await closed;
      const m = await postMessage(server, threadId, "others unaffected");
      await waitUntil(() => received.length === 1, 5000, "bystander delivery");
      assert.equal(received[0].id, m.id);
    } finally {
      bystander.close();
      sender.close();
    }
  });
});
