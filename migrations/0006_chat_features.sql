-- Replies, mentions, reactions, and a stable position for search.

-- The message a reply answers (same thread), and how many replies a message has.
ALTER TABLE messages ADD COLUMN reply_to TEXT;
ALTER TABLE messages ADD COLUMN reply_count BIGINT NOT NULL DEFAULT 0;
-- A message's replies, oldest first, are an index range scan.
CREATE INDEX messages_replies ON messages (thread_id, reply_to, seq) WHERE reply_to IS NOT NULL;
-- JSON arrays: the mentioned user ids; the reactions as [{"emoji": "…", "userIds": ["…"]}].
ALTER TABLE messages ADD COLUMN mentions TEXT;
ALTER TABLE messages ADD COLUMN reactions TEXT;
-- The store-wide order of messages, newest last: search answers newest first and pages by it.
-- Filled by each engine's own means (see src/store/sql/search.rs); never changes once set.
ALTER TABLE messages ADD COLUMN pos BIGINT;

-- Who was mentioned where: a member's unread mentions are an index range scan.
CREATE TABLE message_mentions (
    user_id TEXT NOT NULL,
    thread_id TEXT NOT NULL REFERENCES threads (id),
    seq BIGINT NOT NULL,
    PRIMARY KEY (user_id, thread_id, seq)
);
