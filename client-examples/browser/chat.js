// A chat page written against the Express + Socket.IO stub's contract, unchanged for threadline:
// REST for history and posting, `thread:join` + `message:new` over Socket.IO at path /ws.
//
// URL parameters: ?thread=<id>&user=<id>&server=<origin>&token=<jwt> (all optional). Against a
// server in jwt mode, `token` is sent in the handshake and on every request, and `user` should
// be its subject.
(async () => {
  if (typeof io === "undefined") {
    // The page loaded, but not the Socket.IO client bundle the server serves from
    // client-examples/node_modules.
    const status = document.getElementById("status");
    status.textContent =
      "The Socket.IO client bundle is missing: run `(cd client-examples && npm install)` " +
      "in the threadline checkout, then reload this page.";
    document.body.dataset.state = "error";
    return;
  }
  const params = new URLSearchParams(location.search);
  const server = params.get("server") || location.origin;
  const user = params.get("user") || "guest-" + Math.random().toString(36).slice(2, 8);
  const token = params.get("token");
  const identity = token ? { authorization: `Bearer ${token}` } : { "x-user-id": user };
  const list = document.getElementById("messages");
  const status = document.getElementById("status");
  const shown = new Set();

  const api = async (method, path, body) => {
    const res = await fetch(server + path, {
      method,
      headers: { "content-type": "application/json", ...identity },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await res.json();
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${json.error}`);
    return json;
  };

  let threadId = params.get("thread");
  if (!threadId) {
    const thread = await api("POST", "/api/threads", { title: "Demo", memberIds: [user, "demo"] });
    threadId = thread.id;
    params.set("thread", threadId);
    history.replaceState(null, "", "?" + params);
  }
  document.getElementById("thread-id").textContent = threadId;
  document.getElementById("user-id").textContent = user;

  // The position of the last message shown (`seq`): every rejoin names it (`after`), and the
  // server replays what came after it, so a dropped connection loses nothing.
  let lastSeq = 0;
  const show = (message) => {
    if (shown.has(message.id)) return; // history and live events may overlap
    shown.add(message.id);
    lastSeq = Math.max(lastSeq, message.seq);
    const li = document.createElement("li");
    li.dataset.id = message.id;
    li.className = message.authorId === user ? "mine" : "";
    const author = document.createElement("span");
    author.className = "author";
    author.textContent = message.authorId;
    const body = document.createElement("span");
    body.className = "body";
    body.textContent = message.body;
    li.append(author, body);
    list.append(li);
    list.scrollTop = list.scrollHeight;
  };

  // Full history, oldest first, following nextCursor.
  let cursor = null;
  do {
    const q = cursor ? `?limit=200&cursor=${encodeURIComponent(cursor)}` : "?limit=200";
    const page = await api("GET", `/api/threads/${threadId}/messages${q}`);
    page.messages.forEach(show);
    cursor = page.nextCursor;
  } while (cursor);

  const socket = io(server, { path: "/ws", auth: token ? { token } : {} });
  window.chat = { socket }; // for the console (and the test suite)
  // Join on every (re)connect: rooms do not survive a new session.
  socket.on("connect", () => {
    socket.emit("thread:join", { threadId, after: lastSeq }, (ack) => {
      status.textContent = ack && ack.ok ? "live" : "join failed: " + (ack && ack.error);
      document.body.dataset.state = ack && ack.ok ? "joined" : "error";
    });
  });
  socket.on("disconnect", () => {
    status.textContent = "reconnecting…";
    document.body.dataset.state = "disconnected";
  });
  socket.on("message:new", ({ message }) => show(message));
  socket.on("message:updated", ({ message }) => {
    const body = list.querySelector(`li[data-id="${CSS.escape(message.id)}"] .body`);
    if (body) body.textContent = message.body + " (edited)";
  });
  socket.on("message:deleted", ({ messageId }) => {
    const body = list.querySelector(`li[data-id="${CSS.escape(messageId)}"] .body`);
    if (body) body.textContent = "(deleted)";
  });

  document.getElementById("composer").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = document.getElementById("body");
    const text = input.value;
    if (!text.trim()) return;
    input.value = "";
    const { message } = await api("POST", `/api/threads/${threadId}/messages`, { body: text });
    show(message);
  });
})().catch((err) => {
  document.getElementById("status").textContent = String(err);
  document.body.dataset.state = "error";
});
