-- Signed up since $since (by default the last 90 days).
created_at >= $since
