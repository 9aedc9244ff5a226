-- How much of each campaign's opens and clicks came from machines (privacy and image proxies'
-- opens, link scanners' clicks; events.is_machine), and so how far the raw rates overstate.
CREATE OR REPLACE VIEW machine_activity AS
WITH totals AS (
    SELECT * FROM engagement_by_variant WHERE variant = '*'
),
final AS (
    SELECT
        campaign_id,
        total_opens,
        total_opens - human_total_opens AS machine_opens,
        (total_opens - human_total_opens) / nullif(total_opens, 0) AS machine_open_share,
        total_clicks,
        total_clicks - human_total_clicks AS machine_clicks,
        (total_clicks - human_total_clicks) / nullif(total_clicks, 0) AS machine_click_share,
        open_rate - human_open_rate AS open_rate_overstated_by
    FROM totals
)
SELECT * FROM final;
