-- Which threads reference each file: a file is visible to the members of those threads.
CREATE TABLE message_files (
    file_id TEXT NOT NULL,
    thread_id TEXT NOT NULL REFERENCES threads (id),
    PRIMARY KEY (file_id, thread_id)
);
