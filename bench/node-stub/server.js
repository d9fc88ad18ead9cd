// The seed's Express + Socket.IO messaging stub (backend-api-stubs-messaging.ts), as plain
// JavaScript, completed where the seed is cut off: the type definitions, the in-memory stores,
// cuid(), shapeMessage, broadcastNewMessage, the Socket.IO setup at path /ws, and the start of
// the threads router. Everything the seed shows is kept as it is (including its linear cursor).
// This is the benchmark's baseline, not part of the product.
"use strict";
const http = require("node:http");
const crypto = require("node:crypto");
const express = require("express");
const { Router } = express;
const { Server } = require("socket.io");

let counter = 0;
function cuid() {
  return "c" + Date.now().toString(36) + (counter++).toString(36) + crypto.randomBytes(4).toString("hex");
}

function createMessagingServer() {
  const app = express();
  app.use(express.json());
  app.use((req, res, next) => {
    res.setHeader("Access-Control-Allow-Origin", "*");
    next();
  });
  const server = http.createServer(app);
  const io = new Server(server, { path: "/ws", cors: { origin: "*" } });

  /** In-memory stores */
  const threads = new Map(); // id -> { id, title, memberIds, createdAt, updatedAt }
  const messages = new Map(); // threadId -> Message[]
  const files = new Map(); // id -> { id, name, url, status }

  function shapeMessage(m) {
    return {
      id: m.id,
      threadId: m.threadId,
      authorId: m.authorId,
      body: m.body,
      fileIds: m.fileIds,
      files: m.fileIds.map((id) => files.get(id)).filter(Boolean)
        .map((f) => ({ id: f.id, name: f.name, url: f.url, status: f.status || "ready" })),
      createdAt: m.createdAt,
    };
  }

  function broadcastNewMessage(msg) {
    io.to(`thread:${msg.threadId}`).emit("message:new", { message: shapeMessage(msg) });
  }

  io.on("connection", (socket) => {
    socket.on("thread:join", (payload, ack) => {
      const threadId = payload && payload.threadId;
      if (!threadId) return typeof ack === "function" && ack({ error: "invalid_payload" });
      socket.join(`thread:${threadId}`);
      if (typeof ack === "function") ack({ ok: true });
    });
    socket.on("thread:leave", (payload, ack) => {
      const threadId = payload && payload.threadId;
      if (threadId) socket.leave(`thread:${threadId}`);
      if (typeof ack === "function") ack({ ok: true });
    });
  });

  /** Threads Router */
  const threadsRouter = Router();
  // POST /api/threads { title?, memberIds } (create/resolve)
  threadsRouter.post("/", (req, res) => {
    const { title, memberIds } = req.body || {};
    if (!Array.isArray(memberIds) || memberIds.length === 0) {
      return res.status(400).json({ error: "invalid_members" });
    }
    const key = [...new Set(memberIds)].sort().join(",");
    for (const t of threads.values()) {
      if ([...new Set(t.memberIds)].sort().join(",") === key) {
        return res.json({ id: t.id, title: t.title, memberIds: t.memberIds, memberNames: t.memberIds, createdAt: t.createdAt, updatedAt: t.updatedAt });
      }
    }
    const now = new Date().toISOString();
    const t = { id: cuid(), title, memberIds: [...new Set(memberIds)], createdAt: now, updatedAt: now };
    threads.set(t.id, t);
    messages.set(t.id, []);
    return res.status(201).json({ id: t.id, title: t.title, memberIds: t.memberIds, memberNames: t.memberIds, createdAt: t.createdAt, updatedAt: t.updatedAt });
  });
  // GET /api/threads/:id (details)
  threadsRouter.get("/:id", (req, res) => {
    const t = threads.get(req.params.id);
    if (!t) return res.status(404).json({ error: "thread_not_found" });
    return res.json({ id: t.id, title: t.title, memberIds: t.memberIds, memberNames: t.memberIds, createdAt: t.createdAt, updatedAt: t.updatedAt });
  });
  app.use("/api/threads", threadsRouter);

  /** Messages Router (verbatim from the seed) */
  const messagesRouter = Router({ mergeParams: true });
  messagesRouter.get("/", (req, res) => {
    const { threadId } = req.params;
    const list = messages.get(threadId) || [];
    const limit = Math.min(parseInt(String(req.query.limit || 50), 10) || 50, 200);
    // naive cursor by index for stub
    const cursor = req.query.cursor ? list.findIndex((m) => m.id === req.query.cursor) + 1 : 0;
    const slice = list.slice(cursor, cursor + limit);
    const nextCursor = cursor + limit < list.length ? list[cursor + limit - 1]?.id : null;
    return res.json({ messages: slice.map(shapeMessage), nextCursor });
  });
  messagesRouter.post("/", (req, res) => {
    const { threadId } = req.params;
    const t = threads.get(threadId);
    if (!t) return res.status(404).json({ error: "thread_not_found" });
    const { body, fileIds } = req.body;
    if ((!body || !body.trim()) && !(fileIds && fileIds.length)) {
      return res.status(400).json({ error: "empty_message" });
    }
    const now = new Date().toISOString();
    const msg = { id: cuid(), threadId, authorId: "me", body: (body || "").trim(), fileIds: fileIds || [], createdAt: now };
    const arr = messages.get(threadId) || [];
    arr.push(msg);
    messages.set(threadId, arr);
    t.updatedAt = now;
    broadcastNewMessage(msg);
    return res.status(201).json({ message: shapeMessage(msg) });
  });
  app.use("/api/threads/:threadId/messages", messagesRouter);

  /** Files status (verbatim from the seed) */
  const filesRouter = Router();
  filesRouter.get("/:id/status", (req, res) => {
    const f = files.get(req.params.id);
    if (!f) return res.status(404).json({ error: "not_found" });
    return res.json({ id: f.id, name: f.name, url: f.url, status: f.status || "ready" });
  });
  app.use("/api/files", filesRouter);

  app.get("/healthz", (req, res) => res.json({ status: "ok" }));

  return { app, server, io };
}

if (require.main === module) {
  const { server } = createMessagingServer();
  const PORT = process.env.PORT ? Number(process.env.PORT) : 5000;
  server.listen(PORT, process.env.HOST || "0.0.0.0", 511, () => {
    console.log(`listening on http://${process.env.HOST || "0.0.0.0"}:${server.address().port}`);
  });
}

module.exports = { createMessagingServer };
