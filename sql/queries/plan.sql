-- name: campaign_by_id
SELECT campaign_id, name, status, spec, audience_size, chunk_count, plan_id FROM campaigns WHERE campaign_id = $campaign_id;

-- name: drop_target_excluded
-- The targeting step may leave who its `segment.exclude` removed (tasks/plan/exclusions.py);
-- none is left over from an earlier plan on the same connection.
DROP TABLE IF EXISTS temp.campaign_target_excluded;

-- name: stage_target_excluded
CREATE TEMP TABLE IF NOT EXISTS campaign_target_excluded (subscriber_id BIGINT, rule VARCHAR);

-- name: stage_plan_classified
-- Every matched subscriber once, with the first rule that excludes it (NULL: planned). The order,
-- most lasting first: the subscriber's own status, a suppression (a soft-bounce one is counted as
-- soft_bounces, once), the soft-bounce threshold in deliveries (what aggregate has not yet turned
-- into a suppression), an address rule, the campaign's segment.exclude, the frequency cap (the
-- only rule that depends on other campaigns). All joins on keys, so DuckDB hashes them in parallel;
-- the frequency cap reads only campaigns planned within its days.
CREATE OR REPLACE TEMP TABLE plan_classified AS
WITH matched AS (
    SELECT subscriber_id, NULL::VARCHAR AS excluded_by FROM campaign_target
    UNION ALL
    SELECT subscriber_id, min(rule) FROM campaign_target_excluded
    WHERE subscriber_id NOT IN (SELECT subscriber_id FROM campaign_target)
    GROUP BY subscriber_id
),

soft_bounced AS (
    SELECT subscriber_id
    FROM deliveries
    WHERE status = 'bounced' AND kind = 'soft'
      AND sent_at > $now::TIMESTAMPTZ - to_days($soft_window_days::INTEGER)
    GROUP BY subscriber_id
    HAVING count(*) >= $soft_limit
),

recent_campaigns AS (
    SELECT campaign_id
    FROM campaigns
    WHERE $cap > 0 AND campaign_id <> $campaign_id AND status <> 'cancelled'
      AND planned_at > $now::TIMESTAMPTZ - to_days($cap_days::INTEGER)
),

capped AS (
    SELECT r.subscriber_id
    FROM campaign_recipients AS r
    JOIN recent_campaigns USING (campaign_id)
    WHERE r.variant <> 'holdout'
    GROUP BY r.subscriber_id
    HAVING count(*) >= $cap
),

subscribed AS (
    SELECT m.subscriber_id, m.excluded_by, s.email, s.status, blocked_by_rule(s.email) AS blocked,
           CASE WHEN $zones THEN s.attributes ->> 'timezone' END AS zone
    FROM matched AS m
    JOIN subscribers AS s USING (subscriber_id)
),

final AS (
    SELECT
        s.subscriber_id,
        s.email,
        s.zone,
        CASE
            WHEN s.status <> 'active' THEN 'status:' || s.status
            WHEN x.cause = 'soft_bounces' THEN 'soft_bounces'
            WHEN x.cause IS NOT NULL THEN 'suppressed:' || x.cause
            WHEN b.subscriber_id IS NOT NULL THEN 'soft_bounces'
            WHEN s.blocked IS NOT NULL THEN 'rule:' || s.blocked  -- sql/views/address_rules.sql
            WHEN s.excluded_by IS NOT NULL THEN s.excluded_by
            WHEN f.subscriber_id IS NOT NULL THEN 'frequency_cap'
        END AS rule
    FROM subscribed AS s
    LEFT JOIN suppressions AS x ON x.email = s.email
    LEFT JOIN soft_bounced AS b ON b.subscriber_id = s.subscriber_id
    LEFT JOIN capped AS f ON f.subscriber_id = s.subscriber_id
)

SELECT * FROM final;

-- name: insert_exclusions
INSERT INTO campaign_exclusions (campaign_id, subscriber_id, rule)
SELECT $campaign_id, subscriber_id, rule FROM plan_classified WHERE rule IS NOT NULL;

