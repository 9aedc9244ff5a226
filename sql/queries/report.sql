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
