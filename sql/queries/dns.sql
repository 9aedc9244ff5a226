-- name: fresh_domain_checks
-- Cached MX checks still valid at $now, for the domains an ingest is about to check.
-- The domains arrive as one list and are unnested into a semi-join: a hash join stays
-- linear where list_contains($domains, domain) would scan the list once per cached row.
SELECT domain, status, detail, expires_at
FROM domain_checks
WHERE domain IN (SELECT unnest($domains::VARCHAR[]))
  AND expires_at > $now::TIMESTAMPTZ;

-- name: upsert_domain_checks
-- All fresh lookups in one statement (parallel lists, unnested side by side) rather than
-- one INSERT per domain; a domain checked before gets its new answer and expiry.
INSERT INTO domain_checks (domain, status, detail, checked_at, expires_at)
SELECT
    unnest($domains::VARCHAR[]),
    unnest($statuses::VARCHAR[]),
    unnest($details::VARCHAR[]),
    $now::TIMESTAMPTZ,
    unnest($expires::TIMESTAMPTZ[])
ON CONFLICT (domain) DO UPDATE SET
    status = excluded.status,
    detail = excluded.detail,
    checked_at = excluded.checked_at,
    expires_at = excluded.expires_at;
