-- Each event once: events has no primary key (011), the load's anti-join keeps ids unique.
SELECT event_id, count(*) AS n
FROM events
GROUP BY event_id
HAVING count(*) > 1
