-- name: external_access
-- Whether this connection may still read files: a condition runs only once it is off
-- (tasks/plan/condition.py), and a locked connection may not even SET it again.
SELECT current_setting('enable_external_access')::BOOLEAN;

-- name: list_names
-- The lists a campaign's include/exclude may name (tasks/plan/segments.py).
SELECT name FROM lists ORDER BY name;

-- name: stage_segment_members
-- The subscribers of each segment a campaign (or `segments count`) needs, and of its `where`
-- under the key ':where' (no segment name has a colon). Each is computed alone by its checked
-- condition (tasks/plan/segments.py), then combined here by fixed queries only. TEMP: it is
-- working state of one step, and a read-only connection may still write it.
CREATE OR REPLACE TEMP TABLE segment_members (segment VARCHAR NOT NULL, subscriber_id BIGINT NOT NULL);

-- name: insert_segment_members
-- One segment's members, from the relation its checked condition returned.
INSERT INTO segment_members SELECT $segment, subscriber_id FROM segment_condition;

-- name: stage_campaign_target
-- The matched audience (before statuses and suppressions, which the plan applies):
-- in any of the campaign's lists, if it names some; in any of its included lists or
-- segments, if it names some; in none of the excluded ones (exclusion wins); matching its
-- `where`. Every part is a set of ids, so DuckDB plans hash semi- and anti-joins over all
-- cores, never a subquery per row (10M rows in seconds). The `where`'s own ids, when it has
-- one, are the candidates (they are subscribers already): probing every subscriber against
-- them instead cost 1.3 s of 2 cores at 10M (plan_bench, 2026-12). Each list filter joins
-- the memberships itself: a CTE shared by the three would be materialised whole, every
-- membership of every list.
CREATE OR REPLACE TEMP TABLE campaign_target AS
WITH candidates AS (
    SELECT subscriber_id FROM segment_members WHERE $has_where AND segment = ':where'
    UNION ALL
    SELECT subscriber_id FROM subscribers WHERE NOT $has_where
),

listed AS (
    SELECT m.subscriber_id
    FROM list_memberships AS m
    JOIN lists AS l USING (list_id)
    WHERE list_contains($lists::VARCHAR[], l.name)
),

included AS (
    SELECT m.subscriber_id
    FROM list_memberships AS m
    JOIN lists AS l USING (list_id)
    WHERE list_contains($include_lists::VARCHAR[], l.name)
    UNION ALL
    SELECT subscriber_id FROM segment_members WHERE list_contains($include_segments::VARCHAR[], segment)
),

excluded AS (
    SELECT m.subscriber_id
    FROM list_memberships AS m
    JOIN lists AS l USING (list_id)
    WHERE list_contains($exclude_lists::VARCHAR[], l.name)
    UNION ALL
    SELECT subscriber_id FROM segment_members WHERE list_contains($exclude_segments::VARCHAR[], segment)
),

final AS (
    SELECT c.subscriber_id
    FROM candidates AS c
    WHERE (len($lists::VARCHAR[]) = 0 OR c.subscriber_id IN (SELECT subscriber_id FROM listed))
      AND (len($include_lists::VARCHAR[]) + len($include_segments::VARCHAR[]) = 0
           OR c.subscriber_id IN (SELECT subscriber_id FROM included))
      AND ($keep_excluded OR c.subscriber_id NOT IN (SELECT subscriber_id FROM excluded))
)

SELECT subscriber_id FROM final;

-- name: stage_segment_excluded
-- Who the campaign's segment.exclude takes out of its target, each with the first excluding
-- name, so the plan records them in campaign_exclusions (rule exclude:NAME) and `campaigns
-- show` can explain the audience; then they leave campaign_target. Run only when a campaign
-- excludes something: stage_campaign_target kept them ($keep_excluded) for this.
CREATE OR REPLACE TEMP TABLE campaign_target_excluded AS
WITH excluded AS (
    SELECT m.subscriber_id, 'exclude:' || l.name AS rule
    FROM list_memberships AS m
    JOIN lists AS l USING (list_id)
    WHERE list_contains($exclude_lists::VARCHAR[], l.name)
    UNION ALL
    SELECT subscriber_id, 'exclude:' || segment FROM segment_members
    WHERE list_contains($exclude_segments::VARCHAR[], segment)
)

SELECT e.subscriber_id, min(e.rule) AS rule
FROM excluded AS e
SEMI JOIN campaign_target AS t USING (subscriber_id)
GROUP BY e.subscriber_id;

-- name: drop_excluded_from_target
DELETE FROM campaign_target WHERE subscriber_id IN (SELECT subscriber_id FROM campaign_target_excluded);

-- name: target_size
SELECT count(*) FROM campaign_target;

-- name: segment_size
-- `segments count`: how many subscribers a segment holds now, and how many of them are active
-- (a plan mails only those, less suppressions and block rules).
SELECT count(*), count(*) FILTER (WHERE s.status = 'active')
FROM segment_members AS m
JOIN subscribers AS s USING (subscriber_id)
WHERE m.segment = $segment;

-- name: segment_sample
-- `segments count`: the first ten members by id, so the same warehouse shows the same sample.
SELECT s.subscriber_id, s.email
FROM segment_members AS m
JOIN subscribers AS s USING (subscriber_id)
WHERE m.segment = $segment
ORDER BY s.subscriber_id
LIMIT 10;
