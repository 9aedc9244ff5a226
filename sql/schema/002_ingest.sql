-- Ingest at millions of rows, consent, address rules, DNS cache and validation runs.
--
-- subscribers and list_memberships lose their unique indexes: DuckDB maintains an ART
-- index per unique constraint, which costs ≈2.5 s per million inserted rows here against
-- 0.35 s without (measured 2026-11). DuckDB admits one writer per file, and ingest inserts
-- only addresses an anti-join found absent, so uniqueness holds by construction; the data
-- checks sql/checks/assert_unique_*.sql verify it after every ingest.

CREATE TABLE subscribers_v2 (
    subscriber_id     BIGINT NOT NULL DEFAULT nextval('subscriber_id_seq'),
    email             VARCHAR NOT NULL,          -- normalised: NFC, IDNA domain, lower-cased domain
    email_original    VARCHAR NOT NULL,          -- as it came in
    first_name        VARCHAR,
    last_name         VARCHAR,
    status            VARCHAR NOT NULL DEFAULT 'active'
                      CHECK (status IN ('active', 'unsubscribed', 'bounced', 'complained', 'blocked')),
    status_changed_at TIMESTAMPTZ,
    opted_in_at       TIMESTAMPTZ,               -- consent: when
    consent_source    VARCHAR,                   -- consent: where (form, import, API ...)
    double_opt_in     VARCHAR CHECK (double_opt_in IN ('confirmed', 'pending', 'none')),
    is_role_account   BOOLEAN NOT NULL DEFAULT false,
    is_disposable     BOOLEAN NOT NULL DEFAULT false,
    attributes        JSON NOT NULL DEFAULT '{}',
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO subscribers_v2 (subscriber_id, email, email_original, first_name, last_name, status,
                            attributes, created_at, updated_at)
SELECT subscriber_id, email, email_original, first_name, last_name, status, attributes, created_at, updated_at
FROM subscribers;
DROP TABLE subscribers;
ALTER TABLE subscribers_v2 RENAME TO subscribers;

CREATE TABLE list_memberships_v2 (
    list_id       INTEGER NOT NULL,
    subscriber_id BIGINT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO list_memberships_v2 SELECT * FROM list_memberships;
DROP TABLE list_memberships;
ALTER TABLE list_memberships_v2 RENAME TO list_memberships;

ALTER TABLE quarantine ADD COLUMN rule VARCHAR;
ALTER TABLE ingest_batches ADD COLUMN resubscribes_refused BIGINT DEFAULT 0;
ALTER TABLE ingest_batches ADD COLUMN seconds DOUBLE;

-- Block and allow rules: `a@b.c` (exact), `*@domain` (a domain), `re:...` (a regex).
-- An allow rule exempts an address from every block rule.
CREATE TABLE address_rules (
    pattern    VARCHAR PRIMARY KEY,
    action     VARCHAR NOT NULL CHECK (action IN ('block', 'allow')),
    kind       VARCHAR NOT NULL CHECK (kind IN ('exact', 'domain', 'regex')),
    value      VARCHAR NOT NULL,                 -- the address, domain or regex itself
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- MX lookups of `ingest --check-mx`, cached until expires_at.
CREATE TABLE domain_checks (
    domain     VARCHAR PRIMARY KEY,
    status     VARCHAR NOT NULL,                 -- ok | no_domain | null_mx | no_mail_host | error
    detail     VARCHAR,
    checked_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ NOT NULL
);

-- One Great Expectations run per ingested batch; the full result JSON is under
-- <home>/validation/<run_id>.json.
CREATE TABLE validation_runs (
    run_id        VARCHAR PRIMARY KEY,
    batch_id      VARCHAR NOT NULL,
    source        VARCHAR NOT NULL,
    suite         VARCHAR NOT NULL,
    success       BOOLEAN NOT NULL,
    evaluated     INTEGER NOT NULL,
    failed        INTEGER NOT NULL,
    rows_checked  BIGINT NOT NULL,
    rows_failed   BIGINT NOT NULL,
    result_path   VARCHAR NOT NULL,
    run_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
