-- When after the send do people open and click? Opens and clicks (raw and human) by whole
-- hours since the recipient's own delivery (a recipient without one: since the campaign's
-- first delivery), per variant and for the campaign as a whole (variant '*'). An event
-- stamped before its delivery (clock skew) counts in hour 0; an event counts under its
-- delivery's variant, else the one it names.
with events as (
    select * from stg_events where in_campaign_scope and type in ('open', 'click')
),

deliveries as (
    select * from stg_deliveries where in_campaign_scope
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
        -- in whole microseconds: TIMESTAMPTZ minus TIMESTAMPTZ goes through ICU's calendar, 30x slower
        greatest(0, (epoch_us(e.occurred_at) - epoch_us(coalesce(d.sent_at, c.first_sent_at))) // 3600000000)::integer
            as hours_since_send,
        e.type,
        e.is_human
    from events as e
    left join deliveries as d using (campaign_id, subscriber_id)
    join campaign_starts as c using (campaign_id)
),

per_variant as (
    select
        campaign_id,
        variant,
        hours_since_send,
        count(*) filter (where type = 'open') as opens,
        count(*) filter (where type = 'click') as clicks,
        count(*) filter (where type = 'open' and is_human) as human_opens,
        count(*) filter (where type = 'click' and is_human) as human_clicks
    from timed
    group by campaign_id, variant, hours_since_send
),

campaign_totals as (
    -- summed from the variants' rows (GROUPING SETS would first copy every event)
    select
        campaign_id,
        '*' as variant,
        hours_since_send,
        sum(opens)::bigint as opens,
        sum(clicks)::bigint as clicks,
        sum(human_opens)::bigint as human_opens,
        sum(human_clicks)::bigint as human_clicks
    from per_variant
    group by campaign_id, hours_since_send
),

final as (
    select * from per_variant
    union all
    select * from campaign_totals
)

select * from final
