-- name: find_batch
-- The same file (by content hash) ingested into the same list before: nothing to do.
SELECT batch_id FROM ingest_batches
WHERE file_sha256 = $sha AND list_name IS NOT DISTINCT FROM $list_name
LIMIT 1;

-- name: stage_subscriber_changes
-- Compares the batch with the warehouse once; the counts, the update and the insert all
-- read this table. Status precedence: an import may move an active address to
-- unsubscribed/bounced/complained, but never back to active unless the run allows
-- re-subscribing AND the row carries consent newer than the address's last status change.
CREATE OR REPLACE TEMP TABLE staged_subscriber_changes AS
WITH incoming AS (
    -- all of the file's screened rows; where an address repeats across batches, the last wins
    SELECT * EXCLUDE (line) FROM input_subscribers
    QUALIFY row_number() OVER (PARTITION BY email ORDER BY line DESC) = 1
),
joined AS (
    SELECT i.*, s.subscriber_id, s.status AS old_status, s.status_changed_at AS old_status_changed_at,
           s.first_name AS old_first_name, s.last_name AS old_last_name, s.attributes AS old_attributes,
           s.opted_in_at AS old_opted_in_at, s.consent_source AS old_consent_source,
           s.double_opt_in AS old_double_opt_in, s.is_role_account AS old_role, s.is_disposable AS old_disposable
    FROM incoming AS i
    LEFT JOIN subscribers AS s USING (email)
),
decided AS (
    SELECT *,
        CASE
            WHEN subscriber_id IS NULL THEN coalesce(status, 'active')
            WHEN status IS NULL OR status = old_status THEN old_status
            WHEN old_status = 'active' THEN status
            WHEN status = 'active' AND $allow_resubscribe
                 AND opted_in_at > coalesce(old_status_changed_at, old_opted_in_at, TIMESTAMPTZ '1970-01-01')
                THEN 'active'
            ELSE old_status
        END AS new_status,
        (subscriber_id IS NOT NULL AND status = 'active' AND old_status NOT IN ('active')) AS wants_resubscribe
    FROM joined
),
final AS (
    SELECT
        email, email_original, first_name, last_name, new_status, opted_in_at, consent_source, double_opt_in,
        is_role_account, is_disposable, needs_smtputf8, attributes::JSON AS attributes,
        subscriber_id IS NOT NULL AS known,
        (subscriber_id IS NOT NULL) AND (
            new_status IS DISTINCT FROM old_status
            OR first_name IS DISTINCT FROM old_first_name OR last_name IS DISTINCT FROM old_last_name
            OR attributes::JSON IS DISTINCT FROM old_attributes
            OR coalesce(opted_in_at, old_opted_in_at) IS DISTINCT FROM old_opted_in_at
            OR coalesce(consent_source, old_consent_source) IS DISTINCT FROM old_consent_source
            OR coalesce(double_opt_in, old_double_opt_in) IS DISTINCT FROM old_double_opt_in
            OR is_role_account IS DISTINCT FROM old_role OR is_disposable IS DISTINCT FROM old_disposable
        ) AS changed,
        new_status IS DISTINCT FROM old_status AS status_changed,
        wants_resubscribe AND new_status <> 'active' AS resubscribe_refused
    FROM decided
)
SELECT * FROM final;

-- name: count_subscriber_changes
-- rows read = accepted + updated + unchanged + quarantined: these are the first three.
-- needs_smtputf8: the file's addresses only an SMTPUTF8 relay can take (the summary says so).
SELECT
    count(*) FILTER (WHERE NOT known) AS accepted,
    count(*) FILTER (WHERE known AND changed) AS updated,
    count(*) FILTER (WHERE known AND NOT changed) AS unchanged,
    count(*) FILTER (WHERE resubscribe_refused) AS resubscribes_refused,
    count(*) FILTER (WHERE needs_smtputf8) AS needs_smtputf8
FROM staged_subscriber_changes;

