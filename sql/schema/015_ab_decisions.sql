-- The A/B winner (issue 13): one row per decision attempt of a campaign's A/B test, by
-- `mailflow ab decide` or the pick_ab_winner flow. A `wait` or `too_few` attempt is kept too (it says
-- why nothing was sent and when the next try is); the attempt that released the remainder is
-- `final`, and a campaign has at most one: the decision stands.
CREATE TABLE ab_decisions (
    campaign_id          VARCHAR NOT NULL,
    attempt              INTEGER NOT NULL,       -- 1, 2, ... per campaign
    decided_at           TIMESTAMPTZ NOT NULL,
    metric               VARCHAR NOT NULL,       -- unique_clicks | unique_opens | click_to_open (human events only)
    method               VARCHAR NOT NULL,       -- two_proportion_z_pooled_holm
    confidence           DOUBLE NOT NULL,
    min_per_variant      INTEGER NOT NULL,
    fallback             VARCHAR NOT NULL,       -- leader | control | wait
    outcome              VARCHAR NOT NULL
                         CHECK (outcome IN ('winner', 'fallback_leader', 'fallback_control', 'wait', 'too_few')),
    winner               VARCHAR,                -- the variant the remainder gets; NULL while waiting
    leader               VARCHAR NOT NULL,       -- the highest rate, winner or not
    final                BOOLEAN NOT NULL,
    p_value              DOUBLE,                 -- the leader's weakest comparison, Holm-adjusted
    probability_best     JSON NOT NULL,          -- {"A": 0.03, "B": 0.97}: Beta(1+x, 1+n-x) posteriors
    variants             JSON NOT NULL,          -- [{variant, delivered, trials, successes, rate, ci_low, ci_high}]
    comparisons          JSON NOT NULL,          -- [{other, z, p_value, p_adjusted}]: the leader against each
    reason               VARCHAR NOT NULL,       -- one sentence for people
    test_finished_at     TIMESTAMPTZ,            -- when the test's chunks were all sent (the campaign became `sent`)
    early                BOOLEAN NOT NULL,       -- decided before test_finished_at + wait
    next_try_at          TIMESTAMPTZ,            -- a wait or too_few: when pick_ab_winner tries again
    remainder_recipients BIGINT NOT NULL,
    remainder_sent       BOOLEAN NOT NULL DEFAULT false,  -- its chunks went through the send flow
    remainder_sent_at    TIMESTAMPTZ,
    holdout_lift         DOUBLE,                 -- mailed minus holdout engaged share (holdout JSON says what it measures)
    holdout              JSON,                   -- the lift's groups, interval, p-value, window and definition
    decided_by           VARCHAR NOT NULL,
    PRIMARY KEY (campaign_id, attempt)
);
