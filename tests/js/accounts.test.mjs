// The messenger API from a client's side: the README's SWR merge recipe against the live
// server, and one world shared with the threads API and Socket.IO.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { CLIENTS, startServer, api, connect, emitAck, collect, waitUntil, postMessage, identify } from "./harness.mjs";

let server;
before(async () => (server = await startServer()));
after(async () => server.stop());

let accountSeq = 0;

/** A new account. In jwt mode an account is its token's subject, so each gets its own. */
async function account(name) {
  const owner = { "x-user-id": `acct-${process.pid}-${++accountSeq}` };
  const res = await api(server, "POST", "/api/accounts", { name }, owner);
  assert.equal(res.status, 201);
  return res.body.id;
}

async function say(me, conv, text) {
  const res = await api(server, "POST", `/api/account/${me}/conversation/${conv}/messages`, { text });
  assert.equal(res.status, 201);
  return res.body;
}

const get = async (path, headers) => {
  const res = await api(server, "GET", path, undefined, headers);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body;
};

test("the README's SWR recipe assembles the conversation in exact order", async () => {
  const a = await account("Will");
  const b = await account("Jada");
  const conv = (await api(server, "POST", `/api/account/${a}/conversations?with=${b}`)).body.id;
  const all = [];
  for (let i = 0; i < 37; i++) all.push((await say(i % 3 ? a : b, conv, `before ${i}`)).id);

  const url = (cursor) =>
    `/api/${a}/conversation/${conv}/messages?pageSize=6` +
    (cursor ? `&cursor=${encodeURIComponent(cursor)}` : "");

  // useSWR(`/api/1/conversation/5/messages?pageSize=10`)
  let data = await get(url());
  assert.equal(data.sort, "NEWEST_FIRST");

  // New messages arrive, some through the threads API, while the page is open.
  for (let i = 0; i < 9; i++) {
    const id = i % 2
      ? (await say(b, conv, `after ${i}`)).id
      : (await postMessage(server, conv, `after ${i}`, { "x-user-id": a })).id;
    all.push(id);
  }

  let newerDone = false;
  let olderDone = data.cursor_next === null;
  let round = 0;
  while (!newerDone || !olderDone) {
    assert.ok(round++ < 50, "the walks end");
    if (!newerDone) {
      // received newer messages: prepend
      const newData = await get(url(data.cursor_prev));
      assert.equal(newData.sort, "NEWEST_FIRST");
      newerDone = newData.rows.length === 0;
      data = {
        rows: [...newData.rows, ...data.rows],
        sort: "NEWEST_FIRST",
        cursor_next: data.cursor_next,
        cursor_prev: newData.cursor_prev,
      };
    }
    if (!olderDone) {
      // received older messages: append, reversed into NEWEST_FIRST
      const newData = await get(url(data.cursor_next));
      assert.equal(newData.sort, "OLDEST_FIRST");
      data = {
        rows: [...data.rows, ...[...newData.rows].reverse()],
        sort: "NEWEST_FIRST",
        cursor_next: newData.cursor_next,
        cursor_prev: data.cursor_prev,
      };
      olderDone = data.cursor_next === null;
    }
  }
  assert.deepEqual(data.rows.map((m) => m.id), [...all].reverse());
});

test("a message posted through either API reaches clients joined through the other", async () => {
  const a = await account("Ann");
  const b = await account("Ben");
  const conv = (await api(server, "POST", `/api/account/${a}/conversations?with=${b}`)).body.id;
  const socket = await connect(server, CLIENTS[0], { auth: { userId: a } });
  try {
    assert.deepEqual(await emitAck(socket, "thread:join", { threadId: conv }), { ok: true, seq: 0 });
    const box = collect(socket);

    const viaAccounts = await say(b, conv, "from the accounts API");
    await waitUntil(() => box.length === 1, 5000, "delivery of the accounts-API message");
    const history = await get(`/api/threads/${conv}/messages`, { "x-user-id": a });
    assert.deepEqual(box[0], history.messages.at(-1), "the threads API's exact shape");
    assert.equal(box[0].id, viaAccounts.id);
    assert.equal(box[0].authorId, b);
    assert.equal(box[0].body, "from the accounts API");
    assert.equal(Date.parse(box[0].createdAt), viaAccounts.ts);

    const viaThreads = await postMessage(server, conv, "from the threads API", { "x-user-id": a });
    await waitUntil(() => box.length === 2, 5000, "delivery of the threads-API message");
    assert.deepEqual(box[1], viaThreads);
    const page = await get(`/api/account/${b}/conversation/${conv}/messages`);
    assert.deepEqual(page.rows[0], {
      id: viaThreads.id,
      sender: { id: a, name: "Ann" },
      text: "from the threads API",
      ts: Date.parse(viaThreads.createdAt),
      seq: viaThreads.seq,
    });
  } finally {
    socket.close();
  }
});

test("the demo world answers the README's requests", async () => {
  const demo = await startServer(["--demo"]);
  try {
    const path = "/api/1/conversation/5/messages?pageSize=2&cursor=eyJzb3J0IjoiTkVXRVNUX0ZJUlNUIiwibGFzdFNlZW4iOiIxMjQxIn0=";
    const res = await fetch(demo.url + path, { headers: identify(demo, {}, path) });
    const body = await res.json();
    assert.deepEqual(body.rows.map((r) => r.id), ["1243", "1242"]);
    assert.equal(body.cursor_prev, "eyJzb3J0IjoiTkVXRVNUX0ZJUlNUIiwibGFzdFNlZW4iOiIxMjQzIn0=");
  } finally {
    await demo.stop();
  }
});
