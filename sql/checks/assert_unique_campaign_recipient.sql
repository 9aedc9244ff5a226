-- A subscriber is a recipient of a campaign at most once (the table has no unique index: 007_plan.sql).
SELECT campaign_id, subscriber_id, count(*) AS copies
FROM campaign_recipients
GROUP BY ALL
HAVING count(*) > 1;
