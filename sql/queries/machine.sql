-- name: stage_touched_pairs
-- The recipients (campaign, subscriber) this aggregate run gave new ledger records or new events:
-- their machine flags are recomputed (evidence can arrive in a later file), and the marts and A/B
-- figures refresh from them (touched_campaigns, touched_subscribers below).
-- `delivered`: the pair has new ledger records (a delivery time that re-judges every event of theirs);
-- `engaged`: it has a new open or click (evidence about its older clicks: a human open, a burst).
CREATE OR REPLACE TEMP TABLE touched_pairs (campaign_id VARCHAR NOT NULL, subscriber_id BIGINT NOT NULL,
                                            delivered BOOLEAN NOT NULL, engaged BOOLEAN NOT NULL);

-- name: stage_touched_campaigns
-- The interface to the marts (refresh_marts(con, touched) after the load): the campaigns whose
-- deliveries or events changed in this run. It exists, perhaps empty, once load_logs has loaded.
CREATE OR REPLACE TEMP TABLE touched_campaigns (campaign_id VARCHAR NOT NULL);

-- name: stage_touched_subscribers
-- ... and the subscribers whose deliveries, events or suppressions changed in this run.
CREATE OR REPLACE TEMP TABLE touched_subscribers (subscriber_id BIGINT NOT NULL);

-- name: fill_touched_pairs
INSERT INTO touched_pairs
SELECT campaign_id, subscriber_id, bool_or(delivered), bool_or(engaged)
FROM (SELECT campaign_id, subscriber_id, true AS delivered, false AS engaged FROM staged_attempts
      UNION ALL
      SELECT campaign_id, subscriber_id, false, type IN ('open', 'click') FROM new_events
      WHERE campaign_id IS NOT NULL AND subscriber_id IS NOT NULL)
GROUP BY campaign_id, subscriber_id;

-- name: fill_touched_campaigns
-- A bounce or complaint event without a subscriber still changes its campaign's figures.
INSERT INTO touched_campaigns
SELECT DISTINCT campaign_id
FROM (SELECT campaign_id FROM touched_pairs
      UNION ALL
      SELECT campaign_id FROM new_events WHERE campaign_id IS NOT NULL);

-- name: fill_touched_subscribers
-- Subscribers of new records and events, and those whose address a suppression log line named
-- (their status may have changed without a record of theirs).
INSERT INTO touched_subscribers
SELECT DISTINCT subscriber_id
FROM (SELECT subscriber_id FROM touched_pairs
      UNION ALL
      SELECT subscriber_id FROM new_events WHERE subscriber_id IS NOT NULL
      UNION ALL
      SELECT s.subscriber_id FROM input_suppression_log AS l JOIN subscribers AS s USING (email));

-- name: touched_campaign_ids
SELECT DISTINCT campaign_id FROM touched_pairs ORDER BY campaign_id;

