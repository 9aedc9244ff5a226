-- Opened or clicked any campaign since $since (by default the last 90 days); opens by
-- privacy proxies and clicks by link scanners (is_machine) do not count.
EXISTS (
    SELECT 1
    FROM events AS e
    WHERE e.subscriber_id = subscribers.subscriber_id
      AND e.type IN ('open', 'click')
      AND NOT e.is_machine
      AND e.occurred_at >= $since
)
