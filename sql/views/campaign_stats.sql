-- Per-campaign and per-variant delivery counts: what `report` and the demo print. An A/B holdout
-- is mailed nothing and a remainder waits for the winner: neither is `pending` (waiting to be
-- sent); the remainder's unsent recipients are `held`.
CREATE OR REPLACE VIEW campaign_stats AS
WITH recipients AS (
    SELECT campaign_id, variant, count(*) AS audience
    FROM campaign_recipients
    GROUP BY ALL
),
outcomes AS (
    SELECT
        campaign_id,
        variant,
        count(*) AS sent,
        count(*) FILTER (WHERE status = 'delivered') AS delivered,
        count(*) FILTER (WHERE status = 'deferred') AS deferred,
        count(*) FILTER (WHERE status = 'bounced') AS bounced,
        count(*) FILTER (WHERE status = 'failed') AS failed,
        count(*) FILTER (WHERE status = 'suppressed') AS suppressed,
        count(*) FILTER (WHERE status = 'in_doubt') AS in_doubt
    FROM deliveries
    GROUP BY ALL
),
final AS (
    SELECT
        r.campaign_id,
        r.variant,
        r.audience,
        coalesce(o.sent, 0) AS sent,
        coalesce(o.delivered, 0) AS delivered,
        coalesce(o.deferred, 0) AS deferred,
        coalesce(o.bounced, 0) AS bounced,
        coalesce(o.failed, 0) AS failed,
        coalesce(o.suppressed, 0) AS suppressed,
        coalesce(o.in_doubt, 0) AS in_doubt,
        CASE WHEN r.variant IN ('holdout', 'remainder') THEN 0 ELSE r.audience - coalesce(o.sent, 0) END AS pending,
        CASE WHEN r.variant = 'remainder' THEN r.audience - coalesce(o.sent, 0) ELSE 0 END AS held
    FROM recipients AS r
    LEFT JOIN outcomes AS o USING (campaign_id, variant)
)
SELECT * FROM final;