-- name: stage_plan_split
-- The A/B split. u is md5's lower 64 bits (md5_number_lower: defined by MD5, not by DuckDB's
-- version; tasks/plan/split.py unit_hash is its reference), top 53 bits, so it is exactly a
-- double in [0, 1); the campaign id in the hash makes campaigns independent. The ASOF join
-- gives each u the last band (plan_bands: holdout, variants, remainder) starting at or below it.
-- zone_key: the recipient's `timezone` attribute where its variant sends at a local time.
CREATE OR REPLACE TEMP TABLE plan_split AS
WITH planned AS (
    SELECT subscriber_id, email, zone,
           (md5_number_lower($campaign_id || ':' || subscriber_id) >> 11)::DOUBLE / 9007199254740992.0 AS u
    FROM plan_classified
    WHERE rule IS NULL
),

final AS (
    SELECT p.subscriber_id, p.email, b.variant,
           CASE WHEN list_contains($local_variants::VARCHAR[], b.variant) THEN coalesce(p.zone, '') ELSE '' END
               AS zone_key
    FROM planned AS p
    ASOF JOIN plan_bands AS b ON p.u >= b.lo
)

SELECT * FROM final;

-- name: split_zones
-- The zones of recipients whose variant sends at a local time: their times are computed once
-- per zone (tasks/plan/schedule.py), never per recipient.
SELECT DISTINCT variant, zone_key FROM plan_split WHERE list_contains($local_variants::VARCHAR[], variant);

