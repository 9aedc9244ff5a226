-- A bounded quarantine (issue 8): identical rejected rows of a file are one entry with a
-- count, and raw keeps at most 4,096 characters with the whole text's SHA-256 beside it.
-- A 460 KB gzip of ten million copies of one bad row had written ten million entries (a
-- 1.7 GB export), and one 200 MB line had been stored whole.
ALTER TABLE quarantine ADD COLUMN raw_sha256 VARCHAR;
ALTER TABLE quarantine ADD COLUMN count BIGINT DEFAULT 1;     -- rows of the file this entry stands for
UPDATE quarantine SET raw_sha256 = sha256(raw), count = 1;
ALTER TABLE quarantine ALTER COLUMN raw_sha256 SET NOT NULL;
ALTER TABLE quarantine ALTER COLUMN count SET NOT NULL;
UPDATE quarantine SET raw = left(raw, 4096) || ' …[truncated: ' || format('{:,}', strlen(raw)) || ' bytes]'
WHERE length(raw) > 4096;
