-- A bounded quarantine (issue 8): identical rejected rows of a file are one entry with a
-- count, and raw keeps at most 4,096 characters (tasks/bounds.py RAW_LIMIT) with the whole
-- text's SHA-256 beside it. A 460 KB gzip of ten million copies of one bad row had written
-- ten million entries (a 1.7 GB export), and one 200 MB line had been stored whole.
-- Rebuilt rather than altered: DuckDB cannot add NOT NULL to a column updated in the same
-- transaction, and a migration is one transaction.
CREATE TABLE quarantine_v2 (
    batch_id    VARCHAR NOT NULL,
    source      VARCHAR NOT NULL,
    line        BIGINT NOT NULL,                 -- 1-based line of the record (of its first copy)
    reason      VARCHAR NOT NULL,
    raw         VARCHAR NOT NULL,                -- the row as read: at most 4,096 characters, then a marker
    ingested_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    rule        VARCHAR,
    raw_sha256  VARCHAR NOT NULL,                -- of the whole row's text
    count       BIGINT NOT NULL DEFAULT 1        -- rows of the file this entry stands for
);
INSERT INTO quarantine_v2
SELECT batch_id, source, line, reason,
       CASE WHEN length(raw) > 4096
            THEN left(raw, 4096) || ' …[truncated: ' || format('{:,}', strlen(raw)) || ' bytes]'
            ELSE raw END,
       ingested_at, rule, sha256(raw), 1
FROM quarantine;
DROP TABLE quarantine;
ALTER TABLE quarantine_v2 RENAME TO quarantine;
