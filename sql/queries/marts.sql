-- name: create_mart_tables
-- The engagement marts (sql/models/marts/, refreshed by tasks/aggregate/marts.py) and when each
-- was last refreshed. They are derived from deliveries and events and rebuilt from them at any
-- time, so like the views they are code rather than data: created on every open (the views read
-- them), and re-created by a full rebuild when a model's columns change. Their columns are the
-- interface the report and the A/B decision read; tests/test_marts.py checks each model gives
-- exactly these.
CREATE TABLE IF NOT EXISTS engagement_by_variant (
    campaign_id VARCHAR, variant VARCHAR,                 -- variant '*': the campaign's total
    sent BIGINT, delivered BIGINT, deferred BIGINT, hard_bounced BIGINT, soft_bounced BIGINT, complaints BIGINT,
    unique_opens BIGINT, total_opens BIGINT, unique_clicks BIGINT, total_clicks BIGINT,
    human_unique_opens BIGINT, human_total_opens BIGINT, human_unique_clicks BIGINT, human_total_clicks BIGINT,
    unsubscribes BIGINT, open_rate DOUBLE, human_open_rate DOUBLE, click_rate DOUBLE, human_click_rate DOUBLE,
    click_to_open DOUBLE, human_click_to_open DOUBLE, unsubscribe_rate DOUBLE, bounce_rate DOUBLE,
    complaint_rate DOUBLE
);
CREATE TABLE IF NOT EXISTS engagement_by_provider AS
SELECT * RENAME (variant AS provider) FROM engagement_by_variant LIMIT 0;
CREATE TABLE IF NOT EXISTS engagement_by_domain AS
SELECT * RENAME (variant AS domain) FROM engagement_by_variant LIMIT 0;
CREATE TABLE IF NOT EXISTS engagement_by_hour (
    campaign_id VARCHAR, variant VARCHAR, hours_since_send INTEGER,
    opens BIGINT, clicks BIGINT, human_opens BIGINT, human_clicks BIGINT
);
CREATE TABLE IF NOT EXISTS engagement_by_link (
    campaign_id VARCHAR, link INTEGER, url VARCHAR,
    clicks BIGINT, unique_clicks BIGINT, human_clicks BIGINT, human_unique_clicks BIGINT
);
CREATE TABLE IF NOT EXISTS subscriber_engagement (
    subscriber_id BIGINT, last_open_at TIMESTAMPTZ, last_click_at TIMESTAMPTZ,
    opens_90d BIGINT, clicks_90d BIGINT, human_opens_90d BIGINT, human_clicks_90d BIGINT,
    engagement_score INTEGER, bounces_30d BIGINT, last_bounce_at TIMESTAMPTZ, last_sent_at TIMESTAMPTZ,
    campaigns_received_90d BIGINT, last_human_open_at TIMESTAMPTZ, last_human_click_at TIMESTAMPTZ,
    last_engaged_at TIMESTAMPTZ, campaigns_received_180d BIGINT
);
CREATE TABLE IF NOT EXISTS list_activity (
    list_name VARCHAR, day DATE, joined BIGINT, unsubscribed BIGINT, bounced BIGINT, complained BIGINT,
    members BIGINT
);
CREATE TABLE IF NOT EXISTS mart_refreshes (
    mart VARCHAR PRIMARY KEY,
    as_of TIMESTAMPTZ NOT NULL,        -- the time its windows (90 days ...) were computed against
    full_rebuild BOOLEAN NOT NULL,
    models_sha VARCHAR NOT NULL,       -- of sql/models/ as it ran: a changed model rebuilds every mart
    seconds DOUBLE NOT NULL,
    refreshed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- name: mart_refresh_times
-- When each mart was last refreshed and by which models: a mart never refreshed, or refreshed
-- by other models, is rebuilt in full.
SELECT mart, as_of, models_sha FROM mart_refreshes;

-- name: record_mart_refresh
INSERT OR REPLACE INTO mart_refreshes (mart, as_of, full_rebuild, models_sha, seconds, refreshed_at)
VALUES ($mart, $as_of, $full_rebuild, $models_sha, $seconds, now());

-- name: table_columns
-- A table's columns in order (a mart whose model's columns changed is re-created).
SELECT column_name FROM information_schema.columns WHERE table_name = $table ORDER BY ordinal_position;

-- name: mart_scope_sizes
-- How many campaigns and subscribers this refresh recomputes.
SELECT (SELECT count(*) FROM mart_campaigns) AS campaigns, (SELECT count(*) FROM mart_subscribers) AS subscribers;

