// Shared helpers for the JS suites: start the real threadline binary on an ephemeral port,
// talk REST to it with fetch, and connect real socket.io-client instances (4.x and 2.x).
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { io as ioV4 } from "socket.io-client";
import ioV2 from "socket.io-client-v2";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const BIN = process.env.THREADLINE_BIN || join(ROOT, "target", "debug", "threadline");

/**
 * The store the suites run against: THREADLINE_TEST_DATABASE = memory (default), sqlite, or a
 * PostgreSQL server URL (each server gets a fresh database there).
 */
export function databaseArgs(dataDir) {
  const backend = process.env.THREADLINE_TEST_DATABASE || "memory";
  if (backend === "memory") return [];
  if (backend === "sqlite") return ["--database-url", `sqlite://${dataDir}/threadline.db`];
  const name = `threadline_js_${process.pid}_${Date.now()}_${Math.floor(Math.random() * 1e6)}`;
  execFileSync("psql", [backend, "-q", "-c", `CREATE DATABASE ${name}`]);
  return ["--database-url", backend.replace(/\/[^/]*$/, `/${name}`)];
}

/** Starts the server; resolves once it printed the address it listens on. */
export async function startServer(extraArgs = [], { dataDir = mkdtempSync(join(tmpdir(), "threadline-test-")), database } = {}) {
  const proc = spawn(
    BIN,
    ["--host", "127.0.0.1", "--port", "0", "--data-dir", dataDir, ...(database ?? databaseArgs(dataDir)), ...extraArgs],
    { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RUST_LOG: "warn" } },
  );
  let stderr = "";
  proc.stderr.on("data", (d) => (stderr += d));
  const exited = new Promise((resolve) => proc.on("exit", (code, signal) => resolve({ code, signal })));
  const url = await new Promise((resolve, reject) => {
    const lines = createInterface({ input: proc.stdout });
    lines.once("line", (line) => {
      const m = /listening on (http:\/\/\S+)/.exec(line);
      m ? resolve(m[1]) : reject(new Error("unexpected first line: " + line));
    });
    proc.once("exit", (code) => reject(new Error(`server exited early (${code}): ${stderr}`)));
  });
  return {
    url,
    proc,
    exited,
    stderr: () => stderr,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
      const result = await exited;
      rmSync(dataDir, { recursive: true, force: true });
      return result;
    },
  };
}

export async function api(server, method, path, body, headers = {}) {
  const res = await fetch(server.url + path, {
    method,
    headers: { "content-type": "application/json", ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

let threadSeq = 0;

/** Creates a thread; by default with members no other call uses, so it is always new. */
export async function createThread(server, memberIds = [`u${process.pid}-${++threadSeq}`, "bob"]) {
  const res = await api(server, "POST", "/api/threads", { title: "t", memberIds });
  if (res.status !== 201 && res.status !== 200) throw new Error("create thread: " + JSON.stringify(res));
  return res.body.id;
}

export async function postMessage(server, threadId, body, headers) {
  const res = await api(server, "POST", `/api/threads/${threadId}/messages`, { body }, headers);
  if (res.status !== 201) throw new Error("post: " + JSON.stringify(res));
  return res.body.message;
}

/** Client flavours every realtime test runs with. */
export const CLIENTS = [
  { name: "v4 websocket", version: 4, transports: ["websocket"] },
  { name: "v4 polling", version: 4, transports: ["polling"] },
  { name: "v4 polling→websocket", version: 4, transports: ["polling", "websocket"], upgrade: true },
  { name: "v2 websocket", version: 2, transports: ["websocket"] },
  { name: "v2 polling→websocket", version: 2, transports: ["polling", "websocket"], upgrade: true },
];

/** Connects a socket.io-client of the given flavour; resolves once connected. */
export async function connect(server, flavour = CLIENTS[0], extra = {}) {
  const make = flavour.version === 2 ? ioV2 : ioV4;
  const socket = make(server.url, {
    path: "/ws",
    transports: flavour.transports,
    forceNew: true,
    reconnectionDelay: 50,
    reconnectionDelayMax: 200,
    ...extra,
  });
  await new Promise((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("connect_error", reject);
  });
  if (flavour.upgrade) await waitForUpgrade(socket);
  return socket;
}

async function waitForUpgrade(socket) {
  const engine = socket.io.engine;
  if (engine.transport.name === "websocket") return;
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no upgrade to websocket")), 5000);
    engine.once("upgrade", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Emits with an ack callback and resolves with the ack payload. */
export function emitAck(socket, event, payload, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ack for ${event}`)), timeoutMs);
    socket.emit(event, payload, (ack) => {
      clearTimeout(timer);
      resolve(ack);
    });
  });
}

/** Collects every `message:new` a socket receives. */
export function collect(socket) {
  const received = [];
  socket.on("message:new", (payload) => received.push(payload.message));
  return received;
}

export async function waitUntil(predicate, timeoutMs = 5000, what = "condition") {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Resolves like `promise`, or rejects after `ms` without keeping the process alive after. */
export function within(ms, promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
