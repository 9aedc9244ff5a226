-- name: campaign_by_id
SELECT campaign_id, name, status, spec, audience_size, chunk_count, plan_id FROM campaigns WHERE campaign_id = $campaign_id;

-- name: campaign_plan
-- A sending campaign's plan as it was made (planning its unchanged file again changes nothing).
SELECT status, audience_size, chunk_count, matched,
       (SELECT count(*) FROM campaign_recipients WHERE campaign_id = $campaign_id AND variant = 'holdout')
FROM campaigns WHERE campaign_id = $campaign_id;

-- name: drop_target_excluded
-- The targeting step may leave who its `segment.exclude` removed (tasks/plan/exclusions.py);
-- none is left over from an earlier plan on the same connection.
DROP TABLE IF EXISTS temp.campaign_target_excluded;

-- name: stage_target_excluded
CREATE TEMP TABLE IF NOT EXISTS campaign_target_excluded (subscriber_id BIGINT, rule VARCHAR);

-- name: stage_plan_matched
-- Every matched subscriber once, by id: the targeting's campaign_target, and who its
-- segment.exclude removed (campaign_target_excluded: disjoint from it, one row each, with the
-- first excluding name). A view: both are tables already. Ids only: carrying each address
-- through the plan's tables cost more than reading it once more (plan_bench, 2026-12).
CREATE OR REPLACE TEMP VIEW plan_matched AS
SELECT subscriber_id, NULL::VARCHAR AS excluded_by FROM campaign_target
UNION ALL
SELECT subscriber_id, rule FROM campaign_target_excluded;

-- name: stage_plan_rule_hits
-- The regex rules each matched address hits, as sql/views/address_rules.sql rule_matches
-- defines them (a test holds the plan to blocked_by_rule); exact and domain rules are hash
-- joins in stage_plan_classified. Regex rules are added one by one (regex_rules,
-- insert_regex_rule_hits): a pattern read from a column is compiled again for every row
-- (3.6 s per million addresses here), a parameter once.
CREATE OR REPLACE TEMP TABLE plan_rule_hits (subscriber_id BIGINT, pattern VARCHAR, action VARCHAR);

-- name: regex_rules
SELECT pattern, action, value FROM address_rules WHERE kind = 'regex' ORDER BY pattern;

-- name: insert_regex_rule_hits
INSERT INTO plan_rule_hits (subscriber_id, pattern, action)
SELECT s.subscriber_id, $pattern, $action
FROM subscribers AS s
SEMI JOIN plan_matched AS m USING (subscriber_id)
WHERE regexp_matches(s.email, $value);

-- name: stage_plan_split_functions
-- The A/B split, as macros stage_plan_classified calls (and tests/test_split.py calls alone).
-- plan_unit: MurmurHash3's 64-bit finaliser (fmix64) of the subscriber id XOR a key made from
-- the campaign id (md5_number_lower): plain integer arithmetic, so its value is defined by the
-- formula, not by DuckDB's version (tasks/plan/split.py unit_hash is the reference); the key
-- makes campaigns independent; its top 53 bits are exactly a double in [0, 1). md5 of each
-- 'campaign:subscriber' string cost 0.67 s per million rows of CPU here, fmix64 0.013 s.
-- plan_band: the last band (names: holdout, variants, remainder, starting at los, the first at
-- 0) starting at or below u. At most 10 bands (8 variants, holdout, remainder): tasks/plan/split.py
-- band_lists pads los to 10 with 2.0, so u counts the bands it has reached in fixed integer
-- arithmetic (list_filter with a lambda per row cost 0.5 s of CPU at 10M, an ASOF join 3.5 times that).
CREATE OR REPLACE TEMP MACRO plan_fmix_step(h, m) AS ((xor(h, h >> 33)::UHUGEINT * m) & 18446744073709551615)::UBIGINT;
CREATE OR REPLACE TEMP MACRO plan_fmix_top53(h) AS (xor(h, h >> 33) >> 11)::DOUBLE / 9007199254740992.0;
CREATE OR REPLACE TEMP MACRO plan_unit(subscriber_id, campaign_id) AS plan_fmix_top53(plan_fmix_step(
    plan_fmix_step(xor(subscriber_id::UBIGINT, md5_number_lower(campaign_id)), 18397679294719823053),
    14181476777654086739));