-- name: touched_tables_present
-- Whether the load left its TEMP tables of touched campaigns and subscribers: without them, rebuild.
SELECT count(*) = 2 FROM duckdb_tables()
WHERE temporary AND table_name IN ('touched_campaigns', 'touched_subscribers');

-- name: stage_mart_campaigns
-- The campaigns whose per-campaign marts are recomputed: those the load touched.
CREATE OR REPLACE TEMP TABLE mart_campaigns AS
SELECT DISTINCT campaign_id FROM touched_campaigns WHERE campaign_id IS NOT NULL;

-- name: stage_mart_subscribers
-- The subscribers whose engagement row is recomputed: those the load touched, and those with
-- an event or a delivery that left one of subscriber_engagement's windows (30, 90, 180 days)
-- between the last refresh ($since) and this one ($as_of): their counts changed though nothing new came.
CREATE OR REPLACE TEMP TABLE mart_subscribers AS
SELECT subscriber_id FROM touched_subscribers WHERE subscriber_id IS NOT NULL
UNION
SELECT subscriber_id FROM events
WHERE subscriber_id IS NOT NULL AND (
       (occurred_at >= $since::TIMESTAMPTZ - INTERVAL 30 DAY AND occurred_at < $as_of::TIMESTAMPTZ - INTERVAL 30 DAY)
    OR (occurred_at >= $since::TIMESTAMPTZ - INTERVAL 90 DAY AND occurred_at < $as_of::TIMESTAMPTZ - INTERVAL 90 DAY)
    OR (occurred_at >= $since::TIMESTAMPTZ - INTERVAL 180 DAY AND occurred_at < $as_of::TIMESTAMPTZ - INTERVAL 180 DAY))
UNION
SELECT subscriber_id FROM deliveries
WHERE (sent_at >= $since::TIMESTAMPTZ - INTERVAL 30 DAY AND sent_at < $as_of::TIMESTAMPTZ - INTERVAL 30 DAY)
   OR (sent_at >= $since::TIMESTAMPTZ - INTERVAL 90 DAY AND sent_at < $as_of::TIMESTAMPTZ - INTERVAL 90 DAY)
   OR (sent_at >= $since::TIMESTAMPTZ - INTERVAL 180 DAY AND sent_at < $as_of::TIMESTAMPTZ - INTERVAL 180 DAY);

-- name: stage_touched_inputs
-- What the staging models read in an incremental refresh (after stage_mart_campaigns and
-- stage_mart_subscribers): the deliveries and events of the campaigns or of the subscribers
-- being refreshed, each saying which (one pass over events serves both kinds of mart).
CREATE OR REPLACE TEMP VIEW scoped_deliveries AS
SELECT * FROM (
    SELECT *, coalesce(campaign_id IN (SELECT campaign_id FROM mart_campaigns), false) AS in_campaign_scope,
           coalesce(subscriber_id IN (SELECT subscriber_id FROM mart_subscribers), false) AS in_subscriber_scope
    FROM deliveries
) WHERE in_campaign_scope OR in_subscriber_scope;
CREATE OR REPLACE TEMP VIEW scoped_events AS
SELECT * FROM (
    SELECT *, coalesce(campaign_id IN (SELECT campaign_id FROM mart_campaigns), false) AS in_campaign_scope,
           coalesce(subscriber_id IN (SELECT subscriber_id FROM mart_subscribers), false) AS in_subscriber_scope
    FROM events
) WHERE in_campaign_scope OR in_subscriber_scope;

-- name: stage_all_inputs
-- A full rebuild reads everything, with no join to a list of every id (it cost a second per
-- 10M events): an event without a campaign counts only for its subscriber, one without a
-- subscriber only for its campaign.
CREATE OR REPLACE TEMP VIEW scoped_deliveries AS
SELECT *, true AS in_campaign_scope, true AS in_subscriber_scope FROM deliveries;
CREATE OR REPLACE TEMP VIEW scoped_events AS
SELECT *, campaign_id IS NOT NULL AS in_campaign_scope, subscriber_id IS NOT NULL AS in_subscriber_scope FROM events;

-- name: drop_inputs
DROP VIEW IF EXISTS scoped_deliveries;
DROP VIEW IF EXISTS scoped_events;
DROP TABLE IF EXISTS mart_campaigns;
DROP TABLE IF EXISTS mart_subscribers;
