-- A subscriber is on a list at most once.
SELECT list_id, subscriber_id, count(*) AS copies
FROM list_memberships
GROUP BY ALL
HAVING count(*) > 1;