CREATE OR REPLACE TEMP MACRO plan_band(u, names, los) AS (names::VARCHAR[])[1
    + (los[2] <= u)::INTEGER + (los[3] <= u)::INTEGER + (los[4] <= u)::INTEGER + (los[5] <= u)::INTEGER
    + (los[6] <= u)::INTEGER + (los[7] <= u)::INTEGER + (los[8] <= u)::INTEGER + (los[9] <= u)::INTEGER
    + (los[10] <= u)::INTEGER];

-- name: stage_plan_classified
-- Every matched subscriber once, with the first rule that excludes it (NULL: planned) and, if
-- planned, its variant (stage_plan_split_functions), its address's domain and its zone_key
-- (the `timezone` attribute, where the variant sends at a local time): one pass over the
-- subscribers, one table written (a table per step wrote each address three times: 4.5 s of
-- 13 at 10M, plan_bench 2026-12). The order, most lasting first: the subscriber's own status,
-- a suppression (a soft-bounce one is counted as soft_bounces, once), the soft-bounce
-- threshold in deliveries (what aggregate has not yet turned into a suppression), an address
-- rule (blocked unless an allow rule matches too; the first block pattern), the campaign's
-- segment.exclude, the frequency cap and the subscriber's chosen frequency (the rules that depend on
-- other campaigns). All
-- joins on keys, so DuckDB hashes them in parallel; the rules are grouped per value first so
-- each address meets at most one row; the frequency cap reads only campaigns planned within
-- its days.
CREATE OR REPLACE TEMP TABLE plan_classified AS
WITH people AS (
    SELECT m.subscriber_id, m.excluded_by, s.email, s.status, split_part(s.email, '@', 2) AS domain,
           -- JSON is parsed only where the key can be: 1.3 s of CPU at 10M for every row's attributes
           CASE WHEN $zones AND contains(s.attributes, '"timezone"') THEN s.attributes ->> 'timezone' END AS zone,
           -- the preference centre's "how often" (aggregate sets it): weekly or monthly limits this subscriber
           CASE WHEN $frequencies AND contains(s.attributes, '"frequency"') THEN s.attributes ->> 'frequency' END AS frequency
    FROM plan_matched AS m
    JOIN subscribers AS s USING (subscriber_id)
),

exact_rules AS (
    SELECT value, min(pattern) FILTER (WHERE action = 'block') AS block, bool_or(action = 'allow') AS allow
    FROM address_rules WHERE kind = 'exact' GROUP BY value
),

domain_rules AS (
    SELECT value, min(pattern) FILTER (WHERE action = 'block') AS block, bool_or(action = 'allow') AS allow
    FROM address_rules WHERE kind = 'domain' GROUP BY value
),

