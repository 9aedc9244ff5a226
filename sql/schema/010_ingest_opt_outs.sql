-- Opt-outs always win (issue 10 item 7): an ingest counts the addresses its file opted out,
-- suppressed whether or not their rows were accepted.
ALTER TABLE ingest_batches ADD COLUMN opt_outs BIGINT DEFAULT 0;
