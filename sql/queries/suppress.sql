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
-- Suppression logs (senders' hard bounces, later unsubscribes and complaints) into the
-- table; the first cause of an address stays, so a reload changes nothing.
WITH logged AS (
    SELECT email, cause, "at"::TIMESTAMPTZ AS suppressed_at FROM input_suppression_log
),
final AS (
    SELECT email, arg_min(cause, suppressed_at) AS cause, min(suppressed_at) AS created_at FROM logged GROUP BY email
)
INSERT INTO suppressions (email, cause, created_at)
SELECT * FROM final
ON CONFLICT (email) DO NOTHING;

-- name: suppress_hard_bounces
-- DESIGN.md: a hard bounce suppresses the address at once (the sender also logs it, so a
-- running campaign stops mailing it; this covers ledgers loaded without that log).
WITH hard AS (
    SELECT s.email, 'bounce:' || coalesce(d.reason, 'unknown') AS cause, d.sent_at
    FROM deliveries AS d
    JOIN subscribers AS s USING (subscriber_id)
    WHERE d.status = 'bounced' AND d.kind = 'hard'
),
final AS (
    SELECT email, arg_min(cause, sent_at) AS cause, min(sent_at) AS created_at FROM hard GROUP BY email
)
INSERT INTO suppressions (email, cause, created_at)
SELECT * FROM final
ON CONFLICT (email) DO NOTHING;

-- name: suppress_soft_bounces
-- Soft bounces suppress only when they repeat: $soft_limit within $window_days, counted
-- over every campaign (one delivery row per campaign and recipient).
WITH soft AS (
    SELECT s.email, d.sent_at
    FROM deliveries AS d
    JOIN subscribers AS s USING (subscriber_id)
    WHERE d.status = 'bounced' AND d.kind = 'soft'
      AND d.sent_at > now() - to_days($window_days::INTEGER)
),
final AS (
    SELECT email, 'soft_bounces' AS cause, max(sent_at) AS created_at
    FROM soft GROUP BY email HAVING count(*) >= $soft_limit
)
INSERT INTO suppressions (email, cause, created_at)
SELECT * FROM final
ON CONFLICT (email) DO NOTHING;

-- name: expire_soft_suppressions
-- ... and decay: a soft-bounce suppression lapses once its window has passed.
DELETE FROM suppressions
WHERE cause = 'soft_bounces' AND created_at < now() - to_days($window_days::INTEGER);

-- name: mark_bounced_subscribers
-- A hard-bounced address is no longer an active subscriber.
UPDATE subscribers SET status = 'bounced', status_changed_at = now(), updated_at = now()
WHERE status = 'active'
  AND email IN (SELECT email FROM suppressions WHERE cause LIKE 'bounce:%');

-- name: count_suppressions
SELECT count(*) FROM suppressions;
