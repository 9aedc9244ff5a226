-- The sending engine: each delivery keeps its bounce classification, the provider group of
-- its domain and, while deferred, when it is due again. A send-time suppression (an address
-- suppressed after the audience was frozen) is a delivery with status 'suppressed'.
ALTER TABLE deliveries ADD COLUMN kind VARCHAR;       -- hard | soft (DESIGN.md bounce taxonomy)
ALTER TABLE deliveries ADD COLUMN reason VARCHAR;     -- user_unknown, mailbox_full, rate_limited, ...
ALTER TABLE deliveries ADD COLUMN provider VARCHAR;   -- gmail | microsoft | yahoo | other
ALTER TABLE deliveries ADD COLUMN retry_at TIMESTAMPTZ;
