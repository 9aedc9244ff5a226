-- What each recipient did, in one pass over the events being refreshed: per campaign and
-- subscriber, its opens and clicks (raw and human), unsubscribes, complaints and bounces, the
-- last time of each, and its counts in the last 90 and 30 days as of $as_of. Read by
-- int_recipient_outcomes (per campaign) and subscriber_engagement (per subscriber), so the
-- events are grouped once for both.
with events as (
    select * from stg_events
),

final as (
    select
        campaign_id,
        subscriber_id,
        bool_or(in_campaign_scope) as in_campaign_scope,
        bool_or(in_subscriber_scope) as in_subscriber_scope,
        min(variant) as named_variant,
        count(*) filter (where type = 'open') as opens,
        count(*) filter (where type = 'open' and is_human) as human_opens,
        count(*) filter (where type = 'click') as clicks,
        count(*) filter (where type = 'click' and is_human) as human_clicks,
        bool_or(is_unsubscribe) as unsubscribed,
        bool_or(is_complaint) as complained,
        bool_or(bounce_kind = 'hard') as hard_bounce_event,
        bool_or(bounce_kind = 'soft') as soft_bounce_event,
        max(occurred_at) filter (where type = 'open') as last_open_at,
        max(occurred_at) filter (where type = 'click') as last_click_at,
        max(occurred_at) filter (where type = 'open' and is_human) as last_human_open_at,
        max(occurred_at) filter (where type = 'click' and is_human) as last_human_click_at,
        count(*) filter (where type = 'open' and occurred_at >= $as_of - interval 90 day) as opens_90d,
        count(*) filter (where type = 'click' and occurred_at >= $as_of - interval 90 day) as clicks_90d,
        count(*) filter (where type = 'open' and is_human and occurred_at >= $as_of - interval 90 day) as human_opens_90d,
        count(*) filter (where type = 'click' and is_human and occurred_at >= $as_of - interval 90 day) as human_clicks_90d,
        max(occurred_at) filter (where bounce_kind is not null) as last_bounce_at,
        count(*) filter (where bounce_kind is not null and occurred_at >= $as_of - interval 30 day) as bounces_30d
    from events
    group by campaign_id, subscriber_id
)

select * from final