-- name: stage_machine_candidates
-- The opens and clicks to judge: this run's, and those loaded before whose verdict new evidence can
-- change. An open's verdict rests on itself and its delivery time, so an older open is judged
-- again only when its recipient has new ledger records; a click's also rests on the recipient's
-- first human open and on the clicks around it, so older clicks are judged again when the
-- recipient has new ledger records or a new open or click (a new bounce or unsubscribe changes neither).
-- (`new_row`: the event's row in new_events, which insert_new_events joins on: a number, not the id text.)
-- A view, not a table: at 10M events, copying them cost more than the three scans that read it.
CREATE OR REPLACE TEMP VIEW machine_candidates AS
WITH old AS (
    SELECT e.event_id, e.campaign_id, e.subscriber_id, e.type, e.link, e.occurred_at, e.ip, e.user_agent,
           NULL::BIGINT AS new_row
    FROM events AS e
    JOIN touched_pairs AS t ON t.campaign_id = e.campaign_id AND t.subscriber_id = e.subscriber_id
    WHERE (e.type = 'click' AND (t.delivered OR t.engaged)) OR (e.type = 'open' AND t.delivered)
),
new AS (
    SELECT event_id, campaign_id, subscriber_id, type, link, occurred_at, ip, user_agent, rowid AS new_row
    FROM new_events
    WHERE type IN ('open', 'click') AND campaign_id IS NOT NULL AND subscriber_id IS NOT NULL
)
SELECT * FROM old
UNION ALL
SELECT * FROM new;

-- name: stage_earlier_human_opens
-- ... and for the recipients whose older clicks are judged again but not their older opens, their
-- first human open as it stands: what their clicks are measured against.
CREATE OR REPLACE TEMP TABLE earlier_human_opens AS
SELECT e.campaign_id, e.subscriber_id, min(e.occurred_at) AS first_human_open
FROM events AS e
JOIN touched_pairs AS t ON t.campaign_id = e.campaign_id AND t.subscriber_id = e.subscriber_id
WHERE e.type = 'open' AND NOT e.is_machine AND NOT t.delivered AND t.engaged
GROUP BY e.campaign_id, e.subscriber_id;

-- name: candidate_agents
-- Classified once per distinct value in Polars (tasks/aggregate/machine.py), joined back by equality.
SELECT DISTINCT user_agent FROM machine_candidates WHERE user_agent IS NOT NULL;

-- name: candidate_addresses
SELECT DISTINCT ip FROM machine_candidates WHERE ip IS NOT NULL;

-- name: stage_machine_flags
-- The verdict on each candidate (rules in tasks/aggregate/machine.py's docstring; first match wins).
-- Seconds since delivery are measured from deliveries.sent_at, the final record's time, either way
-- (a clock a little ahead on one host); an open long before it belongs to an earlier send of the
-- same recipient and proves nothing. Clicks of one recipient with gaps of at most $burst_seconds
-- form a burst (a running sum over the gaps: one sort, no self-join).
CREATE OR REPLACE TEMP TABLE machine_flags AS
WITH candidates AS (
    SELECT * FROM machine_candidates
),
agents AS (
    SELECT * FROM input_machine_agents
),
networks AS (
    SELECT * FROM input_machine_networks
),
links AS (
    SELECT * FROM input_campaign_links
),
delivered AS (
    SELECT d.campaign_id, d.subscriber_id, d.sent_at
    FROM deliveries AS d
    SEMI JOIN touched_pairs AS t ON t.campaign_id = d.campaign_id AND t.subscriber_id = d.subscriber_id
),
described AS NOT MATERIALIZED (
    -- read by opens and by clicks, each its own part (materialised, every candidate was copied whole)
    SELECT c.*, a.applies_to, a.reason AS agent_reason,
           CASE WHEN c.ip IS NULL THEN 'unreadable' ELSE n.network END AS network,
           abs(epoch(c.occurred_at - d.sent_at)) AS from_delivery
    FROM candidates AS c
    LEFT JOIN agents AS a ON a.user_agent = c.user_agent
    LEFT JOIN networks AS n ON n.ip = c.ip
    LEFT JOIN delivered AS d ON d.campaign_id = c.campaign_id AND d.subscriber_id = c.subscriber_id
),
opens AS (
    SELECT event_id, campaign_id, subscriber_id, occurred_at, new_row,
           CASE
               WHEN agent_reason IS NOT NULL THEN agent_reason
               WHEN user_agent = 'Mozilla/5.0' AND network IN ('apple', 'unreadable') THEN 'apple_mpp'
               WHEN network IN ('google', 'yahoo') THEN 'image_proxy:' || network
               WHEN from_delivery < $fast_open THEN 'fast_open'
           END AS reason
    FROM described
    WHERE type = 'open'
),
human_opens AS (
    SELECT campaign_id, subscriber_id, min(first_human_open) AS first_human_open
    FROM (SELECT campaign_id, subscriber_id, occurred_at AS first_human_open FROM opens WHERE reason IS NULL
          UNION ALL
          SELECT * FROM earlier_human_opens)
    GROUP BY campaign_id, subscriber_id
),
clicks AS (
    SELECT d.event_id, d.new_row, d.campaign_id, d.subscriber_id, d.link, d.occurred_at, d.agent_reason, d.applies_to,
           d.from_delivery, h.first_human_open,
           epoch(d.occurred_at - lag(d.occurred_at) OVER (PARTITION BY d.campaign_id, d.subscriber_id
                                                          ORDER BY d.occurred_at, d.event_id)) AS gap
    FROM described AS d
    LEFT JOIN human_opens AS h ON h.campaign_id = d.campaign_id AND h.subscriber_id = d.subscriber_id
    WHERE d.type = 'click'
),
bursts AS (
    SELECT *,
           sum(CASE WHEN gap IS NULL OR gap > $burst_seconds THEN 1 ELSE 0 END)
               OVER (PARTITION BY campaign_id, subscriber_id ORDER BY occurred_at, event_id
                     ROWS UNBOUNDED PRECEDING) AS burst
    FROM clicks
),
burst_sizes AS (
    SELECT campaign_id, subscriber_id, burst, count(DISTINCT link) AS links, min(occurred_at) AS started_at
    FROM bursts
    GROUP BY campaign_id, subscriber_id, burst
),
judged_clicks AS (
    SELECT b.event_id, b.new_row,
           CASE
               WHEN b.agent_reason IS NOT NULL AND b.applies_to = 'any' THEN b.agent_reason
               WHEN s.links >= least($burst_links, greatest(coalesce(l.links, $burst_links), 2))
                    AND (b.first_human_open IS NULL OR s.started_at < b.first_human_open) THEN 'scanner_burst'
               WHEN b.from_delivery < $fast_click
                    AND (b.first_human_open IS NULL OR b.occurred_at < b.first_human_open) THEN 'fast_click'
           END AS reason
    FROM bursts AS b
    JOIN burst_sizes AS s USING (campaign_id, subscriber_id, burst)
    LEFT JOIN links AS l USING (campaign_id)
),
final AS (
    SELECT event_id, new_row, reason IS NOT NULL AS is_machine, reason AS machine_reason FROM opens
    UNION ALL
    SELECT event_id, new_row, reason IS NOT NULL AS is_machine, reason AS machine_reason FROM judged_clicks
)
SELECT * FROM final;

-- name: count_machine_flags
-- The summary's `events_machine`: opens and clicks of this run's recipients judged a machine's.
SELECT count(*) FILTER (WHERE is_machine) FROM machine_flags;

-- name: update_machine_flags
-- Events loaded in an earlier run whose verdict changed (new evidence): only those rows are written.
UPDATE events SET is_machine = f.is_machine, machine_reason = f.machine_reason
FROM machine_flags AS f
WHERE f.new_row IS NULL
  AND events.event_id = f.event_id
  AND (events.is_machine <> f.is_machine OR events.machine_reason IS DISTINCT FROM f.machine_reason);

-- name: drop_machine_candidates
DROP VIEW IF EXISTS machine_candidates;

-- name: drop_earlier_human_opens
DROP TABLE IF EXISTS earlier_human_opens;

-- name: drop_machine_flags
DROP TABLE IF EXISTS machine_flags;
