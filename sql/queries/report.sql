-- name: campaign_list
SELECT campaign_id, name, status, audience_size, chunk_count, created_at FROM campaigns ORDER BY created_at;

-- name: campaign_report
-- One row per variant from the campaign_stats view (sql/views/campaign_stats.sql).
SELECT c.name, c.status, s.*
FROM campaign_stats AS s
JOIN campaigns AS c USING (campaign_id)
WHERE s.campaign_id = $campaign_id
ORDER BY s.variant;

-- name: campaign_next_retry
-- When the campaign's earliest deferred recipient is due again: a campaign with one is not sent.
SELECT min(retry_at) FROM deliveries WHERE campaign_id = $campaign_id AND status = 'deferred';

-- name: campaign_engagement
-- Opens, clicks and unsubscribes per variant. An event counts under its recipient's variant (the
-- delivery's), else the variant its line names: one recipient's events never split across variants,
-- so unique counts add up over variants. Every open counts for now: privacy proxies' and image
-- proxies' opens are not flagged yet (issue 13). Unsubscribing from one list is an unsubscribe too.
WITH delivered AS (
    SELECT campaign_id, subscriber_id, variant FROM deliveries WHERE campaign_id = $campaign_id
),
campaign_events AS (
    SELECT coalesce(d.variant, e.variant) AS variant, e.type, e.subscriber_id
    FROM events AS e
    LEFT JOIN delivered AS d USING (campaign_id, subscriber_id)
    WHERE e.campaign_id = $campaign_id
),
final AS (
    SELECT variant,
           count(DISTINCT subscriber_id) FILTER (WHERE type = 'open') AS unique_opens,
           count(*) FILTER (WHERE type = 'open') AS total_opens,
           count(DISTINCT subscriber_id) FILTER (WHERE type = 'click') AS unique_clicks,
           count(*) FILTER (WHERE type = 'click') AS total_clicks,
           count(DISTINCT subscriber_id) FILTER (WHERE type IN ('unsubscribe', 'list_unsubscribe')) AS unsubscribes
    FROM campaign_events
    GROUP BY variant
)
SELECT * FROM final ORDER BY variant;
