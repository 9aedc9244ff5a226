-- Mailed at least 5 campaigns (delivered) in the last 180 days, yet no open or click by a
-- person in 180 days (privacy proxies' opens and scanners' clicks do not count): candidates to
-- stop mailing, or to send one last re-engagement campaign. Reads subscriber_engagement, as of
-- the last `mailflow aggregate`; change the 5 in a copy of this file for another policy.
subscriber_id IN (
    SELECT se.subscriber_id
    FROM subscriber_engagement AS se
    WHERE se.campaigns_received_180d >= 5
      AND (se.last_engaged_at IS NULL OR se.last_engaged_at < now() - INTERVAL 180 DAY)
)
