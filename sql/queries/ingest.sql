-- name: find_batch
-- The same file (by content hash) ingested into the same list before: nothing to do.
SELECT batch_id FROM ingest_batches
WHERE file_sha256 = $sha AND list_name IS NOT DISTINCT FROM $list_name
LIMIT 1;

-- name: classify_input_subscribers
-- Counted before the upsert so that rows read = accepted + updated + unchanged + quarantined.
-- Only the fields an import may change are compared; status is never changed by an import.
SELECT
    count(*) FILTER (WHERE s.email IS NULL) AS accepted,
    count(*) FILTER (WHERE s.email IS NOT NULL AND (
        i.first_name IS DISTINCT FROM s.first_name OR i.last_name IS DISTINCT FROM s.last_name
        OR i.attributes::JSON IS DISTINCT FROM s.attributes)) AS updated,
    count(*) FILTER (WHERE s.email IS NOT NULL AND NOT (
        i.first_name IS DISTINCT FROM s.first_name OR i.last_name IS DISTINCT FROM s.last_name
        OR i.attributes::JSON IS DISTINCT FROM s.attributes)) AS unchanged
FROM input_subscribers AS i
LEFT JOIN subscribers AS s USING (email);

-- name: upsert_subscribers
-- One row per normalised address. An import updates names and attributes but never
-- status: an unsubscribed or bounced address stays so (DESIGN: status precedence).
INSERT INTO subscribers (email, email_original, first_name, last_name, attributes)
SELECT email, email_original, first_name, last_name, attributes::JSON FROM input_subscribers
ON CONFLICT (email) DO UPDATE SET
    email_original = excluded.email_original,
    first_name = excluded.first_name,
    last_name = excluded.last_name,
    attributes = excluded.attributes,
    updated_at = now()
WHERE subscribers.first_name IS DISTINCT FROM excluded.first_name
   OR subscribers.last_name IS DISTINCT FROM excluded.last_name
   OR subscribers.attributes IS DISTINCT FROM excluded.attributes;

-- name: ensure_list
INSERT INTO lists (name) VALUES ($name) ON CONFLICT (name) DO NOTHING;

-- name: add_list_members
INSERT INTO list_memberships (list_id, subscriber_id)
SELECT l.list_id, s.subscriber_id
FROM input_subscribers AS i
JOIN subscribers AS s USING (email)
JOIN lists AS l ON l.name = $name
ON CONFLICT DO NOTHING;

-- name: insert_quarantine
INSERT INTO quarantine (batch_id, source, line, reason, raw)
SELECT $batch_id, $source, line, reason, raw FROM input_quarantine;

-- name: record_batch
INSERT INTO ingest_batches
    (batch_id, source, file_sha256, list_name, rows_read, accepted, updated, unchanged, quarantined)
VALUES ($batch_id, $source, $sha, $list_name, $rows_read, $accepted, $updated, $unchanged, $quarantined);