-- name: update_subscribers
-- Consent fields keep their old value when the row leaves them empty.
UPDATE subscribers AS s SET
    email_original = c.email_original,
    first_name = c.first_name,
    last_name = c.last_name,
    attributes = c.attributes,
    status = c.new_status,
    status_changed_at = CASE WHEN c.status_changed THEN now() ELSE s.status_changed_at END,
    opted_in_at = coalesce(c.opted_in_at, s.opted_in_at),
    consent_source = coalesce(c.consent_source, s.consent_source),
    double_opt_in = coalesce(c.double_opt_in, s.double_opt_in),
    is_role_account = c.is_role_account,
    is_disposable = c.is_disposable,
    needs_smtputf8 = c.needs_smtputf8,
    updated_at = now()
FROM staged_subscriber_changes AS c
WHERE s.email = c.email AND c.known AND c.changed;

-- name: insert_subscribers
-- Only addresses the stage found absent: with one writer per warehouse, this keeps
-- subscribers.email unique without an index (see sql/schema/002_ingest.sql).
INSERT INTO subscribers (email, email_original, first_name, last_name, status, status_changed_at,
                         opted_in_at, consent_source, double_opt_in, is_role_account, is_disposable, needs_smtputf8,
                         attributes)
SELECT email, email_original, first_name, last_name, new_status,
       CASE WHEN new_status <> 'active' THEN now() END,
       opted_in_at, consent_source, double_opt_in, is_role_account, is_disposable, needs_smtputf8, attributes
FROM staged_subscriber_changes
WHERE NOT known;

-- name: lift_opt_out_suppressions
-- A re-subscription this run allowed (--allow-resubscribe and consent newer than the opt-out)
-- ends the opt-out's suppression too, or the address would stay active yet never mailed.
-- Bounces and soft-bounce counts stay: they are facts about the mailbox, not the person's wish.
DELETE FROM suppressions
WHERE (cause LIKE 'unsubscribe%' OR cause LIKE 'complaint%')
  AND email IN (SELECT email FROM staged_subscriber_changes WHERE known AND status_changed AND new_status = 'active');

-- name: stage_opt_outs
-- Every address the file opted out, accepted or quarantined (tasks/ingest/optouts.py), once:
-- a complaint outranks an unsubscribe. mailflow keeps a local part's case (outside the caseless
-- providers), yet an opt-out of ANN@example.com means the mailbox stored as ann@example.com too:
-- subscribers matching case-insensitively are opted out under their stored address as well.
CREATE OR REPLACE TEMP TABLE staged_opt_outs AS
WITH opt_outs AS (
    SELECT email, cause FROM input_opt_outs
),
by_address AS (
    SELECT email,
           CASE WHEN bool_or(cause LIKE 'complaint%') THEN 'complaint:ingest' ELSE 'unsubscribe:ingest' END AS cause,
           TRUE AS in_file
    FROM opt_outs
    GROUP BY email
),
case_variants AS (
    SELECT s.email, b.cause, FALSE AS in_file
    FROM subscribers AS s
    JOIN by_address AS b ON lower(s.email) = lower(b.email)
    WHERE s.email <> b.email
),
final AS (
    SELECT email, cause, in_file,
           CASE WHEN cause LIKE 'complaint%' THEN 'complained' ELSE 'unsubscribed' END AS status
    FROM (SELECT * FROM by_address UNION ALL SELECT * FROM case_variants)
    QUALIFY row_number() OVER (PARTITION BY email ORDER BY in_file DESC, cause) = 1
)
SELECT * FROM final;

-- name: count_opt_outs
-- The summary's `opt_outs`: the file's own addresses (a case variant found is the same opt-out).
SELECT count(*) FILTER (WHERE in_file), count(*) FROM staged_opt_outs;

-- name: suppress_opt_outs
-- No plan or send mails these addresses, subscriber or not. An address suppressed before keeps
-- its cause, except a soft-bounce suppression, which decays: the opt-out must not decay with it.
INSERT INTO suppressions (email, cause, created_at)
SELECT email, cause, now() FROM staged_opt_outs
ON CONFLICT (email) DO UPDATE SET cause = excluded.cause, created_at = excluded.created_at
WHERE suppressions.cause = 'soft_bounces';

