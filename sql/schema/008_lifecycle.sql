-- The campaign lifecycle (tasks/files/lifecycle.py): every move, loaded by `aggregate` from
-- campaigns/<id>/transitions.ndjson; campaigns.status follows the latest. `seq` numbers a
-- campaign's moves, so loading a log again changes nothing.
CREATE TABLE campaign_transitions (
    campaign_id VARCHAR NOT NULL,
    seq         INTEGER NOT NULL,
    moved_at    TIMESTAMPTZ NOT NULL,
    from_state  VARCHAR,
    to_state    VARCHAR NOT NULL,
    moved_by    VARCHAR NOT NULL,  -- the command and its user, or the flow and its process
    reason      VARCHAR NOT NULL,
    PRIMARY KEY (campaign_id, seq)
);

-- Why the plan left each matched subscriber out (written by `plan`; `campaigns show` counts it).
-- Created here too so `campaigns show` can read it whichever migration made it.
CREATE TABLE IF NOT EXISTS campaign_exclusions (
    campaign_id   VARCHAR NOT NULL,
    subscriber_id BIGINT NOT NULL,
    rule          VARCHAR NOT NULL
);
