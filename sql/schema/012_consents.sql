-- Consent records of double opt-ins (issue 11): who confirmed which list, when they filled in
-- the form and when they followed the confirmation link, from which address (as the tracking
-- service logs it: truncated or hashed per setting) and under which version of the form's text.
-- One row per optin_confirmed event, so a reload of the event log adds nothing.
CREATE TABLE consents (
    event_id      VARCHAR PRIMARY KEY,
    subscriber_id BIGINT NOT NULL,
    email         VARCHAR NOT NULL,
    list          VARCHAR NOT NULL,
    consented_at  TIMESTAMPTZ NOT NULL,          -- the form was sent
    confirmed_at  TIMESTAMPTZ NOT NULL,          -- the confirmation link was followed
    ip            VARCHAR,
    form_version  VARCHAR,
    source        VARCHAR NOT NULL               -- where the consent was given: form
);
