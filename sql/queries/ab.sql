-- name: ab_variant_counts
-- Each test variant's delivered recipients and, among them, the distinct subscribers with a human
-- (NOT is_machine) open, click, or both, for this campaign. The variant is the recipient's from
-- campaign_recipients, not the delivery's: the remainder is delivered under the winner's name and
-- must not count in the test. Same definitions as engagement_by_variant (unique = distinct
-- subscribers, rates over delivered); click_to_open's numerator keeps only clickers who opened, so
-- that it is a proportion of openers.
WITH test_recipients AS (
    SELECT subscriber_id, variant
    FROM campaign_recipients
    WHERE campaign_id = $campaign_id AND variant NOT IN ('holdout', 'remainder')
),
delivered AS (
    SELECT r.subscriber_id, r.variant
    FROM test_recipients AS r
    JOIN deliveries AS d ON d.campaign_id = $campaign_id AND d.subscriber_id = r.subscriber_id
    WHERE d.status = 'delivered'
),
human AS (
    SELECT subscriber_id, bool_or(type = 'open') AS opened, bool_or(type = 'click') AS clicked
    FROM events
    WHERE campaign_id = $campaign_id AND type IN ('open', 'click') AND NOT is_machine
    GROUP BY subscriber_id
),
final AS (
    SELECT d.variant,
           count(*) AS delivered,
           count(*) FILTER (WHERE h.opened) AS openers,
           count(*) FILTER (WHERE h.clicked) AS clickers,
           count(*) FILTER (WHERE h.opened AND h.clicked) AS clicking_openers
    FROM delivered AS d
    LEFT JOIN human AS h USING (subscriber_id)
    GROUP BY d.variant
)
SELECT * FROM final ORDER BY variant;

-- name: ab_holdout_engagement
-- Holdout lift's inputs: everyone assigned to a test variant (mailed) or to the holdout, and how
-- many of each had a human open or click of ANY campaign between the test's first delivery and
-- $until. The holdout got nothing from this campaign, so its opens of this campaign are 0 by
-- construction; engagement with all mail is what both groups can show.
WITH assigned AS (
    SELECT subscriber_id, variant = 'holdout' AS is_holdout
    FROM campaign_recipients
    WHERE campaign_id = $campaign_id AND variant <> 'remainder'
),
test_window AS (
    SELECT min(sent_at) AS starts FROM deliveries WHERE campaign_id = $campaign_id
),
engaged AS (
    SELECT DISTINCT e.subscriber_id
    FROM events AS e, test_window AS w
    WHERE e.type IN ('open', 'click') AND NOT e.is_machine AND e.occurred_at >= w.starts AND e.occurred_at < $until
),
final AS (
    SELECT a.is_holdout, count(*) AS assigned, count(e.subscriber_id) AS engaged
    FROM assigned AS a
    LEFT JOIN engaged AS e USING (subscriber_id)
    GROUP BY a.is_holdout
)
SELECT f.is_holdout, f.assigned, f.engaged, w.starts FROM final AS f, test_window AS w;

-- name: ab_remainder_size
-- Recipients held back for the winner (campaign_recipients.variant = 'remainder').
SELECT count(*) FROM campaign_recipients WHERE campaign_id = $campaign_id AND variant = 'remainder';

-- name: ab_insert_decision
-- One attempt, numbered after the campaign's last. The caller checked there is no final one yet
-- in the same open of the warehouse (one writer at a time: no other attempt can slip between).
INSERT INTO ab_decisions BY NAME
SELECT $campaign_id AS campaign_id,
       coalesce((SELECT max(attempt) FROM ab_decisions WHERE campaign_id = $campaign_id), 0) + 1 AS attempt,
       $decided_at AS decided_at, $metric AS metric, $method AS method, $confidence AS confidence,
       $min_per_variant AS min_per_variant, $fallback AS fallback, $outcome AS outcome, $winner AS winner,
       $leader AS leader, $final AS final, $p_value AS p_value, $probability_best::JSON AS probability_best,
       $variants::JSON AS variants, $comparisons::JSON AS comparisons, $reason AS reason,
       $test_finished_at AS test_finished_at, $early AS early, $next_try_at AS next_try_at,
       $remainder_recipients AS remainder_recipients, $holdout_lift AS holdout_lift, $holdout::JSON AS holdout,
       $decided_by AS decided_by
RETURNING attempt;

-- name: ab_decisions_of
-- A campaign's attempts, the latest first: `ab decide` and the report show them.
SELECT * FROM ab_decisions WHERE campaign_id = $campaign_id ORDER BY attempt DESC;

-- name: ab_final_decision
-- The decision that stands, if any.
SELECT * FROM ab_decisions WHERE campaign_id = $campaign_id AND final;

-- name: ab_decision_status
-- Per campaign: whether a decision stands and when the latest attempt said to try again; the
-- pick_ab_winner flow leaves a campaign alone until then.
SELECT campaign_id, bool_or(final) AS decided, max(next_try_at) FILTER (WHERE NOT final) AS next_try_at
FROM ab_decisions
GROUP BY campaign_id;

-- name: ab_mark_remainder_sent
-- The remainder went through the send flow (its outcomes are in the ledgers and, after the next
-- aggregate, in deliveries).
UPDATE ab_decisions SET remainder_sent = true, remainder_sent_at = $sent_at
WHERE campaign_id = $campaign_id AND final;
