-- How block/allow rules match an address, written once: plans filter on it (freeze_audience),
-- and ingest's Polars twin (tasks/core/rules.py blocked_by) is tested to agree with it.
-- rule_matches: `exact` the whole address, `domain` what follows the '@', `regex` RE2 over the address.
CREATE OR REPLACE MACRO rule_matches(kind, value, address) AS
    CASE kind
        WHEN 'exact' THEN address = value
        WHEN 'domain' THEN split_part(address, '@', 2) = value
        WHEN 'regex' THEN regexp_matches(address, value)
        ELSE false
    END;

-- blocked_by_rule: the first (by pattern) block rule matching the address, unless an allow rule
-- matches it too; else NULL.
CREATE OR REPLACE MACRO blocked_by_rule(address) AS (
    SELECT min(pattern) FILTER (WHERE action = 'block')
    FROM address_rules
    WHERE rule_matches(kind, value, address)
    HAVING NOT bool_or(action = 'allow')
);
