-- name: event_file_progress
-- How far each event log was read: aggregate continues a file at `bytes_loaded`.
SELECT file, bytes_loaded, rows FROM event_files;

-- name: stage_event_table
-- The new lines of this run, parsed (parse_event_lines), before they become events or rejects.
CREATE OR REPLACE TEMP TABLE staged_events (
    file          VARCHAR NOT NULL,
    byte_offset   BIGINT NOT NULL,
    line          BIGINT NOT NULL,
    reject        VARCHAR,                       -- why the line cannot be loaded; NULL for an event
    raw           VARCHAR,                       -- a rejected line as read
    event_id      VARCHAR,
    campaign_id   VARCHAR,
    subscriber_id BIGINT,
    variant       VARCHAR,
    type          VARCHAR,
    link          INTEGER,
    url           VARCHAR,
    occurred_at   TIMESTAMPTZ,
    ip            VARCHAR,
    user_agent    VARCHAR,
    kind          VARCHAR,
    reason        VARCHAR,
    status        VARCHAR,
    smtp_code     INTEGER,
    diagnostic    VARCHAR,
    data          JSON
);

-- name: event_lines_as_records
-- The line-by-line path, for a block Polars cannot read whole (a line not JSON, not an object,
-- not UTF-8, or blank): one JSON parse per line, then every known field in one pass (a `->>` per
-- field parses the line again each time: 10x slower here). A line that cannot be a record gets
-- its `problem`; blank lines carry nothing and are skipped. The line's other fields go to `data`:
-- a merge patch with null removes the known ones; a `data` object (mailflow/event_line.py) is
-- merged in rather than kept as a field of its own.
WITH lines AS (
    SELECT *, CASE WHEN json_valid(text) THEN text::JSON END AS j
    FROM input_event_lines
),
parsed AS (
    SELECT * FROM lines
    WHERE j IS NOT NULL OR text IS NULL OR trim(text, E' \t\r') <> ''  -- trim only what is not JSON: it is slow
),
fields AS (
    SELECT *,
           CASE WHEN json_type(j) = 'OBJECT' THEN json_extract_string(j, [
               '$.event_id', '$.type', '$.campaign_id', '$.subscriber_id', '$.variant', '$.link', '$.url',
               '$.occurred_at', '$.ip', '$.user_agent', '$.kind', '$.reason', '$.status', '$.smtp_code',
               '$.diagnostic']) END AS v
    FROM parsed
),
final AS (
    SELECT file, byte_offset, line, tail, coalesce(text, undecodable) AS text,
           CASE
               WHEN text IS NULL THEN 'not UTF-8'
               WHEN j IS NULL AND tail THEN 'an unfinished last line, unchanged for over an hour (its writer stopped)'
               WHEN j IS NULL THEN 'not JSON'
               WHEN v IS NULL THEN 'not a JSON object'
           END AS problem,
           v[1] AS event_id, v[2] AS type, v[3] AS campaign_id, v[4] AS subscriber_id, v[5] AS variant, v[6] AS link,
           v[7] AS url, v[8] AS occurred_at, v[9] AS ip, v[10] AS user_agent, v[11] AS kind, v[12] AS reason,
           v[13] AS status, v[14] AS smtp_code, v[15] AS diagnostic,
           CASE WHEN v IS NULL THEN NULL
                WHEN json_type(j, '$.data') = 'OBJECT' THEN json_merge_patch(json_merge_patch(j, '{"event_id": null,
                    "type": null, "campaign_id": null, "subscriber_id": null, "variant": null, "link": null, "url": null,
                    "occurred_at": null, "ip": null, "user_agent": null, "kind": null, "reason": null, "status": null,
                    "smtp_code": null, "diagnostic": null, "data": null}'), j -> '$.data')::VARCHAR
                ELSE json_merge_patch(j, '{"event_id": null, "type": null, "campaign_id": null,
                    "subscriber_id": null, "variant": null, "link": null, "url": null, "occurred_at": null, "ip": null,
                    "user_agent": null, "kind": null, "reason": null, "status": null, "smtp_code": null,
                    "diagnostic": null}')::VARCHAR END AS data
    FROM fields
)
SELECT * FROM final;

-- name: parse_event_records
-- Records (from Polars' reader or the line-by-line path, their fields as text) typed and judged:
-- a line that cannot be an event gets the first reason that applies. The types are events'
-- CHECK (011). `data` keeps the other fields; one whose value is null says nothing and is dropped.
INSERT INTO staged_events BY NAME
WITH records AS (
    SELECT * FROM input_event_records
),
typed AS (
    SELECT *,
           try_cast(subscriber_id AS BIGINT) AS subscriber_number,
           try_cast(link AS INTEGER) AS link_number,
           try_cast(occurred_at AS TIMESTAMPTZ) AS occurred,
           try_cast(smtp_code AS INTEGER) AS smtp_number
    FROM records
),
judged AS (
    SELECT *,
           CASE
               WHEN problem IS NOT NULL THEN problem
               WHEN coalesce(event_id, '') = '' THEN 'no event_id'
               WHEN type IS NULL THEN 'no type'
               WHEN type NOT IN ('open', 'click', 'unsubscribe', 'bounce', 'complaint', 'auto_reply', 'list_unsubscribe',
                                 'preferences', 'optin_pending', 'optin_confirmed', 'optin_expired')
                   THEN 'unknown type ' || left(type, 100)
               WHEN occurred IS NULL THEN 'occurred_at missing or not a time'
               WHEN subscriber_id IS NOT NULL AND subscriber_number IS NULL THEN 'subscriber_id is not an integer'
               WHEN link IS NOT NULL AND link_number IS NULL THEN 'link is not an integer'
               WHEN smtp_code IS NOT NULL AND smtp_number IS NULL THEN 'smtp_code is not an integer'
           END AS reject
    FROM typed
),
final AS (
    SELECT file, byte_offset, line, reject,
           CASE WHEN reject IS NOT NULL THEN left(text, $raw_limit) END AS raw,
           event_id, campaign_id, subscriber_number AS subscriber_id, variant, type, link_number AS link, url,
           occurred AS occurred_at, ip, user_agent, kind, reason, status, smtp_number AS smtp_code, diagnostic,
           CASE WHEN reject IS NULL THEN (CASE WHEN data = '{}' THEN '{}' ELSE json_merge_patch('{}', data) END)::JSON
           END AS data
    FROM judged
)
SELECT * FROM final;

-- name: staged_rejects_without_raw
-- Lines Polars read whole but the judge rejected (no event_id, a bad time ...): their text is read
-- again from the file (set_staged_raw), as the line-by-line path keeps it.
SELECT file, byte_offset FROM staged_events WHERE reject IS NOT NULL AND raw IS NULL;

-- name: set_staged_raw
UPDATE staged_events SET raw = $raw WHERE file = $file AND byte_offset = $byte_offset;

-- name: insert_event_rejects
-- Kept where an operator looks (`mailflow sql "select * from event_rejects"`), never dropped silently.
INSERT INTO event_rejects (file, byte_offset, line, reason, raw)
SELECT file, byte_offset, line, reject, raw FROM staged_events WHERE reject IS NOT NULL
ON CONFLICT DO NOTHING;

-- name: stage_new_events
-- The events this run adds, with every column of `events`, left for apply_subscription_events
-- (tasks/aggregate/subscriptions.py) and later stages: an event id seen twice, in one file, across files
-- or in an earlier run, is counted once (its first line wins).
CREATE OR REPLACE TEMP TABLE new_events AS
SELECT * FROM events LIMIT 0;

-- name: fill_new_events
-- Each CTE is read once, so none is materialised: a CTE read twice is copied whole (at 10M lines
-- that copy, of every column, was 90% of this query's time). Only the ids seen twice are ordered.
INSERT INTO new_events BY NAME
WITH valid AS (
    -- staged_row: a line's place among those of one slice the fast path read (they share its byte_offset)
    SELECT *, rowid AS staged_row FROM staged_events WHERE reject IS NULL
),
clashes AS (
    -- grouped by a 64-bit hash of the id, not its text (at 10M lines the text's hash table spills to disk);
    -- a clash is only a candidate: the lines whose hash clashes are ordered by their id's text below
    SELECT hash(event_id) AS h FROM staged_events WHERE reject IS NULL GROUP BY h HAVING count(*) > 1
),
later_lines AS (
    -- an id's lines after its first: dropped (the first line wins)
    SELECT rowid AS staged_row FROM staged_events
    WHERE reject IS NULL AND hash(event_id) IN (SELECT h FROM clashes)
    QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY file, byte_offset, rowid) > 1
),
loaded AS (
    -- the run's ids looked up among the loaded ones (the hash first: an integer compare rules out
    -- nearly every row before the text is looked at)
    SELECT event_id FROM events
    WHERE hash(event_id) IN (SELECT hash(event_id) FROM staged_events WHERE reject IS NULL)
),
final AS (
    SELECT event_id, campaign_id, subscriber_id, variant, type, link, url, occurred_at, ip, user_agent, kind,
           reason, status, smtp_code, diagnostic, data, false AS is_machine, now() AS loaded_at
    FROM valid
    ANTI JOIN later_lines USING (staged_row)
    ANTI JOIN loaded USING (event_id)
)
SELECT * FROM final;

-- name: count_staged_events
-- The staged lines counted before keep_staged_rejects cuts the valid ones (event_load_counts reads it).
CREATE OR REPLACE TEMP TABLE staged_event_counts AS
SELECT count(*) FILTER (WHERE reject IS NULL) AS valid, count(*) FILTER (WHERE reject IS NOT NULL) AS rejected
FROM staged_events;

-- name: keep_staged_rejects
-- Once new_events holds the valid lines, staged_events keeps only the rejects (insert_event_rejects
-- and record_event_files read them): the valid ones' memory is freed for the machine flags and the insert.
CREATE OR REPLACE TEMP TABLE staged_events AS
SELECT * FROM staged_events WHERE reject IS NOT NULL;

-- name: insert_new_events
-- With each open's and click's machine verdict (stage_machine_flags), so a row is written once.
INSERT INTO events BY NAME
SELECT n.* EXCLUDE (is_machine, machine_reason),
       coalesce(f.is_machine, false) AS is_machine, f.machine_reason AS machine_reason
FROM new_events AS n
LEFT JOIN machine_flags AS f ON f.new_row = n.rowid;

-- name: unsubscribe_subscribers
-- ... and the subscriber is no longer active (as an opt-out at ingest does).
UPDATE subscribers SET status = 'unsubscribed', status_changed_at = now(), updated_at = now()
WHERE status = 'active'
  AND subscriber_id IN (SELECT subscriber_id FROM new_events WHERE type = 'unsubscribe');

-- name: record_event_files
-- Each file read this run: how far, and how many lines and rejects it has given so far.
WITH rejected AS (
    SELECT file, count(*) AS n FROM staged_events WHERE reject IS NOT NULL GROUP BY file
),
final AS (
    SELECT p.file, p.size, p.bytes_loaded, p.rows, coalesce(r.n, 0) AS rejected
    FROM input_event_progress AS p
    LEFT JOIN rejected AS r USING (file)
)
INSERT INTO event_files (file, size, bytes_loaded, rows, rejected)
SELECT * FROM final
ON CONFLICT (file) DO UPDATE SET
    size = excluded.size,
    bytes_loaded = excluded.bytes_loaded,
    rows = event_files.rows + excluded.rows,
    rejected = event_files.rejected + excluded.rejected,
    loaded_at = now();

-- name: event_load_counts
-- The aggregate summary: events added, lines that repeated an event already known, lines rejected.
SELECT (SELECT count(*) FROM new_events), valid - (SELECT count(*) FROM new_events), rejected
FROM staged_event_counts;

-- name: event_bytes_waiting
-- Last lines still being written (or torn): loaded once they end, reported meanwhile.
SELECT coalesce(sum(size - bytes_loaded), 0) FROM event_files;

-- name: drop_staged_events
DROP TABLE IF EXISTS staged_events;

-- name: drop_staged_event_counts
DROP TABLE IF EXISTS staged_event_counts;

-- name: drop_new_events
DROP TABLE IF EXISTS new_events;
