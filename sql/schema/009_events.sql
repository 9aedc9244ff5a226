-- Engagement events (DESIGN.md, "Warehouse tables analysts rely on"): opens, clicks,
-- unsubscribes, bounces, complaints and auto-replies, one row per event_id, loaded from the
-- event logs by the aggregate stage. Segments read it now ("opened in the last 90 days").
-- No index beyond the key: segments scan it in bulk, which DuckDB does fastest without one.
CREATE TABLE events (
    event_id      VARCHAR PRIMARY KEY,
    campaign_id   VARCHAR,                       -- absent for a bounce that cannot be traced to a send
    subscriber_id BIGINT,
    variant       VARCHAR,
    type          VARCHAR NOT NULL
                  CHECK (type IN ('open', 'click', 'unsubscribe', 'bounce', 'complaint', 'auto_reply')),
    link          INTEGER,                       -- a click: the link's index in links.json
    url           VARCHAR,
    occurred_at   TIMESTAMPTZ NOT NULL,
    is_machine    BOOLEAN NOT NULL DEFAULT false, -- privacy proxies' opens, link scanners' clicks
    ip            VARCHAR,
    user_agent    VARCHAR,
    kind          VARCHAR,                       -- a bounce: hard | soft | complaint | auto_reply
    reason        VARCHAR,
    status        VARCHAR,                       -- enhanced status code, e.g. 5.1.1
    smtp_code     INTEGER,
    diagnostic    VARCHAR
);
