-- How engaged is each subscriber, as of the last refresh ($as_of, kept in mart_refreshes)?
-- Last open and click (raw and by a person), opens and clicks in the last 90 days, bounces in
-- the last 30, when they were last mailed and how many campaigns reached them. One row per
-- subscriber with any delivery or event. Segments read it (sql/segments/sunset_180d.sql).
-- engagement_score: of the campaigns delivered to them in the last 90 days, the share a person
-- opened (1 point) or clicked (2 more), 0-100; NULL when none was delivered.
with deliveries as (
    select * from stg_subscriber_deliveries
),

events as (
    select * from stg_subscriber_events
),

event_activity as (
    select
        subscriber_id,
        max(occurred_at) filter (where type = 'open') as last_open_at,
        max(occurred_at) filter (where type = 'click') as last_click_at,
        max(occurred_at) filter (where type = 'open' and is_human) as last_human_open_at,
        max(occurred_at) filter (where type = 'click' and is_human) as last_human_click_at,
        count(*) filter (where type = 'open' and occurred_at >= $as_of - interval 90 day) as opens_90d,
        count(*) filter (where type = 'click' and occurred_at >= $as_of - interval 90 day) as clicks_90d,
        count(*) filter (where type = 'open' and is_human and occurred_at >= $as_of - interval 90 day) as human_opens_90d,
        count(*) filter (where type = 'click' and is_human and occurred_at >= $as_of - interval 90 day) as human_clicks_90d,
        count(distinct campaign_id) filter (where type = 'open' and is_human
                                            and occurred_at >= $as_of - interval 90 day) as campaigns_opened_90d,
        count(distinct campaign_id) filter (where type = 'click' and is_human
                                            and occurred_at >= $as_of - interval 90 day) as campaigns_clicked_90d
    from events
    group by subscriber_id
),

bounces as (
    -- a bounce seen at send time and again from the mailbox is one bounce of that campaign
    select subscriber_id, campaign_id, null as event_id, sent_at as bounced_at
    from deliveries
    where bounce_kind is not null
    union all
    select subscriber_id, campaign_id, event_id, occurred_at as bounced_at
    from events
    where bounce_kind is not null
),

bounce_activity as (
    select
        subscriber_id,
        max(bounced_at) as last_bounce_at,
        count(distinct coalesce(campaign_id, 'event:' || event_id))
            filter (where bounced_at >= $as_of - interval 30 day) as bounces_30d
    from bounces
    group by subscriber_id
),

send_activity as (
    select
        subscriber_id,
        max(sent_at) filter (where status <> 'suppressed') as last_sent_at,
        count(distinct campaign_id) filter (where status = 'delivered' and sent_at >= $as_of - interval 90 day)
            as campaigns_received_90d,
        count(distinct campaign_id) filter (where status = 'delivered' and sent_at >= $as_of - interval 180 day)
            as campaigns_received_180d
    from deliveries
    group by subscriber_id
),

subscribers as (
    select subscriber_id from event_activity
    union
    select subscriber_id from bounce_activity
    union
    select subscriber_id from send_activity
),

final as (
    select
        s.subscriber_id,
        e.last_open_at,
        e.last_click_at,
        coalesce(e.opens_90d, 0) as opens_90d,
        coalesce(e.clicks_90d, 0) as clicks_90d,
        coalesce(e.human_opens_90d, 0) as human_opens_90d,
        coalesce(e.human_clicks_90d, 0) as human_clicks_90d,
        case when a.campaigns_received_90d > 0 then
            round(100 * least(1, (coalesce(e.campaigns_opened_90d, 0) + 2 * coalesce(e.campaigns_clicked_90d, 0))
                                 / (3 * a.campaigns_received_90d)))::integer
        end as engagement_score,
        coalesce(b.bounces_30d, 0) as bounces_30d,
        b.last_bounce_at,
        a.last_sent_at,
        coalesce(a.campaigns_received_90d, 0) as campaigns_received_90d,
        e.last_human_open_at,
        e.last_human_click_at,
        greatest(e.last_human_open_at, e.last_human_click_at) as last_engaged_at,
        coalesce(a.campaigns_received_180d, 0) as campaigns_received_180d
    from subscribers as s
    left join event_activity as e using (subscriber_id)
    left join bounce_activity as b using (subscriber_id)
    left join send_activity as a using (subscriber_id)
    where s.subscriber_id is not null
)

select * from final
