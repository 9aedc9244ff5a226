-- name: upsert_rule
-- Adding a rule again updates it (block <-> allow), so `lists block` is idempotent.
INSERT INTO address_rules (pattern, action, kind, value) VALUES ($pattern, $action, $kind, $value)
ON CONFLICT (pattern) DO UPDATE SET action = excluded.action, kind = excluded.kind, value = excluded.value;

-- name: delete_rule
DELETE FROM address_rules WHERE pattern = $pattern RETURNING pattern;

-- name: list_rules
SELECT pattern, action, kind, value FROM address_rules ORDER BY action, pattern;

-- name: check_regex
-- Runs a new regex rule the way freeze_audience applies rules (RE2, the pattern a column value, not
-- a constant), on a throwaway in-memory connection, so `lists block` refuses what plans could not run.
SELECT regexp_matches(email, regex) FROM (VALUES ($email, $regex)) AS rule(email, regex);