regex_hits AS (
    SELECT subscriber_id, min(pattern) FILTER (WHERE action = 'block') AS block, bool_or(action = 'allow') AS allow
    FROM plan_rule_hits GROUP BY subscriber_id
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

-- A subscriber who chose "at most once a week" (or month) in the preference centre and was mailed
-- by a campaign planned within the last 7 (or 30) days: only those with the choice are joined
slowed AS (
    SELECT DISTINCT p.subscriber_id
    FROM people AS p
    JOIN campaign_recipients AS r ON r.subscriber_id = p.subscriber_id
    JOIN campaigns AS c ON c.campaign_id = r.campaign_id
    WHERE p.frequency IN ('weekly', 'monthly') AND r.variant <> 'holdout'
      AND c.campaign_id <> $campaign_id AND c.status <> 'cancelled'
      AND c.planned_at > $now::TIMESTAMPTZ - to_days(CASE p.frequency WHEN 'weekly' THEN 7 ELSE 30 END)
),

ruled AS (
    SELECT
        p.subscriber_id,
        p.domain,
        p.zone,
        CASE
            WHEN p.status <> 'active' THEN 'status:' || p.status
            WHEN x.cause = 'soft_bounces' THEN 'soft_bounces'
            WHEN x.cause IS NOT NULL THEN 'suppressed:' || x.cause
            WHEN b.subscriber_id IS NOT NULL THEN 'soft_bounces'
            WHEN least(e.block, d.block, r.block) IS NOT NULL
                 AND NOT (coalesce(e.allow, false) OR coalesce(d.allow, false) OR coalesce(r.allow, false))
                THEN 'rule:' || least(e.block, d.block, r.block)
            WHEN p.excluded_by IS NOT NULL THEN p.excluded_by
            WHEN f.subscriber_id IS NOT NULL THEN 'frequency_cap'
            WHEN w.subscriber_id IS NOT NULL THEN 'frequency:' || p.frequency
        END AS rule
    FROM people AS p
    LEFT JOIN suppressions AS x ON x.email = p.email
    LEFT JOIN exact_rules AS e ON e.value = p.email
    LEFT JOIN domain_rules AS d ON d.value = p.domain
    LEFT JOIN regex_hits AS r ON r.subscriber_id = p.subscriber_id
    LEFT JOIN soft_bounced AS b ON b.subscriber_id = p.subscriber_id
    LEFT JOIN capped AS f ON f.subscriber_id = p.subscriber_id
    LEFT JOIN slowed AS w ON w.subscriber_id = p.subscriber_id
),

split AS (
    SELECT subscriber_id, rule, domain, zone,
           CASE WHEN rule IS NULL THEN plan_unit(subscriber_id, $campaign_id) END AS u
    FROM ruled
),

banded AS (
    SELECT subscriber_id, rule, domain, zone, CASE WHEN u IS NOT NULL THEN plan_band(u, $names, $los) END AS variant
    FROM split
),

final AS (
    SELECT subscriber_id, rule, variant,
           CASE WHEN variant IS NOT NULL AND variant <> 'holdout' THEN domain END AS domain,
           CASE WHEN list_contains($local_variants::VARCHAR[], variant) THEN coalesce(zone, '') ELSE '' END
               AS zone_key
    FROM banded
)

SELECT * FROM final;

-- name: insert_exclusions
INSERT INTO campaign_exclusions (campaign_id, subscriber_id, rule)
SELECT $campaign_id, subscriber_id, rule FROM plan_classified WHERE rule IS NOT NULL;

-- name: split_zones
-- The zones of recipients whose variant sends at a local time: their times are computed once
-- per zone (tasks/plan/schedule.py), never per recipient.
SELECT DISTINCT variant, zone_key FROM plan_classified WHERE list_contains($local_variants::VARCHAR[], variant);

-- name: stage_plan_chunked
-- Chunks per (variant, not_before): K = ceil(size / $chunk_size) chunks of equal size (one apart
-- at most), numbered across the campaign. Recipients are dealt like cards: the group's members
-- are laid out provider group by provider group, domain by domain, and the n-th goes to chunk
-- n mod K, so every chunk holds each domain, and each provider group, within one of its share.
-- Per-domain ranks come from unnesting each domain's list and the layout from a running sum
-- over domains, never a sort of the recipients (two windows over 8M rows cost 5 s of CPU here).
-- A recipient a warm-up cap moves to a later day (plan_warmup, sql/queries/warmup.sql) sends then.
-- Within a chunk, `place` spreads each domain through the file (its rank over its size).
-- Group sizes are summed from the domains' lists: counting the recipients again made DuckDB
-- materialise them for two readers (0.3-0.5 s of CPU at 10M). The holdout gets no chunk.
CREATE OR REPLACE TEMP TABLE plan_chunked AS
WITH timed AS (
    SELECT c.subscriber_id, c.variant, greatest(t.not_before, w.not_before) AS not_before, c.domain
    FROM plan_classified AS c
    JOIN plan_times AS t ON t.variant = c.variant AND t.zone_key = c.zone_key
    LEFT JOIN plan_warmup AS w ON w.subscriber_id = c.subscriber_id
    WHERE c.variant <> 'holdout'
),

domains AS (
    SELECT t.variant, t.not_before, t.domain, coalesce(p.provider, 'other') AS provider,
           list(t.subscriber_id) AS ids
    FROM timed AS t
    LEFT JOIN provider_domains AS p USING (domain)
    GROUP BY ALL
),

laid_out AS (
    SELECT variant, not_before, provider, ids,
           coalesce(sum(len(ids)) OVER (PARTITION BY variant, not_before ORDER BY provider, domain
                                        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS start
    FROM domains
),

groups AS (
    SELECT variant, not_before, ceil(sum(len(ids)) / $chunk_size)::BIGINT AS chunks
    FROM domains
    GROUP BY ALL
),

numbered AS (
    SELECT variant, not_before, chunks,
           coalesce(sum(chunks) OVER (ORDER BY list_position($variants::VARCHAR[], variant), not_before NULLS FIRST
                                      ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS first_chunk
    FROM groups
),

members AS (
    SELECT variant, not_before, provider, len(ids) AS size, unnest(ids) AS subscriber_id,
           generate_subscripts(ids, 1) AS rank, start
    FROM laid_out
),

final AS (
    SELECT m.subscriber_id, m.variant, m.not_before, m.provider,
           (n.first_chunk + (m.start + m.rank - 1) % n.chunks)::INTEGER AS chunk_id,
           (m.rank - 0.5) / m.size AS place
    FROM members AS m
    JOIN numbered AS n ON n.variant = m.variant AND n.not_before IS NOT DISTINCT FROM m.not_before
)

SELECT * FROM final;

-- name: chunk_entries
-- The manifest's entries: one per chunk, in chunk order.
SELECT chunk_id, variant, count(*) AS rows, min(not_before) AS not_before
FROM plan_chunked
GROUP BY chunk_id, variant
ORDER BY chunk_id;

-- name: chunk_groups
-- Recipients per chunk and provider group, for the manifest: the send stage estimates its time
-- (tasks/send/estimate.py) and warm-up counts its caps from them without reading the chunk files.
SELECT chunk_id, provider, count(*) AS rows
FROM plan_chunked
GROUP BY ALL
ORDER BY ALL;

-- name: chunk_rows
-- Everything the send stage needs to render, so it never opens the warehouse, in chunk order
-- and within a chunk by place: tasks/plan/chunks.py write_chunk_files cuts the stream into one
-- Parquet file per chunk. The addresses are read here, once, for the mailed recipients only.
SELECT c.chunk_id, c.subscriber_id, c.variant, s.email, s.first_name, s.last_name, s.attributes::VARCHAR AS attributes
FROM plan_chunked AS c
JOIN subscribers AS s USING (subscriber_id)
ORDER BY c.chunk_id, c.place;

-- name: sample_rows
-- The first recipients in chunk order, rendered at plan time with every variant's templates:
-- picked from plan_chunked before their rows are read (a join of every recipient cost 0.7 s
-- of CPU at 10M for 5 rows).
WITH first AS (
    SELECT chunk_id, subscriber_id, variant, place FROM plan_chunked ORDER BY chunk_id, place LIMIT $sample
)

SELECT f.chunk_id, f.subscriber_id, f.variant, s.email, s.first_name, s.last_name, s.attributes::VARCHAR AS attributes
FROM first AS f
JOIN subscribers AS s USING (subscriber_id)
ORDER BY f.chunk_id, f.place;

-- name: delete_recipients
-- A re-plan replaces the campaign's recipients and exclusions (in the plan's transaction).
DELETE FROM campaign_recipients WHERE campaign_id = $campaign_id;

-- name: delete_exclusions
DELETE FROM campaign_exclusions WHERE campaign_id = $campaign_id;

-- name: insert_recipients
INSERT INTO campaign_recipients (campaign_id, subscriber_id, variant, chunk_id)
SELECT $campaign_id, subscriber_id, variant, chunk_id FROM plan_chunked
UNION ALL
SELECT $campaign_id, subscriber_id, variant, NULL FROM plan_classified WHERE variant = 'holdout';

-- name: plan_counts
-- matched, excluded, planned (holdout included), audience (mailed: variants and remainder), holdout.
SELECT count(*), count(rule), count(*) - count(rule),
       (SELECT count(*) FROM plan_chunked), count(*) FILTER (WHERE variant = 'holdout')
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


-- name: any_frequency_choice
-- Whether anyone has chosen how often to be mailed (the preference centre's `preferences` events set
-- the attribute): only then does classify probe attributes for it, which costs ~1.5 s of CPU at 10M.
SELECT EXISTS (SELECT 1 FROM events WHERE type = 'preferences');
