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

-- name: refresh_campaign_status
-- A campaign is `sent` once every frozen recipient has an outcome, `sending` before.
UPDATE campaigns SET status = CASE WHEN d.n >= campaigns.audience_size THEN 'sent' ELSE 'sending' END,
                     updated_at = now()
FROM (SELECT campaign_id, count(*) AS n FROM deliveries GROUP BY campaign_id) AS d
WHERE d.campaign_id = campaigns.campaign_id
  AND campaigns.status IN ('planned', 'sending')
  AND campaigns.status <> CASE WHEN d.n >= campaigns.audience_size THEN 'sent' ELSE 'sending' END;

-- name: count_deliveries
SELECT count(*) FROM deliveries;
