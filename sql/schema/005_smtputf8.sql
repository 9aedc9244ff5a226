-- Addresses only a relay that offers SMTPUTF8 (RFC 6531) can take: a non-ASCII local part.
-- Ingest keeps and marks them; tasks.validate.sendable_address decides, for ingest and send
-- alike. For rows ingested before this mark existed (addresses ingest had accepted), that
-- decision is "not all ASCII", which is what the update below says.
ALTER TABLE subscribers ADD COLUMN needs_smtputf8 BOOLEAN DEFAULT false;
UPDATE subscribers SET needs_smtputf8 = strlen(email) > length(email);
