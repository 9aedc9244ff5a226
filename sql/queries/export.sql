-- name: export_subscribers
SELECT subscriber_id, email, email_original, first_name, last_name, status, status_changed_at, opted_in_at,
       consent_source, double_opt_in, is_role_account, is_disposable, needs_smtputf8, attributes::VARCHAR AS attributes,
       created_at, updated_at
FROM subscribers
ORDER BY subscriber_id;

-- name: export_quarantine
SELECT source, line, rule, reason, raw, raw_sha256, count, batch_id, ingested_at
FROM quarantine
ORDER BY ingested_at, source, line;
