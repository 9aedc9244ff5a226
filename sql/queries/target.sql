-- name: stage_target_stand_in
-- tasks/plan/target.py, until fix/segments replaces both: the matched audience of a campaign's
-- lists and its checked `where` (the temporary view campaign_condition), before statuses and
-- suppressions. Semi-joins on subscriber_id, so DuckDB hashes them over all cores.
CREATE OR REPLACE TEMP TABLE campaign_target AS
WITH listed AS (
    SELECT m.subscriber_id
    FROM list_memberships AS m
    JOIN lists AS l USING (list_id)
    WHERE list_contains($lists::VARCHAR[], l.name)
),
final AS (
    SELECT s.subscriber_id
    FROM subscribers AS s
    WHERE (len($lists::VARCHAR[]) = 0 OR s.subscriber_id IN (SELECT subscriber_id FROM listed))
      AND s.subscriber_id IN (SELECT subscriber_id FROM campaign_condition)
)
SELECT * FROM final;

-- name: stand_in_target_size
SELECT count(*) FROM campaign_target;
