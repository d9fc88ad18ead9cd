// Shared helpers for the JS suites: start the real threadline binary on an ephemeral port,
// talk REST to it with fetch, and connect real socket.io-client instances (4.x and 2.x).
import { spawn, execFileSync } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { io as ioV4 } from "socket.io-client";
import ioV2 from "socket.io-client-v2";
import { chromium } from "playwright-core";

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

/**
 * THREADLINE_TEST_IDENTITY=jwt runs the suites in jwt mode: every server gets a signing secret,
 * and the helpers below turn what a test says about identity into tokens: `x-user-id: u` (REST)
 * and `auth: {userId: u}` (socket) become a token for `u`, and saying nobody becomes a token for
 * "guest" (in jwt mode there is no anonymous caller, and the server refuses the stub's "me" as
 * a subject). Threads made with `createThread` include "guest" so its sockets may join them, as
 * anonymous sockets may in open mode. Suites that configure identity themselves
 * (`--jwt-secret` in their arguments) are left alone.
 */
export const JWT_MODE = process.env.THREADLINE_TEST_IDENTITY === "jwt";
const GUEST = "guest";

/** Who a request or socket naming nobody posts as: the stub's "me", the guest in jwt mode. */
export const anonymousAuthor = (server) => (server.jwt ? GUEST : "me");
const SUITE_SECRET = "threadline-suite-secret-long-enough";
const b64url = (v) => Buffer.from(JSON.stringify(v)).toString("base64url");

/** An HS256 token for `sub`, valid for ten minutes. */
export function signToken(sub, secret = SUITE_SECRET) {
  const head = b64url({ alg: "HS256", typ: "JWT" });
  const body = b64url({ sub, exp: Math.floor(Date.now() / 1000) + 600 });
  const sig = createHmac("sha256", secret).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}

/**
 * In jwt mode the suite's servers run without rate limits: every test client shares 127.0.0.1
 * and some post hundreds of messages a second as one user. limits.test.mjs covers the limits.
 */
const JWT_SUITE_ARGS = [
  "--jwt-secret", SUITE_SECRET,
  ...["post", "upload", "connect", "thread"].flatMap((what) => [`--${what}-rate-per-user`, "off", `--${what}-rate-per-ip`, "off"]),
  "--max-connections", "off", "--max-connections-per-user", "off",
];

/** Starts the server; resolves once it printed the address it listens on. */
export async function startServer(extraArgs = [], { dataDir = mkdtempSync(join(tmpdir(), "threadline-test-")), database } = {}) {
  const ownIdentity = extraArgs.some((a) => a === "--jwt-secret" || a === "--jwt-public-key");
  const jwt = JWT_MODE && !ownIdentity;
  const proc = spawn(
    BIN,
    ["--host", "127.0.0.1", "--port", "0", "--data-dir", dataDir, ...(database ?? databaseArgs(dataDir)), ...(jwt ? JWT_SUITE_ARGS : []), ...extraArgs],
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
  const sockets = new Set();
  return {
    url,
    jwt,
    proc,
    exited,
    stderr: () => stderr,
    /** Sockets to close when the server stops, so a failed test leaves nothing reconnecting. */
    track(socket) {
      sockets.add(socket);
      return socket;
    },
    async stop() {
      for (const socket of sockets) socket.close();
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
      const result = await exited;
      rmSync(dataDir, { recursive: true, force: true });
      return result;
    },
  };
}

/**
 * In jwt mode, who a request names becomes its bearer token: `x-user-id`, else the account an
 * accounts-API path acts as, else the guest.
 */
export function identify(server, headers = {}, path = "") {
  if (!server.jwt || Object.keys(headers).some((h) => h.toLowerCase() === "authorization")) return headers;
  const rest = Object.fromEntries(Object.entries(headers).filter(([h]) => h.toLowerCase() !== "x-user-id"));
  const account = /^\/api\/account\/([^/?]+)/.exec(path)?.[1] ?? /^\/api\/([^/?]+)\/conversation/.exec(path)?.[1];
  const user = Object.entries(headers).find(([h]) => h.toLowerCase() === "x-user-id")?.[1] ?? account ?? GUEST;
  return { ...rest, authorization: `Bearer ${signToken(user)}` };
}

export async function api(server, method, path, body, headers = {}) {
  const res = await fetch(server.url + path, {
    method,
    headers: { "content-type": "application/json", ...identify(server, headers, path) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

let threadSeq = 0;

/** Creates a thread; by default with members no other call uses, so it is always new. */
export async function createThread(server, memberIds = [`u${process.pid}-${++threadSeq}`, "bob"]) {
  if (server.jwt && !memberIds.includes(GUEST)) memberIds = [...memberIds, GUEST];
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
    ...socketIdentity(server, flavour, extra),
  });
  server.track?.(socket);
  await new Promise((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("connect_error", reject);
  });
  if (flavour.upgrade) await waitForUpgrade(socket);
  return socket;
}

/**
 * In jwt mode, the user a socket names (`auth.userId`, else the guest) becomes its token: in the auth
 * payload for 4.x clients, in the `token` query parameter for 2.x, which has no auth payload.
 */
export function socketIdentity(server, flavour, extra = {}) {
  if (!server.jwt || extra.auth?.token || extra.query?.token) return extra;
  const { userId, ...auth } = extra.auth ?? {};
  const token = signToken(userId ?? GUEST);
  if (flavour.version === 2) return { ...extra, auth, query: { ...extra.query, token } };
  return { ...extra, auth: { ...auth, token } };
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

/** Headless Chromium (Debian's, or `CHROMIUM`), quiet: no background traffic of its own. */
export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
}
