-- name: campaign_by_id
SELECT campaign_id, name, status, spec, audience_size, chunk_count FROM campaigns WHERE campaign_id = $campaign_id;

-- name: freeze_audience
-- The audience is frozen once, at plan: active subscribers, in the campaign's lists if
-- it names any, not suppressed, not blocked by an address rule (unless allowed: the macro
-- blocked_by_rule decides), matching its `where`. Ordered by subscriber_id so chunk
-- boundaries are stable; chunk_id = position // chunk_size. The `where` is evaluated alone
-- (tasks/condition.py) into the temporary view campaign_condition: intersected here with
-- every mandatory filter, no condition can widen the audience.
INSERT INTO campaign_recipients (campaign_id, subscriber_id, variant, chunk_id)
SELECT
    $campaign_id,
    s.subscriber_id,
    'A',
    ((row_number() OVER (ORDER BY s.subscriber_id) - 1) // $chunk_size)::INTEGER
FROM subscribers AS s
WHERE s.status = 'active'
  AND s.email NOT IN (SELECT email FROM suppressions)
  AND blocked_by_rule(s.email) IS NULL  -- sql/views/address_rules.sql
  AND (len($lists::VARCHAR[]) = 0 OR s.subscriber_id IN (
        SELECT m.subscriber_id
        FROM list_memberships AS m
        JOIN lists AS l USING (list_id)
        WHERE list_contains($lists::VARCHAR[], l.name)))
  AND s.subscriber_id IN (SELECT subscriber_id FROM campaign_condition);

-- name: insert_campaign
INSERT INTO campaigns (campaign_id, name, status, spec, audience_size, chunk_count)
VALUES ($campaign_id, $name, 'planned', $spec::JSON, 0, 0);

-- name: set_campaign_audience
UPDATE campaigns SET
    audience_size = (SELECT count(*) FROM campaign_recipients WHERE campaign_id = $campaign_id),
    chunk_count = (SELECT count(DISTINCT chunk_id) FROM campaign_recipients WHERE campaign_id = $campaign_id),
    updated_at = now()
WHERE campaign_id = $campaign_id;

-- name: chunk_rows
-- Everything the send stage needs to render, so it never opens the warehouse.
SELECT r.chunk_id, r.subscriber_id, r.variant, s.email, s.first_name, s.last_name, s.attributes::VARCHAR AS attributes
FROM campaign_recipients AS r
JOIN subscribers AS s USING (subscriber_id)
WHERE r.campaign_id = $campaign_id
ORDER BY r.chunk_id, r.subscriber_id;

-- name: table_only_functions
-- Functions a campaign condition may not call (tasks/condition.py): those that exist only as
-- table functions read files or run SQL text (read_csv, read_text, glob, query ...); asked of
-- DuckDB itself so a new release's readers are refused too.
SELECT function_name FROM duckdb_functions() GROUP BY function_name
HAVING bool_and(function_type IN ('table', 'table_macro', 'pragma'));

-- name: parse_condition
-- DuckDB's own parser, so a campaign condition is judged by its syntax tree, never by
-- scanning its text (tasks/condition.py).
SELECT json_serialize_sql($query);
