-- name: upsert_deliveries
-- Ledgers hold every attempt; deliveries holds the latest per recipient. A recipient's
-- records are ordered by time then by their sequence in the file, and an older record
-- never overwrites a newer one, so loading the same file twice changes nothing.
WITH ledger AS (
    SELECT * FROM input_ledger
),
latest AS (
    SELECT *
    FROM ledger
    QUALIFY row_number() OVER (PARTITION BY campaign_id, subscriber_id ORDER BY logged_at DESC, seq DESC) = 1
),
final AS (
    -- a recipient whose last record is in_flight was on the wire when its sender died
    SELECT campaign_id, subscriber_id, variant, chunk_id,
           CASE WHEN status = 'in_flight' THEN 'in_doubt' ELSE status END AS status,
           smtp_code, enhanced_status, detail, attempt AS attempts, logged_at AS sent_at,
           kind, reason, nullif(provider, '') AS provider, retry_at::TIMESTAMPTZ AS retry_at
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

-- name: count_deliveries
SELECT count(*) FROM deliveries;
