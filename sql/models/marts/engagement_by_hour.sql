-- When after the send do people open and click? Opens and clicks (raw and human) by whole
-- hours since the recipient's own delivery (a recipient without one: since the campaign's
-- first delivery), per variant and for the campaign as a whole (variant '*'). An event
-- stamped before its delivery (clock skew) counts in hour 0.
with deliveries as (
    select * from stg_deliveries
),

events as (
    select * from stg_events
),

campaign_starts as (
    select campaign_id, min(sent_at) as first_sent_at
    from deliveries
    group by campaign_id
),

timed as (
    select
        e.campaign_id,
        coalesce(d.variant, e.variant, '(unknown)') as variant,
        greatest(0, floor(epoch(e.occurred_at - coalesce(d.sent_at, c.first_sent_at)) / 3600))::integer as hours_since_send,
        e.type,
        e.is_human
    from events as e
    left join deliveries as d using (campaign_id, subscriber_id)
    join campaign_starts as c using (campaign_id)
    where e.type in ('open', 'click')
),

final as (
    select
        campaign_id,
        case when grouping(variant) = 0 then variant else '*' end as variant,
        hours_since_send,
        count(*) filter (where type = 'open') as opens,
        count(*) filter (where type = 'click') as clicks,
        count(*) filter (where type = 'open' and is_human) as human_opens,
        count(*) filter (where type = 'click' and is_human) as human_clicks
    from timed
    group by grouping sets ((campaign_id, variant, hours_since_send), (campaign_id, hours_since_send))
)

select * from final
