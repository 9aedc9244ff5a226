-- Every normalised address is one subscriber (kept by ingest's anti-join, not by an index).
SELECT email, count(*) AS copies
FROM subscribers
GROUP BY email
HAVING count(*) > 1;
