-- What each recipient did, in one pass over the events being refreshed, at two grains:
-- per campaign and subscriber (grain 'recipient': counts, last times, the last 90 and 30 days
-- as of $as_of, for int_recipient_outcomes and subscriber_engagement) and per campaign,
-- variant and whole hours since the recipient's delivery (grain 'hour', for engagement_by_hour;
-- a recipient without a delivery counts from the campaign's first one, an event stamped before
-- its delivery in hour 0). An event counts under its delivery's variant, else the one it names.
with events as (
    select * from stg_events
),

deliveries as (
    select * from stg_deliveries
),

campaign_starts as (
    select campaign_id, min(sent_at) as first_sent_at
    from deliveries
    where in_campaign_scope
    group by campaign_id
),

timed as (
    select
        e.* exclude (variant),
        e.variant as named_variant,
        coalesce(d.variant, e.variant, '(unknown)') as recipient_variant,
        case when e.type in ('open', 'click') and e.in_campaign_scope then
            greatest(0, floor(epoch(e.occurred_at - coalesce(d.sent_at, c.first_sent_at)) / 3600))::integer
        end as hours_since_send
    from events as e
    left join deliveries as d using (campaign_id, subscriber_id)
    left join campaign_starts as c using (campaign_id)
),

grouped as (
    select
        case when grouping(subscriber_id) = 0 then 'recipient' else 'hour' end as grain,
        campaign_id,
        subscriber_id,
        recipient_variant as variant,
        hours_since_send,
        bool_or(in_campaign_scope) as in_campaign_scope,
        bool_or(in_subscriber_scope) as in_subscriber_scope,
        min(named_variant) as named_variant,
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
    from timed
    group by grouping sets ((campaign_id, subscriber_id), (campaign_id, recipient_variant, hours_since_send))
),

final as (
    select *
    from grouped
    where grain = 'recipient' or (hours_since_send is not null and in_campaign_scope)
)

select * from final