-- name: unsubscribe_opted_out
-- Runs after this file's rows were written, so an opt-out anywhere in the file wins over a plain
-- row of the same address, and a quarantined opt-out still reaches the subscriber it names.
-- The precedence of stage_subscriber_changes holds: only an active subscriber moves.
UPDATE subscribers AS s SET status = o.status, status_changed_at = now(), updated_at = now()
FROM staged_opt_outs AS o
WHERE s.email = o.email AND s.status = 'active';

-- name: drop_staged_opt_outs
DROP TABLE IF EXISTS staged_opt_outs;

-- name: ensure_list
INSERT INTO lists (name) VALUES ($name) ON CONFLICT (name) DO NOTHING;

-- name: add_list_members
INSERT INTO list_memberships (list_id, subscriber_id)
SELECT DISTINCT l.list_id, s.subscriber_id
FROM staged_subscriber_changes AS i
JOIN subscribers AS s USING (email)
JOIN lists AS l ON l.name = $name
WHERE NOT EXISTS (
    SELECT 1 FROM list_memberships AS m WHERE m.list_id = l.list_id AND m.subscriber_id = s.subscriber_id);

-- name: insert_quarantine
-- One entry per (rule, text) of the file: the first copy's line and reason, and `count`, the
-- rows it stands for (ten million copies of one bad row are one entry, not ten million).
-- Each batch merged its own copies; copies in different batches meet here. So do earlier
-- copies of an address kept by another batch: their staged fields stand in for the original
-- text, shortened like any raw ($raw_limit characters) and hashed whole.
INSERT INTO quarantine (batch_id, source, line, rule, reason, raw, raw_sha256, count)
WITH kept AS (
    SELECT *, max(line) OVER (PARTITION BY email) AS last_line FROM input_subscribers
),
superseded AS (
    SELECT line, 'duplicate' AS rule, 'duplicate: superseded by line ' || last_line AS reason,
           to_json(struct_pack(email := email_original, first_name, last_name, attributes))::VARCHAR AS text
    FROM kept
    WHERE line < last_line
),
entries AS (
    SELECT line, rule, reason, raw, raw_sha256, count FROM input_quarantine
    UNION ALL
    SELECT line, rule, reason,
           CASE WHEN length(text) > $raw_limit
                THEN left(text, $raw_limit) || ' …[truncated: ' || format('{:,}', strlen(text)) || ' bytes]'
                ELSE text END,
           sha256(text), 1
    FROM superseded
),
final AS (
    SELECT min(line) AS line, rule, arg_min(reason, line) AS reason, arg_min(raw, line) AS raw, raw_sha256,
           sum(count) AS count
    FROM entries
    GROUP BY rule, raw_sha256
)
SELECT $batch_id, $source, line, rule, reason, raw, raw_sha256, count FROM final;

-- name: record_batch
INSERT INTO ingest_batches
    (batch_id, source, file_sha256, list_name, rows_read, accepted, updated, unchanged, quarantined,
     resubscribes_refused, opt_outs, seconds)
VALUES ($batch_id, $source, $sha, $list_name, $rows_read, $accepted, $updated, $unchanged, $quarantined,
        $resubscribes_refused, $opt_outs, $seconds);

-- name: record_validation_run
INSERT INTO validation_runs (run_id, batch_id, source, suite, success, evaluated, failed, rows_checked,
                             rows_failed, result_path)
VALUES ($run_id, $batch_id, $source, $suite, $success, $evaluated, $failed, $rows_checked, $rows_failed, $result_path);

-- name: batch_counts
SELECT rows_read, quarantined FROM ingest_batches WHERE batch_id = $batch_id;

-- name: drop_staged_subscriber_changes
-- Dropped before commit: a temp table kept in a long transaction holds its memory until the end.
DROP TABLE IF EXISTS staged_subscriber_changes;
