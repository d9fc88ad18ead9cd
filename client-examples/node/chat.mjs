// The seed's hook-up notes, in Node: join a thread's room and print every `message:new`.
//
//   node node/chat.mjs [server] [threadId] [--say "text"] [--once] [--token JWT]
//
// Without a thread id it creates one. `--say` posts a message over REST once joined;
// `--once` exits after the first message arrives (used by the test suite). Against a server in
// jwt mode, `--token` (or THREADLINE_TOKEN) is sent in the handshake and on every request; the
// client is then the token's user.
import { io } from "socket.io-client";

const args = process.argv.slice(2);
const flag = (name) => {
  const i = args.indexOf(name);
  if (i === -1) return undefined;
  const [, value] = args.splice(i, 2);
  return value;
};
const once = args.includes("--once") && args.splice(args.indexOf("--once"), 1);
const say = flag("--say");
const token = flag("--token") ?? process.env.THREADLINE_TOKEN;
// Who we are: the token's user in jwt mode, else named to the gateway with X-User-Id.
const identity = token ? { authorization: `Bearer ${token}` } : { "x-user-id": "node-client" };
const server = args[0] || "http://localhost:5000";
let threadId = args[1];

if (!threadId) {
  const res = await fetch(`${server}/api/threads`, {
    method: "POST",
    headers: { "content-type": "application/json", ...identity },
    body: JSON.stringify({ title: "From Node", memberIds: ["node-client", "demo"] }),
  });
  threadId = (await res.json()).id;
  console.log(`created thread ${threadId}`);
}

const socket = io(server, { path: "/ws", auth: token ? { token } : {} });
// The position (`seq`) of the last message seen: every rejoin names it (`after`), and the server
// replays what came after it, so a dropped connection loses nothing. Before any message, the
// join ack's `seq` is where this client stands.
let lastSeq = null;
let posted = false;

socket.on("connect", () => {
  const rejoin = lastSeq !== null;
  socket.emit("thread:join", rejoin ? { threadId, after: lastSeq } : { threadId }, async (ack) => {
    if (!ack || !ack.ok) {
      console.error("join failed:", ack);
      process.exit(1);
    }
    if (lastSeq === null) lastSeq = ack.seq;
    console.log(rejoin ? `rejoined thread:${threadId}, ${ack.replayed} missed messages replayed` : `joined thread:${threadId}`);
    if (ack.truncated) console.log("more were missed than replayed: page GET /api/threads/:id/messages");
    if (say && !posted) {
      posted = true;
      await fetch(`${server}/api/threads/${threadId}/messages`, {
        method: "POST",
        headers: { "content-type": "application/json", ...identity },
        body: JSON.stringify({ body: say }),
      });
    }
  });
});

socket.on("message:new", ({ message }) => {
  lastSeq = message.seq;
  console.log(`message:new ${message.id} ${message.authorId}: ${message.body}`);
  if (once) {
    socket.close();
    process.exit(0);
  }
});

socket.on("connect_error", (err) => console.error("connect_error:", err.message));
