-- name: audience_by_variant
-- The frozen audience of `campaigns show`, per variant (holdout and remainder included).
SELECT variant, count(*) AS recipients
FROM campaign_recipients
WHERE campaign_id = $campaign_id
GROUP BY variant
ORDER BY variant;

-- name: exclusions_by_rule
-- Why matched subscribers were left out, per rule, as the plan recorded it: explains the audience.
SELECT rule, count(*) AS subscribers
FROM campaign_exclusions
WHERE campaign_id = $campaign_id
GROUP BY rule
ORDER BY subscribers DESC, rule;
