-- Nothing lost: every row an ingest read was accepted, updated, unchanged or quarantined.
SELECT batch_id, source, rows_read, accepted, updated, unchanged, quarantined
FROM ingest_batches
WHERE rows_read <> accepted + updated + unchanged + quarantined;
