-- The first warehouse: subscribers and their lists, the quarantine, suppressions,
-- campaigns with their frozen audiences, and the deliveries folded in from send ledgers.

CREATE SEQUENCE subscriber_id_seq START 1;

CREATE TABLE subscribers (
    subscriber_id  BIGINT PRIMARY KEY DEFAULT nextval('subscriber_id_seq'),
    email          VARCHAR NOT NULL UNIQUE,      -- normalised (domain lower-cased)
    email_original VARCHAR NOT NULL,             -- as it came in
    first_name     VARCHAR,
    last_name      VARCHAR,
    status         VARCHAR NOT NULL DEFAULT 'active'
                   CHECK (status IN ('active', 'unsubscribed', 'bounced', 'complained', 'blocked')),
    attributes     JSON NOT NULL DEFAULT '{}',
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE SEQUENCE list_id_seq START 1;

CREATE TABLE lists (
    list_id    INTEGER PRIMARY KEY DEFAULT nextval('list_id_seq'),
    name       VARCHAR NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE list_memberships (
    list_id       INTEGER NOT NULL,
    subscriber_id BIGINT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (list_id, subscriber_id)
);

-- One row per ingest run of one file; file_sha256 lets a re-ingest of the same file skip.
CREATE TABLE ingest_batches (
    batch_id    VARCHAR PRIMARY KEY,
    source      VARCHAR NOT NULL,
    file_sha256 VARCHAR NOT NULL,
    list_name   VARCHAR,
    rows_read   BIGINT NOT NULL,
    accepted    BIGINT NOT NULL,
    updated     BIGINT NOT NULL,
    unchanged   BIGINT NOT NULL,
    quarantined BIGINT NOT NULL,
    ingested_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE quarantine (
    batch_id    VARCHAR NOT NULL,
    source      VARCHAR NOT NULL,
    line        BIGINT NOT NULL,                 -- 1-based line of the record in the file
    reason      VARCHAR NOT NULL,
    raw         VARCHAR NOT NULL,                -- the original row as it was read
    ingested_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE suppressions (
    email      VARCHAR PRIMARY KEY,
    cause      VARCHAR NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE campaigns (
    campaign_id   VARCHAR PRIMARY KEY,
    name          VARCHAR NOT NULL UNIQUE,
    status        VARCHAR NOT NULL
                  CHECK (status IN ('planned', 'sending', 'sent', 'paused', 'cancelled', 'aborted')),
    spec          JSON NOT NULL,                 -- the campaign file as planned
    audience_size BIGINT NOT NULL,
    chunk_count   INTEGER NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE campaign_recipients (
    campaign_id   VARCHAR NOT NULL,
    subscriber_id BIGINT NOT NULL,
    variant       VARCHAR NOT NULL,
    chunk_id      INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, subscriber_id)
);

-- The latest outcome per recipient, folded from the send ledgers by `aggregate`.
CREATE TABLE deliveries (
    campaign_id     VARCHAR NOT NULL,
    subscriber_id   BIGINT NOT NULL,
    variant         VARCHAR NOT NULL,
    chunk_id        INTEGER NOT NULL,
    status          VARCHAR NOT NULL
                    CHECK (status IN ('delivered', 'deferred', 'bounced', 'suppressed', 'failed', 'in_doubt')),
    smtp_code       INTEGER,
    enhanced_status VARCHAR,
    detail          VARCHAR,
    attempts        INTEGER NOT NULL,
    sent_at         TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (campaign_id, subscriber_id)
);

-- Which log files aggregate has read, and how far: a reload of an unchanged file is skipped.
CREATE TABLE loaded_files (
    path      VARCHAR PRIMARY KEY,
    bytes     BIGINT NOT NULL,
    rows      BIGINT NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
