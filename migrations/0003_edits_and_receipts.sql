-- Edits, deletions (tombstones) and read positions.

ALTER TABLE messages ADD COLUMN edited_at BIGINT;
ALTER TABLE messages ADD COLUMN deleted_at BIGINT;
-- The last edit or deletion: a reconnecting client's missed changes are an index range scan.
ALTER TABLE messages ADD COLUMN changed_at BIGINT;
CREATE INDEX messages_changed ON messages (thread_id, changed_at);

-- Each member's read position: the seq of the last message they have read. It only moves forward.
CREATE TABLE read_positions (
    thread_id TEXT NOT NULL REFERENCES threads (id),
    user_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (thread_id, user_id)
);
