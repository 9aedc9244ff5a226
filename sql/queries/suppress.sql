-- name: suppression_snapshot
-- What a sender must not mail, written to a file at plan and aggregate (the send stage
-- never opens the warehouse): every suppression, and every subscriber no longer active.
WITH suppressed AS (
    SELECT email, cause, 1 AS priority FROM suppressions
),
inactive AS (
    SELECT email, status AS cause, 2 AS priority FROM subscribers WHERE status <> 'active'
),
final AS (
    SELECT email, cause
    FROM (SELECT * FROM suppressed UNION ALL SELECT * FROM inactive)
    QUALIFY row_number() OVER (PARTITION BY email ORDER BY priority) = 1
)
SELECT * FROM final;

-- name: insert_logged_suppressions
-- Suppression logs (senders' hard bounces, the tracking service's unsubscribes, the bounce
-- intake's hard bounces and complaints) into the table, with the log's source (the campaign, or
-- the writer); the first cause of an address stays, so a reload changes nothing.
WITH logged AS (
    SELECT email, cause, source, "at"::TIMESTAMPTZ AS suppressed_at FROM input_suppression_log
),
final AS (
    SELECT email, arg_min(cause, suppressed_at) AS cause, arg_min(source, suppressed_at) AS source,
           min(suppressed_at) AS created_at
    FROM logged
    GROUP BY email
)
INSERT INTO suppressions (email, cause, source, created_at)
SELECT email, cause, source, created_at FROM final
ON CONFLICT (email) DO NOTHING;

-- name: suppress_from_events
-- Unsubscribe, complaint and hard-bounce events (tracking service, bounce intake, webhooks)
-- suppress the address at once, naming the event. Their writer's suppression-log line usually
-- came first: an address suppressed already for the same cause gains the event, keeping its
-- time (and its source, except that a webhook's event names its provider, `webhook:<provider>`). A soft-bounce suppression, which decays, gives way, and so does an unsubscribe to a
-- complaint or hard bounce (an opt-in lifts an unsubscribe's suppression, never theirs); any
-- other cause stays.
WITH causes AS (
    SELECT e.event_id, s.email, e.campaign_id, e.subscriber_id, e.occurred_at,
           -- a webhook's event says `source: webhook:<provider>` (tasks/track/webhooks.py); the others are `events`
           CASE WHEN e.data->>'source' LIKE 'webhook:%' THEN e.data->>'source' ELSE 'events' END AS source,
           CASE
               WHEN e.type = 'unsubscribe' THEN 'unsubscribe'
               WHEN e.type = 'complaint' OR (e.type = 'bounce' AND e.kind = 'complaint') THEN 'complaint'
               WHEN e.type = 'bounce' AND e.kind = 'hard' THEN 'bounce:' || coalesce(e.reason, 'unknown')
           END AS cause
    FROM new_events AS e
    JOIN subscribers AS s USING (subscriber_id)
    WHERE e.type IN ('unsubscribe', 'complaint', 'bounce')
),
final AS (
    SELECT email, arg_min(cause, occurred_at) AS cause, arg_min(event_id, occurred_at) AS event_id,
           arg_min(source, occurred_at) AS source, arg_min(campaign_id, occurred_at) AS campaign_id,
           arg_min(subscriber_id, occurred_at) AS subscriber_id, min(occurred_at) AS created_at
    FROM causes
    WHERE cause IS NOT NULL
    GROUP BY email
)
INSERT INTO suppressions (email, cause, created_at, source, event_id, campaign_id, subscriber_id)
SELECT email, cause, created_at, source, event_id, campaign_id, subscriber_id FROM final
ON CONFLICT (email) DO UPDATE SET
    cause = excluded.cause,
    created_at = CASE WHEN suppressions.cause = excluded.cause THEN suppressions.created_at ELSE excluded.created_at END,
    source = CASE WHEN excluded.source LIKE 'webhook:%' THEN excluded.source  -- not the campaign its log line named
                  WHEN suppressions.cause = excluded.cause THEN coalesce(suppressions.source, excluded.source)
                  ELSE excluded.source END,
    event_id = excluded.event_id,
    campaign_id = coalesce(excluded.campaign_id, suppressions.campaign_id),
    subscriber_id = excluded.subscriber_id
WHERE suppressions.cause = 'soft_bounces'
   OR (suppressions.cause LIKE 'unsubscribe%' AND excluded.cause NOT LIKE 'unsubscribe%')
   OR (suppressions.cause = excluded.cause AND suppressions.event_id IS NULL);

-- name: suppress_hard_bounces
-- DESIGN.md: a hard bounce suppresses the address at once (the sender also logs it, so a
-- running campaign stops mailing it; this covers ledgers loaded without that log). Only the
-- recipients this run touched are looked at; the suppression names their delivery.
WITH hard AS (
    SELECT s.email, 'bounce:' || coalesce(d.reason, 'unknown') AS cause, d.sent_at, d.campaign_id, d.subscriber_id
    FROM deliveries AS d
    SEMI JOIN touched_pairs AS t ON t.campaign_id = d.campaign_id AND t.subscriber_id = d.subscriber_id
    JOIN subscribers AS s ON s.subscriber_id = d.subscriber_id
    WHERE d.status = 'bounced' AND d.kind = 'hard'
),
final AS (
    SELECT email, arg_min(cause, sent_at) AS cause, min(sent_at) AS created_at,
           arg_min(campaign_id, sent_at) AS campaign_id, arg_min(subscriber_id, sent_at) AS subscriber_id
    FROM hard
    GROUP BY email
)
INSERT INTO suppressions (email, cause, created_at, source, campaign_id, subscriber_id)
SELECT email, cause, created_at, 'ledger', campaign_id, subscriber_id FROM final
ON CONFLICT (email) DO UPDATE SET
    campaign_id = coalesce(suppressions.campaign_id, excluded.campaign_id),
    subscriber_id = coalesce(suppressions.subscriber_id, excluded.subscriber_id)
WHERE suppressions.cause = excluded.cause AND suppressions.event_id IS NULL AND suppressions.subscriber_id IS NULL;

-- name: suppress_soft_bounces
-- Soft bounces suppress only when they repeat: $soft_limit within $window_days, counted over
-- every campaign, from the send-time answers (one delivery row per campaign and recipient) and
-- the soft-bounce events of bounce mail and webhooks (a campaign's bounce counted once however
-- many ways it was reported; a delay notice is not a bounce). The row names the latest bounce: its
-- event, or its delivery.
WITH delivered AS (
    SELECT subscriber_id, campaign_id, sent_at AS bounced_at, NULL::VARCHAR AS event_id
    FROM deliveries
    WHERE status = 'bounced' AND kind = 'soft' AND sent_at > now() - to_days($window_days::INTEGER)
),
reported AS (
    SELECT subscriber_id, campaign_id, occurred_at AS bounced_at, event_id
    FROM events
    WHERE type = 'bounce' AND kind = 'soft' AND subscriber_id IS NOT NULL
      AND occurred_at > now() - to_days($window_days::INTEGER)
      AND coalesce(data ->> 'delayed', 'false') <> 'true'  -- a delay notice: the mail is still being tried
),
soft AS (
    SELECT s.email, b.*, coalesce(b.campaign_id, b.event_id) AS occasion
    FROM (SELECT * FROM delivered UNION ALL SELECT * FROM reported) AS b
    JOIN subscribers AS s USING (subscriber_id)
),
counted AS (
    SELECT email, max(bounced_at) AS created_at,
           arg_max({'event_id': event_id, 'campaign_id': campaign_id, 'subscriber_id': subscriber_id}, bounced_at) AS latest
    FROM soft
    GROUP BY email
    HAVING count(DISTINCT occasion) >= $soft_limit
),
final AS (
    SELECT email, 'soft_bounces' AS cause, created_at, latest.event_id AS event_id, latest.campaign_id AS campaign_id,
           latest.subscriber_id AS subscriber_id
    FROM counted
)
INSERT INTO suppressions (email, cause, created_at, source, event_id, campaign_id, subscriber_id)
SELECT email, cause, created_at, 'soft_bounces', event_id, campaign_id, subscriber_id FROM final
ON CONFLICT (email) DO NOTHING;

-- name: expire_soft_suppressions
-- ... and decay: a soft-bounce suppression lapses once its window has passed.
DELETE FROM suppressions
WHERE cause = 'soft_bounces' AND created_at < now() - to_days($window_days::INTEGER);

-- name: mark_suppressed_subscribers
-- subscribers.status follows the suppression's cause: a complaint makes the subscriber
-- `complained`, a hard bounce `bounced`, an unsubscribe `unsubscribed`. An active subscriber takes
-- any of them; an unsubscribed one may still complain or bounce (facts about the mailbox, which a
-- later opt-in does not undo). Soft-bounce suppressions leave the status alone: they decay.
WITH caused AS (
    SELECT s.subscriber_id, s.status AS was,
           CASE
               WHEN x.cause LIKE 'complaint%' THEN 'complained'
               WHEN x.cause LIKE 'bounce:%' THEN 'bounced'
               WHEN x.cause LIKE 'unsubscribe%' THEN 'unsubscribed'
           END AS status
    FROM suppressions AS x
    JOIN subscribers AS s USING (email)
    WHERE s.status IN ('active', 'unsubscribed')
),
final AS (
    SELECT * FROM caused
    WHERE status IS NOT NULL AND status <> was AND (was = 'active' OR status IN ('complained', 'bounced'))
)
UPDATE subscribers SET status = final.status, status_changed_at = now(), updated_at = now()
FROM final
WHERE subscribers.subscriber_id = final.subscriber_id;

-- name: count_suppressions
SELECT count(*) FROM suppressions;
