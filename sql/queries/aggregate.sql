-- name: stage_attempt_table
-- The ledger records this run read (each file from where the last run stopped), parsed: they
-- become delivery_attempts rows as they are and fold into deliveries (upsert_deliveries).
CREATE OR REPLACE TEMP TABLE staged_attempts AS
SELECT * FROM delivery_attempts LIMIT 0;

-- name: ledger_lines_as_records
-- The line-by-line path, for a block Polars cannot read whole: one JSON parse per line, every
-- field in one pass (as event_lines_as_records). A line that is not a whole record (the rest of a
-- torn one, ended by the writer that resumed the chunk) is skipped, as ledger_state does: it
-- never became a record.
WITH lines AS (
    SELECT file, byte_offset, CASE WHEN json_valid(text) THEN text::JSON END AS j
    FROM input_event_lines
),
fields AS (
    SELECT file, byte_offset, json_extract_string(j, [
        '$.campaign_id', '$.subscriber_id', '$.variant', '$.chunk_id', '$.attempt', '$.status', '$.smtp_code',
        '$.enhanced_status', '$.detail', '$.kind', '$.reason', '$.provider', '$.retry_at', '$.logged_at',
        '$.seq']) AS v
    FROM lines
    WHERE json_type(j) = 'OBJECT'
),
final AS (
    SELECT file, byte_offset, v[1] AS campaign_id, v[2] AS subscriber_id, v[3] AS variant, v[4] AS chunk_id,
           v[5] AS attempt, v[6] AS status, v[7] AS smtp_code, v[8] AS enhanced_status, v[9] AS detail, v[10] AS kind,
           v[11] AS reason, v[12] AS provider, v[13] AS retry_at, v[14] AS logged_at, v[15] AS seq
    FROM fields
)
SELECT * FROM final;

-- name: stage_ledger_records
-- Ledger records (from Polars' reader or the line-by-line path, fields as text) typed; one
-- without a recipient, a status or a time is no record.
INSERT INTO staged_attempts BY NAME
WITH records AS (
    SELECT * FROM input_ledger
),
typed AS (
    SELECT file, byte_offset, campaign_id, try_cast(subscriber_id AS BIGINT) AS subscriber_id, variant,
           try_cast(chunk_id AS INTEGER) AS chunk_id, coalesce(try_cast(attempt AS INTEGER), 1) AS attempt, status,
           try_cast(smtp_code AS INTEGER) AS smtp_code, enhanced_status, detail, kind, reason,
           nullif(provider, '') AS provider, try_cast(retry_at AS TIMESTAMPTZ) AS retry_at,
           try_cast(logged_at AS TIMESTAMPTZ) AS logged_at, try_cast(seq AS BIGINT) AS seq
    FROM records
),
final AS (
    SELECT * FROM typed
    WHERE campaign_id IS NOT NULL AND subscriber_id IS NOT NULL AND status IS NOT NULL AND logged_at IS NOT NULL
)
SELECT * FROM final;

-- name: insert_delivery_attempts
-- Every record as logged. A line is staged once: only bytes past the offset loaded_files recorded
-- are read, and that offset moves in the same transaction.
INSERT INTO delivery_attempts BY NAME SELECT * FROM staged_attempts;

-- name: record_ledger_files
-- How far each ledger file was read (whole lines); a torn last line is read again next run.
INSERT INTO loaded_files (path, bytes, rows)
SELECT file, bytes_loaded, rows FROM input_event_progress
ON CONFLICT (path) DO UPDATE SET bytes = excluded.bytes, rows = loaded_files.rows + excluded.rows, loaded_at = now();

-- name: upsert_deliveries
-- Ledgers hold every attempt; deliveries holds the latest per recipient. A recipient's
-- records are ordered by time then by their place in the file, and an older record
-- never overwrites a newer one, so loading the same file twice changes nothing.
WITH ledger AS (
    SELECT * FROM staged_attempts
),
latest AS (
    SELECT *
    FROM ledger
    QUALIFY row_number() OVER (PARTITION BY campaign_id, subscriber_id ORDER BY logged_at DESC, byte_offset DESC) = 1
),
final AS (
    -- a recipient whose last record is in_flight was on the wire when its sender died
    SELECT campaign_id, subscriber_id, variant, chunk_id,
           CASE WHEN status = 'in_flight' THEN 'in_doubt' ELSE status END AS status,
           smtp_code, enhanced_status, detail, attempt AS attempts, logged_at AS sent_at,
           kind, reason, provider, retry_at
    FROM latest
)
INSERT INTO deliveries BY NAME
SELECT * FROM final
ON CONFLICT (campaign_id, subscriber_id) DO UPDATE SET
    variant = excluded.variant,
    chunk_id = excluded.chunk_id,
    status = excluded.status,
    smtp_code = excluded.smtp_code,
    enhanced_status = excluded.enhanced_status,
    detail = excluded.detail,
    attempts = greatest(deliveries.attempts, excluded.attempts),
    sent_at = excluded.sent_at,
    kind = excluded.kind,
    reason = excluded.reason,
    provider = excluded.provider,
    retry_at = excluded.retry_at
WHERE excluded.sent_at >= deliveries.sent_at;

-- name: drop_staged_attempts
DROP TABLE IF EXISTS staged_attempts;

-- name: insert_transitions
-- Lifecycle moves from campaigns/<id>/transitions.ndjson; a move already loaded (same seq) is kept.
INSERT INTO campaign_transitions
SELECT campaign_id, seq, "at"::TIMESTAMPTZ, from_state, to_state, "by", coalesce(reason, '')
FROM input_transitions
ON CONFLICT (campaign_id, seq) DO NOTHING;

-- name: refresh_campaign_status
-- The lifecycle's files are the truth: a campaign takes the state of its latest recorded move.
-- One planned before moves were recorded is `sent` once every frozen recipient has a final
-- outcome (a deferred or in-doubt one is not: issue 10), `sending` before.
WITH latest AS (
    SELECT campaign_id, to_state AS status
    FROM campaign_transitions
    QUALIFY row_number() OVER (PARTITION BY campaign_id ORDER BY seq DESC) = 1
),
settled AS (
    SELECT campaign_id,
           count(*) FILTER (WHERE status IN ('delivered', 'bounced', 'suppressed', 'failed')) AS n
    FROM deliveries
    GROUP BY campaign_id
),
final AS (
    SELECT c.campaign_id,
           coalesce(l.status, CASE WHEN s.n >= c.audience_size THEN 'sent' ELSE 'sending' END) AS status
    FROM campaigns AS c
    LEFT JOIN latest AS l ON l.campaign_id = c.campaign_id
    LEFT JOIN settled AS s ON s.campaign_id = c.campaign_id
    WHERE l.status IS NOT NULL OR (s.campaign_id IS NOT NULL AND c.status IN ('planned', 'sending', 'sent'))
)
UPDATE campaigns SET status = final.status, updated_at = now()
FROM final
WHERE final.campaign_id = campaigns.campaign_id
  AND campaigns.status <> final.status;

-- name: count_staged_attempts
SELECT count(*) FROM staged_attempts;

-- name: count_deliveries
SELECT count(*) FROM deliveries;
