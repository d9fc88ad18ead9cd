-- threadline's schema. Portable SQL: the same statements run on SQLite and PostgreSQL.

CREATE TABLE accounts (
    seq BIGINT PRIMARY KEY,          -- creation order; new accounts take id = seq
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL
);

CREATE TABLE threads (
    id TEXT PRIMARY KEY,
    title TEXT,
    member_ids TEXT NOT NULL,        -- JSON array, in the order the creator listed them
    member_key TEXT NOT NULL UNIQUE, -- sorted member ids joined by ','; resolves a member set
    created_at BIGINT NOT NULL,      -- milliseconds since the epoch
    updated_at BIGINT NOT NULL,
    last_seq BIGINT NOT NULL DEFAULT 0  -- the thread's last message position; its row lock orders appends
);

-- A member's threads by latest activity: a page of conversations is an index range scan.
CREATE TABLE thread_members (
    user_id TEXT NOT NULL,
    thread_id TEXT NOT NULL REFERENCES threads (id),
    activity BIGINT NOT NULL,
    PRIMARY KEY (user_id, thread_id)
);
CREATE INDEX thread_members_by_activity ON thread_members (user_id, activity, thread_id);

-- Messages keyed by position in their thread: a history page is an index range scan.
CREATE TABLE messages (
    thread_id TEXT NOT NULL REFERENCES threads (id),
    seq BIGINT NOT NULL,
    id TEXT NOT NULL UNIQUE,
    author_id TEXT NOT NULL,
    body TEXT NOT NULL,
    file_ids TEXT NOT NULL,          -- JSON array
    created_at BIGINT NOT NULL,
    client_id TEXT,                  -- idempotency key, unique per thread and author
    PRIMARY KEY (thread_id, seq)
);
CREATE UNIQUE INDEX messages_client_id ON messages (thread_id, author_id, client_id)
    WHERE client_id IS NOT NULL;

CREATE TABLE files (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    sha256 TEXT,
    status TEXT NOT NULL,
    uploader TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
