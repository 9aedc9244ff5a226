-- Every record of the send ledgers (issue 13): `deliveries` keeps each recipient's final state,
-- `delivery_attempts` every try and its reply, so an analyst sees what happened between the first
-- 4xx and the final answer. One row per ledger line, keyed by where it is (file, byte_offset): the
-- sender's `seq` restarts when a chunk is resumed, so it orders records but cannot name one.
-- No primary key, as events (011): the load inserts only lines past the offset `loaded_files`
-- recorded, inside the transaction that moves that offset, so a line is never loaded twice.
CREATE TABLE delivery_attempts (
    campaign_id     VARCHAR NOT NULL,
    subscriber_id   BIGINT NOT NULL,
    variant         VARCHAR,
    chunk_id        INTEGER,
    attempt         INTEGER,
    status          VARCHAR NOT NULL,            -- as logged: in_flight, delivered, deferred, bounced, suppressed, failed
    smtp_code       INTEGER,
    enhanced_status VARCHAR,
    detail          VARCHAR,
    kind            VARCHAR,                     -- hard | soft (bounce taxonomy)
    reason          VARCHAR,
    provider        VARCHAR,
    retry_at        TIMESTAMPTZ,                 -- a deferral: when it is due again
    logged_at       TIMESTAMPTZ NOT NULL,
    file            VARCHAR NOT NULL,            -- the ledger file, as loaded_files names it
    byte_offset     BIGINT NOT NULL,             -- where the line starts in it
    seq             BIGINT                       -- the writer's sequence (restarts when a chunk resumes)
);

-- Suppression feedback: what caused each suppression. `source` is who decided (the writer of a
-- suppression log line, `ledger`, `events`, `ingest`, `soft_bounces`); `event_id` the event that
-- caused it (an unsubscribe, complaint or bounce event); campaign_id and subscriber_id the
-- delivery a ledger-caused one comes from.
ALTER TABLE suppressions ADD COLUMN source VARCHAR;
ALTER TABLE suppressions ADD COLUMN event_id VARCHAR;
ALTER TABLE suppressions ADD COLUMN campaign_id VARCHAR;
ALTER TABLE suppressions ADD COLUMN subscriber_id BIGINT;

-- Ledgers loaded before this table existed are read again from their start by the next aggregate,
-- so their attempts are kept too: deliveries take no harm (an older record never overwrites a
-- newer one, an equal one writes the same values).
DELETE FROM loaded_files WHERE path LIKE '%/ledger/%/chunk-%.ndjson';
