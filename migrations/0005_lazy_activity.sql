-- A post no longer writes one row per member: it records its thread's new activity here, in
-- the same transaction, and the server copies it to the members' rows afterwards (coalescing
-- bursts). A row left behind by a crash is copied by whichever node starts or sweeps next.
CREATE TABLE activity_pending (
    thread_id TEXT PRIMARY KEY,
    activity BIGINT NOT NULL
);
-- Copying a thread's activity to its members is an index range scan, not a table scan.
CREATE INDEX thread_members_by_thread ON thread_members (thread_id);