-- name: stage_plan_chunked
-- Chunks per (variant, not_before), cut every $chunk_size recipients, numbered across the
-- campaign. Within a group, recipients are dealt out across domains: each gets its place within
-- its domain as a fraction ((rank - 0.5) / domain size, Sainte-Laguë's order), and the group is
-- ordered by it, then provider group and domain, so every chunk holds each domain (and provider)
-- in proportion instead of one provider's block after another. The holdout gets no chunk.
CREATE OR REPLACE TEMP TABLE plan_chunked AS
WITH timed AS (
    SELECT s.subscriber_id, s.variant, t.not_before, split_part(s.email, '@', 2) AS domain
    FROM plan_split AS s
    JOIN plan_times AS t ON t.variant = s.variant AND t.zone_key = s.zone_key
    WHERE s.variant <> 'holdout'
),

spread AS (
    SELECT t.*, coalesce(p.provider, 'other') AS provider,
           (row_number() OVER (PARTITION BY t.variant, t.not_before, t.domain ORDER BY t.subscriber_id) - 0.5)
               / count(*) OVER (PARTITION BY t.variant, t.not_before, t.domain) AS place
    FROM timed AS t
    LEFT JOIN provider_domains AS p USING (domain)
),

positioned AS (
    SELECT subscriber_id, variant, not_before,
           row_number() OVER (PARTITION BY variant, not_before ORDER BY place, provider, domain, subscriber_id) - 1
               AS position
    FROM spread
),

groups AS (
    SELECT variant, not_before, ceil(count(*) / $chunk_size)::BIGINT AS chunks
    FROM timed
    GROUP BY ALL
),

numbered AS (
    SELECT variant, not_before,
           coalesce(sum(chunks) OVER (ORDER BY list_position($variants::VARCHAR[], variant), not_before NULLS FIRST
                                      ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS first_chunk
    FROM groups
),

final AS (
    SELECT p.subscriber_id, p.variant, p.not_before, p.position,
           (n.first_chunk + p.position // $chunk_size)::INTEGER AS chunk_id
    FROM positioned AS p
    JOIN numbered AS n ON n.variant = p.variant AND n.not_before IS NOT DISTINCT FROM p.not_before
)

SELECT * FROM final;

-- name: chunk_entries
-- The manifest's entries: one per chunk, in chunk order.
SELECT chunk_id, variant, count(*) AS rows, min(not_before) AS not_before
FROM plan_chunked
GROUP BY chunk_id, variant
ORDER BY chunk_id;

-- name: write_chunk_files
-- Everything the send stage needs to render, so it never opens the warehouse, one file per
-- chunk in one partitioned COPY (<folder>/chunk_id=<n>/part0.parquet, renamed by
-- tasks/plan/chunks.py): DuckDB encodes Parquet on every core, with no copy into Python.
COPY (
    SELECT c.chunk_id, c.subscriber_id, c.variant, s.email, s.first_name, s.last_name,
           s.attributes::VARCHAR AS attributes
    FROM plan_chunked AS c
    JOIN subscribers AS s USING (subscriber_id)
    ORDER BY c.chunk_id, c.position
) TO $folder (FORMAT parquet, PARTITION_BY (chunk_id), WRITE_PARTITION_COLUMNS true, FILENAME_PATTERN 'part',
              OVERWRITE_OR_IGNORE true);

-- name: plan_file_access
-- Whether this connection may still write files, and where (tasks/plan/chunks.py allow_chunk_writes).
SELECT current_setting('enable_external_access')::BOOLEAN, current_setting('allowed_directories');

-- name: allow_chunk_directory
-- Chunk files only under the home's campaigns/ folder once a condition has switched external access
-- off; one file per chunk however many chunks there are.
SET allowed_directories = $dirs;

-- name: one_file_per_partition
SET partitioned_write_max_open_files = 1000000;

-- name: sample_rows
-- The first recipients in chunk order, rendered at plan time with every variant's templates.
SELECT c.chunk_id, c.subscriber_id, c.variant, s.email, s.first_name, s.last_name, s.attributes::VARCHAR AS attributes
FROM plan_chunked AS c
JOIN subscribers AS s USING (subscriber_id)
ORDER BY c.chunk_id, c.position
LIMIT $sample;

-- name: delete_recipients
-- A re-plan replaces the campaign's recipients and exclusions (in the plan's transaction).
DELETE FROM campaign_recipients WHERE campaign_id = $campaign_id;

-- name: delete_exclusions
DELETE FROM campaign_exclusions WHERE campaign_id = $campaign_id;

-- name: insert_recipients
INSERT INTO campaign_recipients (campaign_id, subscriber_id, variant, chunk_id)
SELECT $campaign_id, subscriber_id, variant, chunk_id FROM plan_chunked
UNION ALL
SELECT $campaign_id, subscriber_id, variant, NULL FROM plan_split WHERE variant = 'holdout';

-- name: plan_counts
-- matched, excluded, planned (holdout included), audience (mailed: variants and remainder), holdout.
SELECT count(*), count(rule), count(*) - count(rule),
       (SELECT count(*) FROM plan_chunked), (SELECT count(*) FROM plan_split WHERE variant = 'holdout')
FROM plan_classified;

-- name: exclusion_counts
-- Why the excluded were left out: `campaigns show` and the plan summary.
SELECT rule, count(*) AS subscribers FROM campaign_exclusions WHERE campaign_id = $campaign_id
GROUP BY rule ORDER BY subscribers DESC, rule;

-- name: upsert_campaign
INSERT INTO campaigns (campaign_id, name, status, spec, audience_size, chunk_count, matched, excluded, planned,
                       plan_id, planned_at)
VALUES ($campaign_id, $name, 'draft', $spec::JSON, $audience, $chunks, $matched, $excluded, $planned, $plan_id,
        $now::TIMESTAMPTZ)
ON CONFLICT (campaign_id) DO UPDATE SET
    name = excluded.name, spec = excluded.spec, audience_size = excluded.audience_size,
    chunk_count = excluded.chunk_count, matched = excluded.matched, excluded = excluded.excluded,
    planned = excluded.planned, plan_id = excluded.plan_id, planned_at = excluded.planned_at, updated_at = now();

-- name: set_campaign_status
-- The plan's one state change (tasks/plan/audience.py record_transition).
UPDATE campaigns SET status = $status, updated_at = now() WHERE campaign_id = $campaign_id;

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
