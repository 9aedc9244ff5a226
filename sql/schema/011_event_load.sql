-- Loading the event logs (issue 11): `events` takes the tracking service's subscription events
-- too, keeps each line's extra fields (the raw signals issue 13 flags machine opens from) in
-- `data`, and says when it was loaded; `event_files` records how far each log file was read
-- and `event_rejects` keeps every line that could not be loaded, where and why.
--
-- events loses its primary key, as subscribers did in 002: DuckDB maintains an ART index per
-- unique constraint, which made inserting 3 million events 5x slower here (9.2 s against
-- 1.8 s, measured 2026-12). The load is the only writer and inserts only event ids an
-- anti-join found absent, so uniqueness holds by construction (sql/checks/assert_unique_event_id.sql
-- is the data check the load tests run).
CREATE TABLE events_v2 (
    event_id      VARCHAR NOT NULL,
    campaign_id   VARCHAR,                       -- absent for a bounce that cannot be traced to a send
    subscriber_id BIGINT,
    variant       VARCHAR,                       -- as the log line wrote it
    type          VARCHAR NOT NULL
                  CHECK (type IN ('open', 'click', 'unsubscribe', 'bounce', 'complaint', 'auto_reply',
                                  'list_unsubscribe', 'preferences', 'optin_pending', 'optin_confirmed',
                                  'optin_expired')),
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
    diagnostic    VARCHAR,
    data          JSON NOT NULL DEFAULT '{}',    -- the line's other fields (list, seconds since delivery ...)
    loaded_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO events_v2 BY NAME SELECT * FROM events;
DROP TABLE events;
ALTER TABLE events_v2 RENAME TO events;

-- One row per event log file: `bytes_loaded` whole lines of it are in (events or rejects);
-- `size` is the file's size when last read, so the bytes between are a last line still being written.
CREATE TABLE event_files (
    file         VARCHAR PRIMARY KEY,
    size         BIGINT NOT NULL,
    bytes_loaded BIGINT NOT NULL,
    rows         BIGINT NOT NULL,                -- whole lines read, rejected ones included
    rejected     BIGINT NOT NULL,
    loaded_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Lines of the event logs that could not be loaded: never dropped silently.
CREATE TABLE event_rejects (
    file        VARCHAR NOT NULL,
    byte_offset BIGINT NOT NULL,                 -- where the line starts in the file
    line        BIGINT NOT NULL,                 -- 1-based
    reason      VARCHAR NOT NULL,
    raw         VARCHAR NOT NULL,                -- the line as read (shortened when very long)
    rejected_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (file, byte_offset)
);
