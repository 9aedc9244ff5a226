-- One row per campaign with its name, status and totals: how did each campaign do, with the
-- open and click rates people made (human_*) beside the raw ones that privacy proxies and
-- link scanners inflate? From the mart engagement_by_variant's total rows (variant '*').
CREATE OR REPLACE VIEW campaign_overview AS
WITH campaigns AS (
    SELECT campaign_id, name, status, created_at FROM campaigns
),
totals AS (
    SELECT * EXCLUDE (variant) FROM engagement_by_variant WHERE variant = '*'
),
final AS (
    SELECT c.name, c.status, c.created_at, t.*
    FROM totals AS t
    LEFT JOIN campaigns AS c USING (campaign_id)
)
SELECT * FROM final;
