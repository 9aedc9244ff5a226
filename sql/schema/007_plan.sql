-- Audience planning (issue 10): campaigns explain their audience (matched, excluded by rule,
-- planned), may be `draft` or `scheduled`, and are re-planned under a new plan id; holdout
-- recipients have no chunk; why each excluded subscriber was left out is kept.
--
-- campaigns is rebuilt because DuckDB cannot alter a CHECK constraint (the status list grows).
-- campaign_recipients is rebuilt without its primary key: DuckDB maintains an ART index per
-- unique constraint, and inserting 10M recipients cost 6.5 s with it against 1.5 s without
-- (deleting them on a re-plan 8.3 s against 0.05 s; measured 2026-12). The plan writes one row
-- per subscriber by construction (sql/checks/assert_unique_campaign_recipient.sql verifies it).

CREATE TABLE campaigns_v2 (
    campaign_id   VARCHAR PRIMARY KEY,
    name          VARCHAR NOT NULL UNIQUE,
    status        VARCHAR NOT NULL
                  CHECK (status IN ('draft', 'planned', 'scheduled', 'sending', 'paused', 'sent', 'cancelled',
                                    'aborted')),
    spec          JSON NOT NULL,                 -- the campaign file as planned
    audience_size BIGINT NOT NULL,               -- recipients to be mailed (variants and remainder)
    chunk_count   INTEGER NOT NULL,
    matched       BIGINT NOT NULL DEFAULT 0,     -- subscribers its lists, segments and `where` select
    excluded      BIGINT NOT NULL DEFAULT 0,     -- of those, left out (campaign_exclusions says why)
    planned       BIGINT NOT NULL DEFAULT 0,     -- matched - excluded: campaign_recipients, holdout included
    plan_id       VARCHAR,                       -- its chunk folder is chunks-<plan_id>/
    planned_at    TIMESTAMPTZ,                   -- the frequency cap counts campaigns planned within its days
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO campaigns_v2 (campaign_id, name, status, spec, audience_size, chunk_count, matched, planned, planned_at,
                          created_at, updated_at)
SELECT campaign_id, name, status, spec, audience_size, chunk_count, audience_size, audience_size, created_at,
       created_at, updated_at
FROM campaigns;
DROP TABLE campaigns;
ALTER TABLE campaigns_v2 RENAME TO campaigns;

CREATE TABLE campaign_recipients_v2 (
    campaign_id   VARCHAR NOT NULL,
    subscriber_id BIGINT NOT NULL,
    variant       VARCHAR NOT NULL,              -- a variant's name, `holdout` or `remainder`
    chunk_id      INTEGER                        -- NULL for the holdout: mailed nothing
);
INSERT INTO campaign_recipients_v2 SELECT campaign_id, subscriber_id, variant, chunk_id FROM campaign_recipients;
DROP TABLE campaign_recipients;
ALTER TABLE campaign_recipients_v2 RENAME TO campaign_recipients;

-- One row per matched subscriber the plan left out, with the first rule that excluded it
-- (tasks/plan/exclusions.py gives the order). Replaced with the campaign's recipients on a re-plan.
CREATE TABLE campaign_exclusions (
    campaign_id   VARCHAR NOT NULL,
    subscriber_id BIGINT NOT NULL,
    rule          VARCHAR NOT NULL               -- status:<s>, suppressed:<cause>, soft_bounces, rule:<pattern>,
                                                 -- exclude:<name>, frequency_cap
);
