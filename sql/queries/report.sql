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

-- name: report_engagement_by_variant
-- The report's per-variant figures, raw and human side by side, from the engagement mart
-- (sql/models/marts/engagement_by_variant.sql); variant '*' is the campaign's total row.
SELECT * EXCLUDE (campaign_id) FROM engagement_by_variant WHERE campaign_id = $campaign_id ORDER BY variant = '*', variant;

-- name: report_engagement_by_provider
-- Per mailbox provider group: few rows (gmail, microsoft, yahoo, other), all shown, largest first.
SELECT * EXCLUDE (campaign_id) FROM engagement_by_provider WHERE campaign_id = $campaign_id ORDER BY sent DESC, provider;

-- name: report_engagement_by_domain
-- The recipient domains a campaign mailed most: a list can hold thousands of domains, so a
-- report shows the top few by messages sent.
SELECT * EXCLUDE (campaign_id) FROM engagement_by_domain WHERE campaign_id = $campaign_id
ORDER BY sent DESC, domain LIMIT $top;

-- name: report_engagement_by_link
-- The most clicked links (raw clicks; the human ones beside them).
SELECT * EXCLUDE (campaign_id) FROM engagement_by_link WHERE campaign_id = $campaign_id
ORDER BY clicks DESC, link NULLS LAST, url LIMIT $top;

-- name: report_engagement_by_hour
-- Opens and clicks per whole hour since the send, the campaign as a whole (variant '*'): the
-- curve a report draws. Hours without events are absent; the chart leaves them at zero.
SELECT hours_since_send, opens, clicks, human_opens, human_clicks
FROM engagement_by_hour WHERE campaign_id = $campaign_id AND variant = '*' ORDER BY hours_since_send;

-- name: report_bounces
-- Bounces by the path that told us and by reason: the receiving server's own reply while we sent
-- (deliveries that ended bounced) beside bounce messages and webhooks that arrived later (events of
-- type bounce, by where they came from: `bounce_mailbox`, or `webhook:<provider>` — never the single
-- message file or IMAP URL the intake names, which would make every bounce its own row). One recipient
-- can appear on both paths: a 250 at send time and a bounce message an hour later.
WITH smtp_replies AS (
    SELECT 'smtp_reply' AS path, 'send' AS source,
           coalesce(kind, CASE WHEN smtp_code BETWEEN 400 AND 499 THEN 'soft' ELSE 'hard' END) AS kind,
           coalesce(reason, 'unknown') AS reason
    FROM deliveries
    WHERE campaign_id = $campaign_id AND status = 'bounced'
),
bounce_messages AS (
    SELECT 'bounce_message' AS path,
           CASE WHEN data ->> 'source' LIKE 'webhook:%' THEN data ->> 'source' ELSE 'bounce_mailbox' END AS source,
           coalesce(kind, 'unknown') AS kind, coalesce(reason, 'unknown') AS reason
    FROM events
    WHERE campaign_id = $campaign_id AND type = 'bounce'
      AND coalesce(data ->> 'delayed', 'false') <> 'true'  -- a delay notice: still being tried, not a bounce
),
final AS (
    SELECT path, source, kind, reason, count(*) AS bounces
    FROM (SELECT * FROM smtp_replies UNION ALL SELECT * FROM bounce_messages)
    GROUP BY ALL
)
SELECT * FROM final ORDER BY path DESC, bounces DESC, kind, reason, source;

-- name: report_touched_campaigns
-- The campaigns the load's TEMP table says this aggregate run touched, that the warehouse knows
-- (a bounce can name a campaign id from elsewhere): each gets its report artifact.
SELECT DISTINCT campaign_id FROM touched_campaigns JOIN campaigns USING (campaign_id) ORDER BY campaign_id;

-- name: report_campaigns_loaded_since
-- The campaigns an aggregate run touched, found from what it wrote, where the load leaves no TEMP
-- table of them: events it loaded, ledger files it read (ledger/<campaign>/chunk-N.ndjson) and
-- campaigns whose row it changed.
WITH touched AS (
    SELECT campaign_id FROM events WHERE loaded_at >= $since AND campaign_id IS NOT NULL
    UNION
    SELECT regexp_extract(path, '([^/\\]+)[/\\]chunk-[0-9]+\.ndjson$', 1) FROM loaded_files WHERE loaded_at >= $since
    UNION
    SELECT campaign_id FROM campaigns WHERE updated_at >= $since
)
SELECT campaign_id FROM campaigns WHERE campaign_id IN (SELECT campaign_id FROM touched) ORDER BY campaign_id;

-- name: report_tables_present
-- Which of the tables a report reads that other stages create does this warehouse have: the
-- engagement marts and the A/B decisions. A report leaves out what an older warehouse lacks.
SELECT table_name FROM duckdb_tables()
WHERE schema_name = 'main' AND table_name IN ('engagement_by_variant', 'engagement_by_provider', 'engagement_by_domain',
                                              'engagement_by_link', 'engagement_by_hour', 'ab_decisions');

-- name: report_ab_decision
-- The campaign's latest A/B decision (ab_decisions, written by `mailflow ab decide` and the
-- pick_ab_winner flow): every column, so the report shows what the decision stored.
SELECT * FROM ab_decisions WHERE campaign_id = $campaign_id ORDER BY decided_at DESC LIMIT 1;
