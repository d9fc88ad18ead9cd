// The official Socket.IO Admin UI (`@socket.io/admin-ui`'s ui/dist, served at /admin-ui/ with
// --admin-ui) in headless Chromium: it logs in, and shows this server, its sockets and a
// thread's room; with two nodes on one Redis, both servers. Screenshots are kept in
// target/test-artifacts/.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRequire } from "node:module";
import {
  ROOT, startServer, databaseArgs, createThread, connect, emitAck, sleep, launchChromium,
} from "./harness.mjs";

/** Resolves once `check` (async) holds, or fails after `ms`. */
async function waitFor(check, ms, what) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

const require = createRequire(join(ROOT, "client-examples", "package.json"));
const bcrypt = require("bcryptjs");
const PASSWORD = "correct horse battery";
const HASH = bcrypt.hashSync(PASSWORD, 8);
const ADMIN = ["--admin-ui", "--admin-ui-password-hash", HASH];
const ARTIFACTS = join(ROOT, "target", "test-artifacts");

const postgres = process.env.THREADLINE_TEST_DATABASE || "";
const redis = process.env.THREADLINE_TEST_REDIS;
const twoNodesSkip = !(postgres.startsWith("postgres") && redis) && "needs PostgreSQL and Redis";

let browser;
before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  browser = await launchChromium();
});
after(() => browser?.close());

/** Opens the UI served by `server`, logs in; the page. */
async function logIn(server) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await page.goto(`${server.url}/admin-ui/`);
  // The form comes pointed at this server and its path.
  assert.equal(await page.getByLabel("Server URL").inputValue(), server.url);
  await page.getByLabel("Username").fill("admin");
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Connect" }).click();
  try {
    await page.locator(".v-chip__content:visible").filter({ hasText: /^connected$/ }).first()
      .waitFor({ timeout: 10000 });
  } catch (e) {
    await page.screenshot({ path: join(ARTIFACTS, "admin-ui-login-failed.png") });
    throw e;
  }
  return page;
}

async function open(page, section) {
  await page.locator("nav").getByText(section, { exact: true }).click();
  return page.locator("main");
}

test("the Admin UI logs in and shows the server, its sockets and a thread's room", async () => {
  assert.ok(existsSync(join(ROOT, "client-examples/node_modules/@socket.io/admin-ui/ui/dist/index.html")));
  const server = await startServer(ADMIN);
  try {
    const threadId = await createThread(server, ["ada", "bob"]);
    const ada = await connect(server, undefined, { auth: { userId: "ada" } });
    assert.equal((await emitAck(ada, "thread:join", { threadId })).ok, true);
    const page = await logIn(server);

    const servers = await open(page, "Servers");
    await waitFor(async () => /HEALTHY/.test(await servers.innerText()), 10000, "a healthy server");
    assert.match(await servers.innerText(), new RegExp(`#${server.proc.pid}`));

    const sockets = await open(page, "Sockets");
    await waitFor(async () => (await sockets.innerText()).includes(ada.id), 10000, "ada's socket");

    const rooms = await open(page, "Rooms");
    await waitFor(async () => (await rooms.innerText()).includes(`thread:${threadId}`), 10000, "the thread's room");
    await sleep(500);
    await page.screenshot({ path: join(ARTIFACTS, "admin-ui-rooms.png") });

    // Live: a socket that connects now appears without a reload.
    const bob = await connect(server, undefined, { auth: { userId: "bob" } });
    await open(page, "Sockets");
    await waitFor(async () => (await sockets.innerText()).includes(bob.id), 10000, "bob's socket");
    await sleep(500);
    await page.screenshot({ path: join(ARTIFACTS, "admin-ui-sockets.png") });
    await open(page, "Dashboard");
    await sleep(2500);
    await page.screenshot({ path: join(ARTIFACTS, "admin-ui-dashboard.png") });
    ada.close();
    bob.close();
    await page.close();
  } finally {
    await server.stop();
  }
});

test("with two nodes the Admin UI shows both servers", { skip: twoNodesSkip }, async () => {
  const database = databaseArgs(mkdtempSync(join(tmpdir(), "threadline-db-")));
  const node = () => startServer([...ADMIN, "--redis-url", redis], { dataDir: mkdtempSync(join(tmpdir(), "threadline-node-")), database });
  const [a, b] = [await node(), await node()];
  try {
    const page = await logIn(a);
    const servers = await open(page, "Servers");
    await waitFor(async () => {
      const text = await servers.innerText();
      return text.includes(`#${a.proc.pid}`) && text.includes(`#${b.proc.pid}`);
    }, 15000, "both servers");
    await page.screenshot({ path: join(ARTIFACTS, "admin-ui-two-servers.png") });
    await page.close();
  } finally {
    await a.stop();
    await b.stop();
  }
});
