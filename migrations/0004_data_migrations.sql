-- Data rewrites done by the server itself (in Rust, where SQL cannot express them), each
-- recorded once done so that later start-ups skip them.
CREATE TABLE data_migrations (
    name TEXT PRIMARY KEY
);
