-- name: applied_migrations
-- Versions already applied, so `init` and first use only run what is new.
SELECT version FROM schema_migrations ORDER BY version;

-- name: record_migration
INSERT INTO schema_migrations (version, name) VALUES ($version, $name);

-- name: loaded_file_sizes
-- aggregate skips a log file whose size has not changed since it was last loaded:
-- log files are append-only, so an unchanged size means unchanged content.
SELECT path, bytes FROM loaded_files;

-- name: record_loaded_file
INSERT INTO loaded_files (path, bytes, rows) VALUES ($path, $bytes, $rows)
ON CONFLICT (path) DO UPDATE SET bytes = excluded.bytes, rows = excluded.rows, loaded_at = now();
