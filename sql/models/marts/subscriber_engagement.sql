-- How engaged is each subscriber, as of the last refresh ($as_of, kept in mart_refreshes)?
-- Last open and click (raw and by a person), opens and clicks in the last 90 days, bounces in
-- the last 30, when they were last mailed and how many campaigns reached them. One row per
-- subscriber with any delivery or event. Segments read it (sql/segments/sunset_180d.sql).
-- engagement_score: of the campaigns delivered to them in the last 90 days, the share a person
-- opened (1 point) or clicked (2 more), 0-100; NULL when none was delivered.
with recipient_events as (
    select * from int_recipient_events where in_subscriber_scope
),

deliveries as (
    select * from stg_deliveries where in_subscriber_scope
),

recipients as (
    -- each campaign a subscriber was mailed or acted on (an untraced bounce: campaign NULL)
    select
        subscriber_id,
        campaign_id,
        e.last_open_at,
        e.last_click_at,
        e.last_human_open_at,
        e.last_human_click_at,
        e.opens_90d,
        e.clicks_90d,
        e.human_opens_90d,
        e.human_clicks_90d,
        greatest(e.last_bounce_at, case when d.bounce_kind is not null then d.sent_at end) as last_bounce_at,
        -- a bounce seen at send time and again from the mailbox is one bounce of that campaign
        case
            when campaign_id is null then e.bounces_30d
            when e.bounces_30d > 0 or (d.bounce_kind is not null and d.sent_at >= $as_of - interval 30 day) then 1
            else 0
        end as bounces_30d,
        case when d.status <> 'suppressed' then d.sent_at end as sent_at,
        d.status = 'delivered' and d.sent_at >= $as_of - interval 90 day as received_90d,
        d.status = 'delivered' and d.sent_at >= $as_of - interval 180 day as received_180d
    from recipient_events as e
    full outer join deliveries as d using (campaign_id, subscriber_id)
),

subscribers as (
    select
        subscriber_id,
        max(last_open_at) as last_open_at,
        max(last_click_at) as last_click_at,
        max(last_human_open_at) as last_human_open_at,
        max(last_human_click_at) as last_human_click_at,
        coalesce(sum(opens_90d), 0)::bigint as opens_90d,
        coalesce(sum(clicks_90d), 0)::bigint as clicks_90d,
        coalesce(sum(human_opens_90d), 0)::bigint as human_opens_90d,
        coalesce(sum(human_clicks_90d), 0)::bigint as human_clicks_90d,
        count(campaign_id) filter (where human_opens_90d > 0) as campaigns_opened_90d,
        count(campaign_id) filter (where human_clicks_90d > 0) as campaigns_clicked_90d,
        coalesce(sum(bounces_30d), 0)::bigint as bounces_30d,
        max(last_bounce_at) as last_bounce_at,
        max(sent_at) as last_sent_at,
        count(*) filter (where received_90d) as campaigns_received_90d,
        count(*) filter (where received_180d) as campaigns_received_180d
    from recipients
    where subscriber_id is not null
    group by subscriber_id
),

final as (
    select
        subscriber_id,
        last_open_at,
        last_click_at,
        opens_90d,
        clicks_90d,
        human_opens_90d,
        human_clicks_90d,
        case when campaigns_received_90d > 0 then
            round(100 * least(1, (campaigns_opened_90d + 2 * campaigns_clicked_90d) / (3 * campaigns_received_90d)))::integer
        end as engagement_score,
        bounces_30d,
        last_bounce_at,
        last_sent_at,
        campaigns_received_90d,
        last_human_open_at,
        last_human_click_at,
        greatest(last_human_open_at, last_human_click_at) as last_engaged_at,
        campaigns_received_180d
    from subscribers
)

select * from final
