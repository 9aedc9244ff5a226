-- The quarantine holds exactly the rows each batch says it quarantined (an entry counts its copies).
WITH counted AS (
    SELECT batch_id, sum(count) AS rows FROM quarantine GROUP BY batch_id
)
SELECT b.batch_id, b.quarantined, coalesce(c.rows, 0) AS in_quarantine
FROM ingest_batches AS b
LEFT JOIN counted AS c USING (batch_id)
WHERE b.quarantined <> coalesce(c.rows, 0);
