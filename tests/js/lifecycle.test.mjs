// Process lifecycle: graceful shutdown on SIGTERM and SIGINT.
import { test } from "node:test";
import assert from "node:assert/strict";
import { request } from "node:http";
import { startServer, createThread, connect, api, identify } from "./harness.mjs";

/**
 * Starts an upload and holds back its body. `reading` resolves when the server is reading the
 * body (it answers `Expect: 100-continue` as the handler starts): from then on the request is
 * in flight on the server, whatever happens next. `finish` sends the body.
 */
function startUpload(server) {
  const boundary = "threadline-lifecycle";
  const body = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="late.txt"\r\n` +
      `Content-Type: text/plain\r\n\r\n${"x".repeat(64 * 1024)}\r\n--${boundary}--\r\n`,
  );
  const req = request(new URL("/api/files", server.url), {
    method: "POST",
    agent: false,
    headers: {
      "content-type": `multipart/form-data; boundary=${boundary}`,
      "content-length": body.length,
      expect: "100-continue",
      ...identify(server, {}, "/api/files"),
    },
  });
  const reply = new Promise((resolve, reject) => {
    req.on("response", (res) => {
      let text = "";
      res.on("data", (d) => (text += d));
      res.on("end", () => resolve({ status: res.statusCode, body: text }));
    });
    req.on("error", reject);
  });
  const reading = new Promise((resolve) => req.on("continue", resolve));
  req.flushHeaders();
  return { reading, reply, finish: () => req.end(body) };
}

for (const signal of ["SIGTERM", "SIGINT"]) {
  test(`${signal}: sockets are closed cleanly, in-flight requests finish, exit code 0`, async () => {
    const server = await startServer();
    await createThread(server);
    const socket = await connect(server, undefined, { reconnection: false });
    const disconnected = new Promise((r) => socket.once("disconnect", r));
    const upload = startUpload(server);
    await upload.reading;
    server.proc.kill(signal);
    const reason = await disconnected;
    assert.ok(["io server disconnect", "transport close"].includes(reason), reason);
    // The upload in flight when the signal arrived is still stored and answered.
    upload.finish();
    const reply = await upload.reply;
    assert.equal(reply.status, 201, reply.body);
    assert.equal(JSON.parse(reply.body).name, "late.txt");
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
