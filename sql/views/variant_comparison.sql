-- The variants of each A/B-tested campaign side by side: human opens and clicks and their
-- rates per variant (the holdout, mailed nothing, shows no deliveries), for judging a test by eye.
CREATE OR REPLACE VIEW variant_comparison AS
WITH campaigns AS (
    SELECT campaign_id, name FROM campaigns
),
variants AS (
    SELECT campaign_id, variant, sent, delivered, human_unique_opens, human_unique_clicks, unsubscribes,
           human_open_rate, human_click_rate, human_click_to_open, unsubscribe_rate
    FROM engagement_by_variant
    WHERE variant <> '*'
),
final AS (
    SELECT c.name, v.*
    FROM variants AS v
    LEFT JOIN campaigns AS c USING (campaign_id)
)
SELECT * FROM final;
