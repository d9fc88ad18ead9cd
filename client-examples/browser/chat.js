// A small chat page on threadline's two public contracts, unchanged: the REST APIs for accounts,
// threads, history, files, edits and reactions, and Socket.IO at path /ws for everything live
// (join with replay, message:send with ack, replies, typing, presence, read receipts, edits,
// deletions, reactions and mentions).
//
// A first visit asks for a name (an account, kept in localStorage). URL parameters, all
// optional: ?thread=<id> opens a thread; ?user=<id> acts as that user without an account;
// ?token=<jwt> for a server in jwt mode (sent in the handshake and on every request);
// ?server=<origin> for a server elsewhere.
(async () => {
  const $ = (id) => document.getElementById(id);
  const status = $("status");
  const setState = (state, text) => {
    document.body.dataset.state = state;
    status.textContent = text;
  };
  if (typeof io === "undefined") {
    // The page loaded, but not the Socket.IO client bundle the server serves from
    // client-examples/node_modules.
    setState("error", "The Socket.IO client bundle is missing: run `(cd client-examples && npm install)` " +
      "in the threadline checkout, then reload this page.");
    return;
  }

  const params = new URLSearchParams(location.search);
  const server = params.get("server") || location.origin;
  const token = params.get("token");
  const subject = token && JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))).sub;
  const headers = (me) => (token ? { authorization: `Bearer ${token}` } : me?.id ? { "x-user-id": me.id } : {});

  let me = null;
  const api = async (method, path, body) => {
    const res = await fetch(server + path, {
      method,
      headers: { ...(body === undefined ? {} : { "content-type": "application/json" }), ...headers(me) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = res.status === 204 ? null : await res.json();
    if (!res.ok) throw Object.assign(new Error(`${method} ${path}: ${res.status} ${json?.error}`), { status: res.status });
    return json;
  };

  // Who is chatting: ?user, else the saved account, else a new one under the name given.
  if (params.get("user") || subject) {
    const id = params.get("user") || subject;
    me = { id, name: id };
  } else {
    me = JSON.parse(localStorage.getItem("threadline.me") || "null");
  }
  if (!me) {
    me = { id: "", name: "" };
    $("sidebar").hidden = $("chat").hidden = true;
    $("welcome").hidden = false;
    $("whoami").textContent = "";
    setState("starting", "welcome");
    $("name").focus();
    const name = await new Promise((resolve) =>
      $("name-form").addEventListener("submit", (event) => {
        event.preventDefault();
        resolve($("name").value.trim());
      }, { once: true }));
    me = await api("POST", "/api/accounts", { name });
    localStorage.setItem("threadline.me", JSON.stringify(me));
    $("welcome").hidden = true;
    $("sidebar").hidden = $("chat").hidden = false;
  }
  $("whoami").innerHTML = 'as <code id="user-id"></code> in <code id="thread-id">no thread yet</code>';
  $("user-id").textContent = me.name === me.id ? me.id : `${me.name} (${me.id})`;

  const list = $("messages");
  let current = null; // the open thread's id
  let names = new Map(); // its members' names
  let lastSeq = 0; // the position of the last message shown: every rejoin names it (`after`)
  const typing = new Map(); // who is typing in it
  const shown = new Map(); // the open thread's messages by id, as last drawn
  let replyingTo = null; // the message the composer answers
  const time = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });

  const socket = io(server, { path: "/ws", auth: token ? { token } : { userId: me.id } });
  window.chat = { socket, me, open: (id) => openThread(id) }; // for the console (and the tests)

  // --- The sidebar: threads (the accounts API's conversations) and people ------------------
  const others = (participants) =>
    participants.filter((p) => p.id !== me.id).map((p) => p.name).join(", ") || "just you";
  async function loadThreads() {
    let page;
    try {
      page = await api("GET", `/api/account/${encodeURIComponent(me.id)}/conversations?pageSize=50`);
    } catch (e) {
      if (e.status === 404) return; // acting as a user without an account: no list
      throw e;
    }
    const ul = $("threads");
    ul.replaceChildren();
    for (const c of page.rows) {
      const li = document.createElement("li");
      li.dataset.thread = c.id;
      li.classList.toggle("current", c.id === current);
      const button = document.createElement("button");
      const unread = c.id !== current && c.unreadCount ? `<span class="unread">${c.unreadCount}</span>` : "";
      button.innerHTML = `${unread}<span class="who"></span><span class="preview"></span>`;
      button.querySelector(".who").textContent = others(c.participants);
      button.querySelector(".preview").textContent = c.lastMessage ? `${c.lastMessage.sender.name}: ${c.lastMessage.text}` : "no messages yet";
      button.onclick = () => openThread(c.id);
      li.append(button);
      ul.append(li);
    }
    if (!page.rows.length) ul.innerHTML = '<li class="hint">No threads yet: pick someone below.</li>';
  }
  async function loadPeople() {
    const { accounts } = await api("GET", "/api/accounts?limit=100");
    const ul = $("people");
    ul.replaceChildren();
    for (const account of accounts.filter((a) => a.id !== me.id)) {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.textContent = account.name;
      button.dataset.account = account.id;
      button.onclick = async () => {
        const conversation = await api("POST", `/api/account/${encodeURIComponent(me.id)}/conversations?with=${encodeURIComponent(account.id)}`);
        await openThread(conversation.id);
        loadThreads();
      };
      li.append(button);
      ul.append(li);
    }
  }
  const refresh = () => Promise.all([loadThreads(), loadPeople()]).catch((e) => console.warn(e));
  setInterval(refresh, 5000);

  // --- Messages -------------------------------------------------------------------------------
  /** A file's bytes as an object URL: fetched with this page's identity (jwt mode needs it). */
  const fileUrl = async (file) => URL.createObjectURL(await (await fetch(server + file.url, { headers: headers(me) })).blob());
  const isImage = (file) => /\.(png|jpe?g|gif|webp|bmp)$/i.test(file.name);

  function render(message) {
    const li = document.createElement("li");
    li.dataset.id = message.id;
    li.dataset.seq = message.seq;
    li.className = (message.authorId === me.id ? "mine" : "") + (message.deletedAt ? " deleted" : "");
    const at = document.createElement("time");
    at.dateTime = message.createdAt;
    at.title = new Date(message.createdAt).toLocaleString();
    at.textContent = time.format(new Date(message.createdAt));
    const author = document.createElement("span");
    author.className = "author";
    author.textContent = names.get(message.authorId) || message.authorId;
    const body = document.createElement("span");
    body.className = "body";
    body.textContent = message.deletedAt ? "(deleted)" : message.body;
    if (message.replyTo) {
      const parent = shown.get(message.replyTo);
      const quote = document.createElement("span");
      quote.className = "reply-to";
      quote.textContent = parent
        ? `↪ ${names.get(parent.authorId) || parent.authorId}: ${parent.deletedAt ? "(deleted)" : parent.body.slice(0, 60)}`
        : "↪ a reply";
      li.append(quote);
    }
    li.append(at, author, body);
    if ((message.mentions || []).includes(me.id)) li.classList.add("mentions-me");
    if (message.editedAt && !message.deletedAt) {
      const edited = document.createElement("span");
      edited.className = "edited";
      edited.textContent = "(edited)";
      li.append(edited);
    }
    if (message.replyCount) {
      const replies = document.createElement("span");
      replies.className = "replies";
      replies.textContent = `${message.replyCount} ${message.replyCount === 1 ? "reply" : "replies"}`;
      li.append(replies);
    }
    if (!message.deletedAt) li.append(reactionBar(message));
    if (!message.deletedAt) {
      const actions = document.createElement("span");
      actions.className = "actions";
      actions.innerHTML = '<button class="react">👍</button><button class="reply">reply</button>';
      actions.querySelector(".react").onclick = () => toggleReaction(message, "👍");
      actions.querySelector(".reply").onclick = () => startReply(message);
      li.prepend(actions);
    }
    if (message.authorId === me.id && !message.deletedAt) {
      const actions = li.querySelector(".actions");
      actions.insertAdjacentHTML("beforeend", '<button class="edit">edit</button><button class="delete">delete</button>');
      actions.querySelector(".edit").onclick = async () => {
        const text = prompt("Edit message", message.body);
        if (text !== null && text.trim()) await api("PATCH", `/api/threads/${current}/messages/${message.id}`, { body: text });
      };
      actions.querySelector(".delete").onclick = async () => {
        if (confirm("Delete this message?")) await api("DELETE", `/api/threads/${current}/messages/${message.id}`);
      };
    }
    const files = document.createElement("div");
    files.className = "files";
    for (const file of message.deletedAt ? [] : message.files || []) {
      if (file.status === "ready" && isImage(file)) {
        const img = document.createElement("img");
        img.alt = file.name;
        fileUrl(file).then((url) => (img.src = url));
        files.append(img);
      } else {
        const a = document.createElement("a");
        a.href = "#";
        a.textContent = `[file] ${file.name}`;
        a.onclick = async (event) => {
          event.preventDefault();
          const link = Object.assign(document.createElement("a"), { href: await fileUrl(file), download: file.name });
          link.click();
        };
        files.append(a);
      }
    }
    if (files.childElementCount) li.append(files);
    return li;
  }

  /** The message's reactions: one button per emoji with its count; a click toggles mine. */
  function reactionBar(message) {
    const bar = document.createElement("span");
    bar.className = "reactions";
    for (const r of message.reactions || []) {
      const button = document.createElement("button");
      button.textContent = `${r.emoji} ${r.count}`;
      button.title = r.userIds.map((u) => names.get(u) || u).join(", ");
      button.classList.toggle("mine", r.userIds.includes(me.id));
      button.onclick = () => toggleReaction(message, r.emoji);
      bar.append(button);
    }
    return bar;
  }

  /** Adds my reaction, or takes it back if it is there; the room (this page too) hears `reaction:updated`. */
  async function toggleReaction(message, emoji) {
    const mine = shown.get(message.id)?.reactions?.some((r) => r.emoji === emoji && r.userIds.includes(me.id));
    const ack = await socket.timeout(10000).emitWithAck(mine ? "reaction:remove" : "reaction:add",
      { threadId: current, messageId: message.id, emoji });
    if (ack.error) setState("error", `reaction refused: ${ack.error}`);
  }

  function startReply(message) {
    replyingTo = message;
    $("replying-to").textContent = `${names.get(message.authorId) || message.authorId}: ${message.body.slice(0, 60)}`;
    $("replying").hidden = false;
    $("body").focus();
  }
  function endReply() {
    replyingTo = null;
    $("replying").hidden = true;
  }
  $("cancel-reply").onclick = endReply;

  /** Shows a message once (history, acks and live events overlap), or redraws it in place. */
  function show(message) {
    if (message.threadId !== current) return;
    shown.set(message.id, message);
    const old = list.querySelector(`li[data-id="${CSS.escape(message.id)}"]`);
    const li = render(message);
    if (old) return old.replaceWith(li);
    lastSeq = Math.max(lastSeq, message.seq);
    list.append(li);
    list.scrollTop = list.scrollHeight;
    if (message.authorId !== me.id && document.visibilityState === "visible") {
      socket.emit("thread:read", { threadId: current, messageId: message.id });
    }
  }

  function join() {
    if (!current || !socket.connected) return;
    socket.emit("thread:join", { threadId: current, after: lastSeq }, (ack) => {
      if (ack && ack.ok) setState("joined", "live");
      else setState("error", "join failed: " + (ack && ack.error));
    });
  }

  async function openThread(id) {
    if (current && socket.connected) socket.emit("thread:leave", { threadId: current });
    current = id;
    params.set("thread", id);
    history.replaceState(null, "", "?" + params);
    $("thread-id").textContent = id;
    list.replaceChildren();
    shown.clear();
    endReply();
    lastSeq = 0;
    typing.clear();
    showTyping();
    $("online").textContent = "";
    for (const li of $("threads").children) li.classList.toggle("current", li.dataset.thread === id);
    const thread = await api("GET", `/api/threads/${id}`);
    names = new Map(thread.memberIds.map((m, i) => [m, thread.memberNames[i]]));
    $("thread-title").textContent = thread.title ||
      thread.memberIds.filter((m) => m !== me.id).map((m) => names.get(m)).join(", ") || "just you";
    // History, oldest first, following nextCursor (the last 2,000 at most).
    let cursor = null;
    let pages = 0;
    do {
      const q = cursor ? `?limit=200&cursor=${encodeURIComponent(cursor)}` : "?limit=200";
      const page = await api("GET", `/api/threads/${id}/messages${q}`);
      if (current !== id) return;
      page.messages.forEach(show);
      cursor = page.nextCursor;
    } while (cursor && ++pages < 10);
    join();
    $("body").focus();
  }

  // --- Live ----------------------------------------------------------------------------------
  socket.on("connect", () => {
    if (current) join();
    else setState("connected", "connected");
  });
  socket.on("disconnect", () => setState("disconnected", "reconnecting…"));
  socket.io.on("reconnect_attempt", (n) => setState("disconnected", `reconnecting… (attempt ${n})`));
  socket.on("connect_error", (e) => setState("disconnected", `cannot connect: ${e.message}`));
  socket.on("message:new", ({ message }) => {
    show(message);
    loadThreads().catch(() => {});
  });
  socket.on("message:updated", ({ message }) => show(message));
  socket.on("message:deleted", ({ threadId, messageId }) => {
    const li = list.querySelector(`li[data-id="${CSS.escape(messageId)}"]`);
    if (threadId !== current || !li) return;
    li.classList.add("deleted");
    li.querySelector(".body").textContent = "(deleted)";
    li.querySelector(".actions")?.remove();
    li.querySelector(".files")?.remove();
    li.querySelector(".edited")?.remove();
    li.querySelector(".reactions")?.remove();
  });
  socket.on("reaction:updated", ({ threadId, messageId, reactions }) => {
    const message = shown.get(messageId);
    if (threadId === current && message) show({ ...message, reactions });
  });
  socket.on("mention", ({ threadId, message }) => {
    if (threadId !== current) setState(document.body.dataset.state, `${names.get(message.authorId) || message.authorId} mentioned you`);
  });
  socket.on("presence", ({ threadId, online }) => {
    if (threadId !== current) return;
    $("online").textContent = online.length ? "● " + online.map((u) => names.get(u) || u).join(", ") + " online" : "";
  });
  function showTyping() {
    const who = [...typing.keys()].map((u) => names.get(u) || u);
    $("typing").textContent = who.length === 0 ? "" : `${who.join(" and ")} ${who.length > 1 ? "are" : "is"} typing…`;
  }
  socket.on("typing", ({ threadId, userId, typing: on }) => {
    if (threadId !== current || userId === me.id) return;
    clearTimeout(typing.get(userId));
    if (on) typing.set(userId, setTimeout(() => (typing.delete(userId), showTyping()), 6000));
    else typing.delete(userId);
    showTyping();
  });

  // --- Composing -----------------------------------------------------------------------------
  let typingSince = 0;
  let typingStop;
  const stopTyping = () => {
    clearTimeout(typingStop);
    if (typingSince && current) socket.emit("typing", { threadId: current, typing: false });
    typingSince = 0;
  };
  $("body").addEventListener("input", () => {
    if (!current || !socket.connected) return;
    if (Date.now() - typingSince > 2000) {
      socket.emit("typing", { threadId: current, typing: true });
      typingSince = Date.now();
    }
    clearTimeout(typingStop);
    typingStop = setTimeout(stopTyping, 3000);
  });

  async function upload(file) {
    const form = new FormData();
    form.append("file", file, file.name);
    const res = await fetch(server + "/api/files", { method: "POST", body: form, headers: headers(me) });
    const uploaded = await res.json();
    if (!res.ok) throw new Error(`upload: ${res.status} ${uploaded.error}`);
    for (let i = 0; i < 100; i++) {
      const { status: state } = await api("GET", `/api/files/${uploaded.id}/status`);
      if (state === "ready") return uploaded.id;
      if (state === "failed") throw new Error("upload failed");
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error("upload still processing");
  }

  $("composer").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!current) return;
    const input = $("body");
    const attach = $("attach");
    const text = input.value;
    const file = attach.files[0];
    if (!text.trim() && !file) return;
    input.value = "";
    attach.value = "";
    stopTyping();
    try {
      const fileIds = file ? [await upload(file)] : [];
      const draft = { threadId: current, body: text, fileIds, clientMessageId: crypto.randomUUID() };
      if (replyingTo) draft.replyTo = replyingTo.id;
      // @name mentions the member of that name.
      const mentions = [...names].filter(([id, name]) => id !== me.id && text.includes(`@${name}`)).map(([id]) => id);
      if (mentions.length) draft.mentions = mentions;
      endReply();
      if (socket.connected) {
        const ack = await socket.timeout(10000).emitWithAck("message:send", draft);
        if (!ack.ok) throw new Error(ack.error);
        show(ack.message);
      } else {
        // Offline: the same post over REST (the clientMessageId makes a retry harmless).
        const { message } = await api("POST", `/api/threads/${current}/messages`, draft);
        show(message);
      }
    } catch (e) {
      setState("error", `not sent: ${e.message}`);
    }
  });

  await refresh();
  if (params.get("thread")) await openThread(params.get("thread"));
})().catch((err) => {
  document.getElementById("status").textContent = String(err);
  document.body.dataset.state = "error";
});
