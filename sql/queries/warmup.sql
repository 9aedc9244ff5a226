-- name: warmup_gate
-- The gate of a pool's warm-up ramp (tasks/plan/warmup.py): over the last days of the mail its
-- campaigns sent, how many reached a server, how many of those bounced (the send's own reply, or
-- a bounce reported later by the bounce intake) and how many complained. A recipient counts once
-- however many reports came back: rates per message, as providers judge a sender.
WITH pool_campaigns AS (
    SELECT campaign_id FROM campaigns WHERE coalesce(spec ->> 'transport', 'default') = $pool
),

mailed AS (
    SELECT d.campaign_id, d.subscriber_id, d.status
    FROM deliveries AS d
    JOIN pool_campaigns USING (campaign_id)
    WHERE d.sent_at >= $since AND d.status IN ('delivered', 'bounced')
),

reported AS (
    SELECT e.campaign_id, e.subscriber_id,
           bool_or(e.type = 'bounce') AS bounced, bool_or(e.type = 'complaint') AS complained
    FROM events AS e
    JOIN pool_campaigns USING (campaign_id)
    WHERE e.occurred_at >= $since AND e.type IN ('bounce', 'complaint')
    GROUP BY ALL
),

final AS (
    SELECT count(*) AS sent,
           count(*) FILTER (WHERE m.status = 'bounced' OR r.bounced) AS bounced,
           count(*) FILTER (WHERE r.complained) AS complained
    FROM mailed AS m
    LEFT JOIN reported AS r USING (campaign_id, subscriber_id)
)

SELECT * FROM final;

-- name: warmup_group_sizes
-- Recipients to be mailed per provider group: what the warm-up caps spread over days.
SELECT coalesce(p.provider, 'other') AS provider, count(*) AS recipients
FROM plan_classified AS c
LEFT JOIN provider_domains AS p USING (domain)
WHERE c.variant <> 'holdout'
GROUP BY ALL
ORDER BY ALL;

-- name: stage_plan_warmup
-- The recipients a warm-up cap moves to a later day, with that day's start as their not_before
-- (stage_plan_chunked takes the later of it and their own send time). Within a group the test
-- variants come first, the A/B remainder (sent after the decision) last, then a hash of the
-- subscriber and campaign: who waits is neither the oldest subscribers nor the same people each time.
-- Only run for a pool that warms up: the window sorts every recipient of the campaign.
CREATE OR REPLACE TEMP TABLE plan_warmup AS
WITH mailed AS (
    SELECT c.subscriber_id, c.variant, coalesce(p.provider, 'other') AS provider
    FROM plan_classified AS c
    LEFT JOIN provider_domains AS p USING (domain)
    WHERE c.variant <> 'holdout'
),

ranked AS (
    SELECT subscriber_id, provider,
           row_number() OVER (PARTITION BY provider
                              ORDER BY variant = 'remainder', hash(subscriber_id, $campaign_id), subscriber_id) - 1 AS rank
    FROM mailed
),

final AS (
    SELECT r.subscriber_id, d.not_before
    FROM ranked AS r
    JOIN warmup_days AS d ON d.provider = r.provider AND r.rank >= d.first_rank AND r.rank < d.end_rank
)

SELECT * FROM final;

-- name: clear_plan_warmup
-- No warm-up for this campaign's transport: nobody waits for a later day.
CREATE OR REPLACE TEMP TABLE plan_warmup (subscriber_id BIGINT, not_before TIMESTAMPTZ);
