// Process lifecycle: graceful shutdown on SIGTERM and SIGINT.
import { test } from "node:test";
import assert from "node:assert/strict";
import { startServer, createThread, connect, api } from "./harness.mjs";

for (const signal of ["SIGTERM", "SIGINT"]) {
  test(`${signal}: sockets are closed cleanly, in-flight requests finish, exit code 0`, async () => {
    const server = await startServer();
    const threadId = await createThread(server);
    const socket = await connect(server, undefined, { reconnection: false });
    const disconnected = new Promise((r) => socket.once("disconnect", r));
    // A request in flight when the signal arrives still gets its answer.
    const inFlight = api(server, "GET", `/api/threads/${threadId}`);
    server.proc.kill(signal);
    const reason = await disconnected;
    assert.ok(["io server disconnect", "transport close"].includes(reason), reason);
    const reply = await inFlight;
    assert.equal(reply.status, 200);
    const { code } = await server.exited;
    assert.equal(code, 0, server.stderr());
  });
}

test("healthz answers while the server is up", async () => {
  const server = await startServer();
  try {
    const reply = await api(server, "GET", "/healthz");
    assert.equal(reply.status, 200);
  } finally {
    await server.stop();
  }
});
