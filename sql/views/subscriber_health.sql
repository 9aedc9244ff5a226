-- Each subscriber's status beside their engagement (score, last human open or click, recent
-- bounces, campaigns received): who is engaged, who is fading, who should be sunset.
-- Subscribers never mailed nor seen in an event have no engagement figures.
CREATE OR REPLACE VIEW subscriber_health AS
WITH subscribers AS (
    SELECT subscriber_id, email, status, created_at FROM subscribers
),
engagement AS (
    SELECT * FROM subscriber_engagement
),
final AS (
    SELECT s.subscriber_id, s.email, s.status, s.created_at, e.* EXCLUDE (subscriber_id)
    FROM subscribers AS s
    LEFT JOIN engagement AS e USING (subscriber_id)
)
SELECT * FROM final;
