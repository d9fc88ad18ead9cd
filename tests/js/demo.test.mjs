// The demo page (`/demo/`) in headless Chromium, as two people use it: each picks a name, one
// starts a thread with the other, and they see each other's messages with names and times,
// typing, presence, an image attachment shown inline, an edit, reactions, a reply with a
// mention, a deletion, and a reconnect.
// Screenshots go to target/test-artifacts/ (docs/demo.png in the README is one of them).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { deflateSync } from "node:zlib";
import { ROOT, startServer, launchChromium, sleep } from "./harness.mjs";

const ARTIFACTS = join(ROOT, "target", "test-artifacts");
// The page's welcome flow creates accounts by name, which is open mode's way; jwt mode is
// covered by the examples suite (the page with ?user and ?token).
const skip = process.env.THREADLINE_TEST_IDENTITY === "jwt" && "open mode only";

/** A real PNG: `size`² pixels in a diagonal gradient. */
function png(size) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const out = Buffer.alloc(12 + data.length);
    out.writeUInt32BE(data.length, 0);
    out.write(type, 4, "ascii");
    data.copy(out, 8);
    out.writeUInt32BE(crc(out.subarray(4, 8 + data.length)), 8 + data.length);
    return out;
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(size, 0);
  header.writeUInt32BE(size, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  const rows = [];
  for (let y = 0; y < size; y++) {
    rows.push(0);
    for (let x = 0; x < size; x++) rows.push((x * 255) / size, (y * 255) / size, 180);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", header),
    chunk("IDAT", deflateSync(Buffer.from(rows))),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

let server;
let browser;
before(async () => {
  if (skip) return;
  mkdirSync(ARTIFACTS, { recursive: true });
  server = await startServer();
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

/** A person's page: a browser profile of their own, a name picked on the welcome form. */
async function person(name) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 700 } });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(`${server.url}/demo/`);
  await page.locator("#welcome").waitFor();
  await page.fill("#name", name);
  await page.press("#name", "Enter");
  await page.waitForSelector("body[data-state=connected]", { timeout: 10000 });
  assert.match(await page.textContent("header"), new RegExp(name));
  return { page, errors };
}

const message = (page, text) => page.locator("#messages li", { hasText: text });

test("two people chat on the demo page", { skip, timeout: 90000 }, async () => {
  const ann = await person("Ann");
  const bob = await person("Bob");

  // Ann finds Bob among the people (the list refreshes by itself) and starts a thread.
  await ann.page.locator('#people button', { hasText: "Bob" }).click({ timeout: 15000 });
  await ann.page.waitForSelector("body[data-state=joined]", { timeout: 10000 });
  await ann.page.fill("#body", "hello Bob");
  await ann.page.press("#body", "Enter");
  await message(ann.page, "hello Bob").waitFor();

  // Bob sees the thread in his list, opens it: the message, with its author's name and a time.
  await bob.page.locator("#threads button", { hasText: "Ann" }).click({ timeout: 15000 });
  await bob.page.waitForSelector("body[data-state=joined]", { timeout: 10000 });
  const first = message(bob.page, "hello Bob");
  await first.waitFor();
  assert.equal(await first.locator(".author").textContent(), "Ann");
  assert.match(await first.locator("time").textContent(), /\d/);

  // Presence: Ann sees Bob online; typing: Ann sees Bob typing.
  await ann.page.locator("#online", { hasText: "Bob" }).waitFor({ timeout: 10000 });
  await bob.page.type("#body", "a picture", { delay: 20 });
  await ann.page.locator("#typing", { hasText: "Bob is typing" }).waitFor({ timeout: 10000 });

  // Bob attaches an image: it shows inline on Ann's page, through the server's file serving.
  await bob.page.setInputFiles("#attach", { name: "gradient.png", mimeType: "image/png", buffer: png(96) });
  await bob.page.press("#body", "Enter");
  const picture = message(ann.page, "a picture").locator("img");
  await picture.waitFor({ timeout: 15000 });
  await ann.page.waitForFunction(
    (text) => [...document.querySelectorAll("#messages li")].some((li) =>
      li.textContent.includes(text) && li.querySelector("img")?.naturalWidth === 96),
    "a picture", { timeout: 10000 });
  // Sending ends the typing.
  await ann.page.waitForFunction(() => document.getElementById("typing").textContent === "", null, { timeout: 10000 });

  // Ann edits her message, then deletes it: Bob sees both.
  const mine = message(ann.page, "hello Bob");
  ann.page.once("dialog", (dialog) => dialog.accept("hello Bob, edited"));
  await mine.hover();
  await mine.locator("button.edit").click();
  await message(bob.page, "hello Bob, edited").locator(".edited").waitFor({ timeout: 10000 });
  await ann.page.fill("#body", "this one stays");
  await ann.page.press("#body", "Enter");
  await message(bob.page, "this one stays").waitFor({ timeout: 10000 });

  // Bob reacts to it: both pages show the count; Ann adds hers with a click on it.
  const stays = message(bob.page, "this one stays");
  await stays.hover();
  await stays.locator("button.react").click();
  await message(ann.page, "this one stays").locator(".reactions button", { hasText: "👍 1" }).waitFor({ timeout: 10000 });
  await message(ann.page, "this one stays").locator(".reactions button").click();
  await stays.locator(".reactions button.mine", { hasText: "👍 2" }).waitFor({ timeout: 10000 });
  // Ann replies to it, mentioning Bob: the reply quotes it, the parent counts it, Bob is called out.
  const parent = message(ann.page, "this one stays");
  await parent.hover();
  await parent.locator("button.reply").click();
  await ann.page.locator("#replying", { hasText: "this one stays" }).waitFor();
  await ann.page.fill("#body", "agreed, @Bob");
  await ann.page.press("#body", "Enter");
  const reply = message(bob.page, "agreed, @Bob");
  await reply.locator(".reply-to", { hasText: "this one stays" }).waitFor({ timeout: 10000 });
  assert.ok(await reply.evaluate((li) => li.classList.contains("mentions-me")), "Bob's mention is marked");
  await stays.locator(".replies", { hasText: "1 reply" }).waitFor({ timeout: 10000 });
  await bob.page.screenshot({ path: join(ARTIFACTS, "demo-bob.png") });
  await ann.page.screenshot({ path: join(ARTIFACTS, "demo-ann.png") });

  ann.page.once("dialog", (dialog) => dialog.accept());
  const edited = message(ann.page, "hello Bob, edited");
  await edited.hover();
  await edited.locator("button.delete").click();
  await bob.page.locator("#messages li.deleted", { hasText: "(deleted)" }).waitFor({ timeout: 10000 });

  // Bob's connection drops: his page says so, comes back by itself, and misses nothing.
  await bob.page.evaluate(() => window.chat.socket.io.engine.close());
  await bob.page.waitForSelector("body[data-state=disconnected]", { timeout: 5000 });
  await ann.page.fill("#body", "while you were away");
  await ann.page.press("#body", "Enter");
  await bob.page.waitForSelector("body[data-state=joined]", { timeout: 15000 });
  await message(bob.page, "while you were away").waitFor({ timeout: 10000 });
  await sleep(200);
  assert.deepEqual([...ann.errors, ...bob.errors], []);
});
